"""EL, VaR and expected shortfall on hand-computable samples, plus their invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import expon, norm

from models.loss_statistics import (
    expected_loss,
    expected_loss_standard_error,
    expected_shortfall,
    summarise,
    value_at_risk,
)

ONE_TO_HUNDRED = np.arange(1.0, 101.0)


def test_uniform_one_to_hundred() -> None:
    shuffled = np.random.default_rng(0).permutation(ONE_TO_HUNDRED)
    assert expected_loss(shuffled) == 50.5
    # Lower quantile: the smallest loss whose cumulative probability reaches the level.
    assert value_at_risk(shuffled, 0.95) == 95.0
    assert value_at_risk(shuffled, 0.99) == 99.0
    assert value_at_risk(shuffled, 0.955) == 96.0
    # Worst 5 %: losses 96..100.
    assert expected_shortfall(shuffled, 0.95) == pytest.approx(98.0, rel=1e-14)
    # Worst 2.5 %: 100, 99 and half of the atom at 98 -> (100 + 99 + 0.5 x 98) / 2.5.
    assert value_at_risk(shuffled, 0.975) == 98.0
    assert expected_shortfall(shuffled, 0.975) == pytest.approx(99.2, rel=1e-13)
    assert expected_shortfall(shuffled, 0.99) == pytest.approx(100.0, rel=1e-13)


def test_weighted_atom_at_var() -> None:
    losses = np.array([20.0, 0.0, 10.0])
    weights = np.array([0.05, 0.9, 0.05])
    assert value_at_risk(losses, 0.92, weights) == 10.0
    # (20 x 0.05 + 10 x (0.95 - 0.92)) / 0.08
    assert expected_shortfall(losses, 0.92, weights) == pytest.approx(16.25, rel=1e-14)
    assert expected_loss(losses, weights) == pytest.approx(1.5, rel=1e-14)


def test_integer_weights_equal_repeated_paths() -> None:
    rng = np.random.default_rng(1)
    losses = rng.gamma(2.0, 1.0, 50)
    counts = rng.integers(1, 5, 50)
    repeated = np.repeat(losses, counts)
    for level in (0.5, 0.9, 0.99):
        assert value_at_risk(losses, level, counts) == value_at_risk(repeated, level)
        assert expected_shortfall(losses, level, counts) == pytest.approx(expected_shortfall(repeated, level))
    assert expected_loss(losses, counts) == pytest.approx(expected_loss(repeated))


def test_standard_error() -> None:
    sample = np.array([1.0, 2.0, 4.0, 7.0])
    by_hand = np.sqrt(np.sum((sample - 3.5) ** 2) / 3 / 4)
    assert expected_loss_standard_error(sample) == pytest.approx(by_hand, rel=1e-14)
    assert expected_loss_standard_error(sample, np.full(4, 7.0)) == pytest.approx(by_hand, rel=1e-12)
    assert np.isnan(expected_loss_standard_error(np.array([3.0])))


def test_constant_sample() -> None:
    sample = np.full(1000, 0.1)
    assert value_at_risk(sample, 0.999) == 0.1
    assert expected_shortfall(sample, 0.999) == pytest.approx(0.1, rel=1e-14)
    assert expected_loss(sample) == pytest.approx(0.1, rel=1e-15)


def test_summary_matches_the_single_measures() -> None:
    summary = summarise(ONE_TO_HUNDRED, (0.95, 0.975))
    assert summary.expected_loss == 50.5
    assert summary.value_at_risk == {0.95: 95.0, 0.975: 98.0}
    assert summary.expected_shortfall[0.975] == pytest.approx(99.2)
    assert summary.standard_error == pytest.approx(expected_loss_standard_error(ONE_TO_HUNDRED))


@pytest.mark.parametrize("level", [0.0, 1.0, -0.5, 1.5])
def test_levels_outside_the_open_unit_interval_are_rejected(level: float) -> None:
    with pytest.raises(ValueError, match="level"):
        value_at_risk(ONE_TO_HUNDRED, level)
    with pytest.raises(ValueError, match="level"):
        expected_shortfall(ONE_TO_HUNDRED, level)


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="1-D"):
        expected_loss(np.ones((2, 2)))
    with pytest.raises(ValueError, match="weights"):
        expected_loss(np.ones(3), np.array([1.0, -1.0, 1.0]))


# No subnormal losses (below 2.2e-308 currency): their products lose relative precision, so the
# unclamped ES would miss VaR by more than rounding in the last digits.
losses_strategy = arrays(
    np.float64, st.integers(1, 200),
    elements=st.floats(0.0, 1e9, allow_nan=False, allow_infinity=False, allow_subnormal=False),
)


@settings(max_examples=200, deadline=None)
@given(losses=losses_strategy, level=st.floats(0.001, 0.999), higher=st.floats(0.0, 1.0))
def test_es_dominates_var_and_el_and_grows_with_the_level(losses, level: float, higher: float) -> None:
    var = value_at_risk(losses, level)
    es = expected_shortfall(losses, level)
    # Not clamped: equal to VaR (a constant sample) only up to rounding in the sums; losses are >= 0.
    assert es >= var * (1.0 - 1e-12)
    assert es >= expected_loss(losses) * (1.0 - 1e-12)
    assert losses.min() <= var <= losses.max()
    upper_level = level + higher * (0.999 - level)
    assert expected_shortfall(losses, upper_level) >= es * (1.0 - 1e-12)


@settings(max_examples=100, deadline=None)
@given(losses=losses_strategy, level=st.floats(0.01, 0.99))
def test_es_is_the_average_of_upper_quantiles(losses, level: float) -> None:
    # (1 / (1 - a)) x integral of VaR_u over [a, 1], by the midpoint rule on the sorted sample's steps.
    order = np.sort(losses)
    n = order.size
    edges = np.concatenate([[level], np.arange(1, n + 1)[np.arange(1, n + 1) / n > level] / n])
    widths = np.diff(edges)
    quantiles = [value_at_risk(losses, u) for u in (edges[:-1] + edges[1:]) / 2]
    integral = float(np.dot(widths, quantiles)) / (1.0 - level)
    assert expected_shortfall(losses, level) == pytest.approx(integral, rel=1e-9, abs=1e-6)


def midpoint_quantiles(ppf, n: int = 200_000) -> np.ndarray:
    """The distribution's quantiles at ``(i - 0.5) / n``: a deterministic sample whose ES tends to the true one."""
    return ppf((np.arange(n) + 0.5) / n)


