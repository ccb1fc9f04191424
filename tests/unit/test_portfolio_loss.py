"""The loss engine: batching invariance, Vasicek limits, the horizon factor model, exact names, dense equivalence."""

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
    FactorModel,
    NodeGrid,
    simulate_losses,
    simulate_losses_dense,
    systematic_factors,
)
from models.vasicek import lhp_loss_quantile

RHO = np.array([0.15, 0.15, 0.04, 0.10, 0.06, 0.20, 0.22])  # one class per segment
MODELS = list(FactorModel)
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


def alive_at_start(hazard: np.ndarray) -> np.ndarray:
    """Survival to the start of each quarter, loan by loan and quarter by quarter (independent of the engine)."""
    survival = np.ones_like(hazard)
    for quarter in range(1, hazard.shape[1]):
        survival[:, quarter] = survival[:, quarter - 1] * (1.0 - hazard[:, quarter - 1])
    return survival


@pytest.mark.parametrize("model", MODELS)
def test_histogram_keeps_every_loans_expected_loss(model: FactorModel) -> None:
    # EL of quarter q = survival to its start x hazard x loss at default, in both models.
    classes, pd, weight = heterogeneous_portfolio(3000, 4)
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[: classes.size], exact_names=100,
                                        factor_model=model)
    np.testing.assert_allclose(hist.expected_loss(), (alive_at_start(pd) * pd * weight).sum(axis=0), rtol=1e-9)


@pytest.mark.parametrize("model", MODELS)
def test_conditional_loss_matches_the_loan_by_loan_sum(model: FactorModel) -> None:
    classes, pd, weight = heterogeneous_portfolio(3000, 3)
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[: classes.size], factor_model=model)
    conditional = simulate_losses(hist, 400, SEED, "adverse", idiosyncratic=False)
    rho = RHO[classes][:, None]
    survival = alive_at_start(pd)
    if model is FactorModel.HORIZON:
        # One factor per path; a loan's quarter-q default probability is C_q(z) - C_(q-1)(z).
        z = systematic_factors(400, 1, SEED, "adverse")[:, 0]
        cumulative = 1.0 - survival * (1.0 - pd)
        by_quarter = [ndtr((ndtri(cumulative[:, q])[:, None] - np.sqrt(rho) * z[None, :]) / np.sqrt(1 - rho))
                      for q in range(3)]
        exact = [weight[:, q] @ (by_quarter[q] - (by_quarter[q - 1] if q else 0.0)) for q in range(3)]
    else:
        factors = systematic_factors(400, 3, SEED, "adverse")
        exact = [(survival[:, q] * weight[:, q]) @ ndtr(
            (ndtri(pd[:, q])[:, None] - np.sqrt(rho) * factors[None, :, q]) / np.sqrt(1 - rho)) for q in range(3)]
    for quarter in range(3):
        np.testing.assert_allclose(conditional[:, quarter], exact[quarter], rtol=5e-4)


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
    # Higher hazards raise every cumulative PD, so (with a loss at default constant over the horizon) the
    # conditional loss to every quarter end; binned (exact_names=0) and exact names (conditional expectation).
    unit = st.floats(0.0, 1.0, allow_nan=False)
    classes = data.draw(arrays(np.int64, n_loans, elements=st.integers(0, RHO.size - 1)))
    pd = data.draw(arrays(np.float64, (n_loans, 3), elements=unit))
    bump = data.draw(arrays(np.float64, (n_loans, 3), elements=unit))
    weight = np.repeat(data.draw(arrays(np.float64, (n_loans, 1), elements=st.floats(0.0, 1e7))), 3, axis=1)
    higher_pd = np.minimum(pd + bump * (1.0 - pd), 1.0)
    exact_names = data.draw(st.sampled_from([0, DEFAULT_EXACT_NAMES]))

    base = ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[: classes.size],
                                        exact_names=exact_names)
    stressed = ExposureHistogram.from_loans(classes, RHO, higher_pd, weight, loan_key=KEYS[: classes.size],
                                            exact_names=exact_names)
    assert np.all(np.cumsum(stressed.expected_loss()) >= np.cumsum(base.expected_loss()) * (1 - 1e-12))
    low = np.cumsum(simulate_losses(base, 64, SEED, "monotone", idiosyncratic=False), axis=1)
    high = np.cumsum(simulate_losses(stressed, 64, SEED, "monotone", idiosyncratic=False), axis=1)
    assert np.all(high >= low * (1 - 1e-12) - 1e-6)


