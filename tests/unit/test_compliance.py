"""Compliance rules: loading and validation, judgement on hand cases, observations, and the stored history."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from pipelines.compliance.rules import (
    DRIFT_FEATURES,
    MODEL_METRICS,
    ComplianceRecord,
    ComplianceRuleError,
    Direction,
    Observation,
    Status,
    data_observations,
    evaluate_run,
    judge,
    load_rules,
    model_observations,
    monitored_model_observations,
    parse_rules,
    scenario_observations,
)
from pipelines.settings import REPO_ROOT

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
FLAT = [0.125] * 10


def rule(**overrides) -> dict:
    base = {"MetricId": "CET1_MIN_RATIO", "MetricName": "Minimum CET1 ratio", "metric": "min_cet1_ratio",
            "scope": "scenario", "direction": "min", "threshold": 0.045, "add_setting": "stress_capital_buffer",
            "severity": "critical"}
    return {**base, **overrides}


def rules_of(*raw: dict):
    return parse_rules({"version": 1, "rules": list(raw)}, "test")


def judged(rules, observations, settings, **kwargs):
    return judge(rules, observations, settings, run_id="run-1", dag_id="loan_stress_test", model_version="v1",
                 now=NOW, **kwargs)


def test_shipped_rules_load_and_cover_every_metric(settings):
    rules = load_rules(settings.compliance_rules_path)
    assert settings.compliance_rules_path == REPO_ROOT / "compliance" / "rules.yaml"
    assert len({r.metric_id for r in rules}) == len(rules)
    assert {r.metric for r in rules} == {"min_cet1_ratio", "min_tier1_leverage_ratio", "loss_rate", "segment_loss_rate",
                                         "segment_exposure_share", "data_quality_pass_rate", *MODEL_METRICS}
    cet1 = next(r for r in rules if r.metric_id == "CET1_MIN_RATIO")
    assert cet1.threshold_for(None, settings) == pytest.approx(0.045 + 0.025)


def test_cet1_trough_of_5_1_percent_breaches_minimum_plus_buffer(settings, stress_result):
    path = [0.125, 0.11, 0.09, 0.07, 0.06, 0.051, 0.055, 0.06, 0.065, 0.07]
    records = judged(rules_of(rule()), scenario_observations([stress_result("adverse", path)]), settings)
    (record,) = [r for r in records if r.metric_id == "CET1_MIN_RATIO"]
    assert record.actual == pytest.approx(0.051)
    assert record.threshold == pytest.approx(0.07)
    assert record.status is Status.NON_COMPLIANT
    assert record.scenario == "adverse" and record.segment is None
    assert record.note == "trough at projected quarter 5"


@pytest.mark.parametrize(("trough", "status"), [(0.0699, Status.NON_COMPLIANT), (0.07, Status.COMPLIANT),
                                                (0.072, Status.COMPLIANT)])
def test_min_direction_is_inclusive(settings, stress_result, trough, status):
    path = [0.125, 0.1, trough, *[0.09] * 7]
    (record,) = judged(rules_of(rule()), [o for o in scenario_observations([stress_result("s", path)])
                                          if o.metric == "min_cet1_ratio"], settings)
    assert record.status is status


def test_buffer_setting_moves_the_threshold(make_settings, tmp_path):
    settings = make_settings(tmp_path, stress_capital_buffer=0.0)
    (record,) = judged(rules_of(rule()), [Observation("min_cet1_ratio", 0.051, "adverse")], settings)
    assert record.threshold == pytest.approx(0.045)
    assert record.status is Status.COMPLIANT


def test_max_direction_with_segment_thresholds(settings):
    rules = rules_of(rule(MetricId="SEGMENT_LOSS_RATE", metric="segment_loss_rate", scope="segment", direction="max",
                          threshold=0.10, add_setting=None, severity="high",
                          segment_thresholds={"credit_card": 0.25}))
    observations = [Observation("segment_loss_rate", 0.26, "s", "credit_card"),
                    Observation("segment_loss_rate", 0.20, "s", "credit_card"),
                    Observation("segment_loss_rate", 0.25, "s", "credit_card"),
                    Observation("segment_loss_rate", 0.11, "s", "auto")]
    records = judged(rules, observations, settings)
    assert [(r.threshold, r.status) for r in records] == [
        (0.25, Status.NON_COMPLIANT), (0.25, Status.COMPLIANT), (0.25, Status.COMPLIANT), (0.10, Status.NON_COMPLIANT)]
    assert {r.direction for r in records} == {Direction.MAX}


def test_missing_or_non_finite_values_are_not_evaluated_and_never_filled(settings):
    rules = rules_of(rule(MetricId="PD_AUC", metric="pd_auc", scope="model", threshold=0.7, add_setting=None))
    records = judged(rules, [Observation("pd_auc", None, note="no back-test"),
                             Observation("pd_auc", math.nan, note="degenerate")], settings)
    assert [r.status for r in records] == [Status.NOT_EVALUATED, Status.NOT_EVALUATED]
    assert [r.actual for r in records] == [None, None]
    assert records[0].note == "no back-test"
    assert records[1].note.startswith("not a finite number (nan)")
    assert records[0].model_version == "v1"


def test_rules_without_observations_do_not_apply(settings):
    records = judged(load_rules(settings.compliance_rules_path), data_observations(
        {"input_rows": 200, "accepted_rows": 195, "snapshot_id": "s"}), settings)
    assert [(r.metric_id, r.actual, r.status) for r in records] == [
        ("DATA_QUALITY_PASS_RATE", 0.975, Status.NON_COMPLIANT)]


def test_scenario_observations(stress_result):
    path = [0.125, 0.12, 0.11, 0.10, 0.09, 0.08, 0.085, 0.09, 0.095, 0.10]
    leverage = [0.07, 0.068, 0.066, 0.062, 0.058, 0.055, 0.056, 0.057, 0.058, 0.059]
    result = stress_result("adverse", path, tier1_leverage_ratio=leverage,
                           loss_rate_by_segment={"first_lien_mortgage": 0.02, "credit_card": 0.3,
                                                 "commercial_real_estate": 0.05})
    observations = scenario_observations([result, stress_result("baseline", FLAT)])
    by_key = {(o.metric, o.scenario, o.segment): o.value for o in observations}
    notes = {(o.metric, o.scenario): o.note for o in observations if o.segment is None}
    # The minimums of the capital path, jump-off included: a flat path's minimum is its jump-off.
    assert by_key[("min_tier1_leverage_ratio", "adverse", None)] == pytest.approx(0.055)
    assert by_key[("min_cet1_ratio", "adverse", None)] == pytest.approx(0.08)
    assert notes[("min_cet1_ratio", "adverse")] == "trough at projected quarter 5"
    assert notes[("min_tier1_leverage_ratio", "baseline")] == "trough at jump-off"
    assert by_key[("min_tier1_leverage_ratio", "baseline", None)] == pytest.approx(0.075)
    assert by_key[("segment_loss_rate", "adverse", "credit_card")] == pytest.approx(0.3)
    assert by_key[("loss_rate", "adverse", None)] == pytest.approx((12 + 30 + 15) / 1000)
    shares = {o.segment: o.value for o in observations if o.metric == "segment_exposure_share"}
    assert shares == pytest.approx({"first_lien_mortgage": 0.6, "credit_card": 0.1, "commercial_real_estate": 0.3})
    assert sum(o.metric == "min_cet1_ratio" for o in observations) == 2


def test_model_observations_list_every_feature_even_without_a_reference():
    observations = model_observations({"auc": 0.81, "calibrated_band_share": 0.9, "note": "window"},
                                      {"score_psi": None, "feature_psi": {}, "note": "no reference"})
    values = {(o.metric, o.feature): o.value for o in observations}
    assert values[("pd_auc", None)] == 0.81
    assert values[("score_psi", None)] is None
    assert {f for m, f in values if m == "feature_psi"} == set(DRIFT_FEATURES)


@pytest.mark.parametrize(("document", "message"), [
    ({"version": 1, "rules": [rule(extra=1)]}, r"rule 1 \(CET1_MIN_RATIO\): unknown keys \['extra'\]"),
    ({"version": 1, "rules": [rule(scope="model")]}, r"metric 'min_cet1_ratio' has scope 'scenario'"),
    ({"version": 1, "rules": [rule(direction="above")]}, r"direction must be one of \['min', 'max'\]"),
    ({"version": 1, "rules": [rule(metric="cet1")]}, r"unknown metric 'cet1'"),
    ({"version": 1, "rules": [rule(threshold="4.5%")]}, r"threshold must be a finite number"),
    ({"version": 1, "rules": [rule(threshold=True)]}, r"threshold must be a finite number"),
    ({"version": 1, "rules": [rule(add_setting="target")]}, r"add_setting 'target' is not a numeric setting"),
    ({"version": 1, "rules": [rule(segment_thresholds={"auto": 0.1})]}, r"segment_thresholds needs"),
    ({"version": 1, "rules": [rule(MetricId="SEG", metric="segment_loss_rate", scope="segment",
                                   segment_thresholds={"boats": 0.1})]}, r"unknown segments \['boats'\]"),
    ({"version": 1, "rules": [rule(MetricId="cet1 min")]}, r"UPPER_SNAKE_CASE"),
    ({"version": 1, "rules": [rule(), rule()]}, r"rule 2: duplicate MetricId 'CET1_MIN_RATIO'"),
    ({"version": 2, "rules": [rule()]}, r"unsupported version 2"),
    ({"version": 1, "rules": []}, r"'rules' must be a non-empty list"),
    ({"rules": [rule()]}, r"exactly the keys 'version' and 'rules'"),
])
def test_invalid_rules_are_rejected_with_a_clear_message(document, message):
    with pytest.raises(ComplianceRuleError, match=message):
        parse_rules(document, "test")


def test_load_rules_names_the_file_on_bad_yaml(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nrules: [\n")
    with pytest.raises(ComplianceRuleError, match=r"rules.yaml: not valid YAML"):
        load_rules(path)
    document = yaml.safe_load((REPO_ROOT / "compliance" / "rules.yaml").read_text())
    document["rules"][2]["severity"] = "urgent"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ComplianceRuleError, match=r"rule 3 \(PORTFOLIO_LOSS_RATE\): severity must be one of"):
        load_rules(path)


@pytest.fixture
def results_store(settings):
    from pipelines.adapters.results_store import ResultsStore

    settings.data_home.mkdir(parents=True)
    return ResultsStore(settings.resolved_loan_store_url)


def _monitoring_records(settings, run_id: str, when: datetime, auc: float | None) -> list[ComplianceRecord]:
    rules = load_rules(settings.compliance_rules_path)
    observations = model_observations({"auc": auc, "calibrated_band_share": 0.8, "note": "window"},
                                      {"score_psi": 0.05, "feature_psi": dict.fromkeys(DRIFT_FEATURES, 0.3),
                                       "note": "reference"})
    return judge(rules, observations, settings, run_id=run_id, dag_id="portfolio_monitoring", model_version="v1",
                 now=when)


def test_results_store_keeps_history_and_replaces_a_rerun(settings, results_store):
    store = results_store
    first = _monitoring_records(settings, "m-1", NOW - timedelta(days=2), 0.8)
    store.save_compliance("m-1", "portfolio_monitoring", first)
    store.save_compliance("m-1", "portfolio_monitoring", first)  # a retried task replaces its own rows
    store.save_compliance("m-2", "portfolio_monitoring", _monitoring_records(settings, "m-2", NOW, 0.75))
    assert store.compliance_of_run("m-1") == first
    assert len(store.compliance_of_run("m-2")) == len(first)
    latest = store.latest_model_compliance("portfolio_monitoring", "v1")
    assert {r.run_id for r in latest} == {"m-2"}
    assert store.latest_model_compliance("portfolio_monitoring", "v2") is None
    with pytest.raises(ValueError, match="records of other runs"):
        store.save_compliance("m-3", "portfolio_monitoring", first)


def test_stress_run_takes_model_evidence_from_recent_monitoring_only(settings, results_store):
    store = results_store

    def evidence():
        return store.latest_model_compliance("portfolio_monitoring", "v1")

    missing = monitored_model_observations(evidence(), "v1", NOW, timedelta(days=31))
    assert {o.value for o in missing} == {None}
    assert all(o.note == "no portfolio_monitoring evaluation of PD model version v1" for o in missing)
    assert len(missing) == len(MODEL_METRICS) - 1 + len(DRIFT_FEATURES)

    store.save_compliance("m-1", "portfolio_monitoring", _monitoring_records(settings, "m-1", NOW, None))
    copied = monitored_model_observations(evidence(), "v1", NOW + timedelta(days=1), timedelta(days=31))
    values = {(o.metric, o.feature): o for o in copied}
    assert values[("pd_calibrated_band_share", None)].value == 0.8
    assert values[("feature_psi", "DSTI")].value == 0.3
    assert values[("pd_auc", None)].value is None  # not evaluated there: stays not evaluated, with the reason
    assert values[("pd_auc", None)].note == "from portfolio_monitoring run m-1 (2026-01-05 12:00 UTC): window"
    assert len(copied) == len(missing)

    stale = monitored_model_observations(evidence(), "v1", NOW + timedelta(days=40), timedelta(days=31))
    assert {o.value for o in stale} == {None}
    assert "older than 31 days" in stale[0].note


def test_evaluate_run_of_a_monitoring_run_has_no_scenario_records(settings, results_store):
    steps = {"validate": {"input_rows": 100, "accepted_rows": 100, "snapshot_id": "s"},
             "score": {"model": {"version": "v9"}},
             "backtest": {"auc": 0.9, "calibrated_band_share": 0.5, "note": "window"},
             "drift": {"score_psi": 0.3, "feature_psi": dict.fromkeys(DRIFT_FEATURES, 0.01), "note": "ref"}}
    records = evaluate_run(load_rules(settings.compliance_rules_path), run_id="m", dag_id="portfolio_monitoring",
                           steps=copy.deepcopy(steps), scenario_results=None,
                           model_evidence=None, settings=settings, now=NOW)
    statuses = {(r.metric_id, r.feature): r.status for r in records}
    assert {r.scope.value for r in records} == {"data", "model"}
    assert statuses[("PD_MODEL_AUC", None)] is Status.COMPLIANT
    assert statuses[("PD_MODEL_CALIBRATION", None)] is Status.NON_COMPLIANT
    assert statuses[("PD_SCORE_PSI", None)] is Status.NON_COMPLIANT
    assert {r.model_version for r in records if r.scope.value == "model"} == {"v9"}
    assert ComplianceRecord.from_dict(records[0].to_dict()) == records[0]
