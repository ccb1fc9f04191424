"""Ingestion speed: a 1,000,000-loan tape from CSV, and from PostgreSQL against a plain COPY."""

from __future__ import annotations

import io
from datetime import date

from benchmarks.common import BENCH_DIR, INPUTS, Timer, benchmark

N_LOANS = 1_000_000
AS_OF = date(2025, 12, 31)
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_TABLE = "bench_loan_tape"


def _book_csv() -> str:
    from pipelines.cli import write_table
    from pipelines.synthetic import generate_loan_book

    path = INPUTS / f"loan_book_{N_LOANS}.csv"
    if not path.exists():
        INPUTS.mkdir(parents=True, exist_ok=True)
        write_table(generate_loan_book(N_LOANS, 1, AS_OF), str(path))
    return str(path)


def _warm_up(source: str) -> None:
    """Ingest the first loans once so imports and kernel set-up are not timed as ingestion."""
    from pipelines.ingestion import ingest

    with open(source, "rb") as handle:
        head = b"".join(handle.readline() for _ in range(1001))
    sample = INPUTS / "warm_up.csv"
    sample.write_bytes(head)
    ingest(str(sample))


@benchmark
def ingest_csv_1m() -> dict[str, float]:
    from pipelines.ingestion import ingest

    source = _book_csv()
    _warm_up(source)
    with Timer() as timer:
        tape = ingest(source)
    assert tape.table.num_rows == N_LOANS and not tape.type_errors
    return {"rows": N_LOANS, "wall_s": round(timer.seconds, 2), "rows_per_s": round(N_LOANS / timer.seconds)}


def _warm_up_validation(tape) -> float:
    """Validate the first loans once; returns its seconds, mostly the first import of GX (~6 s here).

    As for ingestion, that one-off cost does not grow with the tape and is reported apart rather than
    timed as validation of the million rows.
    """
    from pipelines.ingestion import TypedTape
    from pipelines.validation import validate

    head = TypedTape(tape.table.slice(0, 1000), tape.raw_text.slice(0, 1000), tape.source, [], {}, [])
    with Timer() as timer:
        validate(head, duplicate_tolerance=0.01, balance_tolerance=0.05)
    return timer.seconds


@benchmark
def validate_1m() -> dict[str, float]:
    from pipelines.ingestion import ingest
    from pipelines.validation import validate

    tape = ingest(_book_csv())
    warm_up_s = _warm_up_validation(tape)
    timings: dict[str, float] = {}
    with Timer() as timer:
        outcome = validate(tape, duplicate_tolerance=0.01, balance_tolerance=0.05, timings=timings)
    assert outcome.accepted.num_rows + outcome.quarantine.num_rows == N_LOANS
    return {"rows": N_LOANS, "wall_s": round(timer.seconds, 2), "cpu_s": round(timer.cpu_seconds, 2),
            "rows_per_s": round(N_LOANS / timer.seconds), "warm_up_with_gx_import_s": round(warm_up_s, 2),
            **{f"{step}_s": round(seconds, 2) for step, seconds in timings.items()}}


@benchmark
def validate_step_1m() -> dict[str, float]:
    """The DAG's validate task on the 1M book: staged tape in, snapshot, quarantine, Data Docs and store out.

    Runs in a fresh process like an Airflow task, so the GX import is part of it (``gx_import_s``).
    """
    import shutil

    from pipelines.object_store import open_object_store
    from pipelines.settings import StressSettings
    from pipelines.snapshots import load_staged_tape, stage_tape, validate_and_publish
    from pipelines.timing import timed

    home = BENCH_DIR / "validate_step_home"
    shutil.rmtree(home, ignore_errors=True)
    settings = StressSettings(data_home=home)
    staged = stage_tape(_book_csv(), "bench", settings)
    timings: dict[str, float] = {}
    with Timer() as timer:
        with timed(timings, "load_staged_tape"):
            tape = load_staged_tape(staged, open_object_store(settings.resolved_object_store_uri))
        manifest = validate_and_publish(tape, AS_OF, settings, airflow_run_id="bench", work_dir=home / "tmp",
                                        timings=timings)
    with Timer() as rerun:  # the same tape again: the idempotent replace of the stored snapshot
        validate_and_publish(tape, AS_OF, settings, airflow_run_id="bench-2", work_dir=home / "tmp")
    assert manifest["accepted_rows"] + manifest["quarantined_rows"] == N_LOANS
    return {"rows": N_LOANS, "wall_s": round(timer.seconds, 2), "cpu_s": round(timer.cpu_seconds, 2),
            "rerun_wall_s": round(rerun.seconds, 2),
            **{f"{step}_s": round(seconds, 2) for step, seconds in timings.items()}}


@benchmark
def ingest_postgres_1m() -> dict[str, float]:
    import psycopg

    from pipelines.ingestion import ingest

    source = _book_csv()
    _warm_up(source)
    with open(source) as handle:
        columns = [name.strip('"') for name in handle.readline().strip().split(",")]
    with psycopg.connect(PG_URL, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {PG_TABLE}")
        column_sql = ", ".join(f'"{c}" text' for c in columns)
        cursor.execute(f"CREATE TABLE {PG_TABLE} ({column_sql})")
        with open(source, "rb") as handle, cursor.copy(f"COPY {PG_TABLE} FROM STDIN (FORMAT csv, HEADER true)") as copy:
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        cursor.execute(f"ANALYZE {PG_TABLE}")
        with Timer() as copy_timer:
            sink = io.BytesIO()
            with cursor.copy(f"COPY {PG_TABLE} TO STDOUT") as copy:
                for chunk in copy:
                    sink.write(chunk)
    with Timer() as timer:
        tape = ingest(f"{PG_URL}?table={PG_TABLE}")
    assert tape.table.num_rows == N_LOANS and not tape.type_errors
    rows_per_s = N_LOANS / timer.seconds
    copy_rows_per_s = N_LOANS / copy_timer.seconds
    return {"rows": N_LOANS, "wall_s": round(timer.seconds, 2), "rows_per_s": round(rows_per_s),
            "copy_rows_per_s": round(copy_rows_per_s), "ratio_to_copy": round(rows_per_s / copy_rows_per_s, 3)}
