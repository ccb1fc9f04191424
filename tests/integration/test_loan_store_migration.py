"""A loan store created by an earlier release is upgraded in place, on SQLite and on PostgreSQL.

The old layouts are built here as their releases defined them (``pipelines/adapters/loan_store.py``
at 2aee867 for the first, at c4e8879 for the second), filled, then opened with today's store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from pipelines.adapters.loan_store import LoanStore
from pipelines.adapters.loan_store_schema import SCHEMA_VERSION, VERSION_TABLE, ensure_schema
from pipelines.data.contract import FIELDS
from pipelines.data.synthetic import generate_loan_book

LOADED_AT = datetime(2025, 6, 30, 12, tzinfo=UTC)
STORE_TABLES = ("loan_snapshots", "loans", "ingestions", "ingestion_quarantine")


def loans_table(meta: sa.MetaData, is_sqlite: bool) -> sa.Table:
    """``loans`` as both earlier layouts had it."""
    def sql_type(f) -> sa.types.TypeEngine:
        if pa.types.is_decimal(f.arrow_type):
            return sa.String(40) if is_sqlite else sa.Numeric(f.arrow_type.precision, f.arrow_type.scale)
        if pa.types.is_date(f.arrow_type):
            return sa.Date()
        if pa.types.is_integer(f.arrow_type):
            return sa.Integer()
        return sa.String(f.max_length or 64)

    return sa.Table("loans", meta, sa.Column("snapshot_id", sa.String(64), primary_key=True),
                    *[sa.Column(f.name, sql_type(f), primary_key=f.name == "LoanId", nullable=f.nullable)
                      for f in FIELDS])


def first_layout(meta: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    snapshots = sa.Table(
        "loan_snapshots", meta,
        sa.Column("snapshot_id", sa.String(64), primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("as_of", sa.Date),
        sa.Column("input_rows", sa.BigInteger, nullable=False),
        sa.Column("accepted_rows", sa.BigInteger, nullable=False),
        sa.Column("quarantined_rows", sa.BigInteger, nullable=False),
        sa.Column("snapshot_uri", sa.Text, nullable=False),
        sa.Column("quarantine_uri", sa.Text, nullable=False),
        sa.Column("airflow_run_id", sa.Text),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    )
    quarantine = sa.Table(
        "loan_quarantine", meta,
        sa.Column("snapshot_id", sa.String(64), primary_key=True),
        sa.Column("row_number", sa.BigInteger, primary_key=True),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("raw_record", sa.Text, nullable=False),
    )
    return snapshots, quarantine


def second_layout(meta: sa.MetaData) -> tuple[sa.Table, sa.Table, sa.Table]:
    snapshots = sa.Table(
        "loan_snapshots", meta,
        sa.Column("snapshot_id", sa.String(64), primary_key=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("accepted_rows", sa.BigInteger, nullable=False),
        sa.Column("snapshot_uri", sa.Text, nullable=False),
        sa.Column("first_ingestion_id", sa.String(32), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    )
    ingestions = sa.Table(
        "ingestions", meta,
        sa.Column("ingestion_id", sa.String(32), primary_key=True),
        sa.Column("airflow_run_id", sa.Text),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("as_of", sa.Date),
        sa.Column("input_rows", sa.BigInteger, nullable=False),
        sa.Column("accepted_rows", sa.BigInteger, nullable=False),
        sa.Column("quarantined_rows", sa.BigInteger, nullable=False),
        sa.Column("snapshot_id", sa.String(64), sa.ForeignKey("loan_snapshots.snapshot_id")),
        sa.Column("quarantine_uri", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    quarantine = sa.Table(
        "ingestion_quarantine", meta,
        sa.Column("ingestion_id", sa.String(32), sa.ForeignKey("ingestions.ingestion_id"), primary_key=True),
        sa.Column("row_number", sa.BigInteger, primary_key=True),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("raw_record", sa.Text, nullable=False),
    )
    return snapshots, ingestions, quarantine


def loan_rows(loans: pa.Table, snapshot_id: str, is_sqlite: bool) -> list[dict]:
    return [{"snapshot_id": snapshot_id, **{key: str(value) if is_sqlite and isinstance(value, Decimal) else value
                                             for key, value in row.items()}} for row in loans.to_pylist()]


def quarantine_rows(key: str, value: str) -> list[dict]:
    return [{key: value, "row_number": n, "reasons": "range:CreditScore", "raw_record": f'{{"LoanId": "Q-{n}"}}'}
            for n in (7, 9)]


def layout(engine: sa.Engine) -> dict[str, dict[str, bool]]:
    """Each store table's columns and whether they are nullable."""
    inspector = sa.inspect(engine)
    return {table: {c["name"]: c["nullable"] for c in inspector.get_columns(table)} for table in STORE_TABLES}


