"""Known-answer tests of ``pipelines.engine.simulation.capital_path``: the CET1 and Tier 1 leverage paths on
the Fed's conventions (docs/capital.md).

The book: two segments over three quarters. At jump-off the tape holds 1,000 of loans (first-lien mortgages
800, cards 200) and 300 of undrawn card lines. Standardized credit RWA: 800 x 50 % + 200 x 100 % + 300 x 10 %
x 100 % = 630; IRB (given): 120 + 150 + 22.5 = 292.5. The bank around it (loans 50 % of assets): total
assets 2,000, securities 500 at 20 % (100 of RWA), other assets 500 at 54 % (270): non-loan RWA 370, so
standardized RWA is 1,000. PPNR model: NIM 2 % on the 1,500 of earning assets, rate sensitivity 0.1,
fees 1 % and expenses 1.5 % of assets, plus 0.1 % of assets per point of unemployment rise. Scenario: the
3-month rate moves 0, -1, -2 points, unemployment 0, +1, +2:

    PPNR q1 = (30 + 20 - 30) / 4 = 5;  q2 = (28.5 + 20 - 32) / 4 = 4.125;  q3 = (27 + 20 - 34) / 4 = 3.25.

Net charge-offs 2, 10, 3; the allowance starts at the jump-off 12-month EL of 8 and then covers the next
four quarters (the last one repeated): 10 + 3 + 3 + 3 = 19, then 12, 12. Provisions 2 + 11 = 13, 10 - 7 = 3,
3 + 0 = 3. Every expected number below is worked out by hand from these.
"""

from __future__ import annotations

import numpy as np
import pytest

from models.capital import PPNRModel
from pipelines.engine.simulation import CapitalAssumptions, capital_path
from pipelines.settings import CapitalApproach, RWAPath, StressSettings

PPNR = PPNRModel(net_interest_margin=0.02, rate_sensitivity=0.1, noninterest_income_ratio=0.01, expense_ratio=0.015,
                 expense_unemployment_sensitivity=0.001)
RATE_CHANGE = np.array([0.0, -1.0, -2.0])
UNEMPLOYMENT_CHANGE = np.array([0.0, 1.0, 2.0])
LOSSES = np.array([2.0, 10.0, 3.0])


def assumptions(**changes) -> CapitalAssumptions:
    base = {"loan_share": 0.5, "securities_share": 0.25, "securities_risk_weight": 0.2,
            "other_assets_risk_weight": 0.54, "starting_cet1_ratio": 0.12, "starting_tier1_ratio": 0.135,
            "ppnr": PPNR, "tax_rate": 0.21}
    return CapitalAssumptions(**(base | changes))


def book_totals() -> dict:
    """Batch aggregates of two segments over three quarters (the shape ``add_aggregates`` returns)."""
    return {
        "loans": 3,
        "jump_off_balance": {"first_lien_mortgage": [800.0], "credit_card": [200.0]},
        "undrawn_commitments": {"first_lien_mortgage": [0.0], "credit_card": [300.0]},
        "jump_off_el_4q": {"first_lien_mortgage": [2.0], "credit_card": [6.0]},
        "standardized_rwa_drawn": {"first_lien_mortgage": [400.0], "credit_card": [200.0]},
        "standardized_rwa_undrawn": {"first_lien_mortgage": [0.0], "credit_card": [30.0]},
        "irb_rwa_drawn": {"first_lien_mortgage": [120.0], "credit_card": [150.0]},
        "irb_rwa_undrawn": {"first_lien_mortgage": [0.0], "credit_card": [22.5]},
        # Survivors' IRB RWA and balances: densities 400 / 1000, 400 / 800, 420 / 700 = 0.4, 0.5, 0.6.
        "rwa": {"first_lien_mortgage": [250.0, 260.0, 280.0], "credit_card": [150.0, 140.0, 140.0]},
        "surviving_balance": {"first_lien_mortgage": [800.0, 640.0, 560.0], "credit_card": [200.0, 160.0, 140.0]},
    }


def test_standardized_constant_balance_sheet_by_hand() -> None:
    capital = capital_path(book_totals(), LOSSES, RATE_CHANGE, UNEMPLOYMENT_CHANGE, assumptions())
    assert (capital["total_assets"], capital["loans"], capital["securities"], capital["other_assets"]) == (
        2000.0, 1000.0, 500.0, 500.0)
    assert capital["start_credit_rwa"] == pytest.approx(630.0, rel=1e-14)
    assert capital["start_rwa"] == pytest.approx(1000.0, rel=1e-14)
    np.testing.assert_allclose(capital["rwa"], [1000.0] * 3, rtol=1e-14)
    np.testing.assert_allclose(capital["ppnr"], [5.0, 4.125, 3.25], rtol=1e-14)
    np.testing.assert_allclose(capital["allowance"], [8.0, 19.0, 12.0, 12.0], rtol=1e-14)
    np.testing.assert_allclose(capital["provisions"], [13.0, 3.0, 3.0], rtol=1e-14)
    # Pre-tax -8, 1.125, 0.25; taxes -1.68, 0.23625, 0.0525; CET1 120 -> 113.68 -> 114.56875 -> 114.76625.
    np.testing.assert_allclose(capital["pre_tax_income"], [-8.0, 1.125, 0.25], rtol=1e-14)
    np.testing.assert_allclose(capital["taxes"], [-1.68, 0.23625, 0.0525], rtol=1e-12)
    assert (capital["start_cet1"], capital["start_tier1"]) == (pytest.approx(120.0), pytest.approx(135.0))
    np.testing.assert_allclose(capital["cet1"], [113.68, 114.56875, 114.76625], rtol=1e-14)
    np.testing.assert_allclose(capital["cet1_ratio"], [0.12, 0.11368, 0.11456875, 0.11476625], rtol=1e-14)
    # Tier 1 = CET1 + 15 over total assets 2,000.
    np.testing.assert_allclose(capital["tier1_leverage_ratio"], [0.0675, 0.06434, 0.064784375, 0.064883125],
                               rtol=1e-14)
    assert capital["min_quarter"] == 1 and capital["min_leverage_quarter"] == 1
    assert capital["min_cet1_ratio"] == pytest.approx(0.11368, rel=1e-14)
    assert capital["min_tier1_leverage_ratio"] == pytest.approx(0.06434, rel=1e-14)
    assert capital["start_to_trough"] == pytest.approx(0.00632, rel=1e-12)


