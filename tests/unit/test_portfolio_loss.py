"""The loss engine: batching invariance, Vasicek limits, factor persistence, exact names, dense equivalence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import ndtr, ndtri
from scipy.stats import binom, ks_2samp, multivariate_normal

from benchmarks.engine_comparison import compare_paired
from models.portfolio_loss import (
    DEFAULT_EXACT_NAMES,
    DEFAULT_FACTOR_PERSISTENCE,
    ExposureHistogram,
    NodeGrid,
    simulate_losses,
    simulate_losses_dense,
    systematic_factors,
)
from models.vasicek import lhp_loss_quantile

RHO = np.array([0.15, 0.15, 0.04, 0.10, 0.06, 0.20, 0.22])  # one class per segment
SEED = 20260101
KEYS = np.arange(1_000_000)  # loan keys: positions in the whole book


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
    whole = ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[: classes.size])
    reference = simulate_losses(whole, 500, SEED, "severely_adverse")
    rng = np.random.default_rng(9)
    for n_batches in (1, 4, 16):
        batches = np.array_split(rng.permutation(classes.size), n_batches)
        parts = [ExposureHistogram.from_loans(classes[b], RHO, pd[b], weight[b], loan_key=b) for b in batches]
        total = ExposureHistogram.sum(parts[i] for i in rng.permutation(n_batches))
        np.testing.assert_array_equal(total.weight, whole.weight)
        np.testing.assert_array_equal(total.weight_sq, whole.weight_sq)
        np.testing.assert_array_equal(simulate_losses(total, 500, SEED, "severely_adverse"), reference)


def test_draws_are_keyed_and_prefix_stable() -> None:
    classes, pd, weight = heterogeneous_portfolio(500, 3)
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[: classes.size])
    long = simulate_losses(hist, 1000, SEED, "adverse")
    np.testing.assert_array_equal(simulate_losses(hist, 300, SEED, "adverse"), long[:300])
    assert not np.array_equal(simulate_losses(hist, 1000, SEED, "baseline"), long)
    assert not np.array_equal(simulate_losses(hist, 1000, SEED + 1, "adverse"), long)
    factors = systematic_factors(1000, 3, SEED, "adverse")
    assert not np.array_equal(factors[:, 0], factors[:, 1])


def test_histogram_keeps_every_loans_expected_loss() -> None:
    classes, pd, weight = heterogeneous_portfolio(3000, 4)
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[: classes.size])
    np.testing.assert_allclose(hist.expected_loss(), (pd * weight).sum(axis=0), rtol=1e-9)


def test_conditional_loss_matches_the_loan_by_loan_sum() -> None:
    classes, pd, weight = heterogeneous_portfolio(3000, 3)
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[: classes.size])
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
        np.zeros(n_loans, dtype=np.int64), [rho], np.full((n_loans, 1), pd), np.full((n_loans, 1), loan_weight),
        loan_key=KEYS[:n_loans],
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
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[: classes.size])

    # Independent samples: KS on each quarter and on the horizon total, Bonferroni to a 1 % family.
    fast = simulate_losses(hist, n_paths, SEED, "adverse")
    dense = simulate_losses_dense(classes, RHO, pd, weight, n_paths, SEED + 1, "adverse",
                                  loan_key=KEYS[: classes.size])
    samples = [(fast[:, q], dense[:, q]) for q in range(n_quarters)] + [(fast.sum(axis=1), dense.sum(axis=1))]
    for a, b in samples:
        assert ks_2samp(a, b).pvalue > 0.01 / len(samples)
    standard_error = np.sqrt(fast.var(axis=0, ddof=1) / n_paths + dense.var(axis=0, ddof=1) / n_paths)
    assert np.all(np.abs(fast.mean(axis=0) - dense.mean(axis=0)) < 3.0 * standard_error)

    # Common factor draws: the paired difference isolates binning and the normal approximation.
    paired = simulate_losses(hist, n_paths, SEED + 2, "adverse") - simulate_losses_dense(
        classes, RHO, pd, weight, n_paths, SEED + 2, "adverse", loan_key=KEYS[: classes.size]
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

    base = ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[: classes.size])
    stressed = ExposureHistogram.from_loans(classes, RHO, higher_pd, weight, loan_key=KEYS[: classes.size])
    assert np.all(stressed.expected_loss() >= base.expected_loss() * (1 - 1e-12))
    low = simulate_losses(base, 64, SEED, "monotone", idiosyncratic=False)
    high = simulate_losses(stressed, 64, SEED, "monotone", idiosyncratic=False)
    assert np.all(high >= low * (1 - 1e-12))


def test_histograms_refuse_to_add_when_binned_differently() -> None:
    classes, pd, weight = heterogeneous_portfolio(100, 2)
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[: classes.size])
    with pytest.raises(ValueError, match="same grid"):
        hist + ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[:100], grid=NodeGrid(n_nodes=256))
    with pytest.raises(ValueError, match="same grid"):
        hist + ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[:100], weight_unit=1e-2)
    with pytest.raises(ValueError, match="nothing"):
        ExposureHistogram.sum([])


def test_invalid_inputs_and_overflow_are_rejected() -> None:
    classes, pd, weight = heterogeneous_portfolio(100, 2)
    with pytest.raises(ValueError, match="PDs"):
        ExposureHistogram.from_loans(classes, RHO, pd + 1.0, weight, loan_key=KEYS[:100])
    with pytest.raises(ValueError, match="class_index"):
        ExposureHistogram.from_loans(classes + RHO.size, RHO, pd, weight, loan_key=KEYS[:100])
    with pytest.raises(OverflowError):
        ExposureHistogram.from_loans(classes, RHO, pd, np.full_like(weight, 1e14), loan_key=KEYS[:100],
                                     exact_names=0)
    big = ExposureHistogram.from_loans(classes[:1], RHO, pd[:1, :1], np.full((1, 1), 3e14), loan_key=KEYS[:1],
                                       square_unit=1e12, exact_names=0)
    with pytest.raises(OverflowError):
        big + big


# --- Systematic factor persistence (AR(1) across quarters) -------------------------------------------------


@pytest.mark.parametrize("phi", [0.0, 0.65, 1.0])
def test_factor_is_a_standardised_ar1(phi: float) -> None:
    n_paths = 200_000
    factors = systematic_factors(n_paths, 4, SEED, "ar1", persistence=phi)
    standard_error = 1.0 / np.sqrt(n_paths)
    assert np.all(np.abs(factors.mean(axis=0)) < 4.5 * standard_error)
    assert np.all(np.abs(factors.var(axis=0) - 1.0) < 4.5 * np.sqrt(2.0) * standard_error)
    correlation = np.corrcoef(factors, rowvar=False)
    lags = np.abs(np.subtract.outer(np.arange(4), np.arange(4)))
    np.testing.assert_allclose(correlation, phi**lags, atol=4.5 * standard_error)
    # The first quarter is the innovation itself, so phi only changes how later quarters follow it.
    np.testing.assert_array_equal(factors[:, 0], systematic_factors(n_paths, 1, SEED, "ar1", persistence=0.0)[:, 0])


def test_full_persistence_is_one_factor_for_the_horizon() -> None:
    factors = systematic_factors(1000, 9, SEED, "one", persistence=1.0)
    np.testing.assert_array_equal(factors, np.repeat(factors[:, :1], 9, axis=1))
    with pytest.raises(ValueError, match="persistence"):
        systematic_factors(10, 2, SEED, "one", persistence=1.5)


def one_year_homogeneous_rates(phi: float, n_paths: int, quarterly_pd: float, rho: float) -> np.ndarray:
    """4-quarter loss rates of 1M equal loans with a constant quarterly PD (exact names included)."""
    n_loans = 1_000_000
    hist = ExposureHistogram.from_loans(np.zeros(n_loans, dtype=np.int64), [rho], np.full((n_loans, 4), quarterly_pd),
                                        np.ones((n_loans, 4)), loan_key=KEYS[:n_loans])
    return np.sort(simulate_losses(hist, n_paths, SEED, "one_year", persistence=phi).sum(axis=1) / n_loans)


def test_one_persistent_factor_gives_the_comonotone_vasicek_quantiles() -> None:
    # phi = 1: every quarter sees the same z, so the loss rate is 4 p(z), decreasing in z: its quantile is
    # 4 x the one-quarter Vasicek quantile. (Not Vasicek on the annual PD: 4 Vasicek hazards on one z
    # are more dispersed than one annual Vasicek draw, see DEFAULT_FACTOR_PERSISTENCE.)
    quarterly_pd, rho = 1.0 - 0.98**0.25, 0.15
    rates = one_year_homogeneous_rates(1.0, 100_000, quarterly_pd, rho)
    for level in (0.99, 0.999):
        low, high = order_statistic_interval(rates, level, miss=1e-4)
        assert low <= 4.0 * float(lhp_loss_quantile(level, quarterly_pd, rho)) <= high


def test_default_persistence_reproduces_the_annual_vasicek_tail_over_one_year() -> None:
    # The calibration claimed for DEFAULT_FACTOR_PERSISTENCE at annual PD 2 %, rho 0.15 (measured: +2 %),
    # against the independent quarters of phi = 0 (-37 %).
    annual_pd, rho = 0.02, 0.15
    quarterly_pd = 1.0 - (1.0 - annual_pd) ** 0.25
    vasicek = float(lhp_loss_quantile(0.999, annual_pd, rho))
    persistent = one_year_homogeneous_rates(DEFAULT_FACTOR_PERSISTENCE, 100_000, quarterly_pd, rho)
    independent = one_year_homogeneous_rates(0.0, 100_000, quarterly_pd, rho)
    assert abs(np.quantile(persistent, 0.999) / vasicek - 1.0) < 0.08
    assert np.quantile(independent, 0.999) / vasicek - 1.0 < -0.3


# --- Exact names ----------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n_loans=st.integers(1, 40), n_quarters=st.integers(1, 3), n_batches=st.integers(1, 4))
def test_small_books_are_simulated_exactly_whatever_the_batching(
    data: st.DataObject, n_loans: int, n_quarters: int, n_batches: int
) -> None:
    classes = data.draw(arrays(np.int64, n_loans, elements=st.integers(0, RHO.size - 1)))
    pd = data.draw(arrays(np.float64, (n_loans, n_quarters), elements=st.floats(0.0, 0.5)))
    weight = data.draw(arrays(np.float64, (n_loans, n_quarters), elements=st.floats(0.0, 1e6)))
    weight[0] *= data.draw(st.floats(1.0, 2.0 * n_loans))  # up to about a third of the book on one name
    keys = data.draw(st.permutations(range(10 * n_loans)))[:n_loans]
    keys = np.asarray(keys, dtype=np.int64)
    phi = data.draw(st.sampled_from([0.0, 0.65, 1.0]))
    order = np.random.default_rng(n_loans).permutation(n_loans)
    parts = [ExposureHistogram.from_loans(classes[b], RHO, pd[b], weight[b], loan_key=keys[b])
             for b in np.array_split(order, n_batches)]
    hist = ExposureHistogram.from_bytes(ExposureHistogram.sum(parts).to_bytes())
    engine = simulate_losses(hist, 256, SEED, "exact", persistence=phi)
    dense = simulate_losses_dense(classes, RHO, pd, weight, 256, SEED, "exact", loan_key=keys, persistence=phi)
    np.testing.assert_allclose(engine, dense, rtol=1e-12, atol=1e-6)


def test_two_exact_names_default_jointly_as_the_gaussian_copula_says() -> None:
    # Independent known answer: P(both default) = N2(c1, c2; rho), the bivariate normal CDF.
    pd, rho, n_paths = np.array([[0.05], [0.10]]), 0.2, 400_000
    hist = ExposureHistogram.from_loans(np.zeros(2, dtype=np.int64), [rho], pd, np.array([[1.0], [2.0]]),
                                        loan_key=np.array([7, 11]))
    losses = simulate_losses(hist, n_paths, SEED, "pair")[:, 0]
    joint = multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]]).cdf(ndtri(pd[:, 0]))
    for observed, expected in ((np.mean(losses == 3.0), joint), (np.mean(losses == 1.0), pd[0, 0] - joint),
                               (np.mean(losses == 2.0), pd[1, 0] - joint)):
        assert abs(observed - expected) < 4.5 * np.sqrt(expected * (1.0 - expected) / n_paths)


@pytest.mark.parametrize("exact_names, should_agree", [(DEFAULT_EXACT_NAMES, True), (0, False)])
def test_one_large_loan_among_thousands_has_the_dense_tail(exact_names: int, should_agree: bool) -> None:
    # 2,000 small loans and one with a third of the exposure; common random numbers (same factors, same
    # Bernoulli uniforms for the exact names), so the paired error is small. Without exact names the gamma
    # draw misses the tail by many standard errors: the comparison can fail.
    rng = np.random.default_rng(4)
    n_small, n_paths = 2000, 20_000
    classes = rng.integers(0, RHO.size, n_small + 1)
    pd = np.clip(rng.lognormal(np.log(0.01), 0.8, (n_small + 1, 2)), 0.0, 0.5)
    weight = rng.lognormal(np.log(1e4), 0.5, (n_small + 1, 2))
    weight[-1] = weight[:-1].sum(axis=0) / 2.0
    keys = KEYS[: n_small + 1]
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=keys, exact_names=exact_names)
    engine = simulate_losses(hist, n_paths, SEED, "one_large").sum(axis=1)
    dense = simulate_losses_dense(classes, RHO, pd, weight, n_paths, SEED, "one_large", loan_key=keys).sum(axis=1)
    comparison = compare_paired(engine, dense, levels=(0.99, 0.999), n_boot=100)
    tails = [comparison.measures[name] for name in ("var99", "var99.9", "es99")]
    if should_agree:
        assert all(abs(m.z) < 4.0 and abs(m.relative) < 0.03 for m in tails)
    else:
        assert max(abs(m.z) for m in tails) > 6.0
