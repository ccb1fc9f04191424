"""Quarter-by-quarter projection of every loan under a macro path: balance, rate, PD, EAD, LGD, RWA.

Pure NumPy over arrays; the PD model is any callable that maps a frame of point-in-time loan
features (:data:`PD_FEATURES`) to quarterly default probabilities, so the benchmark logistic model
and the XGBoost champion plug in behind the same interface.

Per quarter ``q`` of the horizon:

* variable-rate loans reprice at ``index_q + margin`` (index moved by the scenario's change from
  jump-off), fixed-rate loans keep their rate; the annuity payment is re-amortised at the new rate,
  so the *payment shock* shows in the debt-service-to-income ratio (DSTI) the PD model sees; DSTI
  is the scheduled regular payment (never the balloon of a maturing interest-only or bullet loan)
  over income, and :data:`MISSING_INCOME_DSTI` when income is missing or zero
  (:func:`debt_service_to_income`);
* collateral moves with the scenario's house-price (residential) or commercial-property (CRE) index
  ratio from jump-off; autos depreciate at a fixed rate; LTV = (senior liens + balance) / collateral
  value, the combined LTV a junior lien's PD is trained on (senior liens held at jump-off);
* ``pd_q`` comes from the PD model, the loan survives with ``S_q = S_{q-1} (1 - pd_q)``; the
  loss weight of quarter ``q`` is ``EAD x LGD`` of a loan alive at its start, and its expected
  loss ``S_{q-1} pd_q EAD LGD``;
* revolving lines draw a share of their undrawn limit before default (a credit conversion factor),
  which raises EAD above the drawn balance;
* the IRB RWA of the surviving book uses the annualised stressed PD with the Basel III PD floors;
* a loan already in default at jump-off (90 or more days past due, :data:`DEFAULT_DAYS_PAST_DUE`) is
  not projected as performing: it defaults in the first quarter with certainty (``pd_1 = 1``, PD
  model not used), its line is frozen (EAD = drawn balance) and its whole ``EAD x LGD`` is the
  first quarter's loss (``docs/default_definition.md``).

Projected balances are contractual (conditional on survival); expected balances multiply by ``S``.
The payment shock is measured from the jump-off rate, since a tape carries no origination rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from models.amortisation import QUARTERS_PER_YEAR, draw_down, project_quarter
from models.basel import asset_class_codes, basel3_pd_floors, risk_weighted_assets
from models.lgd import stressed_lgd
from models.segments import Segment

PERCENT = 100.0
# Point-in-time columns every PD model receives, in the names of the performance history.
PD_FEATURES = ("ProductSegment", "CreditScore", "LoanAgeQuarters", "CurrentLTV", "DSTI", "PaymentShockPoints",
               "unemployment_rate_avg_4q", "unemployment_rate_avg_4q_chg_4q", "house_price_index_chg_4q")
# Collateral price drivers (codes in BookArrays.collateral_index).
HOUSE_PRICES, CRE_PRICES, DEPRECIATING = 0, 1, 2
AUTO_DEPRECIATION_PER_QUARTER = 0.04
# Share of the undrawn limit a revolving borrower draws per quarter on the way to default.
REVOLVING_DRAW_RATE = 0.10
# DSTI of a borrower with missing or zero income: the highest DSTI the PD models tell apart (the benchmark
# logistic model caps DSTI at 1.5; the XGBoost model is monotone in DSTI and saw nothing above about 1), so an
# unknown income scores as the most stretched borrower of its kind, never as one with no debt service.
MISSING_INCOME_DSTI = 1.5
# Days past due from which a loan is in default (Basel CRE36.69, the US 90-day non-accrual rule).
DEFAULT_DAYS_PAST_DUE = 90

PDFunction = Callable[[pd.DataFrame], NDArray[np.float64]]


@dataclass(frozen=True)
class BookArrays:
    """The loan book at jump-off as arrays (one entry per loan)."""

    segment: NDArray[np.int8]  # position in pipelines.data.contract.Segment
    segment_name: NDArray[np.object_]
    schedule: NDArray[np.int8]  # ScheduleCode
    balance: NDArray[np.float64]
    limit: NDArray[np.float64]  # LoanAmount: the committed limit of revolving lines
    rate: NDArray[np.float64]  # annual fraction at jump-off
    reference: NDArray[np.int8]  # column of MacroPath.rate_change_points, -1 for fixed-rate loans
    remaining_quarters: NDArray[np.int32]
    income: NDArray[np.float64]
    collateral: NDArray[np.float64]  # value of the whole collateral; NaN for unsecured
    senior_liens: NDArray[np.float64]  # balance ranking ahead of the loan on its collateral, 0 for first liens
    collateral_index: NDArray[np.int8]  # HOUSE_PRICES, CRE_PRICES or DEPRECIATING
    score: NDArray[np.float64]
    age_quarters: NDArray[np.float64]
    in_default: NDArray[np.bool_]  # in default at jump-off (:func:`in_default`)

    def __len__(self) -> int:
        return int(self.balance.size)


@dataclass(frozen=True)
class MacroPath:
    """The scenario over the horizon, as what the projection needs (one row per quarter)."""

    rate_change_points: NDArray[np.float64]  # (H, n_reference_indices) change from jump-off, points
    unemployment_avg_4q: NDArray[np.float64]  # (H,) percent
    unemployment_avg_4q_change: NDArray[np.float64]  # (H,) points
    house_price_change_4q: NDArray[np.float64]  # (H,) percent
    house_price_ratio: NDArray[np.float64]  # (H,) index / jump-off index
    cre_price_ratio: NDArray[np.float64]  # (H,)

    @property
    def horizon(self) -> int:
        return int(self.unemployment_avg_4q.size)


@dataclass
class Projection:
    """Per loan and quarter (loans x H) results of one scenario."""

    pd: NDArray[np.float64]  # probability of default in the quarter, given alive at its start
    loss_weight: NDArray[np.float64]  # EAD x LGD if the loan defaults in the quarter
    survival_start: NDArray[np.float64]  # probability of being alive at the start of the quarter
    ead: NDArray[np.float64]
    lgd: NDArray[np.float64]
    rwa: NDArray[np.float64]  # RWA of the loan at quarter end, weighted by survival
    surviving_balance: NDArray[np.float64]  # balance at quarter end, weighted by survival
    # Contractual balance at each quarter's end if the loan is still alive (amortised, not net of defaults:
    # multiply by the survival to the quarter's end for the expected balance); 0 once it has matured.
    balance: NDArray[np.float64]

    @property
    def final_balance(self) -> NDArray[np.float64]:
        """Contractual balance at the end of the horizon (if alive)."""
        return self.balance[:, -1]

    @property
    def expected_loss(self) -> NDArray[np.float64]:
        return self.survival_start * self.pd * self.loss_weight

    @property
    def cumulative_pd(self) -> NDArray[np.float64]:
        """Probability of defaulting at any time over the horizon."""
        return 1.0 - self.survival_start[:, -1] * (1.0 - self.pd[:, -1])


def income_missing(income: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Loans whose income is missing (NaN) or not positive: no debt-service ratio can be measured."""
    return ~(np.asarray(income, dtype=np.float64) > 0.0)


