"""Portfolio optimisation: hand-computed optima, an independent scipy LP, the capital model, properties."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from models import loss_statistics as stats
from models.capital import allowance_path, project_capital, provisions
from models.optimisation import (
    Assets,
    CapitalBase,
    InfeasibleAllocation,
    Limits,
    cet1_ratio_path,
    efficient_frontier,
    evaluate,
    maximum_raroc,
    maximum_return,
    minimum_cvar,
    optimise,
    risk_parity,
    tail_weights,
)

QUARTERS = 4  # one year: the horizon return is the annual margin less the expected loss


def two_assets(current: tuple[float, float] = (50.0, 50.0)) -> Assets:
    """A safe asset (no loss, return 1 %) and a risky one (loses 50 % on one path in ten, return 5 %)."""
    losses = np.zeros((10, 2))
    losses[3, 1] = 0.5
    return Assets(names=("safe", "risky"), segments=("mortgage", "cards"), path_losses=losses,
                  expected_loss=np.array([0.0, 0.05]), net_interest_margin=np.array([0.01, 0.10]),
                  fee_rate=0.0, cost_rate=0.0, rwa_density=np.array([0.5, 1.0]), current=np.array(current),
                  quarterly_stressed_loss=np.zeros((QUARTERS, 2)), start_allowance=0.0)


def wide_limits(**changes) -> Limits:
    """Budget 100, each asset free between 0 and 100 (current 50 +- 100 %)."""
    return Limits(**{"budget": 100.0, "max_growth": 1.0, "max_runoff": 1.0, "cvar_level": 0.9, **changes})


def random_assets(seed: int, n_assets: int = 5, n_paths: int = 200) -> Assets:
    rng = np.random.default_rng(seed)
    factor = rng.standard_normal((n_paths, 1))
    loadings = rng.uniform(0.2, 0.9, n_assets)
    shocks = loadings * factor + np.sqrt(1 - loadings**2) * rng.standard_normal((n_paths, n_assets))
    base = rng.uniform(0.005, 0.05, n_assets)
    losses = base * np.exp(0.8 * shocks - 0.32)
    return Assets(names=tuple(f"asset{i}" for i in range(n_assets)),
                  segments=tuple(f"segment{i % 3}" for i in range(n_assets)), path_losses=losses,
                  expected_loss=losses.mean(axis=0), net_interest_margin=base * rng.uniform(1.1, 2.0, n_assets),
                  fee_rate=rng.uniform(0, 0.004, n_assets), cost_rate=rng.uniform(0, 0.004, n_assets),
                  rwa_density=rng.choice([0.5, 1.0], n_assets), current=rng.uniform(10, 30, n_assets),
                  quarterly_stressed_loss=np.outer(np.full(QUARTERS, 0.25), losses.mean(axis=0) * 1.5),
                  start_allowance=losses.mean(axis=0))


# --- hand-computed optima -------------------------------------------------------------------------------------------


def test_cvar_limit_binding_gives_the_hand_computed_mix():
    # CVaR 90 % of the book is 0.5 x_risky (the one bad path); CVaR <= 20 gives x_risky = 40.
    result = maximum_return(two_assets(), wide_limits(cvar_limit=20.0))
    np.testing.assert_allclose(result.recommended, [60.0, 40.0], atol=1e-6)
    assert result.recommended_metrics.expected_return == pytest.approx(0.6 + 2.0)
    assert result.recommended_metrics.cvar == pytest.approx(20.0)  # the empirical CVaR meets the RU limit exactly
    cvar = next(b for b in result.binding if b.family == "CVaR limit")
    # One more dollar of CVaR moves 2 dollars from safe to risky: 2 x (5 % - 1 %) of return.
    assert cvar.shadow_price == pytest.approx(0.08, rel=1e-6)


def test_concentration_limit_binding_caps_the_segment_share():
    result = maximum_return(two_assets(), wide_limits(concentration={"cards": 0.3}))
    np.testing.assert_allclose(result.recommended, [70.0, 30.0], atol=1e-6)
    names = {b.name for b in result.binding}
    assert "concentration cards" in names and "total budget" in names
    concentration = next(b for b in result.binding if b.name == "concentration cards")
    # Raising the cards share by one dollar of the total moves a dollar from safe to risky: 4 cents.
    assert concentration.shadow_price == pytest.approx(0.04 / 100.0 * 100.0, rel=1e-6)


def test_minimum_cvar_at_a_target_return():
    # Return 1 + 0.04 x_risky >= 3 needs x_risky = 50; the CVaR is then 25.
    result = minimum_cvar(two_assets(), wide_limits(), target_return=3.0)
    np.testing.assert_allclose(result.recommended, [50.0, 50.0], atol=1e-6)
    assert result.recommended_metrics.cvar == pytest.approx(25.0)
    target = next(b for b in result.binding if b.family == "target return")
    assert target.shadow_price == pytest.approx(0.5 / 0.04, rel=1e-6)  # CVaR per dollar of return


def test_stressed_cet1_minimum_binding_at_jump_off():
    # CET1 8 against 10 % of 0.5 x_safe + x_risky: x_risky <= 60. No losses, positive income: quarter 0 binds.
    capital = CapitalBase(cet1_start=8.0, other_rwa=0.0, other_income=np.zeros(QUARTERS + 1), minimum_ratio=0.07,
                          buffer=0.03, tax_rate=0.21)
    result = maximum_return(two_assets(), wide_limits(capital=capital))
    np.testing.assert_allclose(result.recommended, [40.0, 60.0], atol=1e-6)
    assert result.recommended_metrics.min_cet1_ratio == pytest.approx(0.10)
    assert result.recommended_metrics.min_cet1_quarter == 0
    binding = next(b for b in result.binding if b.family == "stressed CET1")
    assert binding.name.endswith("quarter 0")
    # A dollar of CET1 carries 1 / (10 % x 0.5) = 20 dollars more of risky in place of safe: 20 x 4 cents.
    assert binding.shadow_price == pytest.approx(0.8, rel=1e-6)


def test_capital_path_is_the_capital_model_of_the_engine():
    assets, rng = random_assets(3), np.random.default_rng(3)
    allocation = rng.uniform(5, 40, assets.n_assets)
    capital = CapitalBase(cet1_start=9.0, other_rwa=30.0, other_income=np.linspace(0, 0.8, QUARTERS + 1),
                          minimum_ratio=0.045, buffer=0.025, tax_rate=0.21)

    # The same path by models.capital at the portfolio level: PPNR, provisions with the allowance build, taxes.
    net_charge_offs = assets.quarterly_stressed_loss @ allocation
    allowance = allowance_path(net_charge_offs, float(assets.start_allowance @ allocation))
    ppnr = np.full(QUARTERS, assets.pre_provision_rate @ allocation / 4) + np.diff(capital.other_income) / (1 - 0.21)
    rwa = np.full(QUARTERS + 1, capital.other_rwa + assets.rwa_density @ allocation)
    path = project_capital(capital.cet1_start, 0.0, rwa, rwa, ppnr, provisions(net_charge_offs, allowance), 0.21)
    np.testing.assert_allclose(cet1_ratio_path(assets, capital, allocation), path.cet1_ratio, rtol=1e-12)


# --- an independent LP (scipy linprog over dollars) ----------------------------------------------------------------


def linprog_max_return(assets: Assets, limits: Limits) -> tuple[float, np.ndarray]:
    """The RU max-return LP written out by hand for scipy: variables x (dollars), t, u (paths)."""
    n, paths = assets.n_assets, assets.path_losses.shape[0]
    lower, upper = limits.bounds(assets)
    tail = paths * (1 - limits.cvar_level)
    c = np.concatenate([-assets.unit_return, [0.0], np.zeros(paths)])
    rows, rhs = [], []
    # L x - t - u <= 0
    rows.append(np.hstack([assets.path_losses, -np.ones((paths, 1)), -np.eye(paths)]))
    rhs.append(np.zeros(paths))
    rows.append(np.concatenate([np.zeros(n), [1.0], np.full(paths, 1 / tail)])[None, :])
    rhs.append([limits.cvar_limit])
    rows.append(np.concatenate([np.ones(n), [0.0], np.zeros(paths)])[None, :])
    rhs.append([limits.budget])
    rows.append(np.concatenate([-np.ones(n), [0.0], np.zeros(paths)])[None, :])
    rhs.append([-limits.budget * limits.min_budget_use])
    for segment, share in limits.concentration.items():
        member = np.array([s == segment for s in assets.segments], dtype=float)
        rows.append(np.concatenate([member - share, [0.0], np.zeros(paths)])[None, :])
        rhs.append([0.0])
    bounds = [*zip(lower, upper, strict=True), (None, None), *[(0, None)] * paths]
    solution = linprog(c, A_ub=np.vstack(rows), b_ub=np.concatenate(rhs), bounds=bounds, method="highs")
    assert solution.status == 0
    return -solution.fun, solution.x[:n]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_max_return_agrees_with_an_independent_scipy_lp(seed):
    assets = random_assets(seed)
    free = Limits(budget=100.0, max_growth=1.5, max_runoff=0.8, cvar_level=0.95)
    unconstrained = evaluate(assets, free, maximum_return(assets, free).recommended).cvar
    floor = evaluate(assets, free, minimum_cvar(assets, free).recommended).cvar
    limits = Limits(budget=100.0, max_growth=1.5, max_runoff=0.8, cvar_level=0.95,
                    cvar_limit=0.5 * (floor + unconstrained), concentration={"segment0": 0.45})
    expected, allocation = linprog_max_return(assets, limits)
    result = maximum_return(assets, limits)
    assert result.recommended_metrics.expected_return == pytest.approx(expected, rel=1e-6)
    # The RU CVaR of the optimum is the empirical expected shortfall of its loss vector, computed apart.
    empirical = stats.expected_shortfall(assets.path_losses @ result.recommended, 0.95)
    assert empirical == pytest.approx(limits.cvar_limit, rel=1e-6)
    assert stats.expected_shortfall(assets.path_losses @ allocation, 0.95) == pytest.approx(empirical, rel=1e-6)


def test_ru_minimum_cvar_is_the_empirical_cvar_of_the_scipy_optimum():
    assets = random_assets(5)
    limits = Limits(budget=100.0, max_growth=1.0, max_runoff=0.9, cvar_level=0.99)
    n, paths = assets.n_assets, assets.path_losses.shape[0]
    lower, upper = limits.bounds(assets)
    tail = paths * 0.01
    c = np.concatenate([np.zeros(n), [1.0], np.full(paths, 1 / tail)])
    a_ub = np.vstack([np.hstack([assets.path_losses, -np.ones((paths, 1)), -np.eye(paths)])])
    budget_row = np.concatenate([np.ones(n), [0.0], np.zeros(paths)])[None]
    solution = linprog(c, A_ub=a_ub, b_ub=np.zeros(paths), A_eq=budget_row, b_eq=[100.0],
                       bounds=[*zip(lower, upper, strict=True), (None, None), *[(0, None)] * paths],
                       method="highs")
    result = minimum_cvar(assets, limits)
    assert result.recommended_metrics.cvar == pytest.approx(solution.fun, rel=1e-6)
    assert stats.expected_shortfall(assets.path_losses @ solution.x[:n], 0.99) == pytest.approx(solution.fun, rel=1e-6)


# --- RAROC, risk parity, contributions ------------------------------------------------------------------------------


def test_max_raroc_is_the_best_ratio_on_a_fine_grid():
    assets = random_assets(7, n_assets=2, n_paths=400)
    limits = Limits(budget=100.0, max_growth=3.0, max_runoff=1.0, economic_capital_level=0.99)
    result = maximum_raroc(assets, limits)
    lower, upper = limits.bounds(assets)
    grid = np.linspace(max(lower[1], 100 - upper[0]), min(upper[1], 100 - lower[0]), 20001)
    el = assets.stressed_expected_loss
    ratios = [assets.unit_return @ [100 - b, b] / (stats.expected_shortfall(assets.path_losses @ [100 - b, b], 0.99)
                                                  - el @ [100 - b, b]) for b in grid]
    best = grid[int(np.argmax(ratios))]
    assert result.recommended[1] == pytest.approx(best, abs=0.02)
    assert result.recommended.sum() == pytest.approx(100.0)


def test_risk_parity_equalises_cvar_contributions():
    assets = random_assets(11, n_assets=4, n_paths=400)
    limits = Limits(budget=100.0, max_growth=10.0, max_runoff=1.0, cvar_level=0.95)
    result = risk_parity(assets, limits)
    contributions = result.risk_contributions
    assert result.recommended.sum() == pytest.approx(100.0, rel=1e-5)
    np.testing.assert_allclose(contributions, contributions.mean(), rtol=2e-3)
    assert contributions.sum() == pytest.approx(result.recommended_metrics.cvar, rel=1e-6)


def test_risk_parity_holds_a_binding_bound_and_shares_the_rest_equally():
    assets = random_assets(11, n_assets=4, n_paths=400)
    free = risk_parity(assets, Limits(budget=100.0, max_growth=10.0, max_runoff=1.0, cvar_level=0.95))
    # Asset 0 capped at half its parity size: its current exposure, with no growth.
    capped = replace(assets, current=np.concatenate([[0.5 * free.recommended[0]], assets.current[1:]]))
    growth = np.array([0.0, 10.0, 10.0, 10.0])
    result = risk_parity(capped, Limits(budget=100.0, max_growth=growth, max_runoff=1.0, cvar_level=0.95))
    assert result.recommended[0] == pytest.approx(0.5 * free.recommended[0], rel=1e-5)
    others = result.risk_contributions[1:]
    np.testing.assert_allclose(others, others.mean(), rtol=2e-3)
    assert any(b.name == "growth bound asset0" for b in result.binding)


def test_tail_weights_give_the_acerbi_tasche_shortfall():
    losses = np.random.default_rng(2).lognormal(size=997)
    for level in (0.9, 0.975, 0.99):
        assert tail_weights(losses, level) @ losses == pytest.approx(stats.expected_shortfall(losses, level))


# --- infeasibility names the constraint ----------------------------------------------------------------------------


def test_conflicting_concentration_limits_are_named():
    limits = wide_limits(concentration={"cards": 0.2, "mortgage": 0.3})
    with pytest.raises(InfeasibleAllocation) as raised:
        maximum_return(two_assets(), limits)
    assert set(raised.value.constraints) == {"concentration cards", "concentration mortgage", "minimum budget use"}
    assert "concentration" in str(raised.value)


def test_an_unreachable_capital_minimum_is_named_with_its_quarter():
    capital = CapitalBase(cet1_start=1.0, other_rwa=0.0, other_income=np.zeros(QUARTERS + 1), minimum_ratio=0.07,
                          buffer=0.03, tax_rate=0.21)
    with pytest.raises(InfeasibleAllocation) as raised:
        maximum_return(two_assets(), wide_limits(capital=capital))
    assert "stressed CET1 >= 10.00% at quarter 0" in raised.value.constraints


def test_a_cvar_limit_below_the_least_cvar_is_named():
    # At least 60 of the budget must go to risky (safe can run off by 0 and grow by 20 %): CVaR >= 0.5 x 40 = 20.
    limits = wide_limits(cvar_limit=10.0, max_growth=np.array([0.2, 1.0]), max_runoff=np.array([0.0, 1.0]))
    with pytest.raises(InfeasibleAllocation) as raised:
        optimise("max_return", two_assets(), limits)
    assert raised.value.constraints[0].startswith("CVaR 90.0% limit")


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="path_losses"):
        Assets(("a",), ("s",), np.zeros((3, 2)), 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, np.zeros((4, 1)), 0.0)
    with pytest.raises(ValueError, match="no asset"):
        maximum_return(two_assets(), wide_limits(concentration={"boats": 0.5}))


# --- properties ----------------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), growth=st.floats(0.1, 2.0), runoff=st.floats(0.0, 0.9),
       use=st.floats(0.5, 1.0), share=st.floats(0.4, 1.0))
def test_allocations_keep_every_bound_and_the_budget(seed, growth, runoff, use, share):
    assets = random_assets(seed, n_assets=4, n_paths=100)
    budget = float(assets.current.sum())
    limits = Limits(budget=budget, max_growth=growth, max_runoff=runoff, min_budget_use=use,
                    concentration={"segment0": share}, cvar_level=0.95)
    lower, upper = limits.bounds(assets)
    try:
        result = maximum_return(assets, limits)
    except InfeasibleAllocation as error:
        assert error.constraints  # infeasible: it must say which constraint
        return
    x = result.recommended
    assert np.all(x >= lower - 1e-6 * budget) and np.all(x <= upper + 1e-6 * budget)
    assert use * budget - 1e-6 * budget <= x.sum() <= budget * (1 + 1e-6)
    assert x[[0, 3]].sum() <= share * x.sum() + 1e-6 * budget


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_the_frontier_rises_with_cvar(seed):
    assets = random_assets(seed, n_assets=4, n_paths=100)
    points = efficient_frontier(assets, Limits(budget=100.0, max_growth=1.0, max_runoff=0.9, cvar_level=0.95), 6)
    returns = np.array([p.expected_return for p in points])
    cvars = np.array([p.cvar for p in points])
    assert np.all(np.diff(cvars) >= 0) and np.all(np.diff(returns) >= -1e-7 * np.abs(returns).max())
    for point in points:  # every point spends the budget and its CVaR is within its level
        assert point.allocation.sum() == pytest.approx(100.0, rel=1e-6)
        assert stats.expected_shortfall(assets.path_losses @ point.allocation, 0.95) <= point.cvar * (1 + 1e-6)


def test_risk_parity_above_the_cvar_limit_is_refused_naming_it():
    assets = random_assets(11, n_assets=4, n_paths=400)
    free = Limits(budget=100.0, max_growth=10.0, max_runoff=1.0, cvar_level=0.95)
    parity_cvar = risk_parity(assets, free).recommended_metrics.cvar
    with pytest.raises(InfeasibleAllocation) as raised:
        risk_parity(assets, replace(free, cvar_limit=0.9 * parity_cvar))
    assert raised.value.constraints == ("CVaR 95.0% limit",)
    assert risk_parity(assets, replace(free, cvar_limit=1.1 * parity_cvar)).recommended_metrics.cvar == (
        pytest.approx(parity_cvar, rel=1e-6))


def test_raroc_without_economic_capital_is_unbounded():
    from models.optimisation import UnboundedAllocation

    with pytest.raises(UnboundedAllocation, match="no economic capital"):
        maximum_raroc(two_assets(), wide_limits())  # the safe asset alone earns 1 % on no capital
