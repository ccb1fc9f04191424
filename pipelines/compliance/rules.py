"""Compliance rules as data, and their evaluation into compliance records.

The rules live in ``compliance/rules.yaml`` (see ``docs/compliance.md``) so a limit change is a
reviewed config change, not a code change. Evaluation has two halves:

1. **observations**: what a run measured, one :class:`Observation` per metric and dimension
   (scenario, segment or feature), from the stress results, the validate manifest and the PD model
   evidence. A missing measurement is an observation with no value and a note saying why;
2. **judgement**: every rule is applied to the observations of its metric, giving a
   :class:`ComplianceRecord` in the seed's Regulatory Compliance Data Schema (MetricId, MetricName,
   ComplianceThreshold, ActualValue, Status) plus where it applies and when it was evaluated.

A rule applies to a run only when the run produces observations of its metric: a monitoring run has
no scenarios, so it gets no CET1 record, while a stress run always gets the model records (filled
from the latest portfolio monitoring of the same model, or "Not Evaluated").

Status is ``Compliant``, ``Non-Compliant`` or ``Not Evaluated``. The third value extends the seed
schema on purpose: a metric that could not be measured (no monitoring of the model yet, no reference
distribution for a PSI) must neither pass silently nor raise a false breach, and its ActualValue
stays empty: a value is never made up.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from models.segments import SEGMENT_NAMES
from pipelines.settings import StressSettings

MONITORING_DAG_ID = "portfolio_monitoring"
# Loan-level PD features whose drift the monitoring measures. The macro features are left out: at one
# as-of date they are one value for the whole book, and their movement is what scenarios are about;
# PaymentShockPoints is zero at jump-off by construction.
DRIFT_FEATURES = ("ProductSegment", "CreditScore", "LoanAgeQuarters", "CurrentLTV", "DSTI")
_METRIC_ID = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


class ComplianceRuleError(ValueError):
    """The rules file is unusable; the message names the file, the rule and the problem."""


class Scope(StrEnum):
    SCENARIO = "scenario"
    SEGMENT = "segment"
    PORTFOLIO = "portfolio"
    MODEL = "model"
    DATA = "data"


class Direction(StrEnum):
    MIN = "min"  # compliant when actual >= threshold
    MAX = "max"  # compliant when actual <= threshold


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Status(StrEnum):
    COMPLIANT = "Compliant"
    NON_COMPLIANT = "Non-Compliant"
    NOT_EVALUATED = "Not Evaluated"


@dataclass(frozen=True)
class MetricDefinition:
    """A measurable quantity a rule can constrain; ``dimension`` names what it is broken down by."""

    scope: Scope
    description: str
    dimension: str | None = None  # "segment" or "feature"

    @property
    def dimension_values(self) -> tuple[str, ...]:
        return {"segment": SEGMENT_NAMES, "feature": DRIFT_FEATURES}.get(self.dimension or "", ())


METRICS: dict[str, MetricDefinition] = {
    "min_cet1_ratio": MetricDefinition(Scope.SCENARIO, "lowest CET1 ratio, jump-off and quarters 1..horizon"),
    "min_tier1_leverage_ratio": MetricDefinition(
        Scope.SCENARIO, "lowest Tier 1 capital / total assets, jump-off and quarters 1..horizon"),
    "loss_rate": MetricDefinition(Scope.SCENARIO, "expected credit loss over the horizon / jump-off balance"),
    "segment_loss_rate": MetricDefinition(Scope.SEGMENT, "loss rate over the horizon of one segment", "segment"),
    "segment_exposure_share": MetricDefinition(Scope.PORTFOLIO, "segment balance / book balance", "segment"),
    "data_quality_pass_rate": MetricDefinition(Scope.DATA, "accepted / input rows of the validated tape"),
    "pd_auc": MetricDefinition(Scope.MODEL, "AUC of the quarterly PD on the recent performance window"),
    "pd_calibrated_band_share": MetricDefinition(
        Scope.MODEL, "share of score bands whose binomial calibration test does not reject"),
    "score_psi": MetricDefinition(Scope.MODEL, "PSI of the PD score against the reference distribution"),
    "feature_psi": MetricDefinition(Scope.MODEL, "PSI of a PD feature against the reference", "feature"),
}
MODEL_METRICS = tuple(name for name, metric in METRICS.items() if metric.scope is Scope.MODEL)
# Plain statistics; every other metric is a ratio, shown in percent.
STATISTICS = frozenset({"pd_auc", "score_psi", "feature_psi"})


def format_measure(metric: str, value: float | None) -> str:
    """A threshold or value as people read it: ratios in percent, AUC and PSI as numbers."""
    if value is None:
        return "n/a"
    return f"{value:.3f}" if metric in STATISTICS else f"{value * 100:.2f} %"


@dataclass(frozen=True)
class Rule:
    """One row of the rules file (field meanings in ``compliance/rules.yaml``)."""

    metric_id: str
    metric_name: str
    metric: str
    scope: Scope
    direction: Direction
    threshold: float
    severity: Severity
    add_setting: str | None = None
    segment_thresholds: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def threshold_for(self, segment: str | None, settings: StressSettings) -> float:
        """The effective threshold: the segment's own (or the default) plus the named setting."""
        base = self.segment_thresholds.get(segment or "", self.threshold)
        return base + (float(getattr(settings, self.add_setting)) if self.add_setting else 0.0)

    def complies(self, actual: float, threshold: float) -> bool:
        return actual >= threshold if self.direction is Direction.MIN else actual <= threshold


