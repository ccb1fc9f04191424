"""The loan store's schema version and the in-place upgrades from every earlier layout.

``create_all`` creates missing tables but never alters one that exists, so a store created by an
earlier release would keep its old ``loan_snapshots`` and fail on the first insert. The store
therefore records its layout in ``loan_store_schema`` (one row, ``version``) and, when opened,
upgrades itself step by step to :data:`SCHEMA_VERSION`:

1. the first layout: one ``loan_snapshots`` row per load (source, counts, Airflow run) and
   ``loan_quarantine`` by snapshot id, a re-load replacing both;
2. content-addressed snapshots apart from per-ingestion audit records (``ingestions``,
   ``ingestion_quarantine``);
3. ``ingestions`` with ``status``, ``failed_rule`` and ``error``, so that a tape stopped by a table
   rule keeps its record (its counts and input hash may then be NULL).

The steps are written with Alembic's operations (batch mode rebuilds a SQLite table, which cannot
alter a column in place), driven from here rather than from an ``alembic.ini`` and ``env.py``: the
store is opened, and so upgraded, by the application on a laptop's SQLite file as well as on
PostgreSQL, with the URL it already has; an operator never runs a migration command. Each step's
tables are spelled out as they were then, not derived from today's code, so an old store is read as
it really is. The whole upgrade is one transaction (PostgreSQL and SQLite both have transactional
DDL), serialised between processes that open the store at once: an advisory lock on PostgreSQL, an
immediate write lock on SQLite. A crash leaves the old layout intact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

SCHEMA_VERSION = 3
VERSION_TABLE = "loan_store_schema"
_ADVISORY_LOCK = "loanstress.loan_store_schema"


def ensure_schema(engine: sa.Engine, metadata: sa.MetaData) -> int:
    """Create the store at :data:`SCHEMA_VERSION`, or upgrade it in place; returns the version it had (0: new)."""
    with _schema_transaction(engine) as connection:
        found = _found_version(connection)
        if found == 0:
            metadata.create_all(connection)
        else:
            operations = Operations(MigrationContext.configure(connection))
            for version in range(found, SCHEMA_VERSION):
                _UPGRADES[version](operations, connection)
        if found < SCHEMA_VERSION:
            _write_version(connection, SCHEMA_VERSION)
        elif found > SCHEMA_VERSION:
            raise RuntimeError(f"the loan store is at schema version {found}, newer than this release "
                               f"({SCHEMA_VERSION}): upgrade loanstress before opening it")
    return found


@contextmanager
def _schema_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction that holds the schema lock until it commits.

    pysqlite opens a transaction only before DML and runs DDL outside any: the SQLite connection is
    switched to explicit transactions and begins one with ``BEGIN IMMEDIATE`` (the write lock at once,
    so a second process waits instead of reading the old version and upgrading it twice).
    """
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            driver = connection.connection.driver_connection
            previous = driver.isolation_level
            driver.isolation_level = None
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    connection.exec_driver_sql("ROLLBACK")
                    raise
                connection.exec_driver_sql("COMMIT")
            finally:
                driver.isolation_level = previous
        return
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _ADVISORY_LOCK})
        yield connection


def _found_version(connection: sa.Connection) -> int:
    """The recorded version; for a store from before versions were recorded, the layout its tables have."""
    inspector = sa.inspect(connection)
    tables = set(inspector.get_table_names())
    if VERSION_TABLE in tables:
        return connection.execute(sa.text(f"SELECT version FROM {VERSION_TABLE}")).scalar_one()
    if "loan_snapshots" not in tables:
        return 0
    columns = {column["name"] for column in inspector.get_columns("loan_snapshots")}
    if "source" in columns:
        return 1
    ingestion_columns = {column["name"] for column in inspector.get_columns("ingestions")}
    return 3 if "status" in ingestion_columns else 2


def _write_version(connection: sa.Connection, version: int) -> None:
    connection.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version INTEGER NOT NULL)")
    connection.exec_driver_sql(f"DELETE FROM {VERSION_TABLE}")
    connection.execute(sa.text(f"INSERT INTO {VERSION_TABLE} (version) VALUES (:version)"), {"version": version})


