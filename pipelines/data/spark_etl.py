"""Ingestion, validation and feature engineering of a loan tape as PySpark jobs (``STRESS_ETL_RUNNER=spark``).

``spark-submit pipelines/data/spark_etl.py --object-store-uri URI --job-key KEY`` runs one stage of
an :class:`EtlJob` written to the object store by the ``loan_tape`` task that waits on it:

``ingest``
    The driver cuts a CSV tape at line ends into chunks of about ``chunk_bytes`` and each Spark
    task parses its chunk with the local path's own per-chunk functions
    (:func:`~pipelines.data.ingestion.parse_csv_chunk` in the pass the whole tape needs, then
    :func:`~pipelines.data.ingestion.cast_to_contract`). A first pass over the chunks decides that
    pass exactly as :func:`~pipelines.data.ingestion.read_csv_as_text` decides it for the whole file
    (the contract's types if every cell parses, else text) and counts each chunk's records, so each
    chunk's rows get the numbers they have in the whole tape. Each chunk is staged as a *part* in
    the layout of :func:`~pipelines.data.snapshots.write_staged_tape`. A tape that needs the local
    path's forgiving parsers (lines that are not UTF-8), and every source that is not a CSV file or
    object (Parquet, database tables), is read by the driver with
    :func:`~pipelines.data.ingestion.ingest` itself and staged in parts of ``part_rows`` rows.
    An ``https://`` tape (a signed URL) was fetched by the task beforehand, through the project's HTTP
    fetcher, into the staging prefix (``read_from``); the stage reads that copy in place of it, under
    its redacted URL, so the job document and the job's arguments never hold the signature.
``validate``
    The suite of ``expectations/loan_tape.json`` runs through GX's Spark datasource on a Spark
    dataframe whose partitions compute the checked columns from the parts with
    :func:`~pipelines.data.validation.validation_columns`. GX gives each unexpected row by its
    ``row_number`` (``unexpected_index_column_names``) where the pandas path gives its index label;
    from there the rows' reasons are found by the local path's
    :func:`~pipelines.data.validation.rule_breaks` and each part is split into accepted rows and
    quarantine by :func:`~pipelines.data.validation.split_rows`, so a row gets the same reasons.
    The accepted rows are then sorted by ``LoanId`` in a Spark range partition, each range written as a
    piece (:class:`~pipelines.data.snapshots.StoredValidation`); the driver writes the quarantine (in
    row order, one part at a time), the input hash (of the whole tape's raw text, one part at a time,
    spilled to its local disk: :func:`~pipelines.data.hashing.content_hash_of_parts`), the failed
    expectations and the Data Docs. The ``validate`` task publishes them as the local path does,
    reading one piece at a time.
``features``
    Each Spark task engineers the features of one row group of the snapshot with
    :func:`~pipelines.data.features.build_features`, a per-row function; the driver writes them
    one after another in snapshot order.

A stage's result (``result.json`` beside the job) carries a table rule's failure instead of raising,
so the task records the rejected ingestion exactly as the local path does. No settings are read
here: everything comes from the job document, as for :mod:`pipelines.engine.spark_job`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INGEST, VALIDATE, FEATURES = "ingest", "validate", "features"
STAGES = (INGEST, VALIDATE, FEATURES)
# The byte window read to find the next line end after a tentative chunk boundary (grown when a line is longer).
_BOUNDARY_WINDOW = 1 << 16


@dataclass(frozen=True)
class EtlJob:
    """One stage of the Spark ETL of one run: its inputs, its tolerances and where its outputs go."""

    stage: str
    staging_prefix: str
    source: str = ""  # the tape's name in messages and records (credentials redacted)
    read_from: str = ""  # where the ingest stage reads it, when not from ``source``: the staged copy of an https tape
    region: str = "us-east-1"
    chunk_bytes: int = 64 << 20
    part_rows: int = 1_000_000
    parts: int = 0
    balance_tolerance: float = 0.05
    duplicate_tolerance: float = 0.01
    snapshot_key: str = ""
    as_of: str = ""
    features_key: str = ""
    kms_key_id: str = ""  # the store's SSE-KMS key (the submitter's --kms-key-id): the job's writes use it too

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown ETL stage {self.stage!r}; expected one of {STAGES}")

    @property
    def location(self) -> str:
        """The URI the ingest stage reads the tape from."""
        return self.read_from or self.source

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> EtlJob:
        return cls(**json.loads(data))


def job_key(staging_prefix: str, stage: str) -> str:
    """Where the job document of ``stage`` is kept."""
    return f"{staging_prefix}/etl/{stage}/job.json"


def result_key(key: str) -> str:
    """Where the driver leaves a stage's result: beside its job document."""
    return f"{key.rpartition('/')[0]}/result.json"