def test_histograms_refuse_to_add_when_binned_differently() -> None:
    classes, pd, weight = heterogeneous_portfolio(100, 2)
    hist = ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[: classes.size])
    with pytest.raises(ValueError, match="same grid"):
        hist + ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[:100], grid=NodeGrid(n_nodes=256))
    with pytest.raises(ValueError, match="same grid"):
        hist + ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[:100], weight_unit=1e-2)
    with pytest.raises(ValueError, match="factor model"):
        hist + ExposureHistogram.from_loans(classes, RHO, pd, weight, loan_key=KEYS[:100],
                                            factor_model=FactorModel.QUARTERLY_AR1)
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


def one_year_homogeneous_rates(model: FactorModel, annual_pd: float, rho: float, *, n_loans: int = 200_000,
                               n_paths: int = 200_000, phi: float = DEFAULT_FACTOR_PERSISTENCE,
                               idiosyncratic: bool = True) -> np.ndarray:
    """Sorted one-year loss rates of equal loans whose annual PD is spread evenly over 4 quarterly hazards.

    The constant hazard ``1 - (1 - PD)^(1/4)`` gives the cumulative curve ``1 - (1 - PD)^(q/4)``, which
    reaches the annual PD at the fourth quarter. Each loan loses 1 at default (exact names included).
    """
    quarterly_pd = 1.0 - (1.0 - annual_pd) ** 0.25
    hist = ExposureHistogram.from_loans(np.zeros(n_loans, dtype=np.int64), [rho], np.full((n_loans, 4), quarterly_pd),
                                        np.ones((n_loans, 4)), loan_key=KEYS[:n_loans], factor_model=model)
    losses = simulate_losses(hist, n_paths, SEED, "one_year", persistence=phi, idiosyncratic=idiosyncratic)
    return np.sort(losses.sum(axis=1) / n_loans)


def test_quarterly_ar1_with_one_persistent_factor_gives_the_comonotone_vasicek_quantiles() -> None:
    # phi = 1: every quarter sees the same z, so the loss rate is (S_0 + ... + S_3) p(z) with the survivals
    # S_q = (1 - h)^q, decreasing in z: its quantile is that sum x the one-quarter Vasicek quantile. (Not
    # Vasicek on the annual PD: 4 Vasicek hazards on one z are more dispersed than one annual Vasicek draw.)
    annual_pd, rho = 0.02, 0.15
    quarterly_pd = 1.0 - (1.0 - annual_pd) ** 0.25
    rates = one_year_homogeneous_rates(FactorModel.QUARTERLY_AR1, annual_pd, rho, n_paths=100_000, phi=1.0)
    exposure_alive = sum((1.0 - quarterly_pd) ** q for q in range(4))
    for level in (0.99, 0.999):
        low, high = order_statistic_interval(rates, level, miss=1e-4)
        assert low <= exposure_alive * float(lhp_loss_quantile(level, quarterly_pd, rho)) <= high


