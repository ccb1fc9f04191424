"""Allocation of the loan book across assets (segments, or segment x region x PD band) under stress.

Why: a stress test says how much the book loses under a scenario; a lender also needs to know where
to grow and where to shrink so that the book earns the most risk-adjusted return without breaching
the stressed capital minimum, the CVaR appetite or the concentration limits. Every strategy here is
a convex programme over the Monte Carlo paths of the stress run (``docs/optimisation.md`` gives the
formulations and their sources).

Inputs per asset ``i`` (:class:`Assets`): ``L[p, i]``, the loss per unit of exposure on Monte Carlo
path ``p`` of the stress scenario over the horizon; the horizon's expected loss per unit
``el_i``; annual net interest margin, fees and cost; the standardized RWA density ``d_i``; the
stressed expected loss per unit of each quarter (for the capital path); the current exposure.
The return of a unit over the horizon is ``r_i = T (nim_i + fee_i - cost_i) - el_i`` (``T`` in years).

Strategies (:class:`Strategy`), all over the allocation ``x`` (dollars):

* ``min_cvar``: minimum CVaR of the portfolio loss ``L x`` subject to ``r . x >= target``;
* ``max_return``: maximum ``r . x`` subject to ``CVaR(L x) <= limit``;
* ``max_raroc``: maximum ``r . x / EC(x)``, linear-fractional after the Charnes-Cooper transform;
* ``risk_parity``: equal CVaR contributions ``x_i dCVaR/dx_i`` (constrained risk budgeting).

CVaR is the Rockafellar-Uryasev (2000) linear programme over the paths: with equal path weights,
``CVaR_a(x) = min_t t + sum_p max(L_p x - t, 0) / (N (1 - a))``, whose optimal value equals the
Acerbi-Tasche expected shortfall of the empirical loss distribution (``models.loss_statistics``).

Every strategy takes the same constraints (:class:`Limits`): per-asset growth and run-off bounds
around the current exposure, the total budget, segment concentration limits (share of the total),
an optional CVaR limit and the stressed CET1 minimum (:class:`CapitalBase`), which is linear in
``x`` at every quarter (see :class:`CapitalBase`). Variables are scaled to fractions of the budget
for the solvers; every reported number is in dollars.

An infeasible problem raises :class:`InfeasibleAllocation` naming the constraints that conflict: an
elastic (phase-1) programme adds a non-negative slack to every named constraint and minimises their
sum; the constraints left with a positive slack are those that cannot hold together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import cvxpy as cp
import numpy as np
from numpy.typing import ArrayLike, NDArray

from models import loss_statistics as stats
from models.capital import QUARTERS_PER_YEAR, allowance_path, provisions

LP_SOLVER = "HIGHS"
CONIC_SOLVER = "CLARABEL"
FALLBACK_CONIC_SOLVER = "SCS"  # when Clarabel stalls short of its 1e-8 tolerances (seen with loose bounds)
FALLBACK_CONIC_OPTIONS = {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000}
BINDING_TOLERANCE = 1e-6  # a constraint within this slack (fractions of the budget) is binding
ELASTIC_TOLERANCE = 1e-7  # a phase-1 slack above this is a violated constraint
RISK_PARITY_TOLERANCE = 1e-6  # |sum of weights - 1| at which the risk-parity bisection stops
RISK_PARITY_ITERATIONS = 100
RISK_PARITY_BUDGET_TOLERANCE = 1e-4  # largest share of the budget left unspent (or overspent) by solver noise


class Strategy(StrEnum):
    """The allocation strategies (formulations in the module docstring and docs/optimisation.md)."""

    MIN_CVAR = "min_cvar"
    MAX_RETURN = "max_return"
    MAX_RAROC = "max_raroc"
    RISK_PARITY = "risk_parity"


class InfeasibleAllocation(ValueError):
    """No allocation meets every constraint; ``constraints`` names those that conflict."""

    def __init__(self, constraints: Sequence[str], detail: str = "") -> None:
        self.constraints = tuple(constraints)
        super().__init__(f"no allocation meets every constraint; in conflict: {', '.join(self.constraints)}"
                         + (f" ({detail})" if detail else ""))


class UnboundedAllocation(ValueError):
    """The objective has no finite optimum within the limits (e.g. RAROC of an allocation without capital)."""


def _vector(value: ArrayLike, n: int, what: str) -> NDArray[np.float64]:
    array = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} must be finite")
    return array


@dataclass(frozen=True)
class Assets:
    """What each asset earns, loses and consumes, per unit of exposure; ``current`` in dollars.

    ``path_losses`` (paths x assets) are the losses per unit over the horizon on the stress
    scenario's Monte Carlo paths (CVaR, economic capital); ``quarterly_stressed_loss`` (quarters x
    assets) the stress scenario's expected loss per unit of each quarter (the capital path, like the
    engine's, runs on expected losses); ``expected_loss`` the horizon's expected loss per unit that the
    return is charged with (the baseline scenario's when the run has one). ``start_allowance`` is the
    jump-off allowance per unit (the next four quarters' expected loss).
    """

    names: tuple[str, ...]
    segments: tuple[str, ...]
    path_losses: NDArray[np.float64]
    expected_loss: NDArray[np.float64]
    net_interest_margin: NDArray[np.float64]
    fee_rate: NDArray[np.float64]
    cost_rate: NDArray[np.float64]
    rwa_density: NDArray[np.float64]
    current: NDArray[np.float64]
    quarterly_stressed_loss: NDArray[np.float64]
    start_allowance: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.names)
        if n == 0 or len(self.segments) != n or len(set(self.names)) != n:
            raise ValueError("need one segment per asset and distinct, non-empty asset names")
        losses = np.asarray(self.path_losses, dtype=np.float64)
        quarterly = np.asarray(self.quarterly_stressed_loss, dtype=np.float64)
        if losses.ndim != 2 or losses.shape[1] != n or losses.shape[0] < 1:
            raise ValueError(f"path_losses must be paths x {n} assets, got shape {losses.shape}")
        if quarterly.ndim != 2 or quarterly.shape[1] != n or quarterly.shape[0] < 1:
            raise ValueError(f"quarterly_stressed_loss must be quarters x {n} assets, got shape {quarterly.shape}")
        if not (np.all(np.isfinite(losses)) and np.all(np.isfinite(quarterly))):
            raise ValueError("losses must be finite")
        object.__setattr__(self, "path_losses", losses)
        object.__setattr__(self, "quarterly_stressed_loss", quarterly)
        for name in ("expected_loss", "net_interest_margin", "fee_rate", "cost_rate", "rwa_density", "current",
                     "start_allowance"):
            object.__setattr__(self, name, _vector(getattr(self, name), n, name))
        if np.any(self.current < 0) or np.any(self.rwa_density < 0):
            raise ValueError("current exposures and RWA densities must not be negative")

    @property
    def n_assets(self) -> int:
        return len(self.names)

    @property
    def n_quarters(self) -> int:
        return int(self.quarterly_stressed_loss.shape[0])

    @property
    def horizon_years(self) -> float:
        return self.n_quarters / QUARTERS_PER_YEAR

    @property
    def pre_provision_rate(self) -> NDArray[np.float64]:
        """Annual net interest margin plus fees less cost, per unit."""
        return self.net_interest_margin + self.fee_rate - self.cost_rate

    @property
    def unit_return(self) -> NDArray[np.float64]:
        """``r_i``: pre-provision revenue over the horizon less the expected loss, per unit."""
        return self.horizon_years * self.pre_provision_rate - self.expected_loss

    @property
    def stressed_expected_loss(self) -> NDArray[np.float64]:
        """Mean loss per unit over the stress paths (the EL in economic capital = VaR - EL)."""
        return self.path_losses.mean(axis=0)

    def cumulative_net_income(self, tax_rate: float) -> NDArray[np.float64]:
        """After-tax income per unit to the end of each quarter 0..Q (``Q + 1`` x assets) on the stress path.

        Provisions are net charge-offs plus the allowance build (``models.capital``), both linear in
        the unit's losses, so the capital path is linear in the allocation.
        """
        allowance = allowance_path(self.quarterly_stressed_loss.T, 0.0)
        allowance[:, 0] = self.start_allowance
        provision = provisions(self.quarterly_stressed_loss.T, allowance)  # assets x quarters
        pre_tax = np.cumsum(self.pre_provision_rate[:, None] / QUARTERS_PER_YEAR - provision, axis=1)
        return np.vstack([np.zeros(self.n_assets), (1.0 - tax_rate) * pre_tax.T])


@dataclass(frozen=True)
class CapitalBase:
    """The rest of the bank around the loan book, and the stressed CET1 requirement.

    With the allocation ``x`` (dollars), at every quarter ``q = 0..Q`` of the stress scenario::

        CET1_q(x) = cet1_start + other_income_q + sum_i x_i n_iq
        RWA_q(x)  = other_rwa + sum_i x_i d_i
        CET1_q(x) >= (minimum_ratio + buffer) RWA_q(x)

    where ``n_iq`` is a unit's cumulative after-tax income to quarter ``q`` (:meth:`Assets.cumulative_net_income`)
    and ``other_income_q`` the rest of the bank's (securities, other assets, fees not tied to a loan),
    cumulative and after tax (``Q + 1`` entries, the first 0). The ratio constraint multiplied out by
    ``RWA_q(x) > 0`` is linear in ``x``: the balance sheet is held constant (RWA density fixed at
    jump-off), the Fed's assumption, so nothing in it depends on ``x`` but through these sums.
    """

    cet1_start: float
    other_rwa: float
    other_income: NDArray[np.float64]
    minimum_ratio: float
    buffer: float
    tax_rate: float

    def __post_init__(self) -> None:
        income = np.asarray(self.other_income, dtype=np.float64)
        if income.ndim != 1 or income.size < 2 or income[0] != 0.0 or not np.all(np.isfinite(income)):
            raise ValueError("other_income must hold Q + 1 >= 2 finite cumulative values starting at 0")
        if self.other_rwa < 0 or not 0 < self.minimum_ratio + self.buffer < 1 or not 0 <= self.tax_rate < 1:
            raise ValueError("need other_rwa >= 0, 0 < minimum + buffer < 1 and 0 <= tax_rate < 1")
        object.__setattr__(self, "other_income", income)

    @property
    def required_ratio(self) -> float:
        return self.minimum_ratio + self.buffer


@dataclass(frozen=True)
class Limits:
    """The risk appetite: budget, bounds, concentration, CVaR and capital.

    ``budget`` is the largest total exposure (dollars) and ``min_budget_use`` the share of it that
    must be lent (1: the whole budget, a reallocation). Asset ``i`` may range over
    ``[current_i (1 - max_runoff_i), current_i (1 + max_growth_i)]``. ``concentration`` maps a
    segment to the largest share of the total it may hold. ``cvar_limit`` (dollars, optional) caps the
    CVaR at ``cvar_level`` of the horizon loss; ``economic_capital_level`` is the VaR level of
    economic capital.
    """

    budget: float
    max_growth: ArrayLike = 0.5
    max_runoff: ArrayLike = 0.5
    min_budget_use: float = 1.0
    concentration: dict[str, float] = field(default_factory=dict)
    cvar_level: float = 0.99
    cvar_limit: float | None = None
    economic_capital_level: float = 0.999
    capital: CapitalBase | None = None

    def __post_init__(self) -> None:
        if not self.budget > 0 or not 0 <= self.min_budget_use <= 1:
            raise ValueError("budget must be positive and min_budget_use in [0, 1]")
        if not (0 < self.cvar_level < 1 and 0 < self.economic_capital_level < 1):
            raise ValueError("CVaR and economic-capital levels must lie in (0, 1)")
        if self.cvar_limit is not None and self.cvar_limit < 0:
            raise ValueError("cvar_limit must not be negative")
        if any(not 0 <= share <= 1 for share in self.concentration.values()):
            raise ValueError("concentration limits are shares in [0, 1]")

    def bounds(self, assets: Assets) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Lower and upper exposure of each asset (dollars)."""
        growth = _vector(self.max_growth, assets.n_assets, "max_growth")
        runoff = _vector(self.max_runoff, assets.n_assets, "max_runoff")
        if np.any(growth < 0) or np.any((runoff < 0) | (runoff > 1)):
            raise ValueError("max_growth must be >= 0 and max_runoff in [0, 1]")
        return assets.current * (1.0 - runoff), assets.current * (1.0 + growth)


@dataclass(frozen=True)
class PortfolioMetrics:
    """Measures of one allocation, computed directly from the paths (not from the optimiser).

    ``economic_capital`` is ``VaR(L x) - mean(L x)`` at the economic-capital level; ``raroc`` the
    return over it. ``min_cet1_ratio`` and ``min_cet1_quarter`` are the trough of the linear capital
    path of :class:`CapitalBase` (``nan`` and -1 without one).
    """

    exposure: float
    expected_return: float
    expected_loss: float
    cvar: float
    economic_capital: float
    raroc: float
    min_cet1_ratio: float
    min_cet1_quarter: int


@dataclass(frozen=True)
class BindingConstraint:
    """A constraint that holds with equality at the optimum, and what relaxing it would be worth.

    ``shadow_price`` is the objective's improvement per dollar of relaxation (the dual value of the
    constraint written in dollars; for ``max_raroc`` that of the return maximisation at the optimum's
    economic capital); ``objective`` says what the objective is.
    """

    name: str
    family: str
    shadow_price: float
    objective: str


@dataclass(frozen=True)
class FrontierPoint:
    """One point of the efficient frontier: the largest return at a CVaR."""

    cvar: float
    expected_return: float
    allocation: NDArray[np.float64]


@dataclass(frozen=True)
class Allocation:
    """The recommended allocation beside the current one."""

    strategy: Strategy
    names: tuple[str, ...]
    segments: tuple[str, ...]
    recommended: NDArray[np.float64]
    current: NDArray[np.float64]
    recommended_metrics: PortfolioMetrics
    current_metrics: PortfolioMetrics
    binding: tuple[BindingConstraint, ...]
    risk_contributions: NDArray[np.float64]

    def change(self) -> dict[str, float]:
        """Recommended minus current of each measure."""
        new, old = self.recommended_metrics, self.current_metrics
        return {name: float(getattr(new, name) - getattr(old, name))
                for name in ("exposure", "expected_return", "expected_loss", "cvar", "economic_capital", "raroc",
                             "min_cet1_ratio")}

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON) for the results and the report."""
        return {
            "strategy": str(self.strategy),
            "assets": [{"name": n, "segment": s, "current": float(c), "recommended": float(r),
                        "cvar_contribution": float(k)}
                       for n, s, c, r, k in zip(self.names, self.segments, self.current, self.recommended,
                                                self.risk_contributions, strict=True)],
            "current": _metrics_dict(self.current_metrics),
            "recommended": _metrics_dict(self.recommended_metrics),
            "change": self.change(),
            "binding": [{"name": b.name, "family": b.family, "shadow_price": b.shadow_price,
                         "objective": b.objective} for b in self.binding],
        }


def _metrics_dict(metrics: PortfolioMetrics) -> dict[str, float]:
    return {name: float(value) for name, value in vars(metrics).items()}


def tail_weights(losses: ArrayLike, level: float) -> NDArray[np.float64]:
    """Path weights whose dot product with the losses is the expected shortfall at ``level``.

    The worst ``1 - level`` of the (equally weighted) paths get ``1 / (N (1 - level))`` each and the
    path at the VaR the remaining fraction (Acerbi-Tasche), so ``weights @ L[:, i] x_i`` are the
    CVaR contributions of the assets, which add up to the CVaR (Euler allocation).
    """
    values = np.asarray(losses, dtype=np.float64)
    n = values.size
    order = np.argsort(-values, kind="stable")
    mass = np.full(n, 1.0 / n)
    tail = 1.0 - level
    taken_before = np.concatenate([[0.0], np.cumsum(mass)[:-1]])
    share = np.clip(np.minimum(mass, tail - taken_before), 0.0, None)
    weights = np.zeros(n)
    weights[order] = share / tail
    return weights


def evaluate(assets: Assets, limits: Limits, allocation: ArrayLike) -> PortfolioMetrics:
    """The measures of an allocation straight from the paths and the capital model (no optimiser)."""
    x = _vector(allocation, assets.n_assets, "allocation")
    portfolio_loss = assets.path_losses @ x
    expected_return = float(assets.unit_return @ x)
    var = stats.value_at_risk(portfolio_loss, limits.economic_capital_level)
    economic_capital = var - float(portfolio_loss.mean())
    raroc = expected_return / economic_capital if economic_capital > 0 else float("nan")
    ratio, quarter = float("nan"), -1
    if limits.capital is not None:
        ratios = cet1_ratio_path(assets, limits.capital, x)
        quarter = int(np.argmin(ratios))
        ratio = float(ratios[quarter])
    return PortfolioMetrics(float(x.sum()), expected_return, float(assets.expected_loss @ x),
                            stats.expected_shortfall(portfolio_loss, limits.cvar_level), economic_capital, raroc,
                            ratio, quarter)


def cet1_ratio_path(assets: Assets, capital: CapitalBase, allocation: ArrayLike) -> NDArray[np.float64]:
    """CET1 ratio at quarters 0..Q of the stress scenario for an allocation (:class:`CapitalBase`)."""
    x = _vector(allocation, assets.n_assets, "allocation")
    _check_capital_quarters(assets, capital)
    cet1 = capital.cet1_start + capital.other_income + assets.cumulative_net_income(capital.tax_rate) @ x
    return cet1 / (capital.other_rwa + assets.rwa_density @ x)


def _check_capital_quarters(assets: Assets, capital: CapitalBase) -> None:
    if capital.other_income.size != assets.n_quarters + 1:
        raise ValueError(f"the capital base has {capital.other_income.size - 1} quarters, the assets "
                         f"{assets.n_quarters}")


def _row(expression: cp.Expression) -> cp.Expression:
    """A scalar constraint expression as a one-element vector (every named family is a vector)."""
    return cp.reshape(expression, (1,), order="C")


@dataclass
class _Named:
    """A family of constraints ``expression <= 0`` (elementwise), one name per element."""

    family: str
    names: list[str]
    expression: cp.Expression


class _Programme:
    """The constraints of every strategy over the budget-scaled allocation ``w = x / budget``.

    ``one`` is 1 for the plain programmes and the Charnes-Cooper scale ``s`` for ``max_raroc``: every
    constraint is written ``A w - b one <= 0``, so the same code gives the homogenised constraints.
    """

    def __init__(self, assets: Assets, limits: Limits, one: cp.Expression | float = 1.0) -> None:
        self.assets, self.limits, self.one = assets, limits, one
        self.budget = limits.budget
        self.w = cp.Variable(assets.n_assets, name="w")
        self.named: list[_Named] = []
        self.hard: list[cp.Constraint] = []
        self._cvar_cache: dict[float, cp.Expression] = {}
        self._tail_constraints: dict[float, cp.Constraint] = {}
        lower, upper = limits.bounds(assets)
        self.lower, self.upper = lower / self.budget, upper / self.budget
        self.hard.append(self.w >= 0)
        self.add("run-off bound", [f"run-off bound {n}" for n in assets.names], self.lower * one - self.w)
        self.add("growth bound", [f"growth bound {n}" for n in assets.names], self.w - self.upper * one)
        self.add("total budget", ["total budget"], _row(cp.sum(self.w) - one))
        if limits.min_budget_use > 0:
            self.add("total budget", ["minimum budget use"],
                     _row(limits.min_budget_use * one - cp.sum(self.w)))
        segments = np.asarray(assets.segments, dtype=object)
        for segment, share in sorted(limits.concentration.items()):
            members = segments == segment
            if not members.any():
                raise ValueError(f"concentration limit for {segment!r}, which no asset belongs to")
            self.add("concentration", [f"concentration {segment}"],
                     _row(cp.sum(self.w[np.flatnonzero(members)]) - share * cp.sum(self.w)))
        if limits.cvar_limit is not None:
            self.add("CVaR limit", [f"CVaR {limits.cvar_level:.1%} limit"],
                     _row(self.cvar(limits.cvar_level) - limits.cvar_limit / self.budget * one))
        if limits.capital is not None:
            self._add_capital(limits.capital)

    def add(self, family: str, names: list[str], expression: cp.Expression) -> None:
        self.named.append(_Named(family, names, expression))

    def _add_capital(self, capital: CapitalBase) -> None:
        _check_capital_quarters(self.assets, capital)
        k = capital.required_ratio
        income = self.assets.cumulative_net_income(capital.tax_rate)  # (Q + 1) x assets
        # k RWA_q - CET1_q <= 0, in dollars / budget.
        per_unit = k * self.assets.rwa_density[None, :] - income
        constant = (k * capital.other_rwa - capital.cet1_start - capital.other_income) / self.budget
        names = [f"stressed CET1 >= {k:.2%} at quarter {q}" for q in range(self.assets.n_quarters + 1)]
        self.add("stressed CET1", names, per_unit @ self.w + constant * self.one)

    def cvar(self, level: float) -> cp.Expression:
        """Rockafellar-Uryasev CVaR of ``L w`` at ``level`` (an LP epigraph; homogeneous in (w, t, u))."""
        if level not in self._cvar_cache:
            losses = self.assets.path_losses
            threshold = cp.Variable(name=f"var_{level}")
            excess = cp.Variable(losses.shape[0], nonneg=True, name=f"excess_{level}")
            self._tail_constraints[level] = excess >= losses @ self.w - threshold
            self.hard.append(self._tail_constraints[level])
            self._cvar_cache[level] = threshold + cp.sum(excess) / (losses.shape[0] * (1.0 - level))
        return self._cvar_cache[level]

    def constraints(self) -> list[cp.Constraint]:
        return [*self.hard, *(named.expression <= 0 for named in self.named)]

    def solve(self, objective: cp.Minimize | cp.Maximize, solver: str = LP_SOLVER) -> cp.Problem:
        """Solve; on infeasibility raise :class:`InfeasibleAllocation` naming the conflicting constraints."""
        constraints = self.constraints()
        problem = cp.Problem(objective, constraints)
        problem.solve(solver=solver)
        if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            raise InfeasibleAllocation(self.conflicting())
        if problem.status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
            raise UnboundedAllocation("the objective is unbounded within the limits")
        if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise RuntimeError(f"the solver {solver} ended with status {problem.status}")
        self._solved = list(zip(self.named, constraints[len(self.hard):], strict=True))
        return problem

    def conflicting(self) -> list[str]:
        """Phase 1: the named constraints of the infeasibility certificate.

        The elastic programme minimises the sum of non-negative slacks, one per named constraint.
        Its optimal duals (Farkas multipliers) are positive on the constraints that together cannot
        hold; those with a positive slack (the ones the least violation breaks) come first.
        """
        slacks = [cp.Variable(len(named.names), nonneg=True) for named in self.named]
        relaxed = [named.expression <= slack for named, slack in zip(self.named, slacks, strict=True)]
        elastic = [*self.hard, *relaxed]
        if isinstance(self.one, cp.Variable):
            elastic.append(self.one == 1.0)  # the scale of a homogenised programme
        problem = cp.Problem(cp.Minimize(sum(cp.sum(s) for s in slacks)), elastic)
        problem.solve(solver=LP_SOLVER)
        if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            return [f"(the phase-1 programme ended with status {problem.status})"]
        broken, certificate = [], []
        for named, slack, constraint in zip(self.named, slacks, relaxed, strict=True):
            duals = np.atleast_1d(constraint.dual_value)
            for name, value, dual in zip(named.names, slack.value, duals, strict=True):
                if value > ELASTIC_TOLERANCE:
                    broken.append(name)
                elif abs(dual) > ELASTIC_TOLERANCE:
                    certificate.append(name)
        return broken + certificate

    def binding(self, objective: str) -> tuple[BindingConstraint, ...]:
        """Constraints at equality after :meth:`solve`, with their dual values as shadow prices."""
        found = []
        for named, constraint in self._solved:
            values = np.atleast_1d(named.expression.value)
            duals = np.atleast_1d(constraint.dual_value)
            for name, value, dual in zip(named.names, values, duals, strict=True):
                if value > -BINDING_TOLERANCE:
                    found.append(BindingConstraint(name, named.family, float(abs(dual)), objective))
        return tuple(found)

    def tail_weights(self, level: float) -> NDArray[np.float64]:
        """The RU dual path weights at ``level`` after a solve: the subgradient of CVaR the optimum rests on.

        At a kink of the empirical CVaR (paths tied at the VaR) the Euler contributions are not unique;
        these duals are the ones that satisfy the optimality conditions (they add up to 1).
        """
        weights = np.clip(np.asarray(self._tail_constraints[level].dual_value, dtype=np.float64), 0.0, None)
        return weights / weights.sum()

    def allocation(self, scale: float = 1.0) -> NDArray[np.float64]:
        return np.clip(np.asarray(self.w.value, dtype=np.float64) / scale, 0.0, None) * self.budget


def _result(strategy: Strategy, assets: Assets, limits: Limits, allocation: NDArray[np.float64],
            binding: tuple[BindingConstraint, ...], weights: NDArray[np.float64] | None = None) -> Allocation:
    """The allocation with its measures; CVaR contributions from ``weights`` (default Acerbi-Tasche)."""
    if weights is None:
        weights = tail_weights(assets.path_losses @ allocation, limits.cvar_level)
    return Allocation(strategy, assets.names, assets.segments, allocation, assets.current.copy(),
                      evaluate(assets, limits, allocation), evaluate(assets, limits, assets.current), binding,
                      (weights @ assets.path_losses) * allocation)


def minimum_cvar(assets: Assets, limits: Limits, target_return: float | None = None) -> Allocation:
    """Strategy ``min_cvar``: the least CVaR with an expected return of at least ``target_return`` dollars."""
    programme = _Programme(assets, limits)
    if target_return is not None:
        programme.add("target return", ["target return"],
                      _row(target_return / limits.budget - assets.unit_return @ programme.w))
    programme.solve(cp.Minimize(programme.cvar(limits.cvar_level)))
    return _result(Strategy.MIN_CVAR, assets, limits, programme.allocation(),
                   programme.binding(f"CVaR {limits.cvar_level:.1%} (dollars, lower is better)"))


def maximum_return(assets: Assets, limits: Limits) -> Allocation:
    """Strategy ``max_return``: the largest ``r . x`` under every limit (the CVaR limit among them)."""
    programme = _Programme(assets, limits)
    programme.solve(cp.Maximize(assets.unit_return @ programme.w))
    return _result(Strategy.MAX_RETURN, assets, limits, programme.allocation(),
                   programme.binding("expected return (dollars)"))


def maximum_raroc(assets: Assets, limits: Limits) -> Allocation:
    """Strategy ``max_raroc``: the largest return over economic capital, by the Charnes-Cooper transform.

    Economic capital ``VaR_a(L x) - EL(x)`` is not convex in ``x`` (VaR is not), so the programme uses
    ``ES_a(L x) - EL(x)`` instead: convex, positively homogeneous and never below the VaR form. The
    ratio ``r . x / (ES_a(L x) - el . x)`` of a linear over a convex homogeneous function is
    maximised by substituting ``y = s x`` with ``s = 1 / EC(x)`` (Charnes and Cooper 1962): maximise
    ``r . y`` subject to ``ES_a(L y) - el . y <= 1`` and every constraint homogenised (``A y <= b s``),
    ``s >= 0``; then ``x = y / s``. It needs a feasible allocation with a positive return. The
    binding constraints and shadow prices are those of the return maximisation with economic capital
    capped at the optimum's (the same allocation), so they read in dollars of return.
    """
    scale = cp.Variable(nonneg=True, name="charnes_cooper_scale")
    programme = _Programme(assets, limits, one=scale)
    level = limits.economic_capital_level
    programme.hard.append(programme.cvar(level) - assets.stressed_expected_loss @ programme.w <= 1.0)
    try:
        problem = programme.solve(cp.Maximize(assets.unit_return @ programme.w))
    except UnboundedAllocation:
        raise UnboundedAllocation("RAROC is unbounded: an allocation within the limits with a positive return "
                                  "has no economic capital") from None
    if problem.value is None or problem.value <= 0 or scale.value is None or scale.value <= 0:
        raise InfeasibleAllocation(["positive expected return"],
                                   "RAROC needs an allocation with a positive expected return")
    allocation = programme.allocation(float(scale.value))
    # Same allocation as the return maximisation at its economic capital: read the shadow prices there.
    capped = _Programme(assets, limits)
    economic_capital = (programme.cvar(level).value - assets.stressed_expected_loss @ programme.w.value) / scale.value
    capped.add("economic capital", [f"economic capital (ES {level:.1%} - EL) at the optimum"],
               _row(capped.cvar(level) - assets.stressed_expected_loss @ capped.w
                          - economic_capital * (1 + 1e-9)))
    capped.solve(cp.Maximize(assets.unit_return @ capped.w))
    return _result(Strategy.MAX_RAROC, assets, limits, allocation, capped.binding("expected return (dollars)"))


def risk_parity(assets: Assets, limits: Limits, budgets: ArrayLike | None = None) -> Allocation:
    """Strategy ``risk_parity``: CVaR contributions in proportion to ``budgets`` (equal by default).

    Constrained risk budgeting (Richard and Roncalli 2019, after Mausser and Romanko 2014 for CVaR):
    minimise ``CVaR(L w) - lam sum_i b_i ln w_i`` over the constraints other than the budget. At the
    optimum, every asset whose own constraints are slack has contribution ``w_i dCVaR/dw_i = lam b_i``
    (the first-order condition, CVaR being homogeneous of degree 1), so contributions are exactly
    proportional to the budgets where the limits allow. ``lam`` is set by bisection so that the
    weights add up to the budget. The CVaR limit is not a constraint of the programme (the weights
    that maximise ``sum b ln w`` under a CVaR cap need not spend the budget, so no ``lam`` would):
    the parity allocation is refused, naming the limit, when its CVaR exceeds it. For the solver the
    programme is solved in ``v = w / lam``, where it reads ``min CVaR(L v) - sum_i b_i ln v_i`` with
    every constant divided by ``lam`` (the homogenised constraints): ``v`` stays of the same size
    whatever ``lam``. The log makes it a conic (exponential cone) programme.
    """
    b = _vector(np.ones(assets.n_assets) if budgets is None else budgets, assets.n_assets, "budgets")
    if np.any(b <= 0):
        raise ValueError("risk budgets must be positive")
    b = b / b.sum()
    inverse_lam = cp.Parameter(nonneg=True, name="inverse_lam")
    programme = _Programme(assets, replace(limits, cvar_limit=None), one=inverse_lam)
    programme.named = [named for named in programme.named if named.family != "total budget"]
    problem = cp.Problem(cp.Minimize(programme.cvar(limits.cvar_level) - b @ cp.log(programme.w)),
                         programme.constraints())

    def total(lam: float) -> float:
        inverse_lam.value = 1.0 / lam
        _solve_conic(problem)
        if problem.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            raise InfeasibleAllocation(programme.conflicting())
        if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise RuntimeError(f"the solver {CONIC_SOLVER} ended with status {problem.status}")
        return lam * float(np.sum(programme.w.value))

    lam_low, lam_high = 0.0, _bracket(total, 1.0)
    lam = lam_high
    spent = total(lam)
    for _ in range(RISK_PARITY_ITERATIONS):
        if abs(spent - 1.0) <= RISK_PARITY_TOLERANCE or lam_high - lam_low <= 1e-12 * lam_high:
            break
        lam = 0.5 * (lam_low + lam_high)
        spent = total(lam)
        lam_low, lam_high = (lam, lam_high) if spent < 1.0 else (lam_low, lam)
    if abs(spent - 1.0) > RISK_PARITY_BUDGET_TOLERANCE:
        raise RuntimeError(f"risk parity: the bisection on the risk weight spent {spent:.6f} of the budget")
    programme._solved = list(zip(programme.named, problem.constraints[len(programme.hard):], strict=True))
    result = _result(Strategy.RISK_PARITY, assets, limits, programme.allocation(scale=1.0 / lam),
                     programme.binding("CVaR - lam sum b ln w (risk-budgeting objective, per 1/lam)"),
                     programme.tail_weights(limits.cvar_level))
    if limits.cvar_limit is not None and result.recommended_metrics.cvar > limits.cvar_limit * (1 + 1e-6):
        raise InfeasibleAllocation([f"CVaR {limits.cvar_level:.1%} limit"],
                                   f"the risk-parity allocation of the budget has a CVaR of "
                                   f"{result.recommended_metrics.cvar:,.0f}")
    return result


def _solve_conic(problem: cp.Problem) -> None:
    """Clarabel, and SCS at tight tolerances when Clarabel stops for insufficient progress."""
    try:
        problem.solve(solver=CONIC_SOLVER)
    except cp.error.SolverError:
        problem.solve(solver=FALLBACK_CONIC_SOLVER, **FALLBACK_CONIC_OPTIONS)


def _bracket(total: Callable[[float], float], target: float) -> float:
    """A risk weight at which the weights add up to at least ``target`` (doubling from a small one)."""
    lam = 1e-3
    for _ in range(60):
        if total(lam) >= target:
            return lam
        lam *= 2.0
    raise InfeasibleAllocation(["total budget", "growth bound"],
                               "the growth bounds and limits do not let the weights reach the budget")


def efficient_frontier(assets: Assets, limits: Limits, n_points: int = 12) -> list[FrontierPoint]:
    """The largest return at CVaR levels from the least CVaR to that of the unconstrained-CVaR optimum.

    Every constraint but the CVaR limit applies; the points are ``max_return`` solutions at CVaR
    limits spaced evenly between the two ends, so their return never falls as the CVaR rises.
    """
    if n_points < 2:
        raise ValueError("a frontier needs at least two points")
    free = replace(limits, cvar_limit=None)
    lowest = minimum_cvar(assets, free).recommended_metrics.cvar
    highest = maximum_return(assets, free).recommended_metrics.cvar
    points = []
    for cvar_limit in np.linspace(lowest, max(highest, lowest), n_points):
        programme = _Programme(assets, replace(free, cvar_limit=float(cvar_limit) * (1 + 1e-9)))
        problem = programme.solve(cp.Maximize(assets.unit_return @ programme.w))
        allocation = programme.allocation()
        points.append(FrontierPoint(float(cvar_limit), float(problem.value) * limits.budget, allocation))
    return points


STRATEGIES: dict[Strategy, Callable[..., Allocation]] = {
    Strategy.MIN_CVAR: minimum_cvar,
    Strategy.MAX_RETURN: maximum_return,
    Strategy.MAX_RAROC: maximum_raroc,
    Strategy.RISK_PARITY: risk_parity,
}


def optimise(strategy: Strategy | str, assets: Assets, limits: Limits, **options: Any) -> Allocation:
    """Run one strategy by name (``target_return`` for ``min_cvar``, ``budgets`` for ``risk_parity``)."""
    return STRATEGIES[Strategy(strategy)](assets, limits, **options)