def part_prefix(staging_prefix: str, part: int) -> str:
    return f"{staging_prefix}/parts/part-{part:05d}"


# --- ingest ---------------------------------------------------------------------------------------------


def _csv_location(source: str) -> tuple[Any, str] | None:
    """(pyarrow filesystem, path) of a CSV file or object the executors can read by byte range, else None."""
    from urllib.parse import urlparse

    import pyarrow.fs as pafs

    parsed = urlparse(source)
    if Path(parsed.path).suffix.lower() not in {".csv", ".txt"} or parsed.scheme not in {"", "file", "s3"}:
        return None
    if parsed.scheme == "":
        return pafs.LocalFileSystem(), str(Path(source).resolve())
    return pafs.FileSystem.from_uri(source)


def _read_range(source: str, start: int, stop: int) -> bytes:
    filesystem, path = _csv_location(source)
    with filesystem.open_input_file(path) as handle:
        return handle.read_at(stop - start, start)


def _chunk_ranges(source: str, chunk_bytes: int, shown: str = "") -> tuple[bytes, list[tuple[int, int]]] | None:
    """The header line and the (start, stop) byte ranges of whole lines, about ``chunk_bytes`` each.

    None for a tape of at most one chunk (the driver reads it whole) or without a line end after
    its header: nothing would be gained by cutting it. ``shown`` names the tape in the error of a
    missing one (default ``source``).
    """
    from pipelines.data.ingestion import LINE_END, TableContractError

    filesystem, path = _csv_location(source)
    info = filesystem.get_file_info(path)
    if info.size is None:
        raise TableContractError(f"loan tape {shown or source!r} does not exist")
    size = info.size
    if size <= chunk_bytes:
        return None
    head = _read_range(source, 0, min(size, _BOUNDARY_WINDOW))
    line_end = LINE_END.search(head)
    if line_end is None or line_end.end() >= len(head):  # a header longer than the window, or nothing after it
        return None
    ranges, start = [], line_end.end()
    while start < size:
        stop = min(size, start + chunk_bytes)
        window = _BOUNDARY_WINDOW
        while stop < size:  # move the boundary past the next LF (that of a CRLF included)
            found = _read_range(source, stop, min(size, stop + window)).find(b"\n")
            if found >= 0:
                stop += found + 1
                break
            if stop + window >= size:
                stop = size
                break
            window *= 2
        ranges.append((start, stop))
        start = stop
    return head[: line_end.start()], ranges


def _chunk_pass(source: str, header_line: bytes, names: list[str], chunk: tuple[int, int]) -> tuple[str, int]:
    """Run on an executor: which pass a chunk needs (``typed``, ``text`` or ``whole``) and its record count."""
    import pyarrow as pa

    from pipelines.data.ingestion import parse_csv_chunk

    body = _read_range(source, *chunk)
    for as_text, name in ((False, "typed"), (True, "text")):
        try:
            table, malformed = parse_csv_chunk(header_line, names, body, as_text=as_text)
        except pa.ArrowInvalid:
            continue
        except UnicodeDecodeError:
            break
        records = table.num_rows + len(malformed)
        # A quoted value may hold a line break, and a cut at that line end would split its record in two:
        # a chunk whose records are not its non-empty lines one for one is read whole by the driver.
        lines = sum(1 for line in body.split(b"\n") if line.rstrip(b"\r"))
        return (name, records) if records == lines else ("whole", 0)
    return "whole", 0