def test_default_persistence_comes_near_the_annual_vasicek_tail_over_one_year() -> None:
    # The calibration claimed for DEFAULT_FACTOR_PERSISTENCE at annual PD 2 %, rho 0.15 (measured: +2 %),
    # against the independent quarters of phi = 0 (-37 %).
    annual_pd, rho = 0.02, 0.15
    vasicek = float(lhp_loss_quantile(0.999, annual_pd, rho))
    persistent = one_year_homogeneous_rates(FactorModel.QUARTERLY_AR1, annual_pd, rho, n_paths=100_000)
    independent = one_year_homogeneous_rates(FactorModel.QUARTERLY_AR1, annual_pd, rho, n_paths=100_000, phi=0.0)
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
    model = data.draw(st.sampled_from(MODELS))
    order = np.random.default_rng(n_loans).permutation(n_loans)
    parts = [ExposureHistogram.from_loans(classes[b], RHO, pd[b], weight[b], loan_key=keys[b], factor_model=model)
             for b in np.array_split(order, n_batches)]
    hist = ExposureHistogram.from_bytes(ExposureHistogram.sum(parts).to_bytes())
    assert hist.factor_model is model
    engine = simulate_losses(hist, 256, SEED, "exact", persistence=phi)
    dense = simulate_losses_dense(classes, RHO, pd, weight, 256, SEED, "exact", loan_key=keys, persistence=phi,
                                  factor_model=model)
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


# --- The horizon model: one latent variable per loan, cumulative-PD thresholds, one factor per path --------


@pytest.mark.parametrize("annual_pd, rho", [(0.02, 0.15), (0.05, 0.04)])
def test_one_year_large_book_is_vasicek_on_the_annual_pd(annual_pd: float, rho: float) -> None:
    # Known answer (Vasicek 2002, the Basel ASRF): over one year a large homogeneous book's loss is
    # Vasicek's distribution on the annual PD, e.g. VaR 99.9 % = 17.6 % at PD 2 %, rho 0.15. 200,000 loans with
    # their idiosyncratic risk, and the large-book limit (the conditional expected loss). The quarterly
    # model misses it at every persistence (at phi = 0.65 by -3 % at the 90 % level for PD 2 %, and +1.8 %
    # at 99 % for PD 5 %: many standard errors at 200,000 paths), so the check can fail.
    levels = (0.9, 0.99, 0.999)
    vasicek = lhp_loss_quantile(levels, annual_pd, rho)

    def matches_vasicek(rates: np.ndarray) -> bool:
        intervals = [order_statistic_interval(rates, level, miss=1e-4) for level in levels]
        return all(low <= quantile <= high for (low, high), quantile in zip(intervals, vasicek, strict=True))

    assert float(vasicek[2]) == pytest.approx({0.02: 0.1763, 0.05: 0.1473}[annual_pd], abs=5e-4)
    for idiosyncratic in (True, False):
        assert matches_vasicek(one_year_homogeneous_rates(FactorModel.HORIZON, annual_pd, rho,
                                                          idiosyncratic=idiosyncratic))
    for phi in (0.0, DEFAULT_FACTOR_PERSISTENCE, 1.0):
        assert not matches_vasicek(one_year_homogeneous_rates(FactorModel.QUARTERLY_AR1, annual_pd, rho, phi=phi,
                                                              idiosyncratic=False))


def increasing_hazards(n_loans: int, n_quarters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(0.03), 0.7, (n_loans, 1)) * np.linspace(1.0, 2.0, n_quarters), 0.0, 0.4)


def test_each_loan_defaults_at_most_once_at_the_rate_of_its_cumulative_curve() -> None:
    # Known answer: the unconditional probability that loan i defaults in quarter q is P_q - P_(q-1) of the
    # input curve, and it defaults at most once, losing its full loss at default then. The quarterly model
    # spreads a survival-weighted loss over several quarters instead, so this fails there.
    n_loans, n_quarters, n_paths = 12, 6, 100_000
    classes = np.arange(n_loans) % RHO.size
    hazard = increasing_hazards(n_loans, n_quarters, seed=3)
    weight = np.repeat(2.0 ** np.arange(n_loans)[:, None], n_quarters, axis=1)  # loan i's loss identifies it
    hist = ExposureHistogram.from_loans(classes, RHO, hazard, weight, loan_key=KEYS[:n_loans])
    losses = simulate_losses(hist, n_paths, SEED, "curve").astype(np.int64)
    cumulative = 1.0 - np.cumprod(1.0 - hazard, axis=1)
    in_quarter = np.diff(cumulative, axis=1, prepend=0.0)
    defaults = np.zeros((n_loans, n_quarters))
    for i in range(n_loans):
        defaulted = (losses >> i) & 1  # paths x quarters: loan i defaulted in that quarter
        assert np.all(defaulted.sum(axis=1) <= 1)
        defaults[i] = defaulted.mean(axis=0)
    standard_error = np.sqrt(in_quarter * (1.0 - in_quarter) / n_paths)
    assert np.all(np.abs(defaults - in_quarter) < 4.5 * standard_error)
    np.testing.assert_allclose(hist.expected_loss(), (in_quarter * weight).sum(axis=0), rtol=1e-12)


