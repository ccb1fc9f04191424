"""Metrics sink: compliance records and task failures as metrics, with alarms from the compliance rules.

Two targets behind one interface (:class:`MetricsSink`):

* ``aws``: CloudWatch ``PutMetricData`` in the configured namespace, at most
  :data:`MAX_DATUMS_PER_CALL` data per call (the API allows 1,000 metrics and 1 MB per request; half
  of that leaves room for longer dimension values), and ``PutMetricAlarm``, which creates or
  replaces an alarm by name, so ensuring the alarms twice leaves the same alarms. Throttling and
  CloudWatch's own transient faults are retried with exponential backoff here; botocore's retries
  are switched off for this client so that one policy, not two stacked ones, decides.
* ``local``: the same data points in a ``metric_datapoints`` table and the alarm definitions in a
  ``metric_alarms`` table of the loan store database, so a laptop run leaves the same trace.

Every compliance record with a value becomes two data points named by its MetricId: one with the
dimensions ``Run``, ``Scenario``, ``Segment`` and ``Feature`` (those that apply) for drill-down, and
a roll-up with only ``Segment``/``Feature``, which is what the alarms watch. An alarm has to name a
metric's exact dimensions, and a per-run metric would need a new alarm every run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from pipelines.adapters.sql import open_engine
from pipelines.compliance.rules import METRICS, ComplianceRecord, Direction, Rule, Status
from pipelines.settings import StressSettings, Target

log = logging.getLogger(__name__)

MAX_DATUMS_PER_CALL = 500
RETRYABLE_ERRORS = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded",
                              "TooManyRequestsException", "InternalServiceFault", "ServiceUnavailable"})
TASK_FAILURES = "TaskFailures"
COMPLIANCE_BREACHES = "ComplianceBreaches"
COMPLIANCE_NOT_EVALUATED = "ComplianceNotEvaluated"
ALARM_PERIOD_SECONDS = 86_400  # one day: a stress run or a daily monitoring run lands in one period

Dimensions = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Datapoint:
    """One metric value at one time."""

    name: str
    value: float
    dimensions: Dimensions
    timestamp: datetime
    unit: str = "None"

    def as_cloudwatch(self) -> dict[str, Any]:
        return {"MetricName": self.name, "Value": self.value, "Unit": self.unit, "Timestamp": self.timestamp,
                "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions]}


@dataclass(frozen=True)
class AlarmSpec:
    """A threshold alarm on a roll-up metric (see the module docstring)."""

    name: str
    metric_name: str
    dimensions: Dimensions
    statistic: str
    comparison: str
    threshold: float
    description: str

    def as_cloudwatch(self, namespace: str, actions: Sequence[str]) -> dict[str, Any]:
        return {
            "AlarmName": self.name, "AlarmDescription": self.description[:1024], "Namespace": namespace,
            "MetricName": self.metric_name, "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions],
            "Statistic": self.statistic, "Period": ALARM_PERIOD_SECONDS, "EvaluationPeriods": 1,
            "Threshold": self.threshold, "ComparisonOperator": self.comparison,
            # Stress metrics arrive once a quarter: a breach stays in ALARM until a new run says otherwise.
            "TreatMissingData": "ignore", "ActionsEnabled": bool(actions), "AlarmActions": list(actions),
        }


def _record_dimensions(record: ComplianceRecord) -> tuple[Dimensions, Dimensions]:
    """(detailed, roll-up) dimensions of a record's data points."""
    breakdown = tuple((name, value) for name, value in (("Segment", record.segment), ("Feature", record.feature))
                      if value)
    detailed = (("Run", record.run_id), *((("Scenario", record.scenario),) if record.scenario else ()), *breakdown)
    return detailed, breakdown


def records_to_datapoints(records: Sequence[ComplianceRecord]) -> list[Datapoint]:
    """Data points of a run's records: each measured value twice, plus the run's breach counts."""
    points = []
    for record in records:
        if record.actual is None:
            continue
        for dimensions in _record_dimensions(record):
            points.append(Datapoint(record.metric_id, record.actual, dimensions, record.evaluated_at))
    for run_id, dag_id in sorted({(r.run_id, r.dag_id) for r in records}):
        own = [r for r in records if r.run_id == run_id]
        when = max(r.evaluated_at for r in own)
        for name, status in ((COMPLIANCE_BREACHES, Status.NON_COMPLIANT),
                             (COMPLIANCE_NOT_EVALUATED, Status.NOT_EVALUATED)):
            count = float(sum(r.status is status for r in own))
            points.append(Datapoint(name, count, (("DagId", dag_id), ("Run", run_id)), when, "Count"))
    return points