def _stage_chunk(store_uri: str, job: EtlJob, header_line: bytes, names: list[str], part: int,
                 chunk: tuple[int, int], as_text: bool, offset: int) -> dict[str, Any]:
    """Run on an executor: parse, number and cast one chunk and stage it as a part."""
    from pipelines.data.ingestion import cast_to_contract, parse_csv_chunk, shift_row_numbers
    from pipelines.data.snapshots import write_staged_tape

    table, malformed = parse_csv_chunk(header_line, names, _read_range(job.location, *chunk), as_text=as_text)
    table, malformed = shift_row_numbers(table, malformed, offset)
    tape = cast_to_contract(table, malformed, job.source)
    write_staged_tape(_job_store(store_uri, job), part_prefix(job.staging_prefix, part), tape)
    return _part_facts(part, tape)


def _part_facts(part: int, tape) -> dict[str, Any]:
    return {"part": part, "rows": tape.table.num_rows, "input_rows": tape.input_rows,
            "malformed_rows": len(tape.malformed), "rows_with_type_errors": len(tape.type_errors),
            "extra_columns": tape.extra_columns}


def _ingest(spark, store, store_uri: str, job: EtlJob) -> dict[str, Any]:
    """Stage the tape in parts: chunk by chunk on the executors, or whole on the driver (see the module)."""
    from pipelines.data.ingestion import TableContractError, check_required_columns, csv_header_names

    location = job.location
    cut = _chunk_ranges(location, job.chunk_bytes, job.source) if _csv_location(location) is not None else None
    if cut is None:
        return _ingest_on_driver(store, job)
    header_line, chunks = cut
    names = csv_header_names(header_line, job.source)
    context = spark.sparkContext
    passes = context.parallelize(chunks, len(chunks)).map(
        lambda chunk: _chunk_pass(location, header_line, names, chunk)).collect()
    if any(needed == "whole" for needed, _ in passes):
        return _ingest_on_driver(store, job)
    if not any(records for _, records in passes):
        raise TableContractError(f"expect_table_row_count_to_be_between(min_value=1) failed for {job.source!r}: "
                                 "the tape has a header but no loans", rule="non_empty")
    check_required_columns(set(names), job.source)
    as_text = any(needed == "text" for needed, _ in passes)
    work, offset = [], 0
    for chunk, (_, records) in zip(chunks, passes, strict=True):
        if records:  # a chunk of blank lines holds no record and stages no part
            work.append((len(work), chunk, offset))
        offset += records
    facts = context.parallelize(work, len(work)).map(
        lambda item: _stage_chunk(store_uri, job, header_line, names, item[0], item[1], as_text, item[2])).collect()
    return {"parts": sorted(facts, key=lambda fact: fact["part"]), "read_by": "executors",
            "csv_pass": "text" if as_text else "typed"}


def _ingest_on_driver(store, job: EtlJob) -> dict[str, Any]:
    """The local path's own :func:`ingest` on the driver, staged in parts of ``part_rows`` rows.

    Each malformed line goes to the part whose rows it lies among, so the parts stay in row order.
    """
    import bisect

    from pipelines.data.ingestion import ROW_NUMBER, TypedTape, ingest
    from pipelines.data.snapshots import write_staged_tape

    tape = ingest(job.location, job.region, known_as=job.source)
    numbers = tape.table.column(ROW_NUMBER).to_numpy()
    starts = list(range(0, len(numbers), job.part_rows)) or [0]
    first_numbers = [int(numbers[start]) for start in starts[1:]]
    malformed: list[list] = [[] for _ in starts]
    for line in tape.malformed:
        malformed[bisect.bisect_right(first_numbers, line.row_number)].append(line)
    facts = []
    for part, start in enumerate(starts):
        table = tape.table.slice(start, job.part_rows)
        rows = set(table.column(ROW_NUMBER).to_pylist())
        piece = TypedTape(table, tape.raw_text.slice(start, job.part_rows), tape.source, malformed[part],
                          {row: errors for row, errors in tape.type_errors.items() if row in rows}, tape.extra_columns)
        write_staged_tape(store, part_prefix(job.staging_prefix, part), piece)
        facts.append(_part_facts(part, piece))
    return {"parts": facts, "read_by": "driver"}


# --- validate -------------------------------------------------------------------------------------------


def _load_part(store_uri: str, job: EtlJob, part: int):
    from pipelines.data.snapshots import load_staged_tape

    store = _job_store(store_uri, job)
    return load_staged_tape({"staging_prefix": part_prefix(job.staging_prefix, part), "source": job.source,
                             "extra_columns": []}, store)