def _upgrade_from_1(op: Operations, connection: sa.Connection) -> None:
    """Per-load snapshot rows -> content-addressed snapshots beside per-ingestion audit records.

    Each old load becomes one ingestion whose id is its snapshot id (24 hex digits, never equal to the
    32 of a new ingestion id): its source, counts, Airflow run, time and quarantine move there. The
    first layout kept no input or content hash, so both stay NULL for these records.
    """
    op.create_table(
        "ingestions",
        sa.Column("ingestion_id", sa.String(32), primary_key=True),
        sa.Column("airflow_run_id", sa.Text),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("input_sha256", sa.String(64)),
        sa.Column("as_of", sa.Date),
        sa.Column("input_rows", sa.BigInteger, nullable=False),
        sa.Column("accepted_rows", sa.BigInteger, nullable=False),
        sa.Column("quarantined_rows", sa.BigInteger, nullable=False),
        sa.Column("snapshot_id", sa.String(64), sa.ForeignKey("loan_snapshots.snapshot_id")),
        sa.Column("quarantine_uri", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "ingestion_quarantine",
        sa.Column("ingestion_id", sa.String(32), sa.ForeignKey("ingestions.ingestion_id"), primary_key=True),
        sa.Column("row_number", sa.BigInteger, primary_key=True),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("raw_record", sa.Text, nullable=False),
    )
    connection.exec_driver_sql(
        "INSERT INTO ingestions (ingestion_id, airflow_run_id, source, input_sha256, as_of, input_rows, "
        "accepted_rows, quarantined_rows, snapshot_id, quarantine_uri, created_at) "
        "SELECT snapshot_id, airflow_run_id, source, NULL, as_of, input_rows, accepted_rows, quarantined_rows, "
        "snapshot_id, quarantine_uri, loaded_at FROM loan_snapshots")
    connection.exec_driver_sql(
        "INSERT INTO ingestion_quarantine (ingestion_id, row_number, reasons, raw_record) "
        "SELECT snapshot_id, row_number, reasons, raw_record FROM loan_quarantine")
    with op.batch_alter_table("loan_snapshots") as batch:
        batch.add_column(sa.Column("content_sha256", sa.String(64)))
        batch.add_column(sa.Column("first_ingestion_id", sa.String(32)))
        for column in ("source", "as_of", "input_rows", "quarantined_rows", "quarantine_uri", "airflow_run_id"):
            batch.drop_column(column)
    connection.exec_driver_sql("UPDATE loan_snapshots SET first_ingestion_id = snapshot_id")
    with op.batch_alter_table("loan_snapshots") as batch:
        batch.alter_column("first_ingestion_id", existing_type=sa.String(32), nullable=False)
    op.drop_table("loan_quarantine")


def _upgrade_from_2(op: Operations, connection: sa.Connection) -> None:
    """Ingestion records gain their outcome; what a rejected tape may not have becomes optional.

    An old record without a snapshot was a tape with no acceptable row, the one rejection the second
    layout recorded.
    """
    with op.batch_alter_table("ingestions") as batch:
        batch.add_column(sa.Column("status", sa.String(16)))
        batch.add_column(sa.Column("failed_rule", sa.Text))
        batch.add_column(sa.Column("error", sa.Text))
        batch.alter_column("input_sha256", existing_type=sa.String(64), nullable=True)
        for column in ("input_rows", "accepted_rows", "quarantined_rows"):
            batch.alter_column(column, existing_type=sa.BigInteger(), nullable=True)
        batch.alter_column("quarantine_uri", existing_type=sa.Text(), nullable=True)
    connection.exec_driver_sql(
        "UPDATE ingestions SET status = CASE WHEN snapshot_id IS NULL THEN 'rejected' ELSE 'published' END, "
        "failed_rule = CASE WHEN snapshot_id IS NULL THEN 'no_acceptable_row' END")
    with op.batch_alter_table("ingestions") as batch:
        batch.alter_column("status", existing_type=sa.String(16), nullable=False)
    with op.batch_alter_table("loan_snapshots") as batch:
        batch.alter_column("content_sha256", existing_type=sa.String(64), nullable=True)


_UPGRADES: dict[int, Callable[[Operations, sa.Connection], None]] = {1: _upgrade_from_1, 2: _upgrade_from_2}
