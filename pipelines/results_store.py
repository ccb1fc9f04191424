"""Results store: simulation results (and, beside them, compliance records) in SQL, with history.

Same database as the loan store (SQLite embedded, PostgreSQL when configured). A simulation id is
deterministic, so re-running the same reduce replaces its own row instead of adding a duplicate.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

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


class ResultsStore:
    """Simulation results by id; the latest per scenario is what services and dashboards show."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        _metadata.create_all(self.engine)

    def save_simulation(self, result: dict[str, Any], airflow_run_id: str) -> None:
        from decimal import Decimal

        row = {
            "simulation_id": result["SimulationId"], "airflow_run_id": airflow_run_id,
            "scenario_id": result["metrics"]["scenario_id"], "snapshot_id": result["provenance"]["snapshot_id"],
            "scenario_description": result["ScenarioDescription"],
            "interest_rate_scenario": Decimal(str(result["InterestRateScenario"])),
            "start_date": date.fromisoformat(result["StartDate"]), "end_date": date.fromisoformat(result["EndDate"]),
            "overall_impact": Decimal(str(result["OverallImpact"])), "affected_loans_uri": result["AffectedLoans"],
            "result_json": json.dumps(result), "created_at": datetime.now(UTC),
        }
        with self.engine.begin() as connection:
            connection.execute(SIMULATION_RESULTS.delete().where(
                SIMULATION_RESULTS.c.simulation_id == row["simulation_id"]))
            connection.execute(SIMULATION_RESULTS.insert(), [row])

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