def test_binned_book_defaults_at_the_rate_of_its_cumulative_curve() -> None:
    # The histogram keeps the curve by construction: E over the factor of the binned conditional default rate
    # to quarter q is P_q (within Monte Carlo error of the factor), and the analytic EL is exact.
    n_loans, n_quarters, n_paths = 20_000, 6, 100_000
    classes = np.arange(n_loans) % RHO.size
    hazard = increasing_hazards(n_loans, n_quarters, seed=4)
    ones = np.ones((n_loans, n_quarters))
    hist = ExposureHistogram.from_loans(classes, RHO, hazard, ones, loan_key=KEYS[:n_loans], exact_names=0)
    curve = (1.0 - np.cumprod(1.0 - hazard, axis=1)).mean(axis=0)
    np.testing.assert_allclose(np.cumsum(hist.expected_loss()) / n_loans, curve, rtol=1e-6)  # integer units
    rates = np.cumsum(simulate_losses(hist, n_paths, SEED, "curve", idiosyncratic=False), axis=1) / n_loans
    standard_error = rates.std(axis=0, ddof=1) / np.sqrt(n_paths)
    assert np.all(np.abs(rates.mean(axis=0) - curve) < 4.5 * standard_error)


def brute_force_default_times(classes: np.ndarray, hazard: np.ndarray, weight: np.ndarray, n_paths: int,
                              seed: int) -> np.ndarray:
    """Independent reference: A_i = sqrt(rho) Z + sqrt(1 - rho) e_i, default at the first q with A_i < N^-1(P_iq)."""
    rng = np.random.default_rng(seed)
    rho = RHO[classes]
    thresholds = ndtri(1.0 - np.cumprod(1.0 - hazard, axis=1))  # loans x quarters, non-decreasing
    losses = np.zeros((n_paths, hazard.shape[1]))
    z = rng.standard_normal(n_paths)
    for i in range(classes.size):
        latent = np.sqrt(rho[i]) * z + np.sqrt(1.0 - rho[i]) * rng.standard_normal(n_paths)
        quarter = np.searchsorted(thresholds[i], latent, side="right")  # first q with threshold_q > latent
        defaulted = quarter < hazard.shape[1]
        losses[np.flatnonzero(defaulted), quarter[defaulted]] += weight[i, quarter[defaulted]]
    return losses


@pytest.mark.parametrize("book_seed", [5, 6])
def test_exact_names_match_an_independent_brute_force_simulation(book_seed: int) -> None:
    # Small books (all loans exact) against the latent-variable model simulated from scratch: KS on every
    # quarter's loss and on the horizon loss, Bonferroni to a 1 % family, and mean loss per quarter.
    rng = np.random.default_rng(book_seed)
    n_loans, n_quarters, n_paths = 30, 5, 40_000
    classes = rng.integers(0, RHO.size, n_loans)
    hazard = increasing_hazards(n_loans, n_quarters, seed=book_seed)
    weight = rng.lognormal(np.log(1e4), 1.0, (n_loans, 1)) * np.linspace(1.0, 0.8, n_quarters)
    weight[0] *= 20.0  # one name with about a third of the book
    hist = ExposureHistogram.from_loans(classes, RHO, hazard, weight, loan_key=KEYS[:n_loans])
    engine = simulate_losses(hist, n_paths, SEED, "brute")
    reference = brute_force_default_times(classes, hazard, weight, n_paths, seed=book_seed)
    samples = [(engine[:, q], reference[:, q]) for q in range(n_quarters)]
    samples.append((engine.sum(axis=1), reference.sum(axis=1)))
    for a, b in samples:
        assert ks_2samp(a, b).pvalue > 0.01 / len(samples)
    standard_error = np.sqrt((engine.var(axis=0, ddof=1) + reference.var(axis=0, ddof=1)) / n_paths)
    assert np.all(np.abs(engine.mean(axis=0) - reference.mean(axis=0)) < 4.0 * standard_error)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n_loans=st.integers(1, 30), n_quarters=st.integers(1, 4))
