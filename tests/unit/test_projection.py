"""Known-answer tests of the quarter-by-quarter loan projection (``models.projection.project_book``).

Three hand-made loans go through a three-quarter scenario with a scripted PD model, and every
number is recomputed here from the closed forms, not from the code's own output:

* annuity payment ``P = B r / (1 - (1 + r)^-n)`` at the repriced quarterly rate
  ``r = (jump-off rate + index move) / 4``, and the balance after a payment as the present value of
  the remaining ``n - 1`` payments, ``B' = P (1 - (1 + r)^-(n-1)) / r`` (a different formula from
  the code's ``B (1 + r) - P``);
* DSTI ``= 4 P / income``, payment shock = index move in points, loan age = jump-off age + q + 1;
* LTV ``= opening balance / (collateral x index_q / index_0)`` (house prices for mortgages, CRE prices
  for commercial real estate, 4 % a quarter depreciation for autos);
* survival ``S_q = prod_{k<q} (1 - pd_k)``, cumulative PD ``1 - prod (1 - pd_q)``, expected loss
  ``S_{q-1} pd_q EAD LGD``;
* a revolving line's EAD ``= balance + 10 % x (limit - balance)`` with interest on the drawn balance;
* collateral LGD ``clip(1 - collateral x index ratio x (1 - haircut) / EAD, floor, 1)`` and the IRB
  RWA of the card line from the Basel formula written out with ``scipy.stats.norm``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from scipy.stats import norm

from models.amortisation import ScheduleCode
from models.projection import (
    CRE_PRICES,
    DEPRECIATING,
    HOUSE_PRICES,
    MISSING_INCOME_DSTI,
    PD_FEATURES,
    BookArrays,
    MacroPath,
    Projection,
    project_book,
)
from pipelines.data.contract import REFERENCE_INDICES, Segment

SEGMENT_CODE = {s: i for i, s in enumerate(Segment)}
MORTGAGE_INDEX, PRIME_INDEX, TREASURY_3M_INDEX = (REFERENCE_INDICES.index(name)
                                                  for name in ("mortgage", "prime", "treasury_3m"))

# Scenario (3 quarters): index changes from jump-off in points, price-index ratios to jump-off.
MORTGAGE_MOVE = (1.0, 2.0, 3.0)
PRIME_MOVE = (0.5, 1.0, 1.5)
HOUSE_RATIO = (0.95, 0.90, 0.85)
CRE_RATIO = (0.90, 0.80, 0.70)
# Scripted quarterly PDs, loan x quarter (the model's answer before the projection zeroes dead loans).
SCRIPTED_PD = np.array([[0.01, 0.02, 0.03],
                        [0.02, 0.04, 0.50],
                        [0.05, 0.05, 0.05]])


class ScriptedPD:
    """A PD model that returns ``SCRIPTED_PD[:, q]`` on its q-th call and records the features it saw."""

    def __init__(self, pds: NDArray[np.float64]) -> None:
        self.pds = pds
        self.seen: list[pd.DataFrame] = []

    def __call__(self, features: pd.DataFrame) -> NDArray[np.float64]:
        assert tuple(features.columns) == PD_FEATURES
        self.seen.append(features.copy())
        return self.pds[:, len(self.seen) - 1]


def book(**loans: list) -> BookArrays:
    """BookArrays from per-field lists (one entry per loan)."""
    segments = loans.pop("segment")
    loans.setdefault("senior_liens", [0.0] * len(segments))
    defaulted = loans.pop("in_default", [False] * len(segments))
    return BookArrays(
        in_default=np.array(defaulted, dtype=bool),
        segment=np.array([SEGMENT_CODE[s] for s in segments], dtype=np.int8),
        segment_name=np.array([s.value for s in segments], dtype=object),
        schedule=np.array(loans.pop("schedule"), dtype=np.int8),
        reference=np.array(loans.pop("reference"), dtype=np.int8),
        remaining_quarters=np.array(loans.pop("remaining_quarters"), dtype=np.int32),
        collateral_index=np.array(loans.pop("collateral_index"), dtype=np.int8),
        **{name: np.array(values, dtype=np.float64) for name, values in loans.items()},
    )


def macro(rate_moves: dict[int, tuple[float, ...]], horizon: int = 3,
          house: tuple[float, ...] = HOUSE_RATIO, cre: tuple[float, ...] = CRE_RATIO) -> MacroPath:
    changes = np.zeros((horizon, len(REFERENCE_INDICES)))
    for column, moves in rate_moves.items():
        changes[:, column] = moves
    return MacroPath(rate_change_points=changes, unemployment_avg_4q=np.full(horizon, 6.0),
                     unemployment_avg_4q_change=np.full(horizon, 1.0),
                     house_price_change_4q=np.full(horizon, -5.0), house_price_ratio=np.array(house),
                     cre_price_ratio=np.array(cre))


# Loan 0: variable-rate annuity mortgage on the mortgage index, 5 % at jump-off, 20 quarters left.
# Loan 1: fixed 6 % interest-only CRE loan maturing in the 2nd quarter.
# Loan 2: credit card line at 20 % on prime, 600 drawn of a 1,000 limit, unsecured.
BOOK = book(
    segment=[Segment.FIRST_LIEN_MORTGAGE, Segment.COMMERCIAL_REAL_ESTATE, Segment.CREDIT_CARD],
    schedule=[ScheduleCode.ANNUITY, ScheduleCode.INTEREST_ONLY, ScheduleCode.REVOLVING],
    balance=[200_000.0, 1_000_000.0, 600.0],
    limit=[250_000.0, 1_000_000.0, 1_000.0],
    rate=[0.05, 0.06, 0.20],
    reference=[MORTGAGE_INDEX, -1, PRIME_INDEX],
    remaining_quarters=[20, 2, 40],
    income=[80_000.0, 400_000.0, 50_000.0],
    collateral=[250_000.0, 1_250_000.0, np.nan],
    collateral_index=[HOUSE_PRICES, CRE_PRICES, DEPRECIATING],
    score=[720.0, 700.0, 650.0],
    age_quarters=[8.0, 20.0, 12.0],
)


def annuity(balance: float, quarterly_rate: float, n: int) -> float:
    """Closed-form level payment."""
    return balance * quarterly_rate / (1.0 - (1.0 + quarterly_rate) ** -n)


def balance_after_payment(payment: float, quarterly_rate: float, n: int) -> float:
    """Balance after one of ``n`` level payments: present value of the other ``n - 1``."""
    return payment * (1.0 - (1.0 + quarterly_rate) ** -(n - 1)) / quarterly_rate


def mortgage_by_hand() -> tuple[list[float], list[float]]:
    """Opening balances (4: start of each quarter and the end) and payments (3) of loan 0."""
    balances, payments = [200_000.0], []
    for q, move in enumerate(MORTGAGE_MOVE):
        r = (0.05 + move / 100) / 4
        payments.append(annuity(balances[-1], r, 20 - q))
        balances.append(balance_after_payment(payments[-1], r, 20 - q))
    return balances, payments


@pytest.fixture(scope="module")
def run() -> tuple[Projection, ScriptedPD]:
    model = ScriptedPD(SCRIPTED_PD)
    return project_book(BOOK, macro({MORTGAGE_INDEX: MORTGAGE_MOVE, PRIME_INDEX: PRIME_MOVE}), model), model


def feature(model: ScriptedPD, name: str, loan: int) -> NDArray[np.float64]:
    return np.array([frame[name].iloc[loan] for frame in model.seen], dtype=np.float64)


def test_hand_annuity_numbers_are_what_we_think() -> None:
    """Pins the hand formulas themselves to independently computed figures (to the cent)."""
    balances, payments = mortgage_by_hand()
    # Quarter 1 at 6 %: 200,000 x 0.015 / (1 - 1.015^-20) = 11,649.15; balance 203,000 - 11,649.15.
    assert payments[0] == pytest.approx(11_649.15, abs=0.005)
    assert balances[1] == pytest.approx(191_350.85, abs=0.005)
    # The jump-off payment at 5 % would have been 11,364.08: the repricing shock is +285.07 a quarter.
    assert annuity(200_000.0, 0.0125, 20) == pytest.approx(11_364.08, abs=0.005)


def test_variable_rate_annuity_reprices_and_re_amortises(run: tuple[Projection, ScriptedPD]) -> None:
    projection, model = run
    balances, payments = mortgage_by_hand()
    # EAD of an annuity loan is its opening balance; the final balance after 3 payments.
    np.testing.assert_allclose(projection.ead[0], balances[:3], rtol=1e-12)
    assert projection.final_balance[0] == pytest.approx(balances[3], rel=1e-12)
    # Payment shock: DSTI = 4 P / income at the repriced rate, rising every quarter.
    np.testing.assert_allclose(feature(model, "DSTI", 0), [4 * p / 80_000.0 for p in payments], rtol=1e-12)
    assert feature(model, "DSTI", 0)[0] == pytest.approx(4 * 11_649.15 / 80_000, abs=1e-6)
    np.testing.assert_allclose(feature(model, "PaymentShockPoints", 0), MORTGAGE_MOVE)
    np.testing.assert_allclose(feature(model, "LoanAgeQuarters", 0), [9.0, 10.0, 11.0])


def test_ltv_follows_house_prices(run: tuple[Projection, ScriptedPD]) -> None:
    _, model = run
    balances, _ = mortgage_by_hand()
    expected = [balances[q] / (250_000.0 * HOUSE_RATIO[q]) for q in range(3)]
    np.testing.assert_allclose(feature(model, "CurrentLTV", 0), expected, rtol=1e-12)
    assert expected[0] == pytest.approx(200_000 / 237_500)  # 0.8421


def test_interest_only_loan_keeps_its_balance_then_repays_and_leaves(run: tuple[Projection, ScriptedPD]) -> None:
    projection, model = run
    # Quarter 1: interest 1,000,000 x 0.06 / 4 = 15,000, no principal; DSTI 60,000 / 400,000. Quarter 2 repays the
    # 1,000,000 balloon, but DSTI stays on the regular 15,000 (the balloon would make it 10.15, 68 times as much).
    np.testing.assert_allclose(feature(model, "DSTI", 1)[:2], [0.15, 0.15], rtol=1e-12)
    np.testing.assert_allclose(feature(model, "PaymentShockPoints", 1), 0.0)  # fixed rate
    # LTV on CRE prices: 1,000,000 / (1,250,000 x 0.9), then / (1,250,000 x 0.8) = 1; 0 once repaid.
    np.testing.assert_allclose(feature(model, "CurrentLTV", 1), [1 / 1.125, 1.0, 0.0], rtol=1e-12)
    # Matures in quarter 2 (all principal repaid), so quarter 3 has no exposure and no PD.
    np.testing.assert_allclose(projection.ead[1], [1_000_000.0, 1_000_000.0, 0.0])
    np.testing.assert_allclose(projection.pd[1], [0.02, 0.04, 0.0])
    assert projection.final_balance[1] == 0.0
    np.testing.assert_allclose(projection.surviving_balance[1], [0.98 * 1_000_000.0, 0.0, 0.0])


def test_bullet_loan_pays_coupons_then_all_principal() -> None:
    bullet = book(segment=[Segment.COMMERCIAL_INDUSTRIAL], schedule=[ScheduleCode.BULLET], balance=[500_000.0],
                  limit=[500_000.0], rate=[0.08], reference=[-1], remaining_quarters=[3], income=[200_000.0],
                  collateral=[np.nan], collateral_index=[DEPRECIATING], score=[700.0], age_quarters=[0.0])
    model = ScriptedPD(np.zeros((1, 3)))
    projection = project_book(bullet, macro({}), model)
    # Coupon 500,000 x 0.02 = 10,000 a quarter (DSTI 40,000 / 200,000); the balance stays until maturity, and the
    # principal repaid in the last quarter is no debt service (DSTI 0.2, not 2.2).
    np.testing.assert_allclose(feature(model, "DSTI", 0), [0.2, 0.2, 0.2], rtol=1e-12)
    np.testing.assert_allclose(projection.ead[0], [500_000.0] * 3)
    np.testing.assert_allclose(projection.surviving_balance[0], [500_000.0, 500_000.0, 0.0])
    assert projection.final_balance[0] == 0.0


def test_survival_cumulative_pd_and_expected_loss(run: tuple[Projection, ScriptedPD]) -> None:
    projection, _ = run
    # S at the start of each quarter: products of (1 - pd) of the quarters before.
    np.testing.assert_allclose(projection.survival_start, [[1.0, 0.99, 0.99 * 0.98],
                                                           [1.0, 0.98, 0.98 * 0.96],
                                                           [1.0, 0.95, 0.95**2]], rtol=1e-14)
    # 1 - 0.99 x 0.98 x 0.97 = 0.058906; the CRE loan is gone before quarter 3: 1 - 0.98 x 0.96 = 0.0592.
    np.testing.assert_allclose(projection.cumulative_pd, [0.058906, 0.0592, 1 - 0.95**3], rtol=1e-12)
    # Card: EAD 640, LGD 0.90, loss weight 576 every quarter; EL = 576 x (1 - 0.95^3) = 82.152.
    assert projection.expected_loss[2].sum() == pytest.approx(82.152, rel=1e-12)


def test_revolving_line_draws_ten_percent_of_its_undrawn_limit(run: tuple[Projection, ScriptedPD]) -> None:
    projection, model = run
    # EAD = 600 + 0.10 x (1,000 - 600) = 640 in every quarter; the surviving borrower's balance stays 600.
    np.testing.assert_allclose(projection.ead[2], [640.0] * 3)
    np.testing.assert_allclose(projection.loss_weight[2], [576.0] * 3)
    assert projection.final_balance[2] == 600.0
    # Interest on the drawn 600 at 20 % + prime move: 600 x 0.205 / 4 = 30.75 -> DSTI 123 / 50,000.
    np.testing.assert_allclose(feature(model, "DSTI", 2), [4 * 600 * (0.20 + m / 100) / 4 / 50_000 for m in PRIME_MOVE],
                               rtol=1e-12)
    assert np.isnan(feature(model, "CurrentLTV", 2)).all()


def test_collateral_lgd_by_hand(run: tuple[Projection, ScriptedPD]) -> None:
    projection, _ = run
    balances, _ = mortgage_by_hand()
    # Mortgage: haircut 25 %, floor 10 %: 1 - 250,000 x 0.95 x 0.75 / 200,000 = 0.109375 in quarter 1.
    expected = [1 - 250_000 * HOUSE_RATIO[q] * 0.75 / balances[q] for q in range(3)]
    assert expected[0] == pytest.approx(0.109375)
    np.testing.assert_allclose(projection.lgd[0], expected, rtol=1e-12)
    # CRE: 1 - 1,250,000 x 0.9 x 0.75 / 1,000,000 = 0.15625, then 0.25; the repaid loan gets its floor.
    np.testing.assert_allclose(projection.lgd[1], [0.15625, 0.25, 0.10], rtol=1e-12)
    np.testing.assert_allclose(projection.lgd[2], [0.90] * 3)


def test_card_rwa_from_the_basel_retail_formula(run: tuple[Projection, ScriptedPD]) -> None:
    projection, _ = run
    # Qualifying revolving: R = 0.04, annual PD = 1 - 0.95^4, LGD 0.90, on the drawn balance 600,
    # weighted by survival to the end of the quarter.
    annual_pd = 1 - 0.95**4
    k = 0.90 * (norm.cdf((norm.ppf(annual_pd) + math.sqrt(0.04) * norm.ppf(0.999)) / math.sqrt(0.96)) - annual_pd)
    expected = [0.95 ** (q + 1) * 12.5 * k * 600.0 for q in range(3)]
    np.testing.assert_allclose(projection.rwa[2], expected, rtol=1e-10)


def test_auto_collateral_depreciates_and_rates_floor_at_zero() -> None:
    # A 1 % variable auto loan whose index falls 2 points: its rate floors at 0, so the annuity is
    # 12,000 / 12 = 1,000 a quarter; collateral 20,000 loses 4 % a quarter.
    auto = book(segment=[Segment.AUTO], schedule=[ScheduleCode.ANNUITY], balance=[12_000.0], limit=[15_000.0],
                rate=[0.01], reference=[TREASURY_3M_INDEX], remaining_quarters=[12], income=[40_000.0],
                collateral=[20_000.0], collateral_index=[DEPRECIATING], score=[680.0], age_quarters=[4.0])
    model = ScriptedPD(np.zeros((1, 3)))
    projection = project_book(auto, macro({TREASURY_3M_INDEX: (-2.0, -2.0, -2.0)}), model)
    np.testing.assert_allclose(projection.ead[0], [12_000.0, 11_000.0, 10_000.0], rtol=1e-12)
    assert projection.final_balance[0] == pytest.approx(9_000.0, rel=1e-12)
    np.testing.assert_allclose(feature(model, "DSTI", 0), [0.1] * 3, rtol=1e-12)
    np.testing.assert_allclose(feature(model, "CurrentLTV", 0),
                               [12_000 / (20_000 * 0.96), 11_000 / (20_000 * 0.96**2), 10_000 / (20_000 * 0.96**3)],
                               rtol=1e-12)
    # Auto LGD: haircut 35 %, floor 15 %: 1 - 20,000 x 0.96 x 0.65 / 12,000 = -0.04 -> the floor.
    assert projection.lgd[0, 0] == pytest.approx(0.15)


def test_a_loan_90_days_past_due_defaults_in_the_first_quarter_whatever_the_model_says() -> None:
    # A card line 120 days past due (600 drawn of 1,000) and a CRE loan past maturity and 200 days past due:
    # both default in quarter 1 with certainty, the line is frozen (EAD 600, no 10 % draw), the whole
    # EAD x LGD is the first quarter's loss, and nothing is left to lose or to hold capital for afterwards.
    defaulted = book(
        segment=[Segment.CREDIT_CARD, Segment.COMMERCIAL_REAL_ESTATE], schedule=[ScheduleCode.REVOLVING,
                                                                                ScheduleCode.BULLET],
        balance=[600.0, 1_000_000.0], limit=[1_000.0, 1_000_000.0], rate=[0.20, 0.06], reference=[PRIME_INDEX, -1],
        remaining_quarters=[40, 0], income=[50_000.0, 400_000.0], collateral=[np.nan, 1_250_000.0],
        collateral_index=[DEPRECIATING, CRE_PRICES], score=[650.0, 700.0], age_quarters=[12.0, 30.0],
        in_default=[True, True])
    model = ScriptedPD(np.full((2, 3), 0.01))
    projection = project_book(defaulted, macro({PRIME_INDEX: PRIME_MOVE}), model)
    np.testing.assert_array_equal(projection.pd, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(projection.ead[:, 0], [600.0, 1_000_000.0])
    # Card LGD 90 %; CRE: 1 - 1,250,000 x 0.9 x 0.75 / 1,000,000 = 0.15625 at the quarter-1 CRE prices.
    np.testing.assert_allclose(projection.expected_loss, [[540.0, 0, 0], [156_250.0, 0, 0]], rtol=1e-12)
    np.testing.assert_array_equal(projection.cumulative_pd, [1.0, 1.0])
    np.testing.assert_array_equal(projection.rwa, np.zeros((2, 3)))


def test_missing_or_zero_income_scores_at_the_stressed_dsti_not_as_no_debt() -> None:
    # Two card lines with no known income (0 and missing): DSTI is MISSING_INCOME_DSTI in every quarter, never NaN
    # (which the models would impute as the best case); a third with income keeps its measured DSTI.
    cards = book(segment=[Segment.CREDIT_CARD] * 3, schedule=[ScheduleCode.REVOLVING] * 3, balance=[600.0] * 3,
                 limit=[1_000.0] * 3, rate=[0.20] * 3, reference=[-1] * 3, remaining_quarters=[40] * 3,
                 income=[0.0, np.nan, 50_000.0], collateral=[np.nan] * 3, collateral_index=[DEPRECIATING] * 3,
                 score=[650.0] * 3, age_quarters=[12.0] * 3)
    model = ScriptedPD(np.zeros((3, 3)))
    project_book(cards, macro({}), model)
    assert MISSING_INCOME_DSTI == 1.5
    np.testing.assert_array_equal(feature(model, "DSTI", 0), [1.5] * 3)
    np.testing.assert_array_equal(feature(model, "DSTI", 1), [1.5] * 3)
    # Interest on the drawn 600 at 20 %: 4 x 30 / 50,000.
    np.testing.assert_allclose(feature(model, "DSTI", 2), [4 * 30.0 / 50_000] * 3, rtol=1e-12)
