"""FeatureSpec loading and its errors; the horizon conversion of PDs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from models.feature_spec import DEFAULT_SPEC_PATH, FeatureSpec, FeatureSpecError, load_feature_spec
from models.pd_horizon import horizon_pd, quarterly_pd
from models.projection import PD_FEATURES

VALID = {
    "name": "test_spec", "id_column": "LoanId", "date_column": "ObservationQuarter", "event_column": "DefaultFlag",
    "target": "DefaultNext4Q", "numeric": ["CurrentLTV", "DSTI"], "categorical": ["ProductSegment"],
    "monotone": {"CurrentLTV": 1},
}


def test_default_spec_reads_the_stress_engine_features():
    spec = load_feature_spec()
    assert set(spec.features) == set(PD_FEATURES)
    assert spec.horizon_quarters == 4
    assert spec.monotone["CurrentLTV"] == 1 and spec.monotone["DSTI"] == 1
    assert spec.monotone["unemployment_rate_avg_4q"] == 1 and spec.monotone["CreditScore"] == -1


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_yaml_and_json_round_trip(tmp_path, suffix):
    path = tmp_path / f"spec{suffix}"
    dump = yaml.safe_dump if suffix == ".yaml" else json.dumps
    path.write_text(dump(VALID))
    spec = FeatureSpec.from_file(path)
    assert spec.features == ("CurrentLTV", "DSTI", "ProductSegment")
    assert spec.monotone == {"CurrentLTV": 1}
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "red"}, "unknown FeatureSpec keys \\['colour'\\]"),
    ({"target": None}, "target must be a non-empty string"),
    ({"numeric": "CurrentLTV"}, "numeric must be a list"),
    ({"numeric": [], "categorical": []}, "no features"),
    ({"numeric": ["DSTI", "DSTI"]}, "more than once"),
    ({"numeric": ["CurrentLTV", "DefaultNext4Q"]}, "leakage"),
    ({"monotone": {"ProductSegment": 1}}, "not numeric features: \\['ProductSegment'\\]"),
    ({"monotone": {"CurrentLTV": 2}}, "must be \\+1 or -1"),
    ({"monotone": {"CurrentLTV": True}}, "must be \\+1 or -1"),
    ({"horizon_quarters": 0}, "positive integer"),
])
def test_invalid_specs_name_the_problem(change, message):
    with pytest.raises(FeatureSpecError, match=message):
        FeatureSpec.from_dict(VALID | change)


def test_missing_required_keys_are_listed():
    data = {k: v for k, v in VALID.items() if k not in ("target", "date_column")}
    with pytest.raises(FeatureSpecError, match="missing required keys \\['date_column', 'target'\\]"):
        FeatureSpec.from_dict(data)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(FeatureSpecError, match="does not exist"):
        FeatureSpec.from_file(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(FeatureSpecError, match="not valid YAML"):
        FeatureSpec.from_file(bad)
    (tmp_path / "spec.txt").write_text("{}")
    with pytest.raises(FeatureSpecError, match="format"):
        FeatureSpec.from_file(tmp_path / "spec.txt")
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(FeatureSpecError, match=f"{listed}: a FeatureSpec is a mapping"):
        FeatureSpec.from_file(listed)


def test_default_spec_path_is_in_the_repository():
    assert DEFAULT_SPEC_PATH.is_file()


def test_quarterly_conversion_known_values_and_round_trip():
    assert quarterly_pd(1 - 0.9**4) == pytest.approx(0.1)
    assert horizon_pd(0.1) == pytest.approx(1 - 0.9**4)
    p = np.array([0.0, 1e-6, 0.02, 0.5, 1.0])
    np.testing.assert_allclose(horizon_pd(quarterly_pd(p)), p, atol=1e-15)
    assert (quarterly_pd(p) <= p).all()
    assert horizon_pd(0.5, horizon_quarters=1) == pytest.approx(0.5)
