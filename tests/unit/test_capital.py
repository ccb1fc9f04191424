"""Known answers of the pure capital arithmetic in ``models/capital.py``, worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from models.capital import BalanceSheet, PPNRModel, allowance_path, project_capital, provisions


def test_three_quarters_by_hand_with_a_taxed_loss() -> None:
    path = project_capital(start_cet1=100.0, additional_tier1=10.0, rwa=1000.0, leverage_exposure=2000.0,
                           ppnr=[10.0, 10.0, 10.0], provision=[5.0, 30.0, 0.0], tax_rate=0.21)
    # q1: pre-tax 5, tax 1.05 -> +3.95; q2: pre-tax -20, tax benefit 4.2 -> -15.8; q3: pre-tax 10, tax 2.1 -> +7.9.
    np.testing.assert_allclose(path.pre_tax_income, [5.0, -20.0, 10.0], rtol=1e-14)
    np.testing.assert_allclose(path.taxes, [1.05, -4.2, 2.1], rtol=1e-14)
    np.testing.assert_allclose(path.cet1, [100.0, 103.95, 88.15, 96.05], rtol=1e-14)
    np.testing.assert_allclose(path.cet1_ratio, [0.1, 0.10395, 0.08815, 0.09605], rtol=1e-14)
    # Tier 1 = CET1 + 10 of additional Tier 1, over total assets of 2,000.
    np.testing.assert_allclose(path.tier1, [110.0, 113.95, 98.15, 106.05], rtol=1e-14)
    np.testing.assert_allclose(path.leverage_ratio, [0.055, 0.056975, 0.049075, 0.053025], rtol=1e-14)
    assert int(path.min_cet1_quarter) == 2 and int(path.min_leverage_quarter) == 2
    assert float(path.min_cet1_ratio) == pytest.approx(0.08815, rel=1e-14)
    assert float(path.min_leverage_ratio) == pytest.approx(0.049075, rel=1e-14)
    assert float(path.start_to_trough) == pytest.approx(0.01185, rel=1e-12)


def test_a_loss_is_relieved_at_the_tax_rate() -> None:
    """The Fed's flat 21 % on pre-tax income: a pre-tax loss of 10 costs 7.9 of CET1, not 10."""
    path = project_capital(100.0, 0.0, 1000.0, 1000.0, ppnr=[0.0], provision=[10.0], tax_rate=0.21)
    assert float(path.cet1[1]) == pytest.approx(92.1, rel=1e-14)


def test_the_minimum_includes_the_jump_off() -> None:
    path = project_capital(50.0, 0.0, [500.0, 500.0, 400.0], 1000.0, [1.0, 1.0], [0.0, 0.0], tax_rate=0.0)
    np.testing.assert_allclose(path.cet1, [50.0, 51.0, 52.0])
    assert int(path.min_cet1_quarter) == 0 and float(path.min_cet1_ratio) == pytest.approx(0.1)
    assert int(path.min_leverage_quarter) == 0 and float(path.min_leverage_ratio) == pytest.approx(0.05)
    assert float(path.start_to_trough) == 0.0


def test_earliest_trough_wins_a_tie() -> None:
    path = project_capital(10.0, 0.0, 100.0, 200.0, [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], tax_rate=0.2)
    # 10 - 0.8 = 9.2 in quarters 1, 2 and 3.
    assert int(path.min_cet1_quarter) == 1
    assert float(path.min_cet1_ratio) == pytest.approx(0.092)


