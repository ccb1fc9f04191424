"""Known-answer tests of the CET1 path: ``models.capital.project_cet1`` and
``pipelines.engine.simulation.capital_path``.

The convention under test is the one ``models/capital.py`` documents: profits are taxed, losses get
**no** tax relief and there is no carry-forward (a DTA from a net operating loss is deducted from
CET1), dividends are paid whatever the income::

    CET1_q = CET1_{q-1} + (PPNR_q - loss_q) - tax x max(PPNR_q - loss_q, 0) - dividends_q
    ratio_q = CET1_q / RWA_q

``capital_path`` builds the inputs under a constant balance sheet: total RWA at jump-off is the
loan book's credit RWA over its share of total RWA; each quarter's credit RWA is the jump-off
balance times the stressed RWA density (RWA / surviving balance) and the rest is held flat; PPNR is
the annual rate x jump-off balance / 4; starting CET1 is the starting ratio x jump-off RWA. Every
expected number below is worked out by hand in the comments (and in exact decimal fractions).
"""

from __future__ import annotations

import numpy as np
import pytest

from models.capital import project_cet1
from pipelines.engine.simulation import CapitalAssumptions, capital_path


def test_three_quarters_by_hand_with_a_loss_quarter_taxed_as_documented() -> None:
    path = project_cet1(start_capital=62.5, start_rwa=500.0, ppnr=[3.75, 3.75, 3.75], credit_losses=[2.0, 10.0, 3.0],
                        rwa=[475.0, 575.0, 675.0], tax_rate=0.21)
    # q1: pre-tax 1.75, tax 0.3675          -> 62.5 + 1.3825  = 63.8825
    # q2: pre-tax -6.25, no relief           -> 63.8825 - 6.25 = 57.6325   (with relief it would be 58.945)
    # q3: pre-tax 0.75, taxed in full 0.1575 -> 57.6325 + 0.5925 = 58.225 (no loss carry-forward)
    np.testing.assert_allclose(path.capital, [62.5, 63.8825, 57.6325, 58.225], rtol=1e-14)
    np.testing.assert_allclose(path.ratio, [0.125, 63.8825 / 475, 57.6325 / 575, 58.225 / 675], rtol=1e-14)
    assert float(path.ratio[3]) == pytest.approx(0.0862593, abs=1e-7)
    assert int(path.min_quarter) == 3
    assert float(path.start_to_trough) == pytest.approx(0.125 - 58.225 / 675, rel=1e-12)


def test_the_loss_quarter_is_not_the_symmetric_after_tax_formula() -> None:
    """The textbook ``(PPNR - loss)(1 - tax)`` would give a tax credit of 21 % on a pre-tax loss: not here."""
    path = project_cet1(100.0, 1000.0, ppnr=[0.0], credit_losses=[10.0], rwa=[1000.0], tax_rate=0.21)
    assert float(path.capital[1]) == pytest.approx(90.0, rel=1e-14)  # not 100 - 10 x 0.79 = 92.1


def constant_balance_sheet_totals() -> dict:
    """Batch aggregates of two segments over three quarters (the shape ``add_aggregates`` returns)."""
    return {
        "loans": 3,
        # Jump-off credit RWA 300 + 125 = 425 on a jump-off balance of 800 + 200 = 1,000.
        "jump_off_rwa": {"first_lien_mortgage": [300.0], "credit_card": [125.0]},
        "jump_off_balance": {"first_lien_mortgage": [800.0], "credit_card": [200.0]},
        # Survival-weighted RWA and balances: densities 400 / 1000, 400 / 800, 420 / 700 = 0.4, 0.5, 0.6.
        "rwa": {"first_lien_mortgage": [250.0, 260.0, 280.0], "credit_card": [150.0, 140.0, 140.0]},
        "surviving_balance": {"first_lien_mortgage": [800.0, 640.0, 560.0], "credit_card": [200.0, 160.0, 140.0]},
    }


def test_capital_path_under_a_constant_balance_sheet_by_hand() -> None:
    assumptions = CapitalAssumptions(starting_cet1_ratio=0.125, credit_rwa_share=0.85, annual_ppnr_rate=0.015,
                                     tax_rate=0.21)
    capital = capital_path(constant_balance_sheet_totals(), np.array([2.0, 10.0, 3.0]), 1000.0, assumptions)
    # Total RWA at jump-off 425 / 0.85 = 500, of which 75 outside the loan book; CET1 0.125 x 500 = 62.5.
    assert capital["start_rwa"] == pytest.approx(500.0, rel=1e-14)
    assert capital["start_cet1"] == pytest.approx(62.5, rel=1e-14)
    # RWA path: 1,000 x (0.4, 0.5, 0.6) + 75.
    np.testing.assert_allclose(capital["rwa"], [475.0, 575.0, 675.0], rtol=1e-14)
    # PPNR 0.015 x 1,000 / 4 = 3.75 a quarter; then the same three quarters as the first test.
    assert capital["ppnr_per_quarter"] == pytest.approx(3.75, rel=1e-14)
    np.testing.assert_allclose(capital["cet1"], [63.8825, 57.6325, 58.225], rtol=1e-14)
    np.testing.assert_allclose(capital["cet1_ratio"], [0.125, 63.8825 / 475, 57.6325 / 575, 58.225 / 675],
                               rtol=1e-14)
    assert capital["min_quarter"] == 3
    assert capital["min_cet1_ratio"] == pytest.approx(58.225 / 675, rel=1e-14)


def test_no_survivors_leaves_only_the_rest_of_the_bank_in_rwa() -> None:
    totals = constant_balance_sheet_totals()
    totals["rwa"] = {"first_lien_mortgage": [0.0, 0.0, 0.0], "credit_card": [0.0, 0.0, 0.0]}
    totals["surviving_balance"] = {"first_lien_mortgage": [0.0, 0.0, 0.0], "credit_card": [0.0, 0.0, 0.0]}
    capital = capital_path(totals, np.zeros(3), 1000.0, CapitalAssumptions(tax_rate=0.0))
    # Density 0 where nothing survives: RWA is the 75 outside the loan book; PPNR 3.75 a quarter untaxed.
    np.testing.assert_allclose(capital["rwa"], [75.0] * 3)
    np.testing.assert_allclose(capital["cet1"], [66.25, 70.0, 73.75], rtol=1e-14)