def failure_datapoints(dag_id: str, task_id: str, run_id: str, when: datetime) -> list[Datapoint]:
    """A failed task: one point with the task and run, and the roll-up the failure alarm watches."""
    return [Datapoint(TASK_FAILURES, 1.0, (("DagId", dag_id), ("TaskId", task_id), ("Run", run_id)), when, "Count"),
            Datapoint(TASK_FAILURES, 1.0, (), when, "Count")]


def alarm_specs(rules: Sequence[Rule], settings: StressSettings) -> list[AlarmSpec]:
    """One alarm per rule and segment/feature, at the rule's threshold, plus one on any task failure."""
    prefix = settings.cloudwatch_namespace
    alarms = []
    for rule in rules:
        definition = METRICS[rule.metric]
        dimension_name = (definition.dimension or "").capitalize()
        for value in definition.dimension_values or (None,):
            threshold = rule.threshold_for(value if definition.dimension == "segment" else None, settings)
            minimum = rule.direction is Direction.MIN
            alarms.append(AlarmSpec(
                name="-".join(part for part in (prefix, rule.metric_id, value) if part),
                metric_name=rule.metric_id, dimensions=((dimension_name, value),) if value else (),
                statistic="Minimum" if minimum else "Maximum",
                comparison="LessThanThreshold" if minimum else "GreaterThanThreshold", threshold=threshold,
                description=f"[{rule.severity.value}] {rule.metric_name}{f' ({value})' if value else ''} must be "
                            f"{'>=' if minimum else '<='} {threshold:g}. {rule.description}",
            ))
    alarms.append(AlarmSpec(f"{prefix}-{TASK_FAILURES}", TASK_FAILURES, (), "Sum", "GreaterThanOrEqualToThreshold",
                            1.0, "A task of a loan-stress DAG failed after its retries (see the Airflow task log)."))
    return alarms


class MetricsSink(Protocol):
    """Where data points and alarms go."""

    def put(self, datapoints: Sequence[Datapoint]) -> int:
        """Publish the data points; returns how many calls it took."""

    def ensure_alarms(self, alarms: Sequence[AlarmSpec]) -> int:
        """Create or replace the alarms by name; returns how many."""


class CloudWatchSink:
    """CloudWatch through a boto3 client (or anything with the same two methods)."""

    def __init__(self, client: Any, namespace: str, alarm_actions: Sequence[str] = (), *,
                 sleep: Callable[[float], None] = time.sleep, max_attempts: int = 6, base_delay: float = 0.5,
                 max_delay: float = 20.0) -> None:
        self.client = client
        self.namespace = namespace
        self.alarm_actions = list(alarm_actions)
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    def _call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        """``operation(**kwargs)``, retried on throttling with delays base, 2 base, 4 base... (capped)."""
        from botocore.exceptions import ClientError

        attempt = 1
        while True:
            try:
                return operation(**kwargs)
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code not in RETRYABLE_ERRORS or attempt >= self.max_attempts:
                    raise
                delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                log.warning("CloudWatch %s (%s), attempt %d: retrying in %.1f s", operation.__name__, code,
                            attempt, delay)
                self.sleep(delay)
                attempt += 1

    def put(self, datapoints: Sequence[Datapoint]) -> int:
        calls = 0
        for start in range(0, len(datapoints), MAX_DATUMS_PER_CALL):
            batch = datapoints[start:start + MAX_DATUMS_PER_CALL]
            self._call(self.client.put_metric_data, Namespace=self.namespace,
                       MetricData=[point.as_cloudwatch() for point in batch])
            calls += 1
        return calls

    def ensure_alarms(self, alarms: Sequence[AlarmSpec]) -> int:
        for alarm in alarms:
            self._call(self.client.put_metric_alarm, **alarm.as_cloudwatch(self.namespace, self.alarm_actions))
        return len(alarms)


