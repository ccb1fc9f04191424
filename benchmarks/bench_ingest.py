"""Ingestion speed: a 1,000,000-loan tape from CSV, and from PostgreSQL against a plain COPY."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from benchmarks.common import INPUTS, ResidentSampler, Timer, benchmark

N_LOANS = 1_000_000
AS_OF = date(2025, 12, 31)
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_TABLE = "bench_loan_tape"


def _book_csv() -> str:
    from pipelines.data.export import write_table
    from pipelines.data.synthetic import generate_loan_book

    path = INPUTS / f"loan_book_{N_LOANS}.csv"
    if not path.exists():
        INPUTS.mkdir(parents=True, exist_ok=True)
        write_table(generate_loan_book(N_LOANS, 1, AS_OF), str(path))
    return str(path)


def _warm_up(source: str) -> None:
    """Ingest the first loans once so imports and kernel set-up are not timed as ingestion."""
    from pipelines.data.ingestion import ingest

    with open(source, "rb") as handle:
        head = b"".join(handle.readline() for _ in range(1001))
    sample = INPUTS / "warm_up.csv"
    sample.write_bytes(head)
    ingest(str(sample))


@benchmark
def ingest_csv_1m() -> dict[str, float]:
    from pipelines.data.ingestion import ingest

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
    from pipelines.data.ingestion import TypedTape
    from pipelines.data.validation import validate

    head = TypedTape(tape.table.slice(0, 1000), tape.raw_text.slice(0, 1000), tape.source, [], {}, [])
    with Timer() as timer:
        validate(head, duplicate_tolerance=0.01, balance_tolerance=0.05)
    return timer.seconds


@benchmark
def validate_1m() -> dict[str, float]:
    from pipelines.data.ingestion import ingest
    from pipelines.data.validation import validate

    tape = ingest(_book_csv())
    warm_up_s = _warm_up_validation(tape)
    timings: dict[str, float] = {}
    with Timer() as timer:
        outcome = validate(tape, duplicate_tolerance=0.01, balance_tolerance=0.05, timings=timings)
    assert outcome.accepted.num_rows + outcome.quarantine.num_rows == N_LOANS
    return {"rows": N_LOANS, "wall_s": round(timer.seconds, 2), "cpu_s": round(timer.cpu_seconds, 2),
            "rows_per_s": round(N_LOANS / timer.seconds), "warm_up_with_gx_import_s": round(warm_up_s, 2),
            **{f"{step}_s": round(seconds, 2) for step, seconds in timings.items()}}


def _plain_copy(url: str, table: str) -> int:
    """The baseline: the ingestion's own COPY statements on as many connections, output discarded.

    Same page ranges, same CSV format, same number of connections (``COPY_WORKERS``) as
    :func:`pipelines.data.ingestion.ingest` uses, so the ratio measures what parsing and typing cost on
    top of the transfer, not what a second connection adds. Returns the bytes copied.
    """
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    from pipelines.data.ingestion import COPY_WORKERS, postgres_copy_statements

    def copy(statement: str) -> int:
        copied = 0
        with psycopg.connect(url) as connection, connection.cursor() as cursor, cursor.copy(statement) as out:
            for chunk in out:
                copied += len(chunk)
        return copied

    with ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
        return sum(pool.map(copy, postgres_copy_statements(url, table)))


@benchmark
def ingest_postgres_1m() -> dict[str, float]:
    import psycopg

    from pipelines.data.ingestion import COPY_WORKERS, ingest

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
        copied = _plain_copy(PG_URL, PG_TABLE)
    with Timer() as timer:
        tape = ingest(f"{PG_URL}?table={PG_TABLE}")
    assert tape.table.num_rows == N_LOANS and not tape.type_errors and copied > 0
    rows_per_s = N_LOANS / timer.seconds
    copy_rows_per_s = N_LOANS / copy_timer.seconds
    # The client's CPU seconds beside the wall: on a shared 2-core machine the wall ratio swings with
    # other work, the CPU one less (the server's CPU is the same COPY for both and is not counted).
    return {"rows": N_LOANS, "wall_s": round(timer.seconds, 2), "rows_per_s": round(rows_per_s),
            "copy_connections": COPY_WORKERS, "copy_wall_s": round(copy_timer.seconds, 2),
            "copy_rows_per_s": round(copy_rows_per_s), "ratio_to_copy": round(rows_per_s / copy_rows_per_s, 3),
            "cpu_s": round(timer.cpu_seconds, 2), "copy_cpu_s": round(copy_timer.cpu_seconds, 2),
            "cpu_ratio_to_copy": round(copy_timer.cpu_seconds / timer.cpu_seconds, 3)}


def _dirty_copy(source: str) -> str:
    """The clean book with one malformed, non-UTF-8 line in the middle (the case that used to be slow)."""
    path = INPUTS / f"loan_book_{N_LOANS}_dirty.csv"
    if not path.exists():
        data = Path(source).read_bytes()
        middle = data.index(b"\n", len(data) // 2) + 1
        path.write_bytes(data[:middle] + b"X-BAD,\xff\xfe,too,few,fields\n" + data[middle:])
    return str(path)


@benchmark
def ingest_dirty_1m() -> dict[str, float]:
    """A dirty tape (one malformed non-UTF-8 line) against the clean one: the goal is at most 2x."""
    from pipelines.data.ingestion import ingest

    clean_source = _book_csv()
    dirty_source = _dirty_copy(clean_source)
    _warm_up(clean_source)
    # Alternated, best of two each: the first read of a 200 MB file pays for page faults the second does not.
    seconds: dict[str, list[float]] = {"clean": [], "dirty": []}
    for _ in range(2):
        for kind, source in (("clean", clean_source), ("dirty", dirty_source)):
            with Timer() as timer:
                tape = ingest(source)
            seconds[kind].append(timer.seconds)
            assert tape.table.num_rows == N_LOANS and len(tape.malformed) == (kind == "dirty")
    clean, dirty = min(seconds["clean"]), min(seconds["dirty"])
    return {"rows": N_LOANS + 1, "clean_wall_s": round(clean, 2), "dirty_wall_s": round(dirty, 2),
            "dirty_over_clean": round(dirty / clean, 2)}


def _all_bad_copy(source: str) -> str:
    """The clean book with every row out of range (CreditScore 9999): each row quarantined, none accepted."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = INPUTS / f"loan_book_{N_LOANS}_all_bad.csv"
    if not path.exists():
        with open(source) as handle:
            names = [name.strip('"') for name in handle.readline().strip().split(",")]
        # Every cell read and written back as the same text: only CreditScore differs from the clean book.
        table = pacsv.read_csv(source, convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True))
        index = table.schema.get_field_index("CreditScore")
        table = table.set_column(index, "CreditScore", pa.array(["9999"] * table.num_rows, pa.string()))
        pacsv.write_csv(table, path)
    return str(path)


