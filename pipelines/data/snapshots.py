"""The ingest and validate steps as the DAG runs them: stage the typed tape, then publish the
validated snapshot (Parquet + manifest in the object store, rows in the loan store).

A snapshot is named by the SHA-256 of its accepted rows, so re-running the same ingestion writes
the same keys and replaces the same store rows: idempotent by construction. The manifest records
where every number came from (source, as-of date, counts, Airflow run id).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipelines.adapters.loan_store import LoanStore
from pipelines.adapters.object_store import ObjectStore
from pipelines.data.ingestion import ROW_NUMBER, MalformedRow, TypedTape, ingest
from pipelines.data.sources import redact_credentials
from pipelines.data.validation import count_by_reason, validate
from pipelines.timing import timed

TYPE_ERRORS = "__type_errors"
log = logging.getLogger(__name__)


def content_hash(table: pa.Table) -> str:
    """SHA-256 of the table's Arrow IPC stream: equal data and schema give equal hashes."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table.combine_chunks())
    return hashlib.sha256(sink.getvalue()).hexdigest()


def stage_tape(source: str, run_key: str, store: ObjectStore, aws_region: str) -> dict[str, Any]:
    """Ingest ``source`` and stage the typed tape for the validate step; returns where it is."""
    tape = ingest(source, aws_region)
    prefix = f"staging/{run_key}"
    errors = [";".join(tape.type_errors.get(n, [])) or None for n in tape.table.column(ROW_NUMBER).to_pylist()]
    store.put_parquet(f"{prefix}/typed.parquet", tape.table.append_column(TYPE_ERRORS, pa.array(errors, pa.string())))
    store.put_parquet(f"{prefix}/raw.parquet", tape.raw_text)
    store.put_bytes(f"{prefix}/malformed.json", json.dumps([asdict(m) for m in tape.malformed]).encode())
    return {"source": tape.source, "staging_prefix": prefix, "input_rows": tape.input_rows,
            "malformed_rows": len(tape.malformed), "rows_with_type_errors": len(tape.type_errors),
            "extra_columns": tape.extra_columns}


def load_staged_tape(staged: dict[str, Any], store: ObjectStore) -> TypedTape:
    prefix = staged["staging_prefix"]
    typed = store.get_parquet(f"{prefix}/typed.parquet")
    errors = {n: e.split(";") for n, e in zip(typed.column(ROW_NUMBER).to_pylist(),
                                                typed.column(TYPE_ERRORS).to_pylist(), strict=True) if e}
    malformed = [MalformedRow(**m) for m in json.loads(store.get_bytes(f"{prefix}/malformed.json"))]
    return TypedTape(typed.drop_columns([TYPE_ERRORS]), store.get_parquet(f"{prefix}/raw.parquet"),
                     staged["source"], malformed, errors, staged["extra_columns"])


def validate_and_publish(tape: TypedTape, as_of: date | None, *, store: ObjectStore, loan_store: LoanStore,
                         duplicate_tolerance: float, balance_tolerance: float, work_dir: Path,
                         airflow_run_id: str | None = None, timings: dict[str, float] | None = None) -> dict[str, Any]:
    """Validate with GX, then write the snapshot, its quarantine, Data Docs and manifest, and load the store.

    The seconds of each sub-step are logged (the task log shows where a slow run spent its time) and
    added to ``timings`` when one is given.
    """
    timings = {} if timings is None else timings
    docs_dir = work_dir / "data_docs"
    outcome = validate(tape, duplicate_tolerance=duplicate_tolerance, balance_tolerance=balance_tolerance,
                       data_docs_dir=docs_dir, timings=timings)
    with timed(timings, "sort"):
        # In LoanId order (unique once duplicates are quarantined): the same loans give the same snapshot
        # whatever order the source delivered them in.
        outcome.accepted = outcome.accepted.sort_by("LoanId")
    with timed(timings, "content_hash"):
        content_sha256 = content_hash(outcome.accepted)
    snapshot_id = content_sha256[:24]
    prefix = f"snapshots/{snapshot_id}"
    with timed(timings, "data_docs_upload"):
        for path in sorted(docs_dir.rglob("*")):
            if path.is_file():
                store.put_bytes(f"{prefix}/data_docs/{path.relative_to(docs_dir).as_posix()}", path.read_bytes())
    with timed(timings, "parquet_upload"):
        snapshot_uri = store.put_parquet(f"{prefix}/loans.parquet", outcome.accepted)
        quarantine_uri = store.put_parquet(f"{prefix}/quarantine.parquet", outcome.quarantine)
    manifest = {
        "snapshot_id": snapshot_id,
        "content_sha256": content_sha256,
        "source": redact_credentials(tape.source),  # a tape built by hand may carry the real URI
        "as_of": as_of.isoformat() if as_of else None,
        "input_rows": outcome.input_rows,
        "accepted_rows": outcome.accepted.num_rows,
        "quarantined_rows": outcome.quarantine.num_rows,
        "pass_rate": outcome.pass_rate,
        "quarantine_reasons": count_by_reason(outcome.quarantine),
        "failed_expectations": outcome.failed_expectations,
        "extra_columns_ignored": tape.extra_columns,
        "snapshot_uri": snapshot_uri,
        "quarantine_uri": quarantine_uri,
        "data_docs_uri": store.uri(f"{prefix}/data_docs/index.html"),
        "airflow_run_id": airflow_run_id,
        "validated_at": datetime.now(UTC).isoformat(),
    }
    store.put_bytes(f"{prefix}/manifest.json", json.dumps(manifest, indent=2).encode())
    with timed(timings, "loan_store_load"):
        loan_store.load_snapshot(manifest, outcome.accepted, outcome.quarantine)
    log.info("validate and publish of %s rows, seconds per sub-step: %s", outcome.input_rows,
             {step: round(seconds, 2) for step, seconds in timings.items()})
    return manifest