_local_metadata = sa.MetaData()
METRIC_DATAPOINTS = sa.Table(
    "metric_datapoints", _local_metadata,
    sa.Column("datapoint_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("namespace", sa.String(255), nullable=False),
    sa.Column("metric_name", sa.String(255), nullable=False, index=True),
    sa.Column("dimensions", sa.Text, nullable=False),  # JSON object, keys sorted
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("unit", sa.String(32), nullable=False),
    sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
)
METRIC_ALARMS = sa.Table(
    "metric_alarms", _local_metadata,
    sa.Column("alarm_name", sa.String(255), primary_key=True),
    sa.Column("namespace", sa.String(255), nullable=False),
    sa.Column("definition", sa.Text, nullable=False),  # the PutMetricAlarm request, as JSON
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def _dimensions_json(dimensions: Dimensions | dict[str, str]) -> str:
    return json.dumps(dict(dimensions), sort_keys=True)


class LocalMetricsSink:
    """The ``local`` target: data points and alarm definitions in SQL (the loan store database)."""

    def __init__(self, url: str, namespace: str) -> None:
        self.engine = open_engine(url)
        self.namespace = namespace
        _local_metadata.create_all(self.engine)

    def put(self, datapoints: Sequence[Datapoint]) -> int:
        rows = [{"namespace": self.namespace, "metric_name": p.name, "dimensions": _dimensions_json(p.dimensions),
                 "value": p.value, "unit": p.unit, "timestamp": p.timestamp} for p in datapoints]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(METRIC_DATAPOINTS.insert(), rows)
        return 1 if rows else 0

    def ensure_alarms(self, alarms: Sequence[AlarmSpec]) -> int:
        now = datetime.now(UTC)
        rows = [{"alarm_name": a.name, "namespace": self.namespace, "updated_at": now,
                 "definition": json.dumps(a.as_cloudwatch(self.namespace, ()))} for a in alarms]
        with self.engine.begin() as connection:
            connection.execute(METRIC_ALARMS.delete().where(METRIC_ALARMS.c.alarm_name.in_([a.name for a in alarms])))
            if rows:
                connection.execute(METRIC_ALARMS.insert(), rows)
        return len(rows)

    def values(self, name: str, dimensions: Dimensions | dict[str, str]) -> list[float]:
        """Values of one metric with exactly these dimensions, oldest first (like get_metric_data)."""
        table = METRIC_DATAPOINTS
        with self.engine.connect() as connection:
            return list(connection.execute(sa.select(table.c.value).where(
                (table.c.namespace == self.namespace) & (table.c.metric_name == name)
                & (table.c.dimensions == _dimensions_json(dimensions)))
                .order_by(table.c.timestamp, table.c.datapoint_id)).scalars())

    def alarm_names(self) -> list[str]:
        with self.engine.connect() as connection:
            return sorted(connection.execute(sa.select(METRIC_ALARMS.c.alarm_name).where(
                METRIC_ALARMS.c.namespace == self.namespace)).scalars())


def open_metrics_sink(settings: StressSettings, loan_store_url: str | None = None) -> MetricsSink:
    """CloudWatch on ``STRESS_TARGET=aws``, the local tables otherwise (in ``loan_store_url``, by default the
    settings' own; the composition root passes it with its TLS parameters)."""
    if settings.target is Target.AWS:
        import boto3
        from botocore.config import Config

        client = boto3.client("cloudwatch", region_name=settings.aws_region,
                              config=Config(retries={"total_max_attempts": 1}))
        return CloudWatchSink(client, settings.cloudwatch_namespace, settings.cloudwatch_alarm_actions)
    return LocalMetricsSink(loan_store_url or settings.resolved_loan_store_url, settings.cloudwatch_namespace)


def publish_compliance(records: Sequence[ComplianceRecord], rules: Sequence[Rule], settings: StressSettings,
                       sink: MetricsSink) -> dict[str, Any]:
    """Publish a run's records and make sure the alarms of the rules exist; returns what was done."""
    points = records_to_datapoints(records)
    calls = sink.put(points)
    alarms = sink.ensure_alarms(alarm_specs(rules, settings))
    return {"target": settings.target.value, "namespace": settings.cloudwatch_namespace, "datapoints": len(points),
            "put_calls": calls, "alarms": alarms}


def emit_task_failure(sink: MetricsSink, dag_id: str, task_id: str, run_id: str) -> None:
    """The failure metric of one task (called by :func:`pipelines.tasks.policy.on_task_failure`)."""
    sink.put(failure_datapoints(dag_id, task_id, run_id, datetime.now(UTC)))