def _validation_schema():
    """The Arrow schema of the checked columns (:func:`validation_columns` for Spark) and the row number."""
    import pyarrow as pa

    from pipelines.data.contract import ARROW_SCHEMA
    from pipelines.data.ingestion import ROW_NUMBER
    from pipelines.data.validation import validation_columns

    empty = ARROW_SCHEMA.empty_table().append_column(ROW_NUMBER, pa.array([], pa.int64()))
    columns = validation_columns(empty, 0.0, for_spark=True)
    return pa.schema([*(pa.field(name, column.type) for name, column in columns.items()),
                      pa.field(ROW_NUMBER, pa.int64())])


def _validation_batches(store_uri: str, job: EtlJob, batches):
    """Run on an executor (``mapInArrow``): the checked columns of the parts named in ``batches``."""
    import pyarrow as pa

    from pipelines.data.ingestion import ROW_NUMBER
    from pipelines.data.validation import validation_columns

    schema = _validation_schema()
    for batch in batches:
        for part in batch.column(0).to_pylist():
            table = _load_part(store_uri, job, part).table
            columns = validation_columns(table, job.balance_tolerance, for_spark=True)
            columns[ROW_NUMBER] = table.column(ROW_NUMBER)
            yield from pa.table(columns).cast(schema).to_batches()


def _part_rule_inputs(store_uri: str, job: EtlJob, part: int):
    """Run on an executor: a part's row numbers, type errors and text-rule breaks (what GX does not check)."""
    from pipelines.data.ingestion import ROW_NUMBER
    from pipelines.data.validation import text_rule_breaks

    tape = _load_part(store_uri, job, part)
    return (part, tape.table.column(ROW_NUMBER).to_numpy(), tape.type_errors, text_rule_breaks(tape.table),
            tape.malformed)


def _split_part(store_uri: str, job: EtlJob, part: int, bad, reasons) -> dict[str, Any]:
    """Run on an executor: a part's accepted rows and quarantine, written beside it."""
    from pipelines.data.validation import split_rows

    accepted, quarantine = split_rows(_load_part(store_uri, job, part), bad, reasons)
    store = _job_store(store_uri, job)
    prefix = part_prefix(job.staging_prefix, part)
    store.put_parquet(f"{prefix}/accepted.parquet", accepted)
    store.put_parquet(f"{prefix}/quarantine.parquet", quarantine)
    return {"part": part, "accepted": accepted.num_rows, "quarantined": quarantine.num_rows}


