"""Loan store adapter: content-addressed snapshots of accepted loans, and every ingestion's audit record.

SQLite (embedded default) or PostgreSQL (``STRESS_LOAN_STORE_URL=postgresql+psycopg://...``).
Money and rates round-trip exactly: ``NUMERIC`` in PostgreSQL, decimal text in SQLite (whose
NUMERIC affinity would turn them into binary floats).

A snapshot (``loan_snapshots`` + ``loans``) is named by the hash of its accepted rows, so it is
immutable and shared by every ingestion that accepted the same loans: it is inserted if absent,
never replaced, which makes concurrent publishers of the same snapshot harmless. What differs from
one tape to the next (source, input hash, counts, quarantined rows, Airflow run) belongs to the
ingestion and is kept per ingestion id (``ingestions`` + ``ingestion_quarantine``), so a second tape
never erases the audit trail of the first. Each ingestion is recorded in one transaction with its
snapshot, so a reader never sees half a load. PostgreSQL loads and reads go through ``COPY``. A
store created by an earlier release is upgraded in place when opened (see
:mod:`pipelines.adapters.loan_store_schema`).
"""

from __future__ import annotations

import gc
import io
import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pipelines.adapters.loan_store_schema import ensure_schema
from pipelines.adapters.sql import open_engine
from pipelines.data.contract import ARROW_SCHEMA, FIELDS, Field


def _sql_type(contract_field: Field, dialect_is_sqlite: bool) -> sa.types.TypeEngine:
    arrow_type = contract_field.arrow_type
    if pa.types.is_decimal(arrow_type):
        return sa.String(40) if dialect_is_sqlite else sa.Numeric(arrow_type.precision, arrow_type.scale)
    if pa.types.is_date(arrow_type):
        return sa.Date()
    if pa.types.is_integer(arrow_type):
        return sa.Integer()
    return sa.String(contract_field.max_length or 64)


