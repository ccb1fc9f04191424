"""Results store: simulation results (and, beside them, compliance records) in SQL, with history.

Same database as the loan store (SQLite embedded, PostgreSQL when configured). A simulation id is
deterministic, so re-running the same reduce replaces its own row instead of adding a duplicate.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from pipelines.adapters.sql import open_engine
from pipelines.compliance.rules import ComplianceRecord

_metadata = sa.MetaData()
SIMULATION_RESULTS = sa.Table(
    "simulation_results", _metadata,
    sa.Column("simulation_id", sa.String(40), primary_key=True),
    sa.Column("airflow_run_id", sa.Text, nullable=False),
    sa.Column("scenario_id", sa.String(128), nullable=False),
    sa.Column("snapshot_id", sa.String(64), nullable=False),
    sa.Column("scenario_description", sa.Text, nullable=False),
    sa.Column("interest_rate_scenario", sa.Numeric(12, 8), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=False),
    sa.Column("overall_impact", sa.Numeric(20, 2), nullable=False),
    sa.Column("affected_loans_uri", sa.Text, nullable=False),
    sa.Column("result_json", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
# One row per (run, rule, scenario/segment/feature): the compliance history of every run.
COMPLIANCE_RECORDS = sa.Table(
    "compliance_records", _metadata,
    sa.Column("record_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("airflow_run_id", sa.Text, nullable=False, index=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("metric_id", sa.String(64), nullable=False, index=True),
    sa.Column("metric_name", sa.Text, nullable=False),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("scenario_id", sa.String(128)),
    sa.Column("segment", sa.String(64)),
    sa.Column("feature", sa.String(64)),
    sa.Column("compliance_threshold", sa.Float, nullable=False),
    sa.Column("actual_value", sa.Float),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("direction", sa.String(3), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("model_version", sa.String(128)),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
)
# The final status of every run (written by the run's teardown, whatever happened before it).
RUN_STATUS = sa.Table(
    "run_status", _metadata,
    sa.Column("airflow_run_id", sa.String(250), primary_key=True),
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("detail_json", sa.Text, nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
)
# What fixed each published run (data, model, scenarios, parameters): the previous run's inputs for attribution.
PUBLISHED_RUNS = sa.Table(
    "published_runs", _metadata,
    sa.Column("airflow_run_id", sa.String(250), primary_key=True),
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("inputs_json", sa.Text, nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
)
# The run-to-run attribution of each run: one row per (scenario, measure, waterfall step), in order.
ATTRIBUTION = sa.Table(
    "run_attribution", _metadata,
    sa.Column("airflow_run_id", sa.String(250), primary_key=True),
    sa.Column("dag_id", sa.String(250), primary_key=True),
    sa.Column("scenario_id", sa.String(128), primary_key=True),
    sa.Column("metric", sa.String(64), primary_key=True),
    sa.Column("step", sa.String(32), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("previous_run_id", sa.String(250), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
)
_RECORD_COLUMNS = {  # ComplianceRecord.to_dict() key -> column
    "MetricId": "metric_id", "MetricName": "metric_name", "ComplianceThreshold": "compliance_threshold",
    "ActualValue": "actual_value", "Status": "status", "RunId": "airflow_run_id", "DagId": "dag_id",
    "Metric": "metric", "Scope": "scope", "Direction": "direction", "Severity": "severity",
    "Scenario": "scenario_id", "Segment": "segment", "Feature": "feature", "ModelVersion": "model_version",
    "Note": "note", "EvaluatedAt": "evaluated_at",
}


def _compliance_record(row: sa.Row) -> ComplianceRecord:
    values = {key: getattr(row, column) for key, column in _RECORD_COLUMNS.items()}
    evaluated_at = values["EvaluatedAt"]  # SQLite gives back naive datetimes: they were written in UTC
    values["EvaluatedAt"] = (evaluated_at if evaluated_at.tzinfo else evaluated_at.replace(tzinfo=UTC)).isoformat()
    return ComplianceRecord.from_dict(values)


class ResultsStore:
    """Simulation results by id; the latest per scenario is what services and dashboards show."""

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)
        _metadata.create_all(self.engine)

    @staticmethod
    def _simulation_row(result: dict[str, Any], airflow_run_id: str) -> dict[str, Any]:
        from decimal import Decimal

        return {
            "simulation_id": result["SimulationId"], "airflow_run_id": airflow_run_id,
            "scenario_id": result["metrics"]["scenario_id"], "snapshot_id": result["provenance"]["snapshot_id"],
            "scenario_description": result["ScenarioDescription"],
            "interest_rate_scenario": Decimal(str(result["InterestRateScenario"])),
            "start_date": date.fromisoformat(result["StartDate"]), "end_date": date.fromisoformat(result["EndDate"]),
            "overall_impact": Decimal(str(result["OverallImpact"])), "affected_loans_uri": result["AffectedLoans"],
            "result_json": json.dumps(result), "created_at": datetime.now(UTC),
        }

    def publish_simulations(self, results: list[dict[str, Any]], airflow_run_id: str, dag_id: str | None = None,
                            run_inputs: dict[str, Any] | None = None) -> None:
        """Make a run's checked results visible, all scenarios in one transaction (all or none).

        With ``dag_id`` and ``run_inputs`` (what fixed the run), the same transaction records the run as
        published, so the next run of the DAG finds it as its previous run (:meth:`previous_published_run`).
        """
        with self.engine.begin() as connection:
            for result in results:
                row = self._simulation_row(result, airflow_run_id)
                connection.execute(SIMULATION_RESULTS.delete().where(
                    SIMULATION_RESULTS.c.simulation_id == row["simulation_id"]))
                connection.execute(SIMULATION_RESULTS.insert(), [row])
            if dag_id is not None and run_inputs is not None:
                connection.execute(PUBLISHED_RUNS.delete().where(
                    (PUBLISHED_RUNS.c.airflow_run_id == airflow_run_id) & (PUBLISHED_RUNS.c.dag_id == dag_id)))
                connection.execute(PUBLISHED_RUNS.insert(), [{
                    "airflow_run_id": airflow_run_id, "dag_id": dag_id, "inputs_json": json.dumps(run_inputs),
                    "published_at": datetime.now(UTC)}])

    def previous_published_run(self, dag_id: str, airflow_run_id: str) -> dict[str, Any] | None:
        """The latest run of ``dag_id`` published before ``airflow_run_id`` was (any, if it was not): its id and
        recorded inputs, or None when there is none."""
        table = PUBLISHED_RUNS
        with self.engine.connect() as connection:
            own = connection.execute(sa.select(table.c.published_at).where(
                (table.c.airflow_run_id == airflow_run_id) & (table.c.dag_id == dag_id))).scalar_one_or_none()
            earlier = (table.c.dag_id == dag_id) & (table.c.airflow_run_id != airflow_run_id)
            if own is not None:
                earlier &= table.c.published_at <= own
            row = connection.execute(sa.select(table).where(earlier).order_by(
                table.c.published_at.desc(), table.c.airflow_run_id.desc()).limit(1)).one_or_none()
        if row is None:
            return None
        return {"run_id": row.airflow_run_id, "inputs": json.loads(row.inputs_json)}

    def save_attribution(self, airflow_run_id: str, dag_id: str, previous_run_id: str,
                         rows: list[dict[str, Any]]) -> None:
        """Replace a run's attribution rows (``scenario_id``, ``metric``, ``step``, ``value``, in waterfall order)."""
        with self.engine.begin() as connection:
            connection.execute(ATTRIBUTION.delete().where(
                (ATTRIBUTION.c.airflow_run_id == airflow_run_id) & (ATTRIBUTION.c.dag_id == dag_id)))
            if rows:
                connection.execute(ATTRIBUTION.insert(), [
                    {**row, "airflow_run_id": airflow_run_id, "dag_id": dag_id, "previous_run_id": previous_run_id,
                     "position": position} for position, row in enumerate(rows)])

    def attribution_of_run(self, airflow_run_id: str, dag_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(ATTRIBUTION).where(
                (ATTRIBUTION.c.airflow_run_id == airflow_run_id) & (ATTRIBUTION.c.dag_id == dag_id))
                .order_by(ATTRIBUTION.c.position)).all()
        return [{"scenario_id": r.scenario_id, "metric": r.metric, "step": r.step, "value": r.value,
                 "previous_run_id": r.previous_run_id} for r in rows]

    def save_run_status(self, airflow_run_id: str, dag_id: str, status: str, detail: dict[str, Any]) -> None:
        with self.engine.begin() as connection:
            connection.execute(RUN_STATUS.delete().where(
                (RUN_STATUS.c.airflow_run_id == airflow_run_id) & (RUN_STATUS.c.dag_id == dag_id)))
            connection.execute(RUN_STATUS.insert(), [{
                "airflow_run_id": airflow_run_id, "dag_id": dag_id, "status": status,
                "detail_json": json.dumps(detail, default=str), "finished_at": datetime.now(UTC)}])

    def run_status(self, airflow_run_id: str, dag_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(RUN_STATUS).where(
                (RUN_STATUS.c.airflow_run_id == airflow_run_id) & (RUN_STATUS.c.dag_id == dag_id))).one_or_none()
        return None if row is None else {"status": row.status, "detail": json.loads(row.detail_json),
                                         "finished_at": row.finished_at}

    def simulation(self, simulation_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            text = connection.execute(sa.select(SIMULATION_RESULTS.c.result_json).where(
                SIMULATION_RESULTS.c.simulation_id == simulation_id)).scalar_one_or_none()
        return json.loads(text) if text else None

    def simulations_of_run(self, airflow_run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            texts = connection.execute(sa.select(SIMULATION_RESULTS.c.result_json).where(
                SIMULATION_RESULTS.c.airflow_run_id == airflow_run_id)
                .order_by(SIMULATION_RESULTS.c.scenario_id)).scalars().all()
        return [json.loads(text) for text in texts]

    def save_compliance(self, run_id: str, dag_id: str, records: list[ComplianceRecord]) -> None:
        """Replace the records of one run (a re-run replaces its own), keeping every other run's as history."""
        strangers = {(r.run_id, r.dag_id) for r in records} - {(run_id, dag_id)}
        if strangers:
            raise ValueError(f"records of other runs {sorted(strangers)} given to save for {dag_id} run {run_id}")
        rows = []
        for record in records:
            values = record.to_dict()
            row = {column: values[key] for key, column in _RECORD_COLUMNS.items()}
            rows.append(row | {"evaluated_at": record.evaluated_at})
        with self.engine.begin() as connection:
            connection.execute(COMPLIANCE_RECORDS.delete().where(
                (COMPLIANCE_RECORDS.c.airflow_run_id == run_id) & (COMPLIANCE_RECORDS.c.dag_id == dag_id)))
            if rows:
                connection.execute(COMPLIANCE_RECORDS.insert(), rows)

    def compliance_of_run(self, run_id: str) -> list[ComplianceRecord]:
        """The records of one run, in evaluation order."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(COMPLIANCE_RECORDS).where(
                COMPLIANCE_RECORDS.c.airflow_run_id == run_id).order_by(COMPLIANCE_RECORDS.c.record_id)).all()
        return [_compliance_record(row) for row in rows]

    def latest_model_compliance(self, dag_id: str, model_version: str) -> list[ComplianceRecord] | None:
        """The model-scope records of the latest ``dag_id`` run that evaluated ``model_version``, if any."""
        table = COMPLIANCE_RECORDS
        evaluated = (table.c.dag_id == dag_id) & (table.c.model_version == model_version) & (table.c.scope == "model")
        with self.engine.connect() as connection:
            latest_run = connection.execute(sa.select(table.c.airflow_run_id).where(evaluated).order_by(
                table.c.evaluated_at.desc(), table.c.record_id.desc()).limit(1)).scalar_one_or_none()
            if latest_run is None:
                return None
            rows = connection.execute(sa.select(table).where(evaluated & (table.c.airflow_run_id == latest_run))
                                      .order_by(table.c.record_id)).all()
        return [_compliance_record(row) for row in rows]

    def latest_compliance(self, metric_id: str) -> list[ComplianceRecord]:
        """The records of ``metric_id`` from the latest run that evaluated it (one per scenario/segment/feature)."""
        table = COMPLIANCE_RECORDS
        with self.engine.connect() as connection:
            latest_run = connection.execute(sa.select(table.c.airflow_run_id, table.c.dag_id).where(
                table.c.metric_id == metric_id).order_by(table.c.evaluated_at.desc(), table.c.record_id.desc())
                .limit(1)).one_or_none()
            if latest_run is None:
                return []
            rows = connection.execute(sa.select(table).where(
                (table.c.metric_id == metric_id) & (table.c.airflow_run_id == latest_run.airflow_run_id)
                & (table.c.dag_id == latest_run.dag_id)).order_by(table.c.record_id)).all()
        return [_compliance_record(row) for row in rows]

    def published_runs(self, limit: int) -> list[dict[str, Any]]:
        """The latest ``limit`` runs that published results: run id, publication time, scenarios and final status."""
        results = SIMULATION_RESULTS
        with self.engine.connect() as connection:
            runs = connection.execute(sa.select(results.c.airflow_run_id, sa.func.max(results.c.created_at)
                                                .label("published_at")).group_by(results.c.airflow_run_id)
                                      .order_by(sa.desc("published_at")).limit(limit)).all()
            listed = []
            for run in runs:
                scenarios = connection.execute(sa.select(results.c.scenario_id, results.c.simulation_id).where(
                    results.c.airflow_run_id == run.airflow_run_id).order_by(results.c.scenario_id)).all()
                status = connection.execute(sa.select(RUN_STATUS.c.status).where(
                    RUN_STATUS.c.airflow_run_id == run.airflow_run_id)).scalar_one_or_none()
                published_at = run.published_at
                listed.append({"airflow_run_id": run.airflow_run_id, "status": status,
                               "published_at": published_at if published_at.tzinfo
                               else published_at.replace(tzinfo=UTC),
                               "simulations": {s.scenario_id: s.simulation_id for s in scenarios}})
        return listed

    def latest_simulation_of_scenario(self, scenario_id: str) -> dict[str, Any] | None:
        """The latest published result of a scenario, or None."""
        with self.engine.connect() as connection:
            text = connection.execute(sa.select(SIMULATION_RESULTS.c.result_json).where(
                SIMULATION_RESULTS.c.scenario_id == scenario_id).order_by(SIMULATION_RESULTS.c.created_at.desc())
                .limit(1)).scalar_one_or_none()
        return json.loads(text) if text else None

    def compliance_history(self, metric_id: str, runs: int) -> list[ComplianceRecord]:
        """The records of ``metric_id`` from the latest ``runs`` runs that evaluated it, oldest run first (the
        trend of a metric across runs; one record per scenario/segment/feature of each run)."""
        table = COMPLIANCE_RECORDS
        with self.engine.connect() as connection:
            latest = connection.execute(sa.select(table.c.airflow_run_id, sa.func.max(table.c.evaluated_at)
                                                  .label("evaluated_at")).where(table.c.metric_id == metric_id)
                                        .group_by(table.c.airflow_run_id).order_by(sa.desc("evaluated_at"))
                                        .limit(runs)).all()
            if not latest:
                return []
            rows = connection.execute(sa.select(table).where(
                (table.c.metric_id == metric_id) & table.c.airflow_run_id.in_([r.airflow_run_id for r in latest]))
                .order_by(table.c.evaluated_at, table.c.record_id)).all()
        return [_compliance_record(row) for row in rows]
