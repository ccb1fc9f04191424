"""The Vasicek closed forms against direct integration and root finding."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.stats import norm

from models.vasicek import conditional_pd, lhp_loss_cdf, lhp_loss_quantile

PD = 0.02
RHO = 0.12


def test_conditional_pd_averages_to_the_unconditional_pd() -> None:
    mean, _ = integrate.quad(lambda z: float(conditional_pd(PD, RHO, z)) * norm.pdf(z), -12, 12, epsabs=1e-14)
    assert mean == pytest.approx(PD, rel=1e-9)


def test_negative_factor_is_the_bad_state() -> None:
    z = np.linspace(-4, 4, 81)
    p = conditional_pd(PD, RHO, z)
    assert np.all(np.diff(p) < 0.0)
    assert float(conditional_pd(PD, RHO, -3.0)) > PD > float(conditional_pd(PD, RHO, 3.0))


def test_conditional_pd_by_hand_and_without_correlation() -> None:
    expected = norm.cdf((norm.ppf(PD) - math.sqrt(RHO) * -2.0) / math.sqrt(1 - RHO))
    assert float(conditional_pd(PD, RHO, -2.0)) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(conditional_pd(PD, 0.0, np.array([-3.0, 3.0])), PD, rtol=1e-12)


def test_conditional_pd_broadcasts_to_a_matrix() -> None:
    assert conditional_pd(np.array([0.01, 0.02, 0.05])[:, None], RHO, np.zeros(4)[None, :]).shape == (3, 4)


@pytest.mark.parametrize("x", [0.001, 0.01, 0.05, 0.2])
def test_cdf_is_the_probability_of_a_good_enough_state(x: float) -> None:
    # L <= x  <=>  p(Z) <= x  <=>  Z >= z_x, with p(z_x) = x found numerically.
    z_x = optimize.brentq(lambda z: float(conditional_pd(PD, RHO, z)) - x, -15, 15, xtol=1e-14)
    assert float(lhp_loss_cdf(x, PD, RHO)) == pytest.approx(norm.sf(z_x), rel=1e-9)


def test_quantile_inverts_the_cdf_and_scales_with_lgd() -> None:
    levels = np.array([0.5, 0.9, 0.99, 0.999])
    q = lhp_loss_quantile(levels, PD, RHO)
    np.testing.assert_allclose(lhp_loss_cdf(q, PD, RHO), levels, rtol=1e-10)
    np.testing.assert_allclose(lhp_loss_quantile(levels, PD, RHO, lgd=0.45), 0.45 * q, rtol=1e-15)
    np.testing.assert_allclose(lhp_loss_cdf(0.45 * q, PD, RHO, lgd=0.45), levels, rtol=1e-10)


def test_quantile_by_hand_is_the_basel_stress_pd() -> None:
    expected = norm.cdf((norm.ppf(PD) + math.sqrt(RHO) * norm.ppf(0.999)) / math.sqrt(1 - RHO))
    assert float(lhp_loss_quantile(0.999, PD, RHO)) == pytest.approx(expected, rel=1e-12)


def test_lhp_distribution_has_mean_pd() -> None:
    mean, _ = integrate.quad(lambda x: 1.0 - float(lhp_loss_cdf(x, PD, RHO)), 0.0, 1.0, limit=200, epsabs=1e-13)
    assert mean == pytest.approx(PD, rel=1e-7)


@pytest.mark.parametrize("rho", [0.0, 1.0, -0.1])
def test_closed_forms_reject_degenerate_correlations(rho: float) -> None:
    with pytest.raises(ValueError, match="rho"):
        lhp_loss_quantile(0.99, PD, rho)
    with pytest.raises(ValueError, match="rho"):
        lhp_loss_cdf(0.1, PD, rho)