def validate_in_this_process(source: str) -> dict[str, float]:
    """Ingest ``source``, warm GX up, then time and measure the peak memory of validating it alone."""
    from benchmarks.common import reset_peak_rss, step_peak_rss_mb
    from pipelines.data.ingestion import ingest
    from pipelines.data.validation import validate

    tape = ingest(source)
    _warm_up_validation(tape)
    reset_peak_rss()
    baseline = step_peak_rss_mb()
    with Timer() as timer:
        outcome = validate(tape, duplicate_tolerance=0.01, balance_tolerance=0.05)
    assert outcome.accepted.num_rows + outcome.quarantine.num_rows == N_LOANS
    peak = step_peak_rss_mb()
    return {"wall_s": timer.seconds, "cpu_s": timer.cpu_seconds, "peak_rss_mb": peak,
            "added_rss_mb": peak - baseline, "quarantined": outcome.quarantine.num_rows}


@benchmark
def validate_all_bad_1m() -> dict[str, float]:
    """Validating a tape whose every row is out of range against the clean tape: the goal is at most 2x
    in wall time and in peak memory. Each runs in its own fresh process (peak RSS of the validate step:
    the kernel's high-water mark reset after ingestion and the GX warm-up)."""
    from benchmarks.common import in_fresh_process

    clean_source = _book_csv()
    bad_source = _all_bad_copy(clean_source)
    clean = in_fresh_process(validate_in_this_process, clean_source)
    bad = in_fresh_process(validate_in_this_process, bad_source)
    assert bad["quarantined"] == N_LOANS
    return {"rows": N_LOANS, "clean_wall_s": round(clean["wall_s"], 2), "all_bad_wall_s": round(bad["wall_s"], 2),
            "all_bad_over_clean_wall": round(bad["wall_s"] / clean["wall_s"], 2),
            "clean_cpu_s": round(clean["cpu_s"], 2), "all_bad_cpu_s": round(bad["cpu_s"], 2),
            "clean_peak_rss_mb": round(clean["peak_rss_mb"]), "all_bad_peak_rss_mb": round(bad["peak_rss_mb"]),
            "all_bad_over_clean_rss": round(bad["peak_rss_mb"] / clean["peak_rss_mb"], 2),
            "clean_added_rss_mb": round(clean["added_rss_mb"]), "all_bad_added_rss_mb": round(bad["added_rss_mb"])}


