"""Risk measures of a Monte Carlo sample of portfolio losses: EL, VaR and expected shortfall.

Why a module of its own: the tail measures of a finite, possibly weighted sample have subtle
conventions (which quantile, what to do with the probability atom at the VaR), and getting them
wrong makes ES fall below VaR or jump as the level moves. They are defined once here.

Conventions, for losses ``L`` (large = bad) with empirical distribution ``F`` and a level ``a``
in (0, 1):

* **VaR** is the lower ``a``-quantile ``VaR_a = min{x : F(x) >= a}`` (the generalised inverse, no
  interpolation): for losses 1..100 with equal weights, ``VaR_0.99 = 99``. The probability mass
  beyond each loss is summed from the top, where the tail is, and compared with ``1 - a`` with an
  absolute tolerance ``LEVEL_TOLERANCE``, so that rounding in ``1 - 0.99`` or in the sums still
  selects the 99th loss.
* **Expected shortfall** follows Acerbi and Tasche (2002): the mean of the worst ``1 - a`` of the
  probability mass, taking only the needed part of the atom at ``VaR_a``::

      ES_a = (E[L 1{L > VaR_a}] + VaR_a (F(VaR_a) - a)) / (1 - a)

  It equals ``1 / (1 - a)`` times the integral of ``VaR_u`` over ``u`` in ``[a, 1]``, so it is
  continuous in ``a`` and never below ``VaR_a`` or the mean. Those inequalities hold by
  construction (up to rounding in the last digits) and are *not* enforced by clamping: a clamp
  would hide an estimator bug behind a plausible number. The tests check them, and check the
  estimator against closed forms (normal and exponential ES).
* **Weights** are relative probabilities of the paths (e.g. importance-sampling likelihood ratios);
  they are normalised to sum to 1. Without weights every path counts equally.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

LEVEL_TOLERANCE = 1e-9


@dataclass(frozen=True)
class _Sample:
    """Losses sorted ascending with their normalised weights and cumulative probabilities."""

    losses: NDArray[np.float64]
    probabilities: NDArray[np.float64]
    mass_above: NDArray[np.float64]  # probability of the losses strictly after each position


def _prepare(losses: ArrayLike, weights: ArrayLike | None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validated 1-D losses and normalised probabilities of the same length."""
    values = np.asarray(losses, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("losses must be a non-empty 1-D array")
    if not np.all(np.isfinite(values)):
        raise ValueError("losses must be finite")
    if weights is None:
        return values, np.full(values.size, 1.0 / values.size)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != values.shape or not np.all(np.isfinite(w)) or np.any(w < 0.0) or w.sum() <= 0.0:
        raise ValueError("weights must be finite, non-negative, not all zero and shaped like losses")
    return values, w / w.sum()


def _sorted_sample(losses: ArrayLike, weights: ArrayLike | None) -> _Sample:
    values, probabilities = _prepare(losses, weights)
    order = np.argsort(values, kind="stable")
    p = probabilities[order]
    # Summed from the top so that the small tail masses that matter for VaR and ES are accurate.
    at_or_above = np.cumsum(p[::-1])[::-1]
    return _Sample(losses=values[order], probabilities=p, mass_above=np.append(at_or_above[1:], 0.0))


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError("level must lie strictly between 0 and 1")


def _var_index(sample: _Sample, level: float) -> int:
    """Position of the lower ``level``-quantile: the first with at most ``1 - level`` mass after it."""
    return int(np.searchsorted(-sample.mass_above, -(1.0 - level + LEVEL_TOLERANCE), side="left"))


def expected_loss(losses: ArrayLike, weights: ArrayLike | None = None) -> float:
    """The (weighted) mean loss."""
    values, probabilities = _prepare(losses, weights)
    return float(np.dot(probabilities, values))


def expected_loss_standard_error(losses: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Monte Carlo standard error of :func:`expected_loss`.

    Unweighted: the sample standard deviation (``ddof = 1``) over ``sqrt(n)``. Weighted: the
    delta-method error of the self-normalised mean, ``sqrt(sum p_i^2 (L_i - EL)^2)``, scaled by
    ``n_eff / (n_eff - 1)`` with ``n_eff = 1 / sum p_i^2`` so both agree for equal weights. A
    single path (or all weight on one path) has no error estimate: NaN.
    """
    values, probabilities = _prepare(losses, weights)
    mean = float(np.dot(probabilities, values))
    concentration = float(np.dot(probabilities, probabilities))
    effective_n = 1.0 / concentration
    if effective_n <= 1.0 + LEVEL_TOLERANCE:
        return float("nan")
    variance = float(np.dot(probabilities**2, (values - mean) ** 2)) * effective_n / (effective_n - 1.0)
    return float(np.sqrt(variance))


def value_at_risk(losses: ArrayLike, level: float, weights: ArrayLike | None = None) -> float:
    """``VaR_level``: the lower ``level``-quantile of the losses (see the module docstring)."""
    _check_level(level)
    sample = _sorted_sample(losses, weights)
    return float(sample.losses[_var_index(sample, level)])


def _expected_shortfall(sample: _Sample, level: float) -> tuple[float, float]:
    """(VaR, ES) of a sorted sample, ES per Acerbi-Tasche."""
    k = _var_index(sample, level)
    var = float(sample.losses[k])
    beyond = float(np.dot(sample.probabilities[k + 1:], sample.losses[k + 1:]))
    tail = 1.0 - level
    # F(VaR) - level; negative only within LEVEL_TOLERANCE (the tail mass after k may exceed 1 - level
    # by that much), where the atom contributes nothing.
    atom_share = max(tail - float(sample.mass_above[k]), 0.0)
    return var, (beyond + var * atom_share) / tail


def expected_shortfall(losses: ArrayLike, level: float, weights: ArrayLike | None = None) -> float:
    """``ES_level`` (CVaR): mean loss in the worst ``1 - level`` of the distribution, atom included."""
    _check_level(level)
    return _expected_shortfall(_sorted_sample(losses, weights), level)[1]


@dataclass(frozen=True)
class LossSummary:
    """EL with its standard error, and VaR and ES at each requested level."""

    expected_loss: float
    standard_error: float
    value_at_risk: dict[float, float]
    expected_shortfall: dict[float, float]


def summarise(
    losses: ArrayLike, levels: tuple[float, ...] = (0.99, 0.999), weights: ArrayLike | None = None
) -> LossSummary:
    """All the measures of this module from one sort of the sample."""
    for level in levels:
        _check_level(level)
    sample = _sorted_sample(losses, weights)
    tails = {level: _expected_shortfall(sample, level) for level in levels}
    return LossSummary(
        expected_loss=float(np.dot(sample.probabilities, sample.losses)),
        standard_error=expected_loss_standard_error(losses, weights),
        value_at_risk={level: var for level, (var, _) in tails.items()},
        expected_shortfall={level: es for level, (_, es) in tails.items()},
    )
