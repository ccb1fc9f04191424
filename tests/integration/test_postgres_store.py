"""PostgreSQL: ingesting a loan tape table through COPY, and the loan store on PostgreSQL.

Needs the server at 127.0.0.1:5432 (trust auth); skipped without it, failed under CI=true. Source tables
live in a fresh schema of the ``test`` database; the loan store (whose table names are fixed) lives in a
database created for the session and dropped at its end.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from pipelines.data.contract import ARROW_SCHEMA, COLUMN_NAMES, FIELD_BY_NAME
from pipelines.data.ingestion import ROW_NUMBER, TableContractError, ingest

pytestmark = pytest.mark.postgres


def sql_type(name: str) -> str:
    arrow_type = FIELD_BY_NAME[name].arrow_type
    if pa.types.is_decimal(arrow_type):
        return f"NUMERIC({arrow_type.precision}, {arrow_type.scale})"
    if pa.types.is_date(arrow_type):
        return "DATE"
    if pa.types.is_integer(arrow_type):
        return "INTEGER"
    return "TEXT"


def tape_rows(valid_tape_rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The valid loans, one at the edge of exactness, and one breaking a cross-field rule."""
    rows = [dict(r) for r in valid_tape_rows]
    rows.append({**rows[21], "LoanId": "Z-MAX", "LoanAmount": "9999999999.99", "CurrentBalance": "9999999999.99",
                 "InterestRate": "0.12345678", "DefaultRiskScore": "0.00000001"})
    rows.append({**rows[0], "LoanId": "X-INV", "LoanStartDate": "2030-01-01", "LoanMaturityDate": "2020-01-01"})
    return rows


@pytest.fixture
def pg_tape_table(postgres_url: str, postgres_schema: str, valid_tape_rows) -> Iterator[tuple[str, list]]:
    """``schema.loan_tape`` with text, numeric, date and integer columns holding the tape rows."""
    import psycopg

    rows = tape_rows(valid_tape_rows)
    name = f"{postgres_schema}.loan_tape"
    columns = ", ".join(f'"{n}" {sql_type(n)}' for n in COLUMN_NAMES)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {name} ({columns})")
        with connection.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {name} VALUES ({', '.join(['%s'] * len(COLUMN_NAMES))})",
                               [[r[n] or None for n in COLUMN_NAMES] for r in rows])
    yield name, rows


def without_row_numbers(table: pa.Table) -> pa.Table:
    return table.drop_columns([ROW_NUMBER]).sort_by("LoanId")


def test_ingest_from_a_postgres_table_matches_csv(pg_tape_table, postgres_url: str, tmp_path: Path,
                                                  write_csv) -> None:
    name, rows = pg_tape_table
    tape = ingest(f"{postgres_url}?table={name}")
    assert tape.input_rows == len(rows)
    assert tape.malformed == [] and tape.type_errors == {}
    from_csv = ingest(str(write_csv(rows, tmp_path / "tape.csv")))
    assert without_row_numbers(tape.table).equals(without_row_numbers(from_csv.table))
    by_id = {r["LoanId"]: r for r in tape.table.to_pylist()}
    assert by_id["M-0002"]["LoanAmount"] == Decimal("123456.78")
    assert by_id["Z-MAX"]["InterestRate"] == Decimal("0.12345678")
    assert by_id["X-INV"]["LoanStartDate"] == date(2030, 1, 1)


def test_ingest_accepts_the_psycopg_sqlalchemy_scheme(pg_tape_table, postgres_url: str) -> None:
    name, rows = pg_tape_table
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    assert ingest(f"{url}?table={name}").table.num_rows == len(rows)


def test_ingest_from_a_missing_postgres_table_stops_the_run(postgres_url: str, postgres_schema: str) -> None:
    with pytest.raises(TableContractError, match="cannot read table"):
        ingest(f"{postgres_url}?table={postgres_schema}.no_such_table")