def _validate(spark, store, store_uri: str, job: EtlJob) -> dict[str, Any]:
    import numpy as np

    from pipelines.data.gx import run_gx_suite
    from pipelines.data.ingestion import ROW_NUMBER, TableContractError
    from pipelines.data.snapshots import raw_input_hash
    from pipelines.data.validation import loan_tape_suite, rule_breaks

    parts = list(range(job.parts))
    context = spark.sparkContext
    inputs = sorted(context.parallelize(parts, len(parts)).map(
        lambda part: _part_rule_inputs(store_uri, job, part)).collect(), key=lambda item: item[0])
    row_numbers = np.concatenate([numbers for _, numbers, *_ in inputs])
    type_errors = {row: errors for _, _, errors, _, _ in inputs for row, errors in errors.items()}
    text_breaks = [(rule, rows) for *_, breaks, _ in inputs for rule, rows in breaks]
    malformed = [m for *_, part_malformed in inputs for m in part_malformed]

    prefixes = [part_prefix(job.staging_prefix, part) for part in parts]
    input_rows = len(row_numbers) + len(malformed)
    # One part's raw text at a time: the driver spills the columns to its local disk, not to memory.
    input_sha256 = raw_input_hash((store.get_parquet(f"{p}/raw.parquet") for p in prefixes), malformed)

    from pyspark.sql.pandas.types import from_arrow_schema

    # GX runs one or more Spark jobs per expectation: the checked columns are computed from the parts
    # once and cached, and its aggregations (uniqueness, counts) shuffle into one partition per part
    # rather than Spark's default 200, which on a small tape cost more than the checks.
    spark.conf.set("spark.sql.shuffle.partitions", str(len(parts)))
    frame = spark.range(len(parts), numPartitions=len(parts)).mapInArrow(
        lambda batches: _validation_batches(store_uri, job, batches), from_arrow_schema(_validation_schema()))
    frame = frame.persist()
    frame.count()
    docs_dir = Path(tempfile.mkdtemp(prefix="loanstress-data-docs-"))
    results = run_gx_suite(frame, loan_tape_suite(job.duplicate_tolerance, condition_parser="spark"), docs_dir,
                           spark_row_label=ROW_NUMBER)
    try:
        bad, reasons, failed = rule_breaks(row_numbers, type_errors, text_breaks, results, job.source)
    except TableContractError as error:
        return {"table_error": {"rule": error.rule, "message": str(error)}, "input_rows": input_rows,
                "input_sha256": input_sha256}

    sizes = [len(numbers) for _, numbers, *_ in inputs]
    ends = np.cumsum(sizes)
    bad_before = np.concatenate([[0], np.cumsum(bad)])
    work = [(part, bad[end - size:end], reasons.slice(int(bad_before[end - size]), int(bad[end - size:end].sum())))
            for part, size, end in zip(parts, sizes, ends, strict=True)]
    split = context.parallelize(work, len(work)).map(lambda item: _split_part(store_uri, job, *item)).collect()
    accepted = sum(part["accepted"] for part in split)
    validated = f"{job.staging_prefix}/validated"
    pieces = _sort_accepted(spark, store_uri, job, validated) if accepted else []
    # Part by part, in row order: the driver holds one part (and one row group) of the quarantine at a time.
    quarantined, _ = store.put_parquet_parts(f"{validated}/quarantine.parquet",
                                             (store.get_parquet(f"{p}/quarantine.parquet") for p in prefixes))
    for path in sorted(docs_dir.rglob("*")):
        if path.is_file():
            store.put_bytes(f"{validated}/data_docs/{path.relative_to(docs_dir).as_posix()}", path.read_bytes())
    if accepted + quarantined != input_rows or sum(rows for _, rows in pieces) != accepted:
        raise AssertionError("validation lost rows: accepted + quarantined != input, or the sort lost rows")
    return {"validated_prefix": validated, "input_rows": input_rows, "failed_expectations": failed,
            "input_sha256": input_sha256, "accepted_pieces": [key for key, _ in pieces], "accepted_rows": accepted,
            "quarantine_key": f"{validated}/quarantine.parquet", "quarantined_rows": quarantined}


def _accepted_batches(store_uri: str, job: EtlJob, batches):
    """Run on an executor (``mapInArrow``): the accepted rows of the parts named in ``batches``."""
    store = _job_store(store_uri, job)
    for batch in batches:
        for part in batch.column(0).to_pylist():
            yield from store.get_parquet(f"{part_prefix(job.staging_prefix, part)}/accepted.parquet").to_batches()


def _write_sorted_piece(store_uri: str, job: EtlJob, validated: str, batches):
    """Run on an executor (``mapInArrow``): one range of the sorted accepted rows, written as one piece."""
    import pyarrow as pa
    from pyspark import TaskContext

    from pipelines.data.contract import ARROW_SCHEMA

    batches = list(batches)
    rows = sum(batch.num_rows for batch in batches)
    if not rows:
        return
    piece = TaskContext.get().partitionId()
    # Back from Spark's types to the contract's exactly (nullability included: the schema is hashed).
    table = pa.Table.from_batches(batches).cast(ARROW_SCHEMA)
    key = f"{validated}/sorted/piece-{piece:05d}.parquet"
    _job_store(store_uri, job).put_parquet(key, table)
    yield pa.RecordBatch.from_pydict({"piece": [piece], "key": [key], "rows": [rows]})


