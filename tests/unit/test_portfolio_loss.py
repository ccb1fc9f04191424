"""The histogram loss engine: batching invariance, Vasicek limit, dense equivalence, monotonicity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import ndtr, ndtri
from scipy.stats import binom, ks_2samp

from models.portfolio_loss import (
    ExposureHistogram,
    NodeGrid,
    simulate_losses,
    simulate_losses_dense,
    systematic_factors,
)
from models.vasicek import lhp_loss_quantile

RHO = np.array([0.15, 0.15, 0.04, 0.10, 0.06, 0.20, 0.22])  # one class per segment
SEED = 20260101


def heterogeneous_portfolio(
    n_loans: int, n_quarters: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loans spread over the seven classes, with PDs rising and loss weights falling over the horizon."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, RHO.size, n_loans)
    stress = np.linspace(1.0, 2.5, n_quarters)
    pd = np.clip(rng.lognormal(np.log(0.008), 1.0, n_loans)[:, None] * stress[None, :], 0.0, 0.9)
    weight = rng.lognormal(np.log(2e4), 1.0, n_loans)[:, None] * np.linspace(1.0, 0.9, n_quarters)[None, :]
    return classes, pd, weight


def test_batching_is_bit_identical() -> None:
    classes, pd, weight = heterogeneous_portfolio(3000, 4)
    whole = ExposureHistogram.from_loans(classes, RHO, pd, weight)
    reference = simulate_losses(whole, 500, SEED, "severely_adverse")
    rng = np.random.default_rng(9)
    for n_batches in (1, 4, 16):
        batches = np.array_split(rng.permutation(classes.size), n_batches)
        parts = [ExposureHistogram.from_loans(classes[b], RHO, pd[b], weight[b]) for b in batches]
        total = ExposureHistogram.sum(parts[i] for i in rng.permutation(n_batches))
        np.testing.assert_array_equal(total.weight, whole.weight)
        np.testing.assert_array_equal(total.weight_sq, whole.weight_sq)
        np.testing.assert_array_equal(simulate_losses(total, 500, SEED, "severely_adverse"), reference)


def test_draws_are_keyed_and_prefix_stable() -> None:
    classes, pd, weight = heterogeneous_portfolio(500, 3)
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight)
    long = simulate_losses(hist, 1000, SEED, "adverse")
    np.testing.assert_array_equal(simulate_losses(hist, 300, SEED, "adverse"), long[:300])
    assert not np.array_equal(simulate_losses(hist, 1000, SEED, "baseline"), long)
    assert not np.array_equal(simulate_losses(hist, 1000, SEED + 1, "adverse"), long)
    factors = systematic_factors(1000, 3, SEED, "adverse")
    assert not np.array_equal(factors[:, 0], factors[:, 1])


def test_histogram_keeps_every_loans_expected_loss() -> None:
    classes, pd, weight = heterogeneous_portfolio(3000, 4)
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight)
    np.testing.assert_allclose(hist.expected_loss(), (pd * weight).sum(axis=0), rtol=1e-9)


def test_conditional_loss_matches_the_loan_by_loan_sum() -> None:
    classes, pd, weight = heterogeneous_portfolio(3000, 3)
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight)
    conditional = simulate_losses(hist, 400, SEED, "adverse", idiosyncratic=False)
    factors = systematic_factors(400, 3, SEED, "adverse")
    rho = RHO[classes][:, None]
    for quarter in range(3):
        p = ndtr((ndtri(pd[:, quarter])[:, None] - np.sqrt(rho) * factors[None, :, quarter]) / np.sqrt(1 - rho))
        exact = weight[:, quarter] @ p
        np.testing.assert_allclose(conditional[:, quarter], exact, rtol=5e-4)


def order_statistic_interval(sorted_losses: np.ndarray, level: float, miss: float) -> tuple[float, float]:
    """Distribution-free interval holding the true ``level``-quantile with probability >= 1 - miss.

    The number of simulated losses below the true quantile is Binomial(n, level), so the order
    statistics at its ``miss / 2`` and ``1 - miss / 2`` quantiles bracket the true quantile.
    """
    n = sorted_losses.size
    low = int(binom.ppf(miss / 2, n, level))
    high = int(binom.isf(miss / 2, n, level)) + 1
    return float(sorted_losses[max(low - 1, 0)]), float(sorted_losses[min(high - 1, n - 1)])


@pytest.mark.parametrize("idiosyncratic", [False, True])
def test_large_homogeneous_portfolio_matches_vasicek(idiosyncratic: bool) -> None:
    n_loans, pd, rho, loan_weight, n_paths = 1_000_000, 0.01, 0.12, 1e4, 400_000
    hist = ExposureHistogram.from_loans(
        np.zeros(n_loans, dtype=np.int64), [rho], np.full((n_loans, 1), pd), np.full((n_loans, 1), loan_weight)
    )
    rate = simulate_losses(hist, n_paths, SEED, "lhp", idiosyncratic=idiosyncratic)[:, 0] / (n_loans * loan_weight)

    standard_error = rate.std(ddof=1) / np.sqrt(n_paths)
    assert abs(rate.mean() - pd) < 4.0 * standard_error
    ordered = np.sort(rate)
    for level in (0.99, 0.999):
        low, high = order_statistic_interval(ordered, level, miss=1e-4)
        assert low <= float(lhp_loss_quantile(level, pd, rho)) <= high


def test_histogram_engine_is_statistically_equivalent_to_the_dense_simulation() -> None:
    n_quarters, n_paths = 3, 4000
    classes, pd, weight = heterogeneous_portfolio(2000, n_quarters, seed=1)
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight)

    # Independent samples: KS on each quarter and on the horizon total, Bonferroni to a 1 % family.
    fast = simulate_losses(hist, n_paths, SEED, "adverse")
    dense = simulate_losses_dense(classes, RHO, pd, weight, n_paths, SEED + 1, "adverse")
    samples = [(fast[:, q], dense[:, q]) for q in range(n_quarters)] + [(fast.sum(axis=1), dense.sum(axis=1))]
    for a, b in samples:
        assert ks_2samp(a, b).pvalue > 0.01 / len(samples)
    standard_error = np.sqrt(fast.var(axis=0, ddof=1) / n_paths + dense.var(axis=0, ddof=1) / n_paths)
    assert np.all(np.abs(fast.mean(axis=0) - dense.mean(axis=0)) < 3.0 * standard_error)

    # Common factor draws: the paired difference isolates binning and the normal approximation.
    paired = simulate_losses(hist, n_paths, SEED + 2, "adverse") - simulate_losses_dense(
        classes, RHO, pd, weight, n_paths, SEED + 2, "adverse"
    )
    paired_error = paired.std(axis=0, ddof=1) / np.sqrt(n_paths)
    assert np.all(np.abs(paired.mean(axis=0)) < 3.5 * paired_error)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_loans=st.integers(1, 40),
)
def test_higher_pds_never_lower_losses(data: st.DataObject, n_loans: int) -> None:
    unit = st.floats(0.0, 1.0, allow_nan=False)
    classes = data.draw(arrays(np.int64, n_loans, elements=st.integers(0, RHO.size - 1)))
    pd = data.draw(arrays(np.float64, (n_loans, 2), elements=unit))
    bump = data.draw(arrays(np.float64, (n_loans, 2), elements=unit))
    weight = data.draw(arrays(np.float64, (n_loans, 2), elements=st.floats(0.0, 1e7)))
    higher_pd = np.minimum(pd + bump * (1.0 - pd), 1.0)

    base = ExposureHistogram.from_loans(classes, RHO, pd, weight)
    stressed = ExposureHistogram.from_loans(classes, RHO, higher_pd, weight)
    assert np.all(stressed.expected_loss() >= base.expected_loss() * (1 - 1e-12))
    low = simulate_losses(base, 64, SEED, "monotone", idiosyncratic=False)
    high = simulate_losses(stressed, 64, SEED, "monotone", idiosyncratic=False)
    assert np.all(high >= low * (1 - 1e-12))


def test_histograms_refuse_to_add_when_binned_differently() -> None:
    classes, pd, weight = heterogeneous_portfolio(100, 2)
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight)
    with pytest.raises(ValueError, match="same grid"):
        hist + ExposureHistogram.from_loans(classes, RHO, pd, weight, grid=NodeGrid(n_nodes=256))
    with pytest.raises(ValueError, match="same grid"):
        hist + ExposureHistogram.from_loans(classes, RHO, pd, weight, weight_unit=1e-2)
    with pytest.raises(ValueError, match="nothing"):
        ExposureHistogram.sum([])


def test_invalid_inputs_and_overflow_are_rejected() -> None:
    classes, pd, weight = heterogeneous_portfolio(100, 2)
    with pytest.raises(ValueError, match="PDs"):
        ExposureHistogram.from_loans(classes, RHO, pd + 1.0, weight)
    with pytest.raises(ValueError, match="class_index"):
        ExposureHistogram.from_loans(classes + RHO.size, RHO, pd, weight)
    with pytest.raises(OverflowError):
        ExposureHistogram.from_loans(classes, RHO, pd, np.full_like(weight, 1e14))
    big = ExposureHistogram.from_loans(classes[:1], RHO, pd[:1, :1], np.full((1, 1), 3e14), square_unit=1e12)
    with pytest.raises(OverflowError):
        big + big