def debt_service_to_income(annual_debt_service: NDArray[np.float64],
                           income: NDArray[np.float64]) -> NDArray[np.float64]:
    """DSTI, and :data:`MISSING_INCOME_DSTI` where income is missing or zero (a stressed value, not NaN).

    Why not NaN: the PD models would impute it (the logistic model as 0, XGBoost by its default branch), which
    scores a borrower with no known income as one with no debt service, the best case.
    """
    missing = income_missing(income)
    ratio = np.asarray(annual_debt_service, dtype=np.float64) / np.where(missing, 1.0, income)
    return np.where(missing, MISSING_INCOME_DSTI, ratio)


def in_default(days_past_due: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Loans in default at jump-off: :data:`DEFAULT_DAYS_PAST_DUE` or more days past due."""
    return np.asarray(days_past_due, dtype=np.float64) >= DEFAULT_DAYS_PAST_DUE


def project_book(book: BookArrays, macro: MacroPath, pd_model: PDFunction) -> Projection:
    """Project every loan over the horizon of ``macro`` (see the module docstring for the rules)."""
    n, horizon = len(book), macro.horizon
    shape = (n, horizon)
    result = Projection(*(np.empty(shape) for _ in range(8)))
    balance = book.balance.copy()
    remaining = book.remaining_quarters.astype(np.int64)
    survival = np.ones(n)
    variable = book.reference >= 0
    asset_class = asset_class_codes(book.segment_name)
    pd_floor = basel3_pd_floors(asset_class)
    jump_off_rate = book.rate
    # Categorical with the contract's segment order: PD models read codes instead of comparing strings.
    segment = pd.Categorical.from_codes(book.segment, categories=[s.value for s in Segment])
    for q in range(horizon):
        index_move = np.where(variable, macro.rate_change_points[q, np.maximum(book.reference, 0)], 0.0) / PERCENT
        rate = np.clip(jump_off_rate + index_move, 0.0, None)
        # A defaulted loan is still owed whatever its maturity; it has no undrawn line to draw on.
        defaulting = book.in_default & (q == 0)
        alive = (remaining > 0) & ~book.in_default | defaulting
        drawn = np.where(book.in_default, balance, draw_down(balance, book.limit, REVOLVING_DRAW_RATE, book.schedule))
        ead = np.where(alive, drawn, 0.0)
        flows = project_quarter(balance, rate, np.maximum(remaining, 1), book.schedule)
        price_ratio = np.select(
            [book.collateral_index == HOUSE_PRICES, book.collateral_index == CRE_PRICES],
            [macro.house_price_ratio[q], macro.cre_price_ratio[q]],
            default=(1.0 - AUTO_DEPRECIATION_PER_QUARTER) ** (q + 1),
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ltv = (book.senior_liens + balance) / (book.collateral * price_ratio)
        dsti = debt_service_to_income(flows.scheduled_payment * QUARTERS_PER_YEAR, book.income)
        features = pd.DataFrame({
            "ProductSegment": segment,
            "CreditScore": book.score,
            "LoanAgeQuarters": book.age_quarters + q + 1,
            "CurrentLTV": ltv,
            "DSTI": dsti,
            "PaymentShockPoints": index_move * PERCENT,
            "unemployment_rate_avg_4q": macro.unemployment_avg_4q[q],
            "unemployment_rate_avg_4q_chg_4q": macro.unemployment_avg_4q_change[q],
            "house_price_index_chg_4q": macro.house_price_change_4q[q],
        })
        pd_q = np.where(defaulting, 1.0, np.where(alive, np.clip(pd_model(features), 0.0, 1.0), 0.0))
        lgd = stressed_lgd(book.segment, ead, book.collateral, price_ratio, book.senior_liens)
        result.pd[:, q] = pd_q
        result.ead[:, q] = ead
        result.lgd[:, q] = lgd
        result.loss_weight[:, q] = ead * lgd
        result.survival_start[:, q] = survival
        annual_pd = 1.0 - (1.0 - pd_q) ** QUARTERS_PER_YEAR
        survival = survival * (1.0 - pd_q)
        balance = np.where(alive, flows.balance, 0.0)
        remaining = remaining - 1
        result.rwa[:, q] = survival * risk_weighted_assets(balance, annual_pd, lgd, asset_class, pd_floor=pd_floor)
        result.surviving_balance[:, q] = survival * balance
        result.balance[:, q] = balance
    return result