def _sort_accepted(spark, store_uri: str, job: EtlJob, validated: str) -> list[tuple[str, int]]:
    """The accepted rows in ``LoanId`` order as pieces (a range partition, each piece sorted); [(key, rows)].

    Spark samples the ids, cuts them into ``parts`` ranges and shuffles each row to its range, so no
    machine holds more than one range. Spark orders strings by their UTF-8 bytes, as Arrow's
    ``sort_by`` does, and the accepted ids are unique, so the order is the local path's.
    """
    from pyspark.sql.pandas.types import from_arrow_schema

    from pipelines.data.contract import ARROW_SCHEMA

    frame = spark.range(job.parts, numPartitions=job.parts).mapInArrow(
        lambda batches: _accepted_batches(store_uri, job, batches), from_arrow_schema(ARROW_SCHEMA))
    ranged = frame.repartitionByRange(job.parts, "LoanId").sortWithinPartitions("LoanId")
    written = ranged.mapInArrow(lambda batches: _write_sorted_piece(store_uri, job, validated, batches),
                                "piece LONG, key STRING, rows LONG").collect()
    return [(row["key"], row["rows"]) for row in sorted(written, key=lambda row: row["piece"])]


# --- features -------------------------------------------------------------------------------------------


def _range_features(store_uri: str, job: EtlJob, start: int, stop: int) -> bytes:
    """Run on an executor: the features of the snapshot's rows ``[start, stop)``, as Parquet bytes."""
    from datetime import date

    import pyarrow.parquet as pq

    from pipelines.adapters.parquet_rows import read_parquet_rows
    from pipelines.data.features import build_features

    loans = read_parquet_rows(_job_store(store_uri, job), job.snapshot_key, start, stop)
    buffer = io.BytesIO()
    pq.write_table(build_features(loans, date.fromisoformat(job.as_of)), buffer)
    return buffer.getvalue()


def _features(spark, store, store_uri: str, job: EtlJob) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from pipelines.adapters.parquet_rows import parquet_rows

    rows = parquet_rows(store, job.snapshot_key)
    ranges = [(start, min(start + job.part_rows, rows)) for start in range(0, rows, job.part_rows)]
    pieces = spark.sparkContext.parallelize(ranges, len(ranges)).map(
        lambda bounds: _range_features(store_uri, job, *bounds))
    # toLocalIterator fetches one partition at a time, in order: the driver holds one piece, not all of them.
    written, schema = store.put_parquet_parts(job.features_key,
                                              (pq.read_table(io.BytesIO(piece)) for piece in pieces.toLocalIterator()))
    return {"features_key": job.features_key, "rows": written,
            "macro_quarter": schema.metadata[b"macro_quarter"].decode()}


# --- driver ---------------------------------------------------------------------------------------------


def _job_store(store_uri: str, job: EtlJob) -> Any:
    """The object store as the job's stages open it: its region and its SSE-KMS key (SSE-S3 without one)."""
    from pipelines.adapters.object_store import ServerSideEncryption, open_object_store

    return open_object_store(store_uri, job.region, ServerSideEncryption(job.kms_key_id))


def run(store_uri: str, key: str, region: str, kms_key_id: str = "") -> dict[str, Any]:
    """Run the stage of the job at ``key``; its result (or the table rule it stopped on) goes to ``result.json``."""
    from dataclasses import replace

    from pyspark.sql import SparkSession

    from pipelines.adapters.object_store import ServerSideEncryption, open_object_store
    from pipelines.data.ingestion import TableContractError

    store = open_object_store(store_uri, region, ServerSideEncryption(kms_key_id))
    job = replace(EtlJob.from_json(store.get_bytes(key)), kms_key_id=kms_key_id)
    stage = {INGEST: _ingest, VALIDATE: _validate, FEATURES: _features}[job.stage]
    spark = SparkSession.builder.appName(f"loanstress-etl-{job.stage} {key}").getOrCreate()
    try:
        result = {"stage": job.stage, **stage(spark, store, store_uri, job)}
    except TableContractError as error:
        result = {"stage": job.stage, "table_error": {"rule": error.rule, "message": str(error)}}
    finally:
        spark.stop()
    store.put_bytes(result_key(key), json.dumps(result, indent=2).encode())
    return result


def main(argv: list[str]) -> None:
    from pipelines.adapters.compute import job_argument_parser

    parser = job_argument_parser(__doc__.splitlines()[0])
    # Known arguments only: AWS Glue (the documented alternative) adds its own (--JOB_NAME, ...).
    args, _ = parser.parse_known_args(argv)
    result = run(args.object_store_uri, args.job_key, args.region, args.kms_key_id)
    print(f"ETL stage {result['stage']} of {args.job_key}: {'table error' if 'table_error' in result else 'done'}")


if __name__ == "__main__":
    main(sys.argv[1:])