def test_total_assets_scale_the_tape_and_capital_in_dollars() -> None:
    capital = capital_path(book_totals(), LOSSES, RATE_CHANGE, UNEMPLOYMENT_CHANGE,
                           assumptions(total_assets=4000.0, starting_cet1=250.0, starting_tier1=280.0))
    # Loans 50 % of 4,000 = 2,000: the tape x 2. RWA 2 x 630 + 1,000 x 20 % + 1,000 x 54 % = 2,000.
    assert capital["loan_scale"] == 2.0 and capital["undrawn_commitments"] == 600.0
    assert capital["start_rwa"] == pytest.approx(2000.0, rel=1e-14)
    # Everything of the loan book doubles: provisions 26, 6, 6; PPNR 10, 8.25, 6.5; pre-tax -16, 2.25, 0.5.
    np.testing.assert_allclose(capital["provisions"], [26.0, 6.0, 6.0], rtol=1e-14)
    np.testing.assert_allclose(capital["cet1"], [237.36, 239.1375, 239.5325], rtol=1e-14)
    np.testing.assert_allclose(capital["cet1_ratio"], [0.125, 0.11868, 0.11956875, 0.11976625], rtol=1e-14)
    np.testing.assert_allclose(capital["tier1_leverage_ratio"], [0.07, 0.06684, 0.067284375, 0.067383125],
                               rtol=1e-14)


def test_zero_losses_under_constant_rwa_move_the_ratio_by_retained_after_tax_ppnr_only() -> None:
    totals = book_totals()
    totals["jump_off_el_4q"] = {"first_lien_mortgage": [0.0], "credit_card": [0.0]}
    capital = capital_path(totals, np.zeros(3), RATE_CHANGE, UNEMPLOYMENT_CHANGE, assumptions())
    np.testing.assert_allclose(capital["provisions"], [0.0] * 3, atol=0)
    # 120 + 0.79 x 5 = 123.95, + 0.79 x 4.125 = 127.20875, + 0.79 x 3.25 = 129.77625, over RWA 1,000.
    np.testing.assert_allclose(capital["cet1_ratio"], [0.12, 0.12395, 0.12720875, 0.12977625], rtol=1e-14)
    np.testing.assert_allclose(np.diff(capital["cet1_ratio"]), 0.79 * np.array(capital["ppnr"]) / 1000.0,
                               rtol=1e-12)
    assert capital["min_quarter"] == 0 and capital["min_cet1_ratio"] == pytest.approx(0.12)


def test_irb_projected_rwa_follows_the_stressed_density() -> None:
    capital = capital_path(book_totals(), LOSSES, RATE_CHANGE, UNEMPLOYMENT_CHANGE,
                           assumptions(approach=CapitalApproach.IRB, rwa_path=RWAPath.PROJECTED))
    # Jump-off 292.5 + 370 = 662.5; then 1,000 x (0.4, 0.5, 0.6) + 22.5 undrawn + 370.
    assert capital["start_rwa"] == pytest.approx(662.5, rel=1e-14)
    np.testing.assert_allclose(capital["rwa"], [792.5, 892.5, 992.5], rtol=1e-14)
    # CET1 0.12 x 662.5 = 79.5, then the same income as the standardized case: 73.18, 74.06875, 74.26625.
    np.testing.assert_allclose(capital["cet1"], [73.18, 74.06875, 74.26625], rtol=1e-14)
    np.testing.assert_allclose(capital["cet1_ratio"], [0.12, 73.18 / 792.5, 74.06875 / 892.5, 74.26625 / 992.5],
                               rtol=1e-14)
    assert capital["min_quarter"] == 3


def test_standardized_projected_rwa_moves_with_the_mix_of_survivors() -> None:
    totals = book_totals()
    totals["surviving_balance"]["credit_card"] = [200.0, 360.0, 140.0]
    capital = capital_path(totals, LOSSES, RATE_CHANGE, UNEMPLOYMENT_CHANGE,
                           assumptions(rwa_path=RWAPath.PROJECTED))
    # Drawn densities 50 % and 100 %: survivors' RWA 600, 320 + 360 = 680, 420 over 1,000, 1,000, 700 of balance:
    # 0.6, 0.68, 0.6 x 1,000 + 30 undrawn + 370.
    np.testing.assert_allclose(capital["rwa"], [1000.0, 1080.0, 1000.0], rtol=1e-14)


def test_defaults_are_the_settings_defaults() -> None:
    assert CapitalAssumptions.from_settings(StressSettings()) == CapitalAssumptions()