def test_ingest_does_not_depend_on_the_server_date_style(pg_tape_table, postgres_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    name, _ = pg_tape_table
    monkeypatch.setenv("PGOPTIONS", "-c DateStyle=SQL,DMY")
    assert ingest(f"{postgres_url}?table={name}").type_errors == {}


# --------------------------------------------------------------------------------------------------
# The loan store on PostgreSQL
# --------------------------------------------------------------------------------------------------

@pytest.fixture
def pg_store(postgres_database: str) -> Iterator[Any]:
    from pipelines.adapters.loan_store import LoanStore

    store = LoanStore(postgres_database)
    yield store
    store.engine.dispose()


@pytest.fixture
def accepted(tmp_path: Path, valid_tape_rows, write_csv) -> pa.Table:
    """The accepted table of an all-valid tape, as validation hands it to the store."""
    rows = tape_rows(valid_tape_rows)[:-1]
    tape = ingest(str(write_csv(rows, tmp_path / "tape.csv")))
    assert tape.type_errors == {}
    return tape.table.select(list(COLUMN_NAMES)).cast(ARROW_SCHEMA)


RAW_RECORDS = [
    json.dumps({"LoanId": "Q-1", "LoanType": 'quote " comma , backslash \\ newline \n end'}),
    json.dumps({"line": "Q-2,\\xff\\xfe,too,few"}),
    json.dumps({"LoanId": "Q-3", "Region": "Zürich — ünïcödé"}),
]


def quarantine_table() -> pa.Table:
    return pa.table({
        "row_number": pa.array([40, 41, 42], pa.int64()),
        "reasons": ["type:LoanType", "malformed_line:4_fields_expected_19", "allowed:Region; range:CreditScore"],
        "raw_record": RAW_RECORDS,
    })


def record(snapshot_id: str, accepted: pa.Table, quarantine: pa.Table, run_id: str = "manual__1") -> dict:
    """An ingestion record as ``validate_and_publish`` hands it to the store, under a fresh ingestion id."""
    return {"ingestion_id": uuid.uuid4().hex, "snapshot_id": snapshot_id, "content_sha256": "c" * 64,
            "input_sha256": "i" * 64, "source": "postgresql://source?table=tape", "as_of": "2025-12-31",
            "input_rows": accepted.num_rows + quarantine.num_rows, "accepted_rows": accepted.num_rows,
            "quarantined_rows": quarantine.num_rows, "snapshot_uri": f"s3://b/{snapshot_id}/loans.parquet",
            "quarantine_uri": f"s3://b/{snapshot_id}/quarantine.parquet", "airflow_run_id": run_id}


def load(store, snapshot_id: str, accepted: pa.Table, quarantine: pa.Table, run_id: str = "manual__1") -> dict:
    """Record one ingestion of ``accepted`` + ``quarantine``; returns its record."""
    entry = record(snapshot_id, accepted, quarantine, run_id)
    store.record_ingestion(entry, accepted, quarantine)
    return entry


def snapshot_counts(store, snapshot_id: str) -> list[int]:
    """Rows stored for a snapshot: [loans, snapshot rows, ingestions of it]."""
    with store.engine.connect() as connection:
        return [connection.execute(sa.select(sa.func.count()).select_from(t)
                                   .where(t.c.snapshot_id == snapshot_id)).scalar_one()
                for t in (store.loans, store.snapshots, store.ingestions)]


def test_decimals_round_trip_exactly(pg_store, accepted: pa.Table) -> None:
    load(pg_store, "exact", accepted, quarantine_table())
    stored = pg_store.read_snapshot("exact")
    assert stored.schema.remove_metadata() == ARROW_SCHEMA
    expected = accepted.sort_by("LoanId")
    for f in ARROW_SCHEMA:
        if pa.types.is_decimal(f.type) or pa.types.is_date(f.type) or pa.types.is_integer(f.type):
            assert stored.column(f.name).equals(expected.column(f.name)), f.name
    by_id = {r["LoanId"]: r for r in stored.to_pylist()}
    assert str(by_id["M-0002"]["LoanAmount"]) == "123456.78"
    assert by_id["Z-MAX"]["LoanAmount"] == Decimal("9999999999.99")
    assert by_id["Z-MAX"]["DefaultRiskScore"] == Decimal("0.00000001")
    with pg_store.engine.connect() as connection:
        amount = connection.execute(sa.text('SELECT "LoanAmount" FROM loans WHERE snapshot_id = \'exact\' '
                                            'AND "LoanId" = \'M-0002\'')).scalar_one()
    assert amount == Decimal("123456.78")


def test_read_snapshot_returns_what_was_loaded(pg_store, accepted: pa.Table) -> None:
    load(pg_store, "whole", accepted, quarantine_table())
    assert pg_store.read_snapshot("whole").equals(accepted.sort_by("LoanId"))


def test_read_snapshot_does_not_depend_on_the_server_date_style(postgres_database: str, accepted: pa.Table,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.adapters.loan_store import LoanStore

    monkeypatch.setenv("PGOPTIONS", "-c DateStyle=SQL,DMY")
    store = LoanStore(postgres_database)  # a fresh engine: its connections see PGOPTIONS
    try:
        load(store, "datestyle", accepted, quarantine_table())
        stored = store.read_snapshot("datestyle")
    finally:
        store.engine.dispose()
    expected = accepted.sort_by("LoanId")
    for name in ("LoanStartDate", "LoanMaturityDate"):
        assert stored.column(name).equals(expected.column(name)), name


def test_a_second_ingestion_shares_the_snapshot_and_keeps_its_own_record(pg_store, accepted: pa.Table) -> None:
    quarantine = quarantine_table()
    first = load(pg_store, "again", accepted, quarantine)
    second = load(pg_store, "again", accepted, quarantine.slice(0, 1), run_id="manual__2")
    assert snapshot_counts(pg_store, "again") == [accepted.num_rows, 1, 2]
    assert pg_store.count_rows(first["ingestion_id"]) == (accepted.num_rows, quarantine.num_rows)
    assert pg_store.count_rows(second["ingestion_id"]) == (accepted.num_rows, 1)
    assert pg_store.ingestion(first["ingestion_id"])["airflow_run_id"] == "manual__1"
    assert pg_store.ingestion(second["ingestion_id"])["input_rows"] == accepted.num_rows + 1


def test_quarantine_text_survives_copy(pg_store, accepted: pa.Table) -> None:
    entry = load(pg_store, "raw", accepted, quarantine_table())
    with pg_store.engine.connect() as connection:
        rows = connection.execute(sa.select(pg_store.quarantine.c.row_number, pg_store.quarantine.c.reasons,
                                            pg_store.quarantine.c.raw_record)
                                  .where(pg_store.quarantine.c.ingestion_id == entry["ingestion_id"])
                                  .order_by(pg_store.quarantine.c.row_number)).all()
    assert [tuple(r) for r in rows] == list(zip([40, 41, 42], quarantine_table().column("reasons").to_pylist(),
                                                RAW_RECORDS, strict=True))


def test_concurrent_publishers_of_one_snapshot_both_succeed(postgres_database: str, accepted: pa.Table) -> None:
    """Two processes' worth of stores (own engines, own connections) publish the same snapshot at once."""
    import threading

    from pipelines.adapters.loan_store import LoanStore

    stores = [LoanStore(postgres_database) for _ in range(2)]
    records = [record("concurrent", accepted, quarantine_table(), run_id=f"manual__{i}") for i in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[Any] = [None, None]

    def publish(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = stores[index].record_ingestion(records[index], accepted, quarantine_table())
        except Exception as error:  # kept: the test reports what each thread raised
            outcomes[index] = error

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes, key=str) == [False, True], outcomes  # one stored the loans, both recorded
        assert snapshot_counts(stores[0], "concurrent") == [accepted.num_rows, 1, 2]
        for entry in records:
            assert stores[0].count_rows(entry["ingestion_id"]) == (accepted.num_rows, quarantine_table().num_rows)
    finally:
        for store in stores:
            store.engine.dispose()


def test_nul_in_a_text_cell_is_quarantined_before_anything_is_written(
        postgres_database: str, tmp_path: Path, valid_tape_rows, write_csv, make_settings, publish_snapshot) -> None:
    from pipelines.adapters.loan_store import LoanStore

    rows = [*valid_tape_rows, {**valid_tape_rows[0], "LoanId": "NUL-1", "CustomerId": "C-\x00001"},
            {**valid_tape_rows[1], "LoanId": "NUL\x00-2"}]
    tape = ingest(str(write_csv(rows, tmp_path / "nul.csv")))
    settings = make_settings(tmp_path / "home", loan_store_url=postgres_database)
    manifest = publish_snapshot(tape, date(2025, 12, 31), settings)
    assert manifest["quarantine_reasons"] == {"control_characters:LoanId": 1, "nul_character:CustomerId": 1}
    store = LoanStore(postgres_database)
    try:
        assert store.count_rows(manifest["ingestion_id"]) == (len(valid_tape_rows), 2)
        assert store.read_snapshot(manifest["snapshot_id"]).num_rows == len(valid_tape_rows)
    finally:
        store.engine.dispose()