_REQUIRED = ("MetricId", "MetricName", "metric", "scope", "direction", "threshold", "severity")
_OPTIONAL = ("add_setting", "segment_thresholds", "description")


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _choice(enum: type[StrEnum], value: Any, key: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise ValueError(f"{key} must be one of {[e.value for e in enum]}, got {value!r}") from None


def _parse_rule(raw: Any) -> Rule:
    if not isinstance(raw, dict):
        raise ValueError(f"a rule must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {*_REQUIRED, *_OPTIONAL})
    missing = [key for key in _REQUIRED if key not in raw]
    if unknown or missing:
        raise ValueError(f"unknown keys {unknown}, missing keys {missing}; allowed: {[*_REQUIRED, *_OPTIONAL]}")
    metric_id = raw["MetricId"]
    if not isinstance(metric_id, str) or not _METRIC_ID.match(metric_id):
        raise ValueError(f"MetricId {metric_id!r} must be UPPER_SNAKE_CASE, at most 64 characters")
    if not isinstance(raw["MetricName"], str) or not raw["MetricName"].strip():
        raise ValueError("MetricName must be a non-empty string")
    metric = raw["metric"]
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(METRICS)}")
    definition = METRICS[metric]
    scope = _choice(Scope, raw["scope"], "scope")
    if scope is not definition.scope:
        raise ValueError(f"metric {metric!r} has scope {definition.scope.value!r}, the rule says {scope.value!r}")
    segment_thresholds = raw.get("segment_thresholds") or {}
    if segment_thresholds:
        if definition.dimension != "segment" or not isinstance(segment_thresholds, dict):
            raise ValueError(f"segment_thresholds needs a mapping on a per-segment metric; {metric!r} is not one")
        unknown_segments = sorted(set(segment_thresholds) - set(SEGMENT_NAMES))
        if unknown_segments:
            raise ValueError(f"segment_thresholds names unknown segments {unknown_segments}; known: {SEGMENT_NAMES}")
    add_setting = raw.get("add_setting")
    if add_setting is not None:
        settings_field = StressSettings.model_fields.get(add_setting)
        if settings_field is None or settings_field.annotation is not float:
            raise ValueError(f"add_setting {add_setting!r} is not a numeric setting of StressSettings")
    return Rule(
        metric_id=metric_id, metric_name=raw["MetricName"].strip(), metric=metric, scope=scope,
        direction=_choice(Direction, raw["direction"], "direction"),
        threshold=_number(raw["threshold"], "threshold"), severity=_choice(Severity, raw["severity"], "severity"),
        add_setting=add_setting,
        segment_thresholds={s: _number(v, f"segment_thresholds.{s}") for s, v in segment_thresholds.items()},
        description=" ".join(str(raw.get("description", "")).split()),
    )


def parse_rules(document: Any, source: str = "rules") -> list[Rule]:
    """Rules from a parsed YAML document; :class:`ComplianceRuleError` names the first problem."""
    if not isinstance(document, dict) or set(document) != {"version", "rules"}:
        raise ComplianceRuleError(f"{source}: expected a mapping with exactly the keys 'version' and 'rules'")
    if document["version"] != 1:
        raise ComplianceRuleError(f"{source}: unsupported version {document['version']!r} (this code reads 1)")
    if not isinstance(document["rules"], list) or not document["rules"]:
        raise ComplianceRuleError(f"{source}: 'rules' must be a non-empty list")
    rules, seen = [], set()
    for number, raw in enumerate(document["rules"], start=1):
        label = raw.get("MetricId", "?") if isinstance(raw, dict) else "?"
        try:
            rule = _parse_rule(raw)
        except ValueError as error:
            raise ComplianceRuleError(f"{source}: rule {number} ({label}): {error}") from None
        if rule.metric_id in seen:
            raise ComplianceRuleError(f"{source}: rule {number}: duplicate MetricId {rule.metric_id!r}")
        seen.add(rule.metric_id)
        rules.append(rule)
    return rules


def load_rules(path: Path) -> list[Rule]:
    """Read and validate a rules file."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ComplianceRuleError(f"{path}: not valid YAML: {error}") from None
    return parse_rules(document, str(path))


@dataclass(frozen=True)
class Observation:
    """One measured value (``None`` when it could not be measured; ``note`` says why or how)."""

    metric: str
    value: float | None
    scenario: str | None = None
    segment: str | None = None
    feature: str | None = None
    note: str = ""


@dataclass(frozen=True)
class ComplianceRecord:
    """A rule judged on one observation: the seed schema's five fields plus context."""

    metric_id: str
    metric_name: str
    threshold: float
    actual: float | None
    status: Status
    run_id: str
    dag_id: str
    metric: str
    scope: Scope
    direction: Direction
    severity: Severity
    evaluated_at: datetime
    scenario: str | None = None
    segment: str | None = None
    feature: str | None = None
    model_version: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "MetricId": self.metric_id, "MetricName": self.metric_name, "ComplianceThreshold": self.threshold,
            "ActualValue": self.actual, "Status": self.status.value, "RunId": self.run_id, "DagId": self.dag_id,
            "Metric": self.metric, "Scope": self.scope.value, "Direction": self.direction.value,
            "Severity": self.severity.value, "Scenario": self.scenario, "Segment": self.segment,
            "Feature": self.feature, "ModelVersion": self.model_version, "Note": self.note,
            "EvaluatedAt": self.evaluated_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> ComplianceRecord:
        return cls(
            metric_id=row["MetricId"], metric_name=row["MetricName"], threshold=row["ComplianceThreshold"],
            actual=row["ActualValue"], status=Status(row["Status"]), run_id=row["RunId"], dag_id=row["DagId"],
            metric=row["Metric"], scope=Scope(row["Scope"]), direction=Direction(row["Direction"]),
            severity=Severity(row["Severity"]), evaluated_at=datetime.fromisoformat(row["EvaluatedAt"]),
            scenario=row["Scenario"], segment=row["Segment"], feature=row["Feature"],
            model_version=row["ModelVersion"], note=row["Note"],
        )


def judge(rules: list[Rule], observations: list[Observation], settings: StressSettings, *, run_id: str,
          dag_id: str, model_version: str | None, now: datetime) -> list[ComplianceRecord]:
    """Apply every rule to the observations of its metric (rules without observations do not apply)."""
    records = []
    for rule in rules:
        for seen in (o for o in observations if o.metric == rule.metric):
            threshold = rule.threshold_for(seen.segment, settings)
            measured = seen.value is not None and math.isfinite(seen.value)
            status = (Status.NOT_EVALUATED if not measured else
                      Status.COMPLIANT if rule.complies(seen.value, threshold) else Status.NON_COMPLIANT)
            note = seen.note
            if seen.value is not None and not measured:
                note = "; ".join(filter(None, (f"not a finite number ({seen.value})", seen.note)))
            records.append(ComplianceRecord(
                metric_id=rule.metric_id, metric_name=rule.metric_name, threshold=threshold,
                actual=float(seen.value) if measured else None, status=status, run_id=run_id, dag_id=dag_id,
                metric=rule.metric, scope=rule.scope, direction=rule.direction, severity=rule.severity,
                evaluated_at=now, scenario=seen.scenario, segment=seen.segment, feature=seen.feature,
                model_version=model_version if rule.scope is Scope.MODEL else None, note=note,
            ))
    return records


# --- observations --------------------------------------------------------------------------------------


def trough_label(quarter: int) -> str:
    """Where a minimum was reached: quarter 0 is the jump-off (minimums include it, docs/capital.md)."""
    return "jump-off" if quarter == 0 else f"projected quarter {quarter}"


def scenario_observations(results: list[dict[str, Any]]) -> list[Observation]:
    """Capital, losses and book composition of every scenario result of a stress run.

    The capital minimums are those of the capital projection (``metrics["capital"]``, see
    ``docs/capital.md``): the lowest CET1 ratio and Tier 1 leverage ratio (Tier 1 over total
    assets, 12 CFR 217.10(b)(4)) over the jump-off and every projected quarter.
    """
    observations = []
    for result in results:
        metrics = result["metrics"]
        scenario = metrics["scenario_id"]
        capital = metrics["capital"]
        quarters = len(metrics["loss_by_quarter"])
        observations.append(Observation("min_cet1_ratio", capital["min_cet1_ratio"], scenario,
                                        note=f"trough at {trough_label(capital['min_quarter'])}"))
        observations.append(Observation("min_tier1_leverage_ratio", capital["min_tier1_leverage_ratio"], scenario,
                                        note=f"trough at {trough_label(capital['min_leverage_quarter'])}"))
        observations.append(Observation("loss_rate", metrics["loss_rate"], scenario, note=f"{quarters} quarters"))
        observations += [Observation("segment_loss_rate", rate, scenario, segment, note=f"{quarters} quarters")
                         for segment, rate in metrics["loss_rate_by_segment"].items()]
    if results:
        # Every scenario of a run projects the same snapshot: its composition is measured once.
        exposure = results[0]["metrics"]["exposure_by_segment"]
        total = sum(exposure.values())
        snapshot = results[0]["provenance"]["snapshot_id"]
        observations += [Observation("segment_exposure_share", balance / total if total > 0 else None,
                                     segment=segment, note=f"snapshot {snapshot}")
                         for segment, balance in exposure.items()]
    return observations


def data_observations(manifest: dict[str, Any] | None) -> list[Observation]:
    """The validation pass rate of the run's loan tape."""
    if manifest is None:
        return [Observation("data_quality_pass_rate", None, note="the run has no validate step output")]
    rate = manifest["accepted_rows"] / manifest["input_rows"] if manifest["input_rows"] else None
    return [Observation("data_quality_pass_rate", rate,
                        note=f"{manifest['accepted_rows']} of {manifest['input_rows']} rows accepted, "
                             f"snapshot {manifest['snapshot_id']}")]


def model_observations(backtest: dict[str, Any] | None, drift: dict[str, Any] | None) -> list[Observation]:
    """PD model evidence of a monitoring run: back-test (AUC, calibration) and drift (PSI)."""
    backtest = backtest or {"note": "no back-test in this run"}
    drift = drift or {"note": "no drift measurement in this run", "feature_psi": {}}
    auc, calibration = backtest.get("auc"), backtest.get("calibrated_band_share")
    note = backtest["note"]
    if backtest.get("in_sample"):  # measured, but no evidence: "Not Evaluated", with the in-sample value in the note
        note = f"{note} (in-sample AUC {auc}, calibrated band share {calibration}: not judged)"
        auc = calibration = None
    observations = [Observation("pd_auc", auc, note=note),
                    Observation("pd_calibrated_band_share", calibration, note=note),
                    Observation("score_psi", drift.get("score_psi"), note=drift["note"])]
    observations += [Observation("feature_psi", drift["feature_psi"].get(feature), feature=feature, note=drift["note"])
                     for feature in DRIFT_FEATURES]
    return observations


def monitored_model_observations(latest: list[ComplianceRecord] | None, model_version: str, now: datetime,
                                 max_age: timedelta) -> list[Observation]:
    """PD model evidence for a stress run: ``latest``, the model records of the latest portfolio monitoring
    of the same model version (``None`` when there is none).

    Values are copied with a note naming the monitoring run they come from; when there is no such
    monitoring, or it is older than ``max_age``, every model metric is "Not Evaluated".
    """
    if latest is None:
        reason = f"no {MONITORING_DAG_ID} evaluation of PD model version {model_version}"
    elif now - latest[0].evaluated_at > max_age:
        reason = (f"the latest {MONITORING_DAG_ID} evaluation of PD model version {model_version} "
                  f"({latest[0].evaluated_at:%Y-%m-%d}) is older than {max_age.days} days")
    else:
        copied: dict[tuple[str, str | None], Observation] = {}
        for record in latest:
            note = f"from {MONITORING_DAG_ID} run {record.run_id} ({record.evaluated_at:%Y-%m-%d %H:%M} UTC)"
            copied.setdefault((record.metric, record.feature), Observation(
                record.metric, record.actual, feature=record.feature,
                note=note if record.actual is not None else f"{note}: {record.note}"))
        return list(copied.values())
    return [Observation(metric, None, feature=feature, note=reason)
            for metric in MODEL_METRICS for feature in (METRICS[metric].dimension_values or (None,))]


def evaluate_run(rules: list[Rule], *, run_id: str, dag_id: str, steps: dict[str, dict[str, Any]],
                 scenario_results: list[dict[str, Any]] | None, model_evidence: list[ComplianceRecord] | None,
                 settings: StressSettings,
                 now: datetime | None = None) -> list[ComplianceRecord]:
    """Records of one run from what it recorded: a stress run (with ``plan`` and scenario results) or a
    monitoring run (with ``score``, ``backtest`` and ``drift``)."""
    now = now or datetime.now(UTC)
    observations = data_observations(steps.get("validate"))
    if scenario_results is not None:
        model_version = steps["plan"]["pd_model"]["version"]
        observations += scenario_observations(scenario_results)
        observations += monitored_model_observations(model_evidence, model_version, now,
                                                     timedelta(days=settings.model_evidence_max_age_days))
    else:
        model_version = steps["score"]["model"]["version"] if "score" in steps else None
        observations += model_observations(steps.get("backtest"), steps.get("drift"))
    return judge(rules, observations, settings, run_id=run_id, dag_id=dag_id, model_version=model_version, now=now)


def status_counts(records: list[ComplianceRecord]) -> dict[str, int]:
    """How many records of each status (every status listed, zeros included)."""
    return {status.value: sum(r.status is status for r in records) for status in Status}