def test_losses_stay_within_the_loss_at_default(data: st.DataObject, n_loans: int, n_quarters: int) -> None:
    # A loan defaults at most once, so a path's horizon loss lies in [0, sum_i max_q EAD x LGD], drawn (exact
    # names) or expected (binned); the quarterly model can exceed it (a survival-weighted loss every quarter).
    classes = data.draw(arrays(np.int64, n_loans, elements=st.integers(0, RHO.size - 1)))
    hazard = data.draw(arrays(np.float64, (n_loans, n_quarters), elements=st.floats(0.0, 1.0)))
    weight = data.draw(arrays(np.float64, (n_loans, n_quarters), elements=st.floats(0.0, 1e7)))
    ceiling = weight.max(axis=1).sum()
    for exact_names, idiosyncratic in ((DEFAULT_EXACT_NAMES, True), (0, False)):
        hist = ExposureHistogram.from_loans(classes, RHO, hazard, weight, loan_key=KEYS[:n_loans],
                                            exact_names=exact_names)
        losses = simulate_losses(hist, 200, SEED, "bounds", idiosyncratic=idiosyncratic)
        assert np.all(losses >= 0.0)
        assert np.all(losses.sum(axis=1) <= ceiling * (1.0 + 1e-9) + 1e-3)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n_loans=st.integers(1, 30))
def test_more_correlation_raises_losses_in_bad_states(data: st.DataObject, n_loans: int) -> None:
    # C(z) = N((c - sqrt(rho) z) / sqrt(1 - rho)) rises with rho wherever z < c sqrt(rho); with cumulative PDs of
    # at least 1e-4 and rho up to 0.3 that holds for every factor below N^-1(0.001). On those paths (same factor,
    # same uniforms) the drawn and the expected losses to every quarter end cannot fall as rho rises, and
    # neither can VaR 99.95 % of the expected loss, the loss of one of those paths (the loss falls with z).
    n_quarters = 3
    hazard = data.draw(arrays(np.float64, (n_loans, n_quarters), elements=st.floats(1e-4, 0.5)))
    weight = np.repeat(data.draw(arrays(np.float64, (n_loans, 1), elements=st.floats(0.0, 1e7))), n_quarters, axis=1)
    low_rho = data.draw(st.floats(0.01, 0.29))
    high_rho = data.draw(st.floats(low_rho, 0.3))
    n_paths = 20_000
    bad = systematic_factors(n_paths, 1, SEED, "rho")[:, 0] <= ndtri(0.001)
    classes = np.zeros(n_loans, dtype=np.int64)
    losses = {}
    for rho in (low_rho, high_rho):
        for exact_names, idiosyncratic in ((DEFAULT_EXACT_NAMES, True), (0, False)):
            hist = ExposureHistogram.from_loans(classes, [rho], hazard, weight, loan_key=KEYS[:n_loans],
                                                exact_names=exact_names)
            losses[rho, exact_names] = np.cumsum(
                simulate_losses(hist, n_paths, SEED, "rho", idiosyncratic=idiosyncratic), axis=1)
    for exact_names in (DEFAULT_EXACT_NAMES, 0):
        low, high = losses[low_rho, exact_names][bad], losses[high_rho, exact_names][bad]
        assert np.all(high >= low * (1.0 - 1e-9) - 1e-6)
    expected_low, expected_high = losses[low_rho, 0][:, -1], losses[high_rho, 0][:, -1]
    assert bad.sum() > n_paths * 0.0005 + 1
    assert np.quantile(expected_high, 0.9995) >= np.quantile(expected_low, 0.9995) * (1.0 - 1e-9) - 1e-6