N_LOANS_5M = 5_000_000


@benchmark
def ingest_validate_5m() -> dict[str, float]:
    """5,000,000 loans ingested and validated in one process: wall time and peak RSS (goal <= 8 GB)."""
    from pipelines.data.export import write_table
    from pipelines.data.synthetic import generate_loan_book

    path = INPUTS / f"loan_book_{N_LOANS_5M}.csv"
    if not path.exists():
        INPUTS.mkdir(parents=True, exist_ok=True)
        write_table(generate_loan_book(N_LOANS_5M, 1, AS_OF), str(path))
    from benchmarks.common import in_fresh_process

    return in_fresh_process(ingest_and_validate_in_this_process, str(path), N_LOANS_5M)


def ingest_and_validate_in_this_process(source: str, rows: int) -> dict[str, float]:
    """Ingest and validate ``source`` in this (fresh) process; the peak RSS covers both steps."""
    from benchmarks.common import peak_rss_mb
    from pipelines.data.ingestion import ingest
    from pipelines.data.validation import validate

    _warm_up(source)
    _warm_up_validation(ingest(str(INPUTS / "warm_up.csv")))
    timings: dict[str, float] = {}
    with Timer() as ingest_timer:
        tape = ingest(source)
    with Timer() as validate_timer:
        outcome = validate(tape, duplicate_tolerance=0.01, balance_tolerance=0.05, timings=timings)
    assert tape.input_rows == rows and outcome.accepted.num_rows + outcome.quarantine.num_rows == rows
    return {"rows": rows, "ingest_wall_s": round(ingest_timer.seconds, 2),
            "validate_wall_s": round(validate_timer.seconds, 2),
            "wall_s": round(ingest_timer.seconds + validate_timer.seconds, 2), "peak_rss_mb": round(peak_rss_mb()),
            **{f"validate_{step}_s": round(seconds, 2) for step, seconds in timings.items()}}


PUBLISH_COPIES = 4  # the validated 1,000,000-loan tape four times over, under other ids: 4,000,000 loans
PUBLISH_PIECES_PER_COPY = 16
PUBLISH_DB = "bench_publish"


