"""IRB risk weights against an independent hand implementation of CRE31."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from models.basel import (
    SEGMENT_ASSET_CLASS,
    AssetClass,
    asset_class_codes,
    asset_correlation,
    capital_requirement,
    maturity_adjustment,
    risk_weight,
    risk_weighted_assets,
)
from pipelines.data.contract import Segment


def hand_k(pd: float, lgd: float, r: float, maturity_factor: float = 1.0) -> float:
    """CRE31 capital requirement written out from the standard's text, with scipy's normal."""
    tail = norm.cdf((norm.ppf(pd) + math.sqrt(r) * norm.ppf(0.999)) / math.sqrt(1.0 - r))
    return lgd * (tail - pd) * maturity_factor


def hand_corporate(pd: float, lgd: float, m: float) -> float:
    weight = (1 - math.exp(-50 * pd)) / (1 - math.exp(-50))
    r = 0.12 * weight + 0.24 * (1 - weight)
    b = (0.11852 - 0.05478 * math.log(pd)) ** 2
    return 12.5 * hand_k(pd, lgd, r, (1 + (m - 2.5) * b) / (1 - 1.5 * b))


def hand_other_retail(pd: float, lgd: float) -> float:
    weight = (1 - math.exp(-35 * pd)) / (1 - math.exp(-35))
    r = 0.03 * weight + 0.16 * (1 - weight)
    return 12.5 * hand_k(pd, lgd, r)


def test_corporate_textbook_value() -> None:
    # BCBS explanatory note: PD 1 %, LGD 45 %, M 2.5 years -> 92.32 %.
    rw = float(risk_weight(0.01, 0.45, AssetClass.CORPORATE, 2.5))
    assert rw == pytest.approx(0.9232, abs=5e-5)
    assert rw == pytest.approx(hand_corporate(0.01, 0.45, 2.5), rel=1e-12)


@pytest.mark.parametrize("pd", [0.0005, 0.003, 0.02, 0.15])
@pytest.mark.parametrize("maturity", [1.0, 2.5, 4.0])
def test_corporate_matches_hand_formula(pd: float, maturity: float) -> None:
    assert float(risk_weight(pd, 0.4, AssetClass.CORPORATE, maturity)) == pytest.approx(
        hand_corporate(pd, 0.4, maturity), rel=1e-12
    )


def test_residential_mortgage() -> None:
    expected = 12.5 * hand_k(0.01, 0.25, 0.15)
    rw = float(risk_weight(0.01, 0.25, AssetClass.RESIDENTIAL_MORTGAGE))
    assert rw == pytest.approx(expected, rel=1e-12)
    assert rw == pytest.approx(0.3133, abs=5e-5)
    # Maturity is ignored outside the corporate class.
    assert float(risk_weight(0.01, 0.25, AssetClass.RESIDENTIAL_MORTGAGE, 5.0)) == rw


def test_qualifying_revolving_and_other_retail() -> None:
    qrre = float(risk_weight(0.02, 0.85, AssetClass.QUALIFYING_REVOLVING))
    assert qrre == pytest.approx(12.5 * hand_k(0.02, 0.85, 0.04), rel=1e-12)
    other = float(risk_weight(0.05, 0.6, AssetClass.OTHER_RETAIL))
    assert other == pytest.approx(hand_other_retail(0.05, 0.6), rel=1e-12)


def test_correlation_ranges() -> None:
    corporate = asset_correlation([1e-9, 0.5], AssetClass.CORPORATE)
    np.testing.assert_allclose(corporate, [0.24, 0.12], atol=1e-7)
    retail = asset_correlation([1e-9, 0.5], AssetClass.OTHER_RETAIL)
    np.testing.assert_allclose(retail, [0.16, 0.03], atol=1e-7)
    fixed = asset_correlation([0.01, 0.01], [AssetClass.RESIDENTIAL_MORTGAGE, AssetClass.QUALIFYING_REVOLVING])
    np.testing.assert_array_equal(fixed, [0.15, 0.04])
    with pytest.raises(ValueError, match="AssetClass"):
        asset_correlation(0.01, 7)


def test_maturity_adjustment() -> None:
    assert float(maturity_adjustment(0.01, 1.0)) == pytest.approx(1.0, rel=1e-14)
    assert float(maturity_adjustment(0.01, 2.5)) > 1.0
    assert float(maturity_adjustment(0.01, 7.0)) == float(maturity_adjustment(0.01, 5.0))
    assert float(maturity_adjustment(0.01, 0.25)) == float(maturity_adjustment(0.01, 1.0))


def test_pd_floor_is_applied_and_configurable() -> None:
    at_zero = float(capital_requirement(0.0, 0.45, AssetClass.CORPORATE))
    at_floor = float(capital_requirement(0.0003, 0.45, AssetClass.CORPORATE))
    assert at_zero == at_floor > 0.0
    higher_floor = float(capital_requirement(0.0, 0.45, AssetClass.CORPORATE, pd_floor=0.0005))
    assert higher_floor == float(capital_requirement(0.0005, 0.45, AssetClass.CORPORATE))
    assert higher_floor > at_floor


def test_defaulted_exposure_has_no_formula_capital() -> None:
    assert float(capital_requirement(1.0, 0.45, AssetClass.CORPORATE)) == pytest.approx(0.0, abs=1e-12)


def test_rwa_is_vectorised_and_scales() -> None:
    ead = np.array([1e6, 2e6])
    pd = np.array([0.01, 0.02])
    lgd = np.array([0.45, 0.25])
    classes = np.array([AssetClass.CORPORATE, AssetClass.RESIDENTIAL_MORTGAGE])
    rwa = risk_weighted_assets(ead, pd, lgd, classes)
    np.testing.assert_allclose(rwa, ead * risk_weight(pd, lgd, classes), rtol=1e-15)
    np.testing.assert_allclose(risk_weighted_assets(ead, pd, lgd, classes, scaling_factor=1.06), 1.06 * rwa)


def test_every_segment_has_an_asset_class() -> None:
    assert set(SEGMENT_ASSET_CLASS) == set(Segment)
    codes = asset_class_codes(["first_lien_mortgage", "heloc", "credit_card", "auto", "personal",
                               "commercial_real_estate", "commercial_industrial"])
    np.testing.assert_array_equal(codes, [0, 0, 1, 2, 2, 3, 3])
    with pytest.raises(ValueError, match="unknown"):
        asset_class_codes(["boat"])