@pytest.mark.parametrize("level", [0.9, 0.99, 0.999])
def test_es_matches_the_normal_closed_form(level: float) -> None:
    mu, sigma = 3.0, 2.0
    losses = midpoint_quantiles(lambda u: norm.ppf(u, mu, sigma))
    closed_form = mu + sigma * norm.pdf(norm.ppf(level)) / (1.0 - level)
    assert expected_shortfall(losses, level) == pytest.approx(closed_form, rel=1e-4)


@pytest.mark.parametrize("level", [0.9, 0.99, 0.999])
def test_es_matches_the_exponential_closed_form(level: float) -> None:
    # Exponential with mean m: VaR_a = -m ln(1 - a) and, memoryless, ES_a = VaR_a + m.
    mean = 5.0
    var = -mean * np.log1p(-level)
    losses = np.random.default_rng(3).permutation(midpoint_quantiles(lambda u: expon.ppf(u, scale=mean)))
    assert value_at_risk(losses, level) == pytest.approx(var, rel=1e-3)
    assert expected_shortfall(losses, level) == pytest.approx(var + mean, rel=1e-3)
    # Weighted: an even grid of losses weighted by the exponential density is the same distribution.
    grid = np.linspace(0.0, 30.0 * mean, 400_001)
    assert expected_shortfall(grid, level, expon.pdf(grid, scale=mean)) == pytest.approx(var + mean, rel=1e-4)
