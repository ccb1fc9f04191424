"""Service store: loan amendments (the audit trail of every update) and simulation requests.

Lives in the results database (SQLite embedded, PostgreSQL when configured). Its tables are created
and changed by the Alembic migrations in ``service_migrations/`` (run on open, idempotent), with a
version table of their own so they never touch another Alembic history in the same database.

An amendment is never applied here: it is recorded ``pending`` and the next ingest applies it to
the loans it accepts (:mod:`pipelines.data.amendments`), then marks it ``applied`` (or
``rejected`` with the reason) with the ingestion and snapshot that carry it. Published snapshots
are never rewritten.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pipelines.adapters.sql import open_engine

MIGRATIONS = Path(__file__).resolve().parent / "service_migrations"
PENDING, APPLIED, REJECTED = "pending", "applied", "rejected"

_metadata = sa.MetaData()
LOAN_AMENDMENTS = sa.Table(
    "loan_amendments", _metadata,
    sa.Column("amendment_id", sa.String(32), primary_key=True),
    sa.Column("loan_id", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("base_snapshot_id", sa.String(64), nullable=False),
    sa.Column("changes_json", sa.Text, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("ingestion_id", sa.String(32)),
    sa.Column("snapshot_id", sa.String(64)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolution_note", sa.Text),
)
SIMULATION_REQUESTS = sa.Table(
    "simulation_requests", _metadata,
    sa.Column("simulation_id", sa.String(40), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("scenario_description", sa.Text, nullable=False),
    sa.Column("interest_rate_scenario", sa.String(40), nullable=False),
    sa.Column("conf_json", sa.Text, nullable=False),
    sa.Column("launcher", sa.String(16), nullable=False),
    sa.Column("airflow_run_id", sa.String(250)),
    sa.Column("error", sa.Text),
    sa.Column("requested_by", sa.String(256), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


class VersionConflict(Exception):
    """Another writer recorded this version of the loan first."""


def upgrade(engine: sa.Engine) -> None:
    """Bring the services' tables to the latest migration (a no-op when they are there)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; they were written in UTC."""
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def _amendment(row: sa.Row) -> dict[str, Any]:
    values = dict(row._mapping)
    values["changes"] = json.loads(values.pop("changes_json"))
    for key in ("created_at", "resolved_at"):
        values[key] = _aware(values[key])
    return values


class ServiceStore:
    """Amendments by loan and status; simulation requests by id."""

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)
        upgrade(self.engine)

    # Amendments -------------------------------------------------------------------------------

    def record_amendment(self, loan_id: str, version: int, base_snapshot_id: str,
                         changes: dict[str, dict[str, str | None]], actor: str, reason: str) -> dict[str, Any]:
        """Record version ``version`` of ``loan_id``; raises :class:`VersionConflict` if it exists already.

        The unique (loan_id, version) constraint makes the check and the write one atomic step, so
        of two concurrent updates made from the same version exactly one commits.
        """
        row = {"amendment_id": uuid.uuid4().hex, "loan_id": loan_id, "version": version,
               "base_snapshot_id": base_snapshot_id, "changes_json": json.dumps(changes, sort_keys=True),
               "actor": actor, "reason": reason, "created_at": datetime.now(UTC), "status": PENDING}
        try:
            with self.engine.begin() as connection:
                connection.execute(LOAN_AMENDMENTS.insert(), [row])
        except sa.exc.IntegrityError as error:
            raise VersionConflict(f"version {version} of loan {loan_id} was recorded by another update") from error
        return self.amendment(row["amendment_id"])

    def amendment(self, amendment_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(LOAN_AMENDMENTS).where(
                LOAN_AMENDMENTS.c.amendment_id == amendment_id)).one_or_none()
        return None if row is None else _amendment(row)

    def amendments_of_loan(self, loan_id: str) -> list[dict[str, Any]]:
        """Every amendment of a loan, oldest first (its audit trail)."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(LOAN_AMENDMENTS).where(LOAN_AMENDMENTS.c.loan_id == loan_id)
                                      .order_by(LOAN_AMENDMENTS.c.version)).all()
        return [_amendment(row) for row in rows]

    def pending_amendments(self) -> list[dict[str, Any]]:
        """Amendments no ingest has applied yet, by loan then version (the order they apply in)."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(LOAN_AMENDMENTS).where(LOAN_AMENDMENTS.c.status == PENDING)
                                      .order_by(LOAN_AMENDMENTS.c.loan_id, LOAN_AMENDMENTS.c.version)).all()
        return [_amendment(row) for row in rows]

    def resolve_amendments(self, outcomes: dict[str, tuple[str, str]], ingestion_id: str,
                           snapshot_id: str | None) -> None:
        """Mark amendments ``applied`` or ``rejected`` by the ingestion that met them: {id: (status, note)}."""
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            for amendment_id, (status, note) in outcomes.items():
                connection.execute(LOAN_AMENDMENTS.update().where(
                    (LOAN_AMENDMENTS.c.amendment_id == amendment_id) & (LOAN_AMENDMENTS.c.status == PENDING))
                    .values(status=status, ingestion_id=ingestion_id, snapshot_id=snapshot_id, resolved_at=now,
                            resolution_note=note))

    # Simulation requests ----------------------------------------------------------------------

    def record_simulation_request(self, simulation_id: str, scenario_description: str,
                                  interest_rate_scenario: str, conf: dict[str, Any], launcher: str,
                                  requested_by: str) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            connection.execute(SIMULATION_REQUESTS.insert(), [{
                "simulation_id": simulation_id, "status": "queued", "scenario_description": scenario_description,
                "interest_rate_scenario": interest_rate_scenario, "conf_json": json.dumps(conf, sort_keys=True),
                "launcher": launcher, "requested_by": requested_by, "created_at": now, "updated_at": now}])

    def update_simulation_request(self, simulation_id: str, *, status: str, airflow_run_id: str | None = None,
                                  error: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": datetime.now(UTC)}
        if airflow_run_id is not None:
            values["airflow_run_id"] = airflow_run_id
        if error is not None:
            values["error"] = error
        with self.engine.begin() as connection:
            connection.execute(SIMULATION_REQUESTS.update().where(
                SIMULATION_REQUESTS.c.simulation_id == simulation_id).values(**values))

    def simulation_request(self, simulation_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(SIMULATION_REQUESTS).where(
                SIMULATION_REQUESTS.c.simulation_id == simulation_id)).one_or_none()
        if row is None:
            return None
        values = dict(row._mapping)
        values["conf"] = json.loads(values.pop("conf_json"))
        for key in ("created_at", "updated_at"):
            values[key] = _aware(values[key])
        return values
