"""Loan store adapter: accepted snapshots, their quarantine and their manifests in SQL.

SQLite (embedded default) or PostgreSQL (``STRESS_LOAN_STORE_URL=postgresql+psycopg://...``).
Money and rates round-trip exactly: ``NUMERIC`` in PostgreSQL, decimal text in SQLite (whose
NUMERIC affinity would turn them into binary floats). Loading a snapshot replaces that snapshot's
rows inside one transaction, so a re-run is idempotent and a reader never sees half a load.
PostgreSQL loads and reads go through ``COPY``.
"""

from __future__ import annotations

import gc
import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

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


def _tables(dialect_is_sqlite: bool) -> tuple[sa.Table, sa.Table, sa.Table]:
    meta = sa.MetaData()
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
    loans = sa.Table(
        "loans", meta,
        sa.Column("snapshot_id", sa.String(64), primary_key=True),
        *[sa.Column(f.name, _sql_type(f, dialect_is_sqlite), primary_key=f.name == "LoanId",
                    nullable=f.nullable) for f in FIELDS],
    )
    quarantine = sa.Table(
        "loan_quarantine", meta,
        sa.Column("snapshot_id", sa.String(64), primary_key=True),
        sa.Column("row_number", sa.BigInteger, primary_key=True),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("raw_record", sa.Text, nullable=False),
    )
    return snapshots, loans, quarantine


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


class LoanStore:
    """Accepted loans by snapshot, with the snapshot manifest and the quarantine beside them."""

    def __init__(self, url: str) -> None:
        self.engine = open_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.snapshots, self.loans, self.quarantine = _tables(self.is_sqlite)
        self.snapshots.metadata.create_all(self.engine)

    def load_snapshot(self, manifest: dict[str, Any], accepted: pa.Table, quarantine: pa.Table) -> None:
        """Replace everything stored for ``manifest['snapshot_id']`` in one transaction."""
        snapshot_id = manifest["snapshot_id"]
        with self.engine.begin() as connection:
            for table in (self.loans, self.quarantine, self.snapshots):
                connection.execute(table.delete().where(table.c.snapshot_id == snapshot_id))
            connection.execute(self.snapshots.insert(), [{
                "snapshot_id": snapshot_id, "source": manifest["source"],
                "as_of": datetime.fromisoformat(manifest["as_of"]).date() if manifest.get("as_of") else None,
                "input_rows": manifest["input_rows"], "accepted_rows": manifest["accepted_rows"],
                "quarantined_rows": manifest["quarantined_rows"], "snapshot_uri": manifest["snapshot_uri"],
                "quarantine_uri": manifest["quarantine_uri"], "airflow_run_id": manifest.get("airflow_run_id"),
                "loaded_at": datetime.now(UTC),
            }])
            tagged = accepted.add_column(0, "snapshot_id", pa.array([snapshot_id] * accepted.num_rows, pa.string()))
            tagged_quarantine = quarantine.add_column(
                0, "snapshot_id", pa.array([snapshot_id] * quarantine.num_rows, pa.string()))
            self._bulk_insert(connection, self.loans, tagged)
            self._bulk_insert(connection, self.quarantine, tagged_quarantine)

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
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(self.snapshots).where(self.snapshots.c.snapshot_id == snapshot_id)).mappings().first()
        return dict(row) if row else None

    def count_rows(self, snapshot_id: str) -> tuple[int, int]:
        """(accepted, quarantined) rows stored for a snapshot."""
        with self.engine.connect() as connection:
            counts = [connection.execute(sa.select(sa.func.count()).select_from(t)
                                         .where(t.c.snapshot_id == snapshot_id)).scalar_one()
                      for t in (self.loans, self.quarantine)]
        return counts[0], counts[1]