def _publish_inputs() -> Path:
    """A validated tape of 4,000,000 loans, kept whole and as the Spark ETL leaves it (sorted pieces).

    The 1,000,000-loan tape is validated once; its accepted loans are repeated under prefixed ids
    (``c0-``, ``c1-``, ...), which keeps each copy sorted and the copies in order, and so are its
    quarantined rows under shifted row numbers. The publish sees a tape four times as large without
    four times the validation.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipelines.adapters.object_store import LocalObjectStore
    from pipelines.data.ingestion import ingest
    from pipelines.data.validation import validate

    folder = INPUTS / "publish"
    if (folder / "ready").exists():
        return folder
    outcome = validate(ingest(_book_csv()), duplicate_tolerance=0.01, balance_tolerance=0.05)
    store = LocalObjectStore(folder)
    ordered = outcome.accepted.sort_by("LoanId")
    ids = ordered.schema.get_field_index("LoanId")
    numbers = outcome.quarantine.schema.get_field_index("row_number")
    copies, quarantines = [], []
    for copy in range(PUBLISH_COPIES):
        prefixed = pc.binary_join_element_wise(pa.scalar(f"c{copy}-"), ordered.column(ids), "")
        copies.append(ordered.set_column(ids, ordered.schema.field(ids), prefixed))
        shifted = pc.add(outcome.quarantine.column(numbers), copy * outcome.input_rows)
        quarantines.append(outcome.quarantine.set_column(numbers, outcome.quarantine.schema.field(numbers), shifted))
    store.put_parquet("whole/accepted.parquet", pa.concat_tables(copies))
    store.put_parquet("whole/quarantine.parquet", pa.concat_tables(quarantines))
    store.put_parquet("pieces/quarantine.parquet", pa.concat_tables(quarantines))
    size = -(-ordered.num_rows // PUBLISH_PIECES_PER_COPY)
    for copy, table in enumerate(copies):
        for piece in range(PUBLISH_PIECES_PER_COPY):
            store.put_parquet(f"pieces/piece-{copy:02d}-{piece:03d}.parquet", table.slice(piece * size, size))
    (folder / "facts.json").write_text(json.dumps({"input_rows": PUBLISH_COPIES * outcome.input_rows,
                                                   "failed_expectations": outcome.failed_expectations}))
    (folder / "ready").touch()
    return folder


def _fresh_loan_store_url() -> str:
    import psycopg

    with psycopg.connect(PG_URL.replace("/test", "/postgres"), autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {PUBLISH_DB} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {PUBLISH_DB}")
    return PG_URL.replace("/test", f"/{PUBLISH_DB}")


def publish_in_this_process(folder: str, in_pieces: bool) -> dict[str, float]:
    """Publish the validated tape at ``folder`` whole or from its pieces; seconds, peak RSS, snapshot id."""
    import tempfile

    from benchmarks.common import reset_peak_rss, step_peak_rss_mb
    from pipelines.adapters.loan_store import LoanStore
    from pipelines.adapters.object_store import LocalObjectStore
    from pipelines.data.snapshots import StoredValidation, TapeFacts, publish_validated
    from pipelines.data.validation import ValidationOutcome

    inputs = LocalObjectStore(Path(folder))
    facts = json.loads((Path(folder) / "facts.json").read_text())
    loan_store = LoanStore(_fresh_loan_store_url())
    reset_peak_rss()
    before_mb = step_peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as out:
        store = LocalObjectStore(Path(out))
        # The inputs are copied into the store the task publishes from, as the Spark job leaves them there.
        if in_pieces:
            keys = inputs.list_keys("pieces/piece-")
            for key in [*keys, "pieces/quarantine.parquet"]:
                store.put_file(key, inputs.local_path(key))
            validated = StoredValidation(keys, sum(_rows(inputs, key) for key in keys), "pieces/quarantine.parquet",
                                         _rows(inputs, "pieces/quarantine.parquet"), facts["input_rows"],
                                         facts["failed_expectations"], None)
        else:
            validated = ValidationOutcome(inputs.get_parquet("whole/accepted.parquet"),
                                          inputs.get_parquet("whole/quarantine.parquet"), facts["input_rows"],
                                          facts["failed_expectations"], None)
        held_mb = step_peak_rss_mb()
        timings: dict[str, float] = {}
        with Timer() as timer, ResidentSampler() as resident:
            manifest = publish_validated(validated, TapeFacts("bench.csv", "0" * 64, facts["input_rows"], 0, 0, []),
                                         AS_OF, ingestion_id=f"bench-{in_pieces}", store=store,
                                         loan_store=loan_store, balance_tolerance=0.05, timings=timings)
    return {"wall_s": round(timer.seconds, 2), "rss_before_inputs_mb": round(before_mb, 1),
            "rss_holding_inputs_mb": round(held_mb, 1), "peak_rss_mb": round(step_peak_rss_mb(), 1),
            "peak_anonymous_rss_mb": round(resident.peak_anonymous_mb, 1),
            "snapshot_id": manifest["snapshot_id"], "accepted_rows": manifest["accepted_rows"],
            **{f"{step}_s": round(seconds, 2) for step, seconds in timings.items()}}


def _rows(store, key: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(store.local_path(key)).metadata.num_rows


@benchmark
def publish_in_pieces_4m() -> dict[str, float]:
    """The ``validate`` task's publish of 4,000,000 loans: whole (the local path) against 64 sorted pieces (Spark).

    Each variant runs in a fresh process. ``peak_anonymous_rss_mb`` is what the publish keeps in memory;
    ``peak_rss_mb`` adds file-backed pages (the hash's memory-mapped spill files, files being read).
    """
    from benchmarks.common import in_fresh_process

    folder = str(_publish_inputs())
    whole = in_fresh_process(publish_in_this_process, folder, False)
    pieces = in_fresh_process(publish_in_this_process, folder, True)
    if whole["snapshot_id"] != pieces["snapshot_id"] or whole["accepted_rows"] != pieces["accepted_rows"]:
        raise AssertionError(f"the pieces published another snapshot: {pieces} against {whole}")
    return {"pieces": PUBLISH_COPIES * PUBLISH_PIECES_PER_COPY, "accepted_rows": whole["accepted_rows"],
            **{f"whole_{key}": value for key, value in whole.items() if key not in {"snapshot_id", "accepted_rows"}},
            **{f"pieces_{key}": value for key, value in pieces.items() if key not in {"snapshot_id", "accepted_rows"}}}