def _tables(dialect_is_sqlite: bool) -> tuple[sa.Table, sa.Table, sa.Table, sa.Table]:
    meta = sa.MetaData()
    snapshots = sa.Table(
        "loan_snapshots", meta,
        sa.Column("snapshot_id", sa.String(64), primary_key=True),
        sa.Column("content_sha256", sa.String(64)),  # NULL only for a snapshot of the first layout, which kept none
        sa.Column("accepted_rows", sa.BigInteger, nullable=False),
        sa.Column("snapshot_uri", sa.Text, nullable=False),
        sa.Column("first_ingestion_id", sa.String(32), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    )
    loans = sa.Table(
        "loans", meta,
        sa.Column("snapshot_id", sa.String(64), primary_key=True),
        *[sa.Column(f.name, _sql_type(f, dialect_is_sqlite), primary_key=f.name == "LoanId",
                    nullable=f.nullable) for f in FIELDS],
    )
    # A rejected ingestion stopped on a table rule: the counts, hash and quarantine it got to are kept, the
    # rest is NULL (a tape that could not be read has no input hash), and it names the rule and the error.
    ingestions = sa.Table(
        "ingestions", meta,
        sa.Column("ingestion_id", sa.String(32), primary_key=True),
        sa.Column("airflow_run_id", sa.Text),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("input_sha256", sa.String(64)),
        sa.Column("as_of", sa.Date),
        sa.Column("input_rows", sa.BigInteger),
        sa.Column("accepted_rows", sa.BigInteger),
        sa.Column("quarantined_rows", sa.BigInteger),
        sa.Column("snapshot_id", sa.String(64), sa.ForeignKey("loan_snapshots.snapshot_id")),
        sa.Column("quarantine_uri", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failed_rule", sa.Text),
        sa.Column("error", sa.Text),
    )
    quarantine = sa.Table(
        "ingestion_quarantine", meta,
        sa.Column("ingestion_id", sa.String(32), sa.ForeignKey("ingestions.ingestion_id"), primary_key=True),
        sa.Column("row_number", sa.BigInteger, primary_key=True),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("raw_record", sa.Text, nullable=False),
    )
    return snapshots, loans, ingestions, quarantine


# Rows bound per INSERT statement: far fewer statement steps than one row each, and within the
# 999 host parameters that every SQLite build accepts for the widest table (21 columns).
SQLITE_ROWS_PER_STATEMENT = 40


def _sqlite_insert(connection: sa.Connection, table_name: str, rows: pa.Table) -> None:
    """Insert ``rows`` with multi-row ``INSERT ... VALUES`` statements.

    Decimals and dates become text in Arrow first (the decimal text SQLite keeps; ISO dates, as
    sqlite3's date adapter would write them): turning Arrow dates into Python ``date`` objects and
    adapting them back to text cost more than the inserts themselves.
    """
    text_rows = rows.cast(pa.schema([
        pa.field(f.name, pa.string() if pa.types.is_decimal(f.type) or pa.types.is_date(f.type) else f.type)
        for f in rows.schema]))
    columns = ", ".join(f'"{c}"' for c in text_rows.column_names)
    row_marks = f"({', '.join('?' for _ in text_rows.column_names)})"
    with _cyclic_gc_paused():
        _insert_batches(connection, f"INSERT INTO {table_name} ({columns}) VALUES", row_marks, text_rows)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a block that allocates millions of acyclic objects.

    The parameter tuples hold only str, int and None, so they never form cycles; yet every 700
    allocations would trigger a collection, and the older generations are rescanned over the whole
    heap of the task process (~25 % of a 1M-row load with 3M objects alive in the process).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _insert_batches(connection: sa.Connection, insert: str, row_marks: str, text_rows: pa.Table) -> None:
    """Full statements of ``SQLITE_ROWS_PER_STATEMENT`` rows, then each batch's remainder one row each."""
    for batch in text_rows.to_batches(max_chunksize=100_000):
        values = list(itertools.chain.from_iterable(zip(*(c.to_pylist() for c in batch.columns), strict=True)))
        width = SQLITE_ROWS_PER_STATEMENT * batch.num_columns
        full = len(values) - len(values) % width
        for count, start, stop in ((SQLITE_ROWS_PER_STATEMENT, 0, full), (1, full, len(values))):
            step = count * batch.num_columns
            if stop > start:
                connection.exec_driver_sql(f"{insert} {', '.join([row_marks] * count)}",
                                           [tuple(values[i:i + step]) for i in range(start, stop, step)])


def _outcome(record: dict[str, Any]) -> dict[str, Any]:
    """The status columns of an ingestion with its rows split: ``published``, or ``rejected`` (no acceptable
    row) with the failed rule."""
    return {"status": record.get("status", "published"), "failed_rule": record.get("failed_rule"),
            "error": record.get("error")}


class LoanStore:
    """Accepted loans by snapshot; every ingestion's record and quarantine by ingestion id."""

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.snapshots, self.loans, self.ingestions, self.quarantine = _tables(self.is_sqlite)
        ensure_schema(self.engine, self.snapshots.metadata)

    def record_ingestion(self, record: dict[str, Any], accepted: pa.Table | Iterable[pa.Table] | None,
                         quarantine: pa.Table | Iterable[pa.Table]) -> bool:
        """Publish the snapshot of ``accepted`` unless it is stored, then record the ingestion, in one transaction.

        ``record`` needs ``ingestion_id``, ``source``, ``input_sha256``, ``as_of``, the three counts,
        ``quarantine_uri``, ``airflow_run_id`` and, with ``accepted``, ``snapshot_id``,
        ``content_sha256`` and ``snapshot_uri``. ``accepted`` is None when no row passed: the ingestion
        and its quarantine are still kept, with no snapshot. ``accepted`` and ``quarantine`` may each be
        a table or tables in order, loaded one at a time (a snapshot too large for memory); a count
        that disagrees with the record rolls the whole transaction back. Returns whether this call
        stored the snapshot (False when it was already there, e.g. published by a concurrent run).
        """
        if record["accepted_rows"] + record["quarantined_rows"] != record["input_rows"]:
            raise ValueError(f"ingestion {record['ingestion_id']}: accepted + quarantined != input rows")
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            published = accepted is not None and self._insert_snapshot_if_absent(connection, record, accepted, now)
            connection.execute(self.ingestions.insert(), [{
                "ingestion_id": record["ingestion_id"], "airflow_run_id": record.get("airflow_run_id"),
                "source": record["source"], "input_sha256": record["input_sha256"],
                "as_of": datetime.fromisoformat(record["as_of"]).date() if record.get("as_of") else None,
                "input_rows": record["input_rows"], "accepted_rows": record["accepted_rows"],
                "quarantined_rows": record["quarantined_rows"],
                "snapshot_id": record["snapshot_id"] if accepted is not None else None,
                "quarantine_uri": record["quarantine_uri"], "created_at": now,
                **_outcome(record),
            }])
            quarantined = self._bulk_insert_pieces(connection, self.quarantine, quarantine,
                                                   "ingestion_id", record["ingestion_id"])
            if quarantined != record["quarantined_rows"]:
                raise ValueError(f"ingestion {record['ingestion_id']}: {quarantined} quarantine rows given, "
                                 f"the record says {record['quarantined_rows']}")
        return published

    def record_rejection(self, record: dict[str, Any]) -> None:
        """Keep the audit record of an ingestion that stopped on a table rule before any row was split.

        ``record`` needs ``ingestion_id``, ``source``, ``failed_rule`` and ``error``; ``input_sha256``,
        ``as_of``, ``input_rows`` and ``airflow_run_id`` when they were known. Nothing is published.
        """
        with self.engine.begin() as connection:
            connection.execute(self.ingestions.insert(), [{
                "ingestion_id": record["ingestion_id"], "airflow_run_id": record.get("airflow_run_id"),
                "source": record["source"], "input_sha256": record.get("input_sha256"),
                "as_of": datetime.fromisoformat(record["as_of"]).date() if record.get("as_of") else None,
                "input_rows": record.get("input_rows"), "created_at": datetime.now(UTC),
                "status": "rejected", "failed_rule": record["failed_rule"], "error": record["error"],
            }])

    def _insert_snapshot_if_absent(self, connection: sa.Connection, record: dict[str, Any],
                                   accepted: pa.Table | Iterable[pa.Table], now: datetime) -> bool:
        """Claim the snapshot id with ``INSERT ... ON CONFLICT DO NOTHING``, then load its loans if claimed.

        A content-addressed snapshot never changes, so the first writer wins and later ones have
        nothing to do. On PostgreSQL a second writer's insert waits for the first transaction that
        holds the key and then does nothing (or claims it, if the first rolled back); on SQLite the
        insert takes the write lock first, so there is no read-then-write race either.
        """
        insert = sqlite_insert(self.snapshots) if self.is_sqlite else postgresql_insert(self.snapshots)
        claimed = connection.execute(insert.values(
            snapshot_id=record["snapshot_id"], content_sha256=record["content_sha256"],
            accepted_rows=record["accepted_rows"], snapshot_uri=record["snapshot_uri"],
            first_ingestion_id=record["ingestion_id"], loaded_at=now,
        ).on_conflict_do_nothing(index_elements=["snapshot_id"]).returning(self.snapshots.c.snapshot_id)
        ).first() is not None  # rowcount is -1 on psycopg for this statement; RETURNING says it plainly
        if claimed:
            loaded = self._bulk_insert_pieces(connection, self.loans, accepted, "snapshot_id", record["snapshot_id"])
            if loaded != record["accepted_rows"]:
                raise ValueError(f"snapshot {record['snapshot_id']}: {loaded} loans given, "
                                 f"the record says {record['accepted_rows']}")
        return claimed

    def _bulk_insert_pieces(self, connection: sa.Connection, table: sa.Table, rows: pa.Table | Iterable[pa.Table],
                            key: str, value: str) -> int:
        """Insert ``rows`` (a table or tables, one at a time) with ``key`` = ``value`` put first; how many."""
        count = 0
        for piece in [rows] if isinstance(rows, pa.Table) else rows:
            self._bulk_insert(connection, table, piece.add_column(0, key, pa.array([value] * piece.num_rows,
                                                                                   pa.string())))
            count += piece.num_rows
        return count

    def _bulk_insert(self, connection: sa.Connection, table: sa.Table, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        if self.is_sqlite:
            _sqlite_insert(connection, table.name, rows)
            return
        import pyarrow.csv as pacsv

        buffer = io.BytesIO()
        pacsv.write_csv(rows, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
        columns = ", ".join(f'"{c}"' for c in rows.column_names)
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(buffer.getvalue())

    def read_snapshot(self, snapshot_id: str) -> pa.Table:
        """The accepted loans of a snapshot, typed exactly as the contract says."""
        columns = ", ".join(f'"{f.name}"' for f in FIELDS)
        if self.is_sqlite:
            with self.engine.connect() as connection:
                result = connection.exec_driver_sql(
                    f'SELECT {columns} FROM loans WHERE snapshot_id = ? ORDER BY "LoanId"', (snapshot_id,))
                rows = result.fetchall()
            columns_of_rows = list(zip(*rows, strict=True)) if rows else [() for _ in FIELDS]
            # SQLite hands back decimals and dates as text; Arrow's casts parse both exactly.
            arrays = [pa.array(list(values)) for values in columns_of_rows]
            return pa.table(arrays, names=[f.name for f in FIELDS]).cast(ARROW_SCHEMA)
        import pyarrow.csv as pacsv

        buffer = io.BytesIO()
        with self.engine.connect() as connection:
            cursor = connection.connection.driver_connection.cursor()
            cursor.execute("SET DateStyle TO ISO, YMD")
            query = (f"COPY (SELECT {columns} FROM loans WHERE snapshot_id = %s ORDER BY \"LoanId\") "
                     "TO STDOUT (FORMAT csv)")
            with cursor.copy(query, (snapshot_id,)) as copy:
                for chunk in copy:
                    buffer.write(chunk)
        buffer.seek(0)
        return pacsv.read_csv(buffer, read_options=pacsv.ReadOptions(column_names=[f.name for f in FIELDS]),
                              convert_options=pacsv.ConvertOptions(
                                  column_types=ARROW_SCHEMA, strings_can_be_null=True,
                                  quoted_strings_can_be_null=False)).cast(ARROW_SCHEMA)

    def snapshot_manifest(self, snapshot_id: str) -> dict[str, Any] | None:
        """The stored row of a snapshot, or None when the store does not have it."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(self.snapshots).where(self.snapshots.c.snapshot_id == snapshot_id)).mappings().first()
        return dict(row) if row else None

    def ingestion(self, ingestion_id: str) -> dict[str, Any] | None:
        """The audit record of one ingestion, or None when there is none."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(self.ingestions).where(self.ingestions.c.ingestion_id == ingestion_id)).mappings().first()
        return dict(row) if row else None

    def count_rows(self, ingestion_id: str) -> tuple[int, int]:
        """(accepted loans in the ingestion's snapshot, rows it quarantined) as stored."""
        with self.engine.connect() as connection:
            accepted = connection.execute(
                sa.select(sa.func.count()).select_from(self.loans.join(
                    self.ingestions, self.loans.c.snapshot_id == self.ingestions.c.snapshot_id))
                .where(self.ingestions.c.ingestion_id == ingestion_id)).scalar_one()
            quarantined = connection.execute(
                sa.select(sa.func.count()).select_from(self.quarantine)
                .where(self.quarantine.c.ingestion_id == ingestion_id)).scalar_one()
        return accepted, quarantined

    def latest_snapshot_id(self) -> str | None:
        """The snapshot of the latest ingestion that accepted loans: what the book is now, or None."""
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(self.ingestions.c.snapshot_id).where(self.ingestions.c.snapshot_id.is_not(None))
                .order_by(self.ingestions.c.created_at.desc(), self.ingestions.c.ingestion_id.desc()).limit(1)
            ).scalar_one_or_none()

    def loan(self, snapshot_id: str, loan_id: str) -> dict[str, Any] | None:
        """One loan of a snapshot as {contract field: value} (decimals as ``Decimal``), or None."""
        from decimal import Decimal

        with self.engine.connect() as connection:
            row = connection.execute(sa.select(*[self.loans.c[f.name] for f in FIELDS]).where(
                (self.loans.c.snapshot_id == snapshot_id) & (self.loans.c.LoanId == loan_id))).mappings().first()
        if row is None:
            return None
        return {f.name: (Decimal(row[f.name]) if f.is_decimal and row[f.name] is not None else row[f.name])
                for f in FIELDS}