def test_paths_are_vectorised_over_leading_axes() -> None:
    rng = np.random.default_rng(5)
    ppnr = rng.normal(5.0, 1.0, (50, 9))
    losses = rng.gamma(2.0, 3.0, (50, 9))
    rwa = rng.uniform(900.0, 1200.0, (50, 10))
    batch = project_capital(120.0, 5.0, rwa, 2000.0, ppnr, losses, tax_rate=0.21)
    assert batch.cet1.shape == (50, 10)
    for i in range(50):
        single = project_capital(120.0, 5.0, rwa[i], 2000.0, ppnr[i], losses[i], tax_rate=0.21)
        np.testing.assert_array_equal(batch.cet1[i], single.cet1)
        assert batch.min_cet1_quarter[i] == single.min_cet1_quarter
        assert batch.min_leverage_ratio[i] == single.min_leverage_ratio


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tax_rate": 1.0}, "tax_rate"),
        ({"additional_tier1": -1.0}, "Tier 1"),
        ({"rwa": [100.0, -1.0, 100.0]}, "RWA"),
        ({"leverage_exposure": 0.0}, "leverage"),
        ({"ppnr": [], "provision": []}, "quarter"),
    ],
)
def test_invalid_inputs(kwargs: dict, message: str) -> None:
    arguments = {"start_cet1": 10.0, "additional_tier1": 0.0, "rwa": 100.0, "leverage_exposure": 200.0,
                 "ppnr": [1.0, 1.0], "provision": [0.0, 0.0], "tax_rate": 0.2} | kwargs
    with pytest.raises(ValueError, match=message):
        project_capital(**arguments)


def test_allowance_covers_the_next_four_quarters_with_the_last_one_repeated() -> None:
    # Losses 1, 2, 3, then 3 a quarter past the horizon: end of q1 covers q2..q5 = 2 + 3 + 3 + 3 = 11,
    # q2 covers 3 x 4 = 12, q3 too.
    allowance = allowance_path([1.0, 2.0, 3.0], start_allowance=5.0)
    np.testing.assert_allclose(allowance, [5.0, 11.0, 12.0, 12.0])
    # Provisions: charge-offs plus the reserve build, 1 + 6, 2 + 1, 3 + 0.
    np.testing.assert_allclose(provisions([1.0, 2.0, 3.0], allowance), [7.0, 3.0, 3.0])
    np.testing.assert_allclose(allowance_path([1.0, 2.0, 3.0], 5.0, window=2), [5.0, 5.0, 6.0, 6.0])


def test_balance_sheet_from_shares() -> None:
    sheet = BalanceSheet.from_shares(1000.0, 400.0, 0.25, securities_risk_weight=0.15, other_assets_risk_weight=0.40)
    assert (sheet.securities, sheet.other_assets, sheet.total_assets) == (250.0, 350.0, 1000.0)
    assert sheet.earning_assets == 650.0
    assert sheet.non_loan_rwa == pytest.approx(250 * 0.15 + 350 * 0.40)  # 37.5 + 140 = 177.5
    with pytest.raises(ValueError, match="other assets"):
        BalanceSheet.from_shares(1000.0, 800.0, 0.25, 0.15, 0.40)


def test_ppnr_responds_to_rates_and_unemployment_by_hand() -> None:
    sheet = BalanceSheet(loans=400.0, securities=250.0, other_assets=350.0, securities_risk_weight=0.15,
                         other_assets_risk_weight=0.40)
    model = PPNRModel(net_interest_margin=0.027, rate_sensitivity=0.10, noninterest_income_ratio=0.018,
                      expense_ratio=0.022, expense_unemployment_sensitivity=0.0005)
    ppnr = model.quarterly(sheet, short_rate_change=[0.0, -2.0, 1.0], unemployment_change=[0.0, 3.0, -1.0])
    # q1: 650 x 2.7 % = 17.55 + fees 18 - expense 22 = 13.55 a year -> 3.3875.
    # q2: rates -2 points: margin 2.5 % -> 16.25; unemployment +3: expense 2.35 % -> 23.5; 10.75 -> 2.6875.
    # q3: rates +1: margin 2.8 % -> 18.2; unemployment below jump-off leaves the expense at 22; 14.2 -> 3.55.
    np.testing.assert_allclose(ppnr, [3.3875, 2.6875, 3.55], rtol=1e-12)
