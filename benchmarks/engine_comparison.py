"""Do two Monte Carlo engines give the same loss distribution? Differences in units of their error.

Why a module of its own: comparing the histogram engine with the dense Bernoulli reference is only
evidence if the comparison can fail. Two designs answer two questions:

* **Independent seeds** (:func:`compare_independent`): the engines draw their own systematic
  factors, so the two samples are independent and every difference is measured against the
  standard error of a difference of independent estimates, ``sqrt(SE_a^2 + SE_b^2)``: for EL the
  usual standard error of the mean, for VaR and ES the bootstrap standard deviation of each
  sample's estimate. A two-sample Kolmogorov-Smirnov test compares the whole distributions.
  This is what a user of either engine would see, but the systematic factor noise dominates the
  error, so only large differences are detectable.
* **Common random numbers** (:func:`compare_paired`): the engines share the systematic factors
  path by path (same seed and key), so their difference isolates what the engine approximates
  (binning, the gamma draw for the idiosyncratic part). The error is that of the paired
  difference: ``sd(a - b) / sqrt(n)`` for EL, and for VaR and ES the bootstrap standard deviation
  of ``measure(a*) - measure(b*)`` with both samples resampled by the *same* path indices.

A ``z`` of a few units is a disagreement beyond Monte Carlo error; ``relative`` says how large it
is. The bootstrap is the plain nonparametric one: fine for VaR and ES at levels with at least a
few dozen paths beyond them, unreliable further out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import ks_2samp

from models.loss_statistics import expected_loss_standard_error, summarise

DEFAULT_BOOTSTRAP = 100  # replicates: the standard errors they give are good to about 7 %


@dataclass(frozen=True)
class MeasureDifference:
    """One risk measure of engines ``a`` and ``b`` and the standard error of ``a - b``."""

    a: float
    b: float
    standard_error: float

    @property
    def relative(self) -> float:
        """``a / b - 1``: how far ``a`` is from the reference ``b``."""
        return self.a / self.b - 1.0

    @property
    def z(self) -> float:
        """``(a - b) / SE``: the difference in units of its Monte Carlo error.

        Without error (engines that draw the same losses, e.g. a book the engine simulates exactly
        on common random numbers) only an exact match is 0 standard errors away.
        """
        if self.standard_error > 0.0:
            return (self.a - self.b) / self.standard_error
        return 0.0 if self.a == self.b else float("inf")


@dataclass(frozen=True)
class Comparison:
    """EL, VaR and ES of two engines by measure name (``el``, ``var99``, ``es99.9``, ...)."""

    measures: dict[str, MeasureDifference]
    ks_pvalue: float | None  # two-sample KS; only meaningful for independent samples

    def max_abs_z(self) -> float:
        return max(abs(m.z) for m in self.measures.values())

    def figures(self, prefix: str) -> dict[str, float]:
        """Flat, rounded figures for a benchmark's results: values, relative differences and z."""
        out: dict[str, float] = {}
        for name, m in self.measures.items():
            out |= {f"{prefix}_{name}_engine": round(m.a, 1), f"{prefix}_{name}_dense": round(m.b, 1),
                    f"{prefix}_{name}_rel_diff": round(m.relative, 4), f"{prefix}_{name}_z": round(m.z, 2)}
        if self.ks_pvalue is not None:
            out[f"{prefix}_ks_pvalue"] = round(self.ks_pvalue, 4)
        return out


def _level_name(level: float) -> str:
    return f"{level * 100:g}"


def _measures(losses: NDArray[np.float64], levels: tuple[float, ...]) -> dict[str, float]:
    summary = summarise(losses, levels)
    out = {"el": summary.expected_loss}
    out |= {f"var{_level_name(level)}": summary.value_at_risk[level] for level in levels}
    out |= {f"es{_level_name(level)}": summary.expected_shortfall[level] for level in levels}
    return out


def _bootstrap(samples: tuple[NDArray[np.float64], ...], levels: tuple[float, ...], n_boot: int,
               rng: np.random.Generator) -> list[dict[str, NDArray[np.float64]]]:
    """Bootstrap replicates of every measure of each sample, resampled by the same path indices.

    The samples must have the same length; pass one sample to resample it on its own.
    """
    n = samples[0].size
    replicates: list[dict[str, list[float]]] = [{} for _ in samples]
    for _ in range(n_boot):
        index = rng.integers(0, n, n)
        for store, sample in zip(replicates, samples, strict=True):
            for name, value in _measures(sample[index], levels).items():
                store.setdefault(name, []).append(value)
    return [{name: np.asarray(values) for name, values in store.items()} for store in replicates]


def compare_independent(a: NDArray[np.float64], b: NDArray[np.float64], levels: tuple[float, ...] = (0.99, 0.999),
                        n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> Comparison:
    """Engines ``a`` and ``b`` (reference) on independent draws: independent-samples errors and KS."""
    rng = np.random.default_rng(seed)
    point_a, point_b = _measures(a, levels), _measures(b, levels)
    (boot_a,), (boot_b,) = _bootstrap((a,), levels, n_boot, rng), _bootstrap((b,), levels, n_boot, rng)
    measures = {"el": MeasureDifference(point_a["el"], point_b["el"], float(
        np.hypot(expected_loss_standard_error(a), expected_loss_standard_error(b))))}
    for name in point_a.keys() - {"el"}:
        se = float(np.hypot(boot_a[name].std(ddof=1), boot_b[name].std(ddof=1)))
        measures[name] = MeasureDifference(point_a[name], point_b[name], se)
    return Comparison(dict(sorted(measures.items())), float(ks_2samp(a, b).pvalue))


def compare_paired(a: NDArray[np.float64], b: NDArray[np.float64], levels: tuple[float, ...] = (0.99, 0.999),
                   n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> Comparison:
    """Engines ``a`` and ``b`` (reference) on common random numbers: path ``i`` of both shares its factors."""
    if a.shape != b.shape:
        raise ValueError("paired samples need one loss per path from each engine")
    point_a, point_b = _measures(a, levels), _measures(b, levels)
    boot_a, boot_b = _bootstrap((a, b), levels, n_boot, np.random.default_rng(seed))
    difference = a - b
    measures = {"el": MeasureDifference(point_a["el"], point_b["el"],
                                        float(difference.std(ddof=1) / np.sqrt(difference.size)))}
    for name in point_a.keys() - {"el"}:
        measures[name] = MeasureDifference(point_a[name], point_b[name],
                                           float((boot_a[name] - boot_b[name]).std(ddof=1)))
    return Comparison(dict(sorted(measures.items())), None)
