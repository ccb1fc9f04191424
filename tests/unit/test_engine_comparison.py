"""The engine-vs-dense comparison statistics can fail: they flag an engine whose PDs are 20 % too high."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.engine_comparison import compare_independent, compare_paired
from models.portfolio_loss import ExposureHistogram, simulate_losses, simulate_losses_dense

RHO = np.array([0.04, 0.15])
N_PATHS = 4000
SEED = 3
MAX_Z = 4.0
KEYS = np.arange(300)


@pytest.fixture(scope="module")
def book() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """300 loans in two classes over two quarters, and the dense reference's horizon losses (seed SEED)."""
    rng = np.random.default_rng(5)
    classes = rng.integers(0, RHO.size, 300)
    pd = np.clip(rng.lognormal(np.log(0.02), 0.8, (300, 1)) * [1.0, 1.5], 0.0, 0.5)
    weight = rng.lognormal(np.log(1e4), 0.5, (300, 2))
    return classes, pd, weight


@pytest.fixture(scope="module")
def dense(book) -> np.ndarray:
    classes, pd, weight = book
    return simulate_losses_dense(classes, RHO, pd, weight, N_PATHS, SEED, "test", loan_key=KEYS).sum(axis=1)


def engine(book, seed: int, pd_scale: float = 1.0) -> np.ndarray:
    classes, pd, weight = book
    # No exact names: the comparison must see the histogram and its gamma draw, not the dense code itself.
    histogram = ExposureHistogram.from_loans(classes, RHO, pd * pd_scale, weight, loan_key=KEYS, exact_names=0)
    return simulate_losses(histogram, N_PATHS, seed, "test").sum(axis=1)


@pytest.mark.parametrize("compare, seed", [(compare_independent, SEED + 1), (compare_paired, SEED)],
                         ids=["independent", "common_random_numbers"])
def test_a_correct_engine_passes_and_a_biased_one_fails(book, dense, compare, seed: int) -> None:
    # Measured: EL z of the biased engine is about 15 (independent) and 36 (paired); the honest one's within 2.
    honest = compare(engine(book, seed), dense, n_boot=100)
    biased = compare(engine(book, seed, pd_scale=1.2), dense, n_boot=100)
    assert honest.max_abs_z() < MAX_Z
    assert biased.measures["el"].z > MAX_Z
    assert biased.measures["el"].relative == pytest.approx(0.2, abs=0.05)
    if compare is compare_independent:
        assert honest.ks_pvalue > 0.01 > biased.ks_pvalue


def test_paired_comparison_needs_one_loss_per_path_from_each() -> None:
    with pytest.raises(ValueError, match="paired"):
        compare_paired(np.ones(3), np.ones(4))


def test_identical_samples_are_zero_errors_apart() -> None:
    losses = np.random.default_rng(0).gamma(2.0, 1.0, 500)
    assert compare_paired(losses, losses.copy(), n_boot=20).max_abs_z() == 0.0
    shifted = np.full(500, 2.0), np.full(500, 1.0)  # no spread of the difference, yet a difference
    assert compare_paired(*shifted, n_boot=20).measures["el"].z == float("inf")
