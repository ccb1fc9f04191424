"""Metrics sink: data points from records, batching, backoff on throttling, CloudWatch (moto) and local tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from models.segments import SEGMENT_NAMES
from pipelines.adapters.metrics_sink import (
    MAX_DATUMS_PER_CALL,
    TASK_FAILURES,
    CloudWatchSink,
    Datapoint,
    LocalMetricsSink,
    alarm_specs,
    publish_compliance,
    records_to_datapoints,
)
from pipelines.compliance.rules import DRIFT_FEATURES, METRICS, Observation, judge, load_rules

NOW = datetime.now(UTC).replace(microsecond=0)


def throttled(operation: str = "PutMetricData", code: str = "Throttling") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "Rate exceeded"}}, operation)


class FakeCloudWatch:
    """Records every call; raises the queued errors first."""

    def __init__(self, errors: list[ClientError] | None = None) -> None:
        self.errors = list(errors or [])
        self.calls: list[dict] = []

    def put_metric_data(self, **kwargs) -> dict:
        self.calls.append(kwargs)
        if self.errors:
            raise self.errors.pop(0)
        return {}


def sink_with(client, delays: list[float], **kwargs) -> CloudWatchSink:
    return CloudWatchSink(client, "Test", sleep=delays.append, **kwargs)


def points(n: int) -> list[Datapoint]:
    return [Datapoint("M", float(i), (("Run", "r"),), NOW) for i in range(n)]


def test_batches_stay_within_the_api_limit():
    client, delays = FakeCloudWatch(), []
    assert sink_with(client, delays).put(points(2 * MAX_DATUMS_PER_CALL + 34)) == 3
    assert [len(call["MetricData"]) for call in client.calls] == [MAX_DATUMS_PER_CALL, MAX_DATUMS_PER_CALL, 34]
    assert MAX_DATUMS_PER_CALL <= 1000
    sent = [datum["Value"] for call in client.calls for datum in call["MetricData"]]
    assert sent == [float(i) for i in range(2 * MAX_DATUMS_PER_CALL + 34)]
    assert delays == []


def test_throttling_twice_then_success_backs_off_exponentially():
    client, delays = FakeCloudWatch([throttled(), throttled(code="ThrottlingException")]), []
    assert sink_with(client, delays, base_delay=0.5).put(points(3)) == 1
    assert len(client.calls) == 3
    assert delays == [0.5, 1.0]


def test_persistent_throttling_gives_up_after_max_attempts():
    client, delays = FakeCloudWatch([throttled() for _ in range(10)]), []
    with pytest.raises(ClientError, match="Throttling"):
        sink_with(client, delays, max_attempts=5, base_delay=1.0, max_delay=5.0).put(points(1))
    assert len(client.calls) == 5
    assert delays == [1.0, 2.0, 4.0, 5.0]


def test_other_errors_are_not_retried():
    client, delays = FakeCloudWatch([throttled(code="InvalidParameterValue")]), []
    with pytest.raises(ClientError, match="InvalidParameterValue"):
        sink_with(client, delays).put(points(1))
    assert len(client.calls) == 1
    assert delays == []


def _records(settings, run_id: str = "manual__2026-01-01"):
    observations = [Observation("min_cet1_ratio", 0.051, "adverse"), Observation("min_cet1_ratio", 0.11, "baseline"),
                    Observation("segment_loss_rate", 0.31, "adverse", "credit_card"),
                    Observation("feature_psi", 0.02, feature="CreditScore"), Observation("pd_auc", None, note="none")]
    return judge(load_rules(settings.compliance_rules_path), observations, settings, run_id=run_id,
                 dag_id="loan_stress_test", model_version="v1", now=NOW)


def test_each_measured_record_gives_a_detailed_and_a_rollup_point(settings):
    datapoints = records_to_datapoints(_records(settings))
    cet1 = [(p.dimensions, p.value) for p in datapoints if p.name == "CET1_MIN_RATIO"]
    assert cet1 == [((("Run", "manual__2026-01-01"), ("Scenario", "adverse")), 0.051), ((), 0.051),
                    ((("Run", "manual__2026-01-01"), ("Scenario", "baseline")), 0.11), ((), 0.11)]
    segment = [p.dimensions for p in datapoints if p.name == "SEGMENT_LOSS_RATE"]
    assert segment == [(("Run", "manual__2026-01-01"), ("Scenario", "adverse"), ("Segment", "credit_card")),
                       (("Segment", "credit_card"),)]
    assert not [p for p in datapoints if p.name == "PD_MODEL_AUC"]  # not evaluated: nothing made up
    counts = {p.name: p.value for p in datapoints if p.unit == "Count"}
    assert counts == {"ComplianceBreaches": 2.0, "ComplianceNotEvaluated": 1.0}


def test_alarms_follow_the_rules(settings):
    alarms = {a.name: a for a in alarm_specs(load_rules(settings.compliance_rules_path), settings)}
    cet1 = alarms["LoanStress-CET1_MIN_RATIO"]
    assert (cet1.metric_name, cet1.dimensions, cet1.statistic, cet1.comparison) == (
        "CET1_MIN_RATIO", (), "Minimum", "LessThanThreshold")
    assert cet1.threshold == pytest.approx(0.07)
    cards = alarms["LoanStress-SEGMENT_LOSS_RATE-credit_card"]
    assert (cards.dimensions, cards.statistic, cards.comparison, cards.threshold) == (
        (("Segment", "credit_card"),), "Maximum", "GreaterThanThreshold", 0.25)
    assert alarms["LoanStress-SEGMENT_CONCENTRATION-first_lien_mortgage"].threshold == 0.60
    assert alarms["LoanStress-PD_FEATURE_PSI-DSTI"].dimensions == (("Feature", "DSTI"),)
    assert alarms[f"LoanStress-{TASK_FAILURES}"].comparison == "GreaterThanOrEqualToThreshold"
    rules = load_rules(settings.compliance_rules_path)
    per_rule = {"segment": len(SEGMENT_NAMES), "feature": len(DRIFT_FEATURES)}
    assert len(alarms) == 1 + sum(per_rule.get(METRICS[r.metric].dimension, 1) for r in rules)


@pytest.fixture
def cloudwatch(monkeypatch):
    import boto3
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")


def _metric_values(client, namespace: str, point: Datapoint) -> list[float]:
    response = client.get_metric_data(
        MetricDataQueries=[{"Id": "q", "MetricStat": {"Metric": {
            "Namespace": namespace, "MetricName": point.name,
            "Dimensions": [{"Name": n, "Value": v} for n, v in point.dimensions]}, "Period": 60, "Stat": "Maximum"}}],
        StartTime=NOW - timedelta(hours=1), EndTime=NOW + timedelta(hours=1))
    return response["MetricDataResults"][0]["Values"]


def test_cloudwatch_round_trip_and_idempotent_alarms(settings, cloudwatch):
    records = _records(settings)
    rules = load_rules(settings.compliance_rules_path)
    sink = CloudWatchSink(cloudwatch, settings.cloudwatch_namespace, sleep=pytest.fail)  # moto never throttles
    outcome = publish_compliance(records, rules, settings, sink)
    datapoints = records_to_datapoints(records)
    assert outcome["datapoints"] == len(datapoints) and outcome["put_calls"] == 1
    for point in datapoints:
        if point.dimensions:  # roll-ups share their dimensions: checked below
            assert _metric_values(cloudwatch, settings.cloudwatch_namespace, point) == [point.value], point
    rollup = Datapoint("CET1_MIN_RATIO", 0.0, (), NOW)
    assert _metric_values(cloudwatch, settings.cloudwatch_namespace, rollup) == [0.11]  # the Maximum of 0.051, 0.11

    def alarms() -> dict[str, dict]:
        pages = cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=settings.cloudwatch_namespace)
        return {a["AlarmName"]: a for page in pages for a in page["MetricAlarms"]}

    first = alarms()
    assert len(first) == outcome["alarms"] == len(alarm_specs(rules, settings))
    publish_compliance(records, rules, settings, sink)
    second = alarms()
    assert second.keys() == first.keys()
    cet1 = second["LoanStress-CET1_MIN_RATIO"]
    assert (cet1["Threshold"], cet1["ComparisonOperator"], cet1["Statistic"], cet1["TreatMissingData"]) == (
        pytest.approx(0.07), "LessThanThreshold", "Minimum", "ignore")


def test_local_sink_keeps_points_and_alarms(settings):
    settings.data_home.mkdir(parents=True)
    sink = LocalMetricsSink(settings.resolved_loan_store_url, settings.cloudwatch_namespace)
    records = _records(settings)
    rules = load_rules(settings.compliance_rules_path)
    first = publish_compliance(records, rules, settings, sink)
    publish_compliance(records, rules, settings, sink)
    assert sink.values("SEGMENT_LOSS_RATE", {"Segment": "credit_card"}) == [0.31, 0.31]
    assert sink.values("CET1_MIN_RATIO", {"Run": "manual__2026-01-01", "Scenario": "adverse"}) == [0.051, 0.051]
    assert sink.alarm_names() == sorted(a.name for a in alarm_specs(rules, settings))
    assert len(sink.alarm_names()) == first["alarms"]


def test_failure_callback_emits_a_task_failure_metric(settings, monkeypatch):
    from pipelines.settings import get_settings
    from pipelines.tasks.policy import on_task_failure

    monkeypatch.setenv("STRESS_DATA_HOME", str(settings.data_home))
    get_settings.cache_clear()
    settings.data_home.mkdir(parents=True)
    on_task_failure({"ti": SimpleNamespace(dag_id="loan_stress_test", task_id="plan", run_id="manual__1")})
    sink = LocalMetricsSink(settings.resolved_loan_store_url, settings.cloudwatch_namespace)
    assert sink.values(TASK_FAILURES, {"DagId": "loan_stress_test", "TaskId": "plan", "Run": "manual__1"}) == [1.0]
    assert sink.values(TASK_FAILURES, {}) == [1.0]


def test_failure_callback_never_raises(caplog):
    from pipelines.tasks.policy import on_task_failure

    on_task_failure({})  # no task instance: logged, not raised over the task's own error
    assert "could not emit the TaskFailures metric" in caplog.text