def in_schema(postgres_url: str, schema: str) -> str:
    """The loan store URL of ``schema`` in the shared ``test`` database (its table names are fixed)."""
    url = sa.make_url(postgres_url).set(drivername="postgresql+psycopg", query={"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def old_store_url(request, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        yield in_schema(request.getfixturevalue("postgres_url"), request.getfixturevalue("postgres_schema"))


@pytest.fixture
def loans() -> pa.Table:
    return generate_loan_book(12, 5, date(2025, 6, 30)).sort_by("LoanId")


def fresh_layout(tmp_path: Path, old_store_url: str) -> dict[str, dict[str, bool]]:
    if old_store_url.startswith("sqlite"):
        return layout(LoanStore(f"sqlite:///{tmp_path / 'fresh.db'}").engine)
    engine = sa.create_engine(old_store_url)
    schema = f"loanstress_fresh_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        fresh = LoanStore(in_schema(old_store_url, schema))
        found = layout(fresh.engine)
        fresh.engine.dispose()
        return found
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


def test_a_store_of_the_first_layout_is_upgraded_in_place(old_store_url: str, loans: pa.Table,
                                                          tmp_path: Path) -> None:
    engine = sa.create_engine(old_store_url)
    is_sqlite = engine.dialect.name == "sqlite"
    meta = sa.MetaData()
    snapshots, quarantine = first_layout(meta)
    old_loans = loans_table(meta, is_sqlite)
    meta.create_all(engine)
    with engine.begin() as connection:
        connection.execute(snapshots.insert(), [{
            "snapshot_id": "a" * 24, "source": "postgresql://risk:***@db/loans?table=tape", "as_of": date(2025, 6, 30),
            "input_rows": 14, "accepted_rows": 12, "quarantined_rows": 2, "snapshot_uri": "s3://b/a/loans.parquet",
            "quarantine_uri": "s3://b/a/quarantine.parquet", "airflow_run_id": "scheduled__1", "loaded_at": LOADED_AT}])
        connection.execute(old_loans.insert(), loan_rows(loans, "a" * 24, is_sqlite))
        connection.execute(quarantine.insert(), quarantine_rows("snapshot_id", "a" * 24))
    engine.dispose()

    store = LoanStore(old_store_url)
    record = store.ingestion("a" * 24)
    assert (record["source"], record["input_rows"], record["accepted_rows"], record["quarantined_rows"]) == (
        "postgresql://risk:***@db/loans?table=tape", 14, 12, 2)
    assert (record["status"], record["snapshot_id"], record["airflow_run_id"]) == ("published", "a" * 24,
                                                                                  "scheduled__1")
    assert record["input_sha256"] is None and record["as_of"] == date(2025, 6, 30)
    assert store.count_rows("a" * 24) == (12, 2)
    assert store.read_snapshot("a" * 24).equals(loans)
    manifest = store.snapshot_manifest("a" * 24)
    assert (manifest["first_ingestion_id"], manifest["accepted_rows"], manifest["content_sha256"]) == (
        "a" * 24, 12, None)
    assert "loan_quarantine" not in sa.inspect(store.engine).get_table_names()
    assert_current_and_writable(store, loans)
    assert layout(store.engine) == fresh_layout(tmp_path, old_store_url)
    store.engine.dispose()


def test_a_store_of_the_second_layout_is_upgraded_in_place(old_store_url: str, loans: pa.Table,
                                                           tmp_path: Path) -> None:
    engine = sa.create_engine(old_store_url)
    is_sqlite = engine.dialect.name == "sqlite"
    meta = sa.MetaData()
    snapshots, ingestions, quarantine = second_layout(meta)
    old_loans = loans_table(meta, is_sqlite)
    meta.create_all(engine)
    common = {"airflow_run_id": "manual__1", "source": "tape.csv", "input_sha256": "i" * 64,
              "as_of": date(2025, 6, 30), "created_at": LOADED_AT}
    with engine.begin() as connection:
        connection.execute(snapshots.insert(), [{
            "snapshot_id": "b" * 24, "content_sha256": "b" * 64, "accepted_rows": 12,
            "snapshot_uri": "s3://b/b/loans.parquet", "first_ingestion_id": "1" * 32, "loaded_at": LOADED_AT}])
        connection.execute(old_loans.insert(), loan_rows(loans, "b" * 24, is_sqlite))
        connection.execute(ingestions.insert(), [
            {**common, "ingestion_id": "1" * 32, "input_rows": 14, "accepted_rows": 12, "quarantined_rows": 2,
             "snapshot_id": "b" * 24, "quarantine_uri": "q1"},
            {**common, "ingestion_id": "2" * 32, "input_rows": 2, "accepted_rows": 0, "quarantined_rows": 2,
             "snapshot_id": None, "quarantine_uri": "q2"}])
        connection.execute(quarantine.insert(), [*quarantine_rows("ingestion_id", "1" * 32),
                                                 *quarantine_rows("ingestion_id", "2" * 32)])
    engine.dispose()

    store = LoanStore(old_store_url)
    published, all_bad = store.ingestion("1" * 32), store.ingestion("2" * 32)
    assert (published["status"], published["failed_rule"], published["input_sha256"]) == ("published", None, "i" * 64)
    assert (all_bad["status"], all_bad["failed_rule"], all_bad["snapshot_id"]) == (
        "rejected", "no_acceptable_row", None)
    assert store.count_rows("1" * 32) == (12, 2) and store.count_rows("2" * 32) == (0, 2)
    assert store.read_snapshot("b" * 24).equals(loans)
    assert store.snapshot_manifest("b" * 24)["content_sha256"] == "b" * 64
    assert_current_and_writable(store, loans)
    assert layout(store.engine) == fresh_layout(tmp_path, old_store_url)
    store.engine.dispose()


def assert_current_and_writable(store: LoanStore, loans: pa.Table) -> None:
    """The store records its version, opens again without change, and takes today's records."""
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql(f"SELECT version FROM {VERSION_TABLE}").scalar_one() == SCHEMA_VERSION
    assert ensure_schema(store.engine, store.snapshots.metadata) == SCHEMA_VERSION
    empty = pa.table({"row_number": pa.array([], pa.int64()), "reasons": pa.array([], pa.string()),
                      "raw_record": pa.array([], pa.string())})
    assert store.record_ingestion({
        "ingestion_id": "n" * 32, "snapshot_id": "new", "content_sha256": "n" * 64, "input_sha256": "n" * 64,
        "source": "new.csv", "as_of": "2025-12-31", "input_rows": loans.num_rows, "accepted_rows": loans.num_rows,
        "quarantined_rows": 0, "snapshot_uri": "u", "quarantine_uri": "q"}, loans, empty)
    store.record_rejection({"ingestion_id": "r" * 32, "source": "bad.csv", "failed_rule": "required_columns",
                            "error": "missing column(s) CreditScore"})
    assert store.ingestion("r" * 32)["status"] == "rejected" and store.count_rows("n" * 32) == (loans.num_rows, 0)
