"""The one-factor Gaussian copula (Vasicek) model of correlated defaults.

Why this model: it is the model behind the Basel IRB formulas (:mod:`models.basel`) and behind the
Monte Carlo engine (:mod:`models.portfolio_loss`), so one set of closed forms lets us check the
engine against theory and keep the regulatory and the economic view of risk consistent.

Convention (used everywhere in ``models``):

* Borrower ``i`` has a latent asset return ``A_i = sqrt(rho) * Z + sqrt(1 - rho) * eps_i`` with
  ``Z`` (the systematic factor) and ``eps_i`` independent standard normals. ``rho`` is the **asset
  correlation** (the correlation of any two borrowers' asset returns); the systematic factor
  **loading** is ``sqrt(rho)``.
* The borrower defaults when ``A_i < N^-1(PD_i)``, so its unconditional default probability is ``PD_i``.
* A **negative** ``Z`` is a **bad** state of the economy: the conditional default probability
  ``p(z) = N((N^-1(PD) - sqrt(rho) z) / sqrt(1 - rho))`` decreases in ``z``. The Basel 99.9 %
  stress state is therefore ``z = N^-1(0.001) = -N^-1(0.999)``.

Loss fractions below are default rates of an infinitely granular ("large homogeneous") portfolio;
multiply by the loss given default for a loss rate (the ``lgd`` arguments do that for you).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr, ndtri


def _check_correlation(rho: NDArray[np.float64], *, allow_zero: bool) -> None:
    """Reject correlations outside the model's domain instead of returning silent NaNs."""
    low_ok = rho >= 0.0 if allow_zero else rho > 0.0
    if not np.all(low_ok & (rho < 1.0)):
        bound = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"asset correlation rho must lie in {bound}")


def conditional_pd(pd: ArrayLike, rho: ArrayLike, z: ArrayLike) -> NDArray[np.float64]:
    """Default probability given the systematic factor ``z`` (negative ``z`` = bad state).

    ``p(z) = N((N^-1(PD) - sqrt(rho) z) / sqrt(1 - rho))``. Arguments broadcast against each other,
    so e.g. ``conditional_pd(pd[:, None], rho, z[None, :])`` gives a loans x paths matrix.
    ``rho = 0`` (no systematic risk) returns ``PD`` whatever ``z``.
    """
    pd_arr = np.asarray(pd, dtype=np.float64)
    rho_arr = np.asarray(rho, dtype=np.float64)
    _check_correlation(rho_arr, allow_zero=True)
    return ndtr((ndtri(pd_arr) - np.sqrt(rho_arr) * np.asarray(z, dtype=np.float64)) / np.sqrt(1.0 - rho_arr))


def lhp_loss_cdf(x: ArrayLike, pd: ArrayLike, rho: ArrayLike, lgd: ArrayLike = 1.0) -> NDArray[np.float64]:
    """``P(L <= x)`` for the loss rate ``L`` of a large homogeneous portfolio.

    With ``lgd = 1`` (the default rate) this is Vasicek's distribution
    ``N((sqrt(1 - rho) N^-1(x) - N^-1(PD)) / sqrt(rho))``; a loss rate ``x`` with loss given default
    ``lgd`` is a default rate of ``x / lgd`` (capped at 1, so the CDF is 1 from ``x = lgd`` on).
    """
    rho_arr = np.asarray(rho, dtype=np.float64)
    _check_correlation(rho_arr, allow_zero=False)
    default_rate = np.clip(np.asarray(x, dtype=np.float64) / np.asarray(lgd, dtype=np.float64), 0.0, 1.0)
    return ndtr((np.sqrt(1.0 - rho_arr) * ndtri(default_rate) - ndtri(np.asarray(pd, dtype=np.float64)))
                / np.sqrt(rho_arr))


def lhp_loss_quantile(
    level: ArrayLike, pd: ArrayLike, rho: ArrayLike, lgd: ArrayLike = 1.0
) -> NDArray[np.float64]:
    """The ``level``-quantile of the large-homogeneous-portfolio loss rate (the inverse of the CDF).

    ``lgd * N((N^-1(PD) + sqrt(rho) N^-1(level)) / sqrt(1 - rho))``: the conditional PD in the state
    ``z = -N^-1(level)``, because the loss rate is a decreasing function of ``z``. The Basel capital
    formula is this quantile at ``level = 0.999`` less the expected loss.
    """
    rho_arr = np.asarray(rho, dtype=np.float64)
    _check_correlation(rho_arr, allow_zero=False)
    bad_state = -ndtri(np.asarray(level, dtype=np.float64))
    return np.asarray(lgd, dtype=np.float64) * conditional_pd(pd, rho_arr, bad_state)
