"""Compliance tasks both ``loan_stress_test`` and ``portfolio_monitoring`` end with: store and summarise
the records, publish them as metrics with their alarms, and the gate that makes a breach visible.
"""

from __future__ import annotations

import json
from typing import Any

from pipelines.adapters.object_store import ObjectStore
from pipelines.compliance.rules import ComplianceRecord, Status, format_measure, status_counts
from pipelines.composition import Adapters, current_adapters
from pipelines.tasks.policy import task_entry
from pipelines.tasks.runs import log, record_step, run_prefix


def breach_lines(records: list[ComplianceRecord]) -> list[str]:
    """One line per Non-Compliant record: what, where, threshold and actual value."""
    lines = []
    for record in records:
        if record.status is Status.NON_COMPLIANT:
            where = " / ".join(filter(None, (record.scenario, record.segment, record.feature))) or "portfolio"
            lines.append(f"{record.metric_id} ({where}): actual {format_measure(record.metric, record.actual)} "
                         f"vs threshold {format_measure(record.metric, record.threshold)} [{record.severity.value}]")
    return lines


def compliance_outcome(adapters: Adapters, records: list[ComplianceRecord], run_id: str,
                       dag_id: str) -> dict[str, Any]:
    """Store a run's records beside earlier runs', log the breaches, return their counts, breaches and key.

    The records themselves (a few hundred bytes each, dozens per run) go to
    ``runs/<run>/compliance/records.json``; the task's XCom stays a few hundred bytes.
    """
    adapters.results_store.save_compliance(run_id, dag_id, records)
    adapters.cache.invalidate()  # the services' cached compliance status now shows this run
    counts = status_counts(records)
    breaches = breach_lines(records)
    if breaches:
        log.warning("COMPLIANCE: %d of %d checks Non-Compliant in run %s:\n  %s", len(breaches), len(records),
                    run_id, "\n  ".join(breaches))
    else:
        log.info("compliance: %s", counts)
    store = adapters.object_store
    key = f"{run_prefix(run_id)}/compliance/records.json"
    uri = store.put_bytes(key, json.dumps([record.to_dict() for record in records], indent=2).encode())
    return record_step(store, run_id, "compliance", {
        "status": counts, "breaches": breaches, "records_key": key, "records_uri": uri})


def load_compliance_records(store: ObjectStore, compliance_result: dict[str, Any]) -> list[ComplianceRecord]:
    """The records a compliance task stored (``compliance_result`` is its output)."""
    return [ComplianceRecord.from_dict(r) for r in json.loads(store.get_bytes(compliance_result["records_key"]))]


@task_entry
def emit_metrics(compliance_result: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Publish the run's compliance records to the metrics sink and make sure the rules' alarms exist."""
    from pipelines.adapters.metrics_sink import publish_compliance
    from pipelines.compliance.rules import load_rules

    adapters = current_adapters()
    settings = adapters.settings
    records = load_compliance_records(adapters.object_store, compliance_result)
    published = publish_compliance(records, load_rules(settings.compliance_rules_path), settings,
                                   adapters.metrics_sink)
    log.info("published %s data points and %s alarms (%s)", published["datapoints"], published["alarms"],
             published["target"])
    return record_step(adapters.object_store, run_id, "metrics", published)


@task_entry
def compliance_gate(compliance_result: dict[str, Any]) -> dict[str, Any]:
    """The run's compliance verdict as a task of its own: fails on a breach when STRESS_FAIL_ON_COMPLIANCE_BREACH.

    Otherwise it succeeds and its log and return value carry the breach summary, so the outcome is
    visible on the run's graph without opening the report.
    """
    breaches = compliance_result["breaches"]
    if breaches and current_adapters().settings.fail_on_compliance_breach:
        raise ValueError(f"{len(breaches)} compliance checks Non-Compliant (STRESS_FAIL_ON_COMPLIANCE_BREACH=true): "
                         + "; ".join(breaches))
    for line in breaches:
        log.warning("Non-Compliant: %s", line)
    return {"non_compliant": len(breaches), "status": compliance_result["status"], "breaches": breaches}
