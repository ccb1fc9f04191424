"""Known answers of the US standardized risk weights and credit conversion factors (models/standardized.py)."""

from __future__ import annotations

import numpy as np
import pytest

from models.basel import AssetClass, basel3_pd_floors, capital_requirement
from models.standardized import credit_conversion_factors, credit_rwa, risk_weights, undrawn_commitments


def test_risk_weights_by_segment_and_delinquency() -> None:
    segments = ["first_lien_mortgage", "first_lien_mortgage", "heloc", "credit_card", "commercial_real_estate",
                "commercial_real_estate", "commercial_industrial", "auto", "personal"]
    days_past_due = [0, 90, 0, 0, 0, 0, 0, 120, 89]
    hvcre = [False, False, False, False, False, True, False, False, False]
    # 50 % first lien (217.32(g)(1)), 100 % past-due mortgage (217.32(g)(2)), junior lien 100 %, consumer 100 %,
    # CRE 100 %, HVCRE 150 % (217.32(j)), C&I 100 %, 90+ days past due 150 % (217.32(k)), 89 days still 100 %.
    np.testing.assert_array_equal(risk_weights(segments, days_past_due, hvcre),
                                  [0.5, 1.0, 1.0, 1.0, 1.0, 1.5, 1.0, 1.5, 1.0])
    np.testing.assert_array_equal(risk_weights(segments, days_past_due)[5], 1.0)


def test_past_due_junior_liens_are_residential_mortgage_exposures_at_100_percent() -> None:
    # 12 CFR 217.2: a residential mortgage exposure is secured by a first *or subsequent* lien on 1-4 family
    # property; 217.32(k) excludes those from 150 % and 217.32(g)(2) weights them 100 %. CRE and C&I get 150 %.
    segments = ["heloc", "heloc", "commercial_real_estate", "commercial_industrial"]
    np.testing.assert_array_equal(risk_weights(segments, [90, 400, 90, 90]), [1.0, 1.0, 1.5, 1.5])


def test_hvcre_is_commercial_real_estate_only_and_segments_must_be_known() -> None:
    with pytest.raises(ValueError, match="HVCRE"):
        risk_weights(["auto"], [0], hvcre=[True])
    with pytest.raises(ValueError, match="unknown segments"):
        risk_weights(["yacht"], [0])


def test_undrawn_commitments_and_their_conversion() -> None:
    undrawn = undrawn_commitments(balance=[30.0, 50.0, 80.0], limit=[100.0, 40.0, 100.0],
                                  revolving=[True, True, False])
    np.testing.assert_array_equal(undrawn, [70.0, 0.0, 0.0])  # over-limit and term loans have nothing undrawn
    np.testing.assert_array_equal(credit_conversion_factors(["credit_card", "heloc", "commercial_industrial"]),
                                  [0.10, 0.40, 0.40])
    rwa = credit_rwa(balance=[20.0, 5.0, 100.0, 10.0], undrawn=[30.0, 45.0, 0.0, 10.0],
                     segment_names=["heloc", "credit_card", "first_lien_mortgage", "credit_card"],
                     days_past_due=[0, 0, 0, 90])
    # HELOC 20 x 100 % and 30 x 40 % x 100 %; card 5 and 45 x 10 %; mortgage 100 x 50 %; past-due card 10 x 150 %
    # and 10 x 10 % x 150 %.
    np.testing.assert_allclose(rwa.drawn, [20.0, 5.0, 50.0, 15.0], rtol=1e-14)
    np.testing.assert_allclose(rwa.undrawn, [12.0, 4.5, 0.0, 1.5], rtol=1e-14)


def test_basel3_pd_floors_bind_at_their_levels() -> None:
    classes = np.array([AssetClass.QUALIFYING_REVOLVING, AssetClass.OTHER_RETAIL, AssetClass.CORPORATE])
    np.testing.assert_array_equal(basel3_pd_floors(classes), [0.0010, 0.0005, 0.0005])
    floored = capital_requirement(np.zeros(3), 0.45, classes, pd_floor=basel3_pd_floors(classes))
    np.testing.assert_array_equal(floored, capital_requirement([0.0010, 0.0005, 0.0005], 0.45, classes))
