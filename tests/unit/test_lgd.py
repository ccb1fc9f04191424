"""Segment LGDs: fixed unsecured values, collateral arithmetic, bounds and monotonicity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.lgd import (
    COLLATERAL_TERMS,
    UNSECURED_LGD,
    CollateralTerms,
    stressed_lgd,
)
from models.segments import SECURED_SEGMENTS, SEGMENT_ORDER, Segment, segment_codes

CODE = {segment: code for code, segment in enumerate(SEGMENT_ORDER)}


def test_secured_segments_agree_with_the_loan_contract() -> None:
    assert set(COLLATERAL_TERMS) == SECURED_SEGMENTS
    assert set(UNSECURED_LGD) == set(Segment) - SECURED_SEGMENTS


def test_unsecured_lgds_are_fixed() -> None:
    codes = [CODE[Segment.CREDIT_CARD], CODE[Segment.PERSONAL], CODE[Segment.COMMERCIAL_INDUSTRIAL]]
    lgd = stressed_lgd(codes, [1000.0, 1000.0, 1000.0], [np.nan, 5000.0, np.nan], [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(lgd, [0.90, 0.75, 0.45])


def test_mortgage_by_hand() -> None:
    # Appraised at 125,000, prices down 20 %, 25 % haircut: recovery 125000 x 0.8 x 0.75 = 75,000.
    lgd = stressed_lgd(CODE[Segment.FIRST_LIEN_MORTGAGE], 100_000.0, 125_000.0, 0.8)
    assert float(lgd) == pytest.approx(0.25, rel=1e-14)


def test_floor_cap_missing_collateral_and_no_exposure() -> None:
    mortgage = CODE[Segment.FIRST_LIEN_MORTGAGE]
    auto = CODE[Segment.AUTO]
    lgd = stressed_lgd(
        [mortgage, auto, mortgage, auto],
        [100_000.0, 20_000.0, 50_000.0, 0.0],
        [1e7, 1e6, np.nan, 15_000.0],
        [1.0, 1.0, 1.0, 1.0],
    )
    np.testing.assert_array_equal(lgd, [0.10, 0.15, 1.0, 0.15])


def test_custom_terms_override_the_defaults() -> None:
    terms = dict(COLLATERAL_TERMS)
    terms[Segment.AUTO] = CollateralTerms(haircut=0.5, floor=0.2)
    lgd = stressed_lgd(CODE[Segment.AUTO], 10_000.0, 10_000.0, 1.0, collateral_terms=terms)
    assert float(lgd) == pytest.approx(0.5)
    overlapping = dict(UNSECURED_LGD) | {Segment.AUTO: 0.5}
    with pytest.raises(ValueError, match="exactly one"):
        stressed_lgd(CODE[Segment.AUTO], 1.0, 1.0, 1.0, unsecured_lgd=overlapping)
    with pytest.raises(ValueError, match="lie in"):
        CollateralTerms(haircut=1.5, floor=0.1)


def test_negative_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        stressed_lgd(CODE[Segment.AUTO], 1000.0, 1000.0, -0.1)


def test_segment_codes() -> None:
    names = [s.value for s in SEGMENT_ORDER]
    np.testing.assert_array_equal(segment_codes(names), np.arange(len(names)))
    with pytest.raises(ValueError, match="unknown"):
        segment_codes(["yacht"])


@settings(max_examples=200, deadline=None)
@given(
    segment=st.sampled_from(SEGMENT_ORDER),
    ead=st.floats(0.0, 1e8),
    collateral=st.floats(0.0, 1e8),
    ratio=st.floats(0.0, 3.0),
    fall=st.floats(0.0, 1.0),
)
def test_lgd_is_bounded_and_rises_as_collateral_prices_fall(
    segment: Segment, ead: float, collateral: float, ratio: float, fall: float
) -> None:
    code = CODE[segment]
    floor = COLLATERAL_TERMS[segment].floor if segment in COLLATERAL_TERMS else UNSECURED_LGD[segment]
    before = float(stressed_lgd(code, ead, collateral, ratio))
    after = float(stressed_lgd(code, ead, collateral, ratio * (1.0 - fall)))
    assert floor <= before <= 1.0
    assert floor <= after <= 1.0
    assert after >= before


def test_junior_lien_recovers_what_the_senior_lien_leaves() -> None:
    heloc = CODE[Segment.HELOC]
    # Property 400,000 behind a first lien of 280,000, line drawn 50,000, 25 % haircut.
    # Prices flat: 400,000 x 0.75 - 280,000 = 20,000 recovered, LGD 1 - 20,000 / 50,000 = 0.6.
    # Prices down 20 %: 400,000 x 0.8 x 0.75 = 240,000 < 280,000, nothing left, LGD 1.
    lgd = stressed_lgd([heloc, heloc], [50_000.0, 50_000.0], [400_000.0, 400_000.0], [1.0, 0.8],
                       senior_liens=[280_000.0, 280_000.0])
    np.testing.assert_allclose(lgd, [0.6, 1.0], rtol=1e-14)
    # Without the senior lien the same line would sit at its floor: the property covers it many times.
    assert float(stressed_lgd(heloc, 50_000.0, 400_000.0, 1.0)) == COLLATERAL_TERMS[Segment.HELOC].floor
    with pytest.raises(ValueError, match="non-negative"):
        stressed_lgd(heloc, 1000.0, 1000.0, 1.0, senior_liens=-1.0)
