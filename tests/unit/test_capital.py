"""CET1 path arithmetic checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from models.capital import project_cet1


def test_path_by_hand() -> None:
    path = project_cet1(
        start_capital=100.0,
        start_rwa=1000.0,
        ppnr=[10.0, 10.0, 10.0],
        credit_losses=[5.0, 30.0, 0.0],
        rwa=[1000.0, 1100.0, 900.0],
        tax_rate=0.21,
        dividends=2.0,
    )
    # q1: pre-tax 5, tax 1.05, less dividend 2 -> +1.95; q2: pre-tax -20, no tax relief, -2 -> -22;
    # q3: pre-tax 10, tax 2.1, -2 -> +5.9.
    np.testing.assert_allclose(path.capital, [100.0, 101.95, 79.95, 85.85], rtol=1e-14)
    np.testing.assert_allclose(path.ratio, [0.1, 0.10195, 79.95 / 1100.0, 85.85 / 900.0], rtol=1e-14)
    assert int(path.min_quarter) == 2
    assert float(path.min_ratio) == pytest.approx(79.95 / 1100.0, rel=1e-14)
    assert float(path.start_to_trough) == pytest.approx(0.1 - 79.95 / 1100.0, rel=1e-12)


def test_dividends_per_quarter_and_no_tax() -> None:
    path = project_cet1(50.0, 500.0, [1.0, 1.0], [0.0, 0.0], [500.0, 500.0], tax_rate=0.0, dividends=[0.0, 3.0])
    np.testing.assert_allclose(path.capital, [50.0, 51.0, 49.0])
    assert int(path.min_quarter) == 2


def test_earliest_trough_wins_a_tie() -> None:
    path = project_cet1(10.0, 100.0, [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [100.0, 100.0, 100.0], tax_rate=0.2)
    assert int(path.min_quarter) == 1
    assert float(path.min_ratio) == pytest.approx(0.09)


def test_paths_are_vectorised_over_leading_axes() -> None:
    rng = np.random.default_rng(5)
    ppnr = rng.normal(5.0, 1.0, (50, 9))
    losses = rng.gamma(2.0, 3.0, (50, 9))
    rwa = rng.uniform(900.0, 1200.0, (50, 9))
    batch = project_cet1(120.0, 1000.0, ppnr, losses, rwa, tax_rate=0.21, dividends=1.0)
    assert batch.capital.shape == (50, 10)
    for i in range(50):
        single = project_cet1(120.0, 1000.0, ppnr[i], losses[i], rwa[i], tax_rate=0.21, dividends=1.0)
        np.testing.assert_array_equal(batch.capital[i], single.capital)
        assert batch.min_quarter[i] == single.min_quarter
        assert batch.min_ratio[i] == single.min_ratio


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tax_rate": 1.0}, "tax_rate"),
        ({"start_rwa": 0.0}, "start_rwa"),
        ({"rwa": [100.0, -1.0]}, "RWA"),
        ({"ppnr": [], "credit_losses": [], "rwa": []}, "quarter"),
    ],
)
def test_invalid_inputs(kwargs: dict, message: str) -> None:
    arguments = {"start_capital": 10.0, "start_rwa": 100.0, "ppnr": [1.0, 1.0], "credit_losses": [0.0, 0.0],
                 "rwa": [100.0, 100.0], "tax_rate": 0.2} | kwargs
    with pytest.raises(ValueError, match=message):
        project_cet1(**arguments)
