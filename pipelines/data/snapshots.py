"""The ingest and validate steps as the DAG runs them: stage the typed tape, then publish the
validated snapshot and the ingestion's audit record.

Two things are kept, on purpose apart:

- the *snapshot*, the accepted loans, named by the SHA-256 of those rows (``snapshots/<id>/``): the
  same loans give the same snapshot whatever tape they came in, so it is immutable and shared;
- the *ingestion*, one per invocation (``ingestions/<uuid>/``): source, input hash, counts,
  quarantine, Data Docs, Airflow run. A second tape with the same good rows but other bad ones adds
  an ingestion and never touches the first one's record.

Writes are ordered so that a crash at any point leaves nothing that claims to be complete: the
loans and quarantine Parquet first, then the loan store (one transaction), then the manifests. A
snapshot's ``manifest.json`` is its commit marker: a snapshot without one is published again by the
next run that accepts the same loans (the store insert is a no-op when the rows are already there).
A tape that stops on a table rule (unreadable, missing columns, empty, duplicates beyond tolerance, no
acceptable row) publishes nothing and keeps its ingestion record all the same, with status
``rejected``, the rule that failed, the error, and what was known when it stopped: the redacted
source, the input hash and row count once the tape was read, the quarantine once rows were split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipelines.adapters.http_source import HttpFetcher
from pipelines.adapters.loan_store import LoanStore
from pipelines.adapters.object_store import ObjectStore
from pipelines.data.amendments import apply_amendments
from pipelines.data.hashing import content_hash, content_hash_of_parts
from pipelines.data.ingestion import ROW_NUMBER, MalformedRow, TableContractError, TypedTape, ingest
from pipelines.data.sources import redact_credentials, redact_text
from pipelines.data.validation import ValidationOutcome, count_by_reason, validate
from pipelines.timing import timed

TYPE_ERRORS = "__type_errors"
SNAPSHOT_MANIFEST = "manifest.json"
NO_ACCEPTABLE_ROW = "no_acceptable_row"
TOP_REASONS = 5  # quarantine reasons named in the error of a tape with no acceptable row
log = logging.getLogger(__name__)


def input_hash(tape: TypedTape) -> str:
    """SHA-256 of the tape as it arrived: every cell's raw text and every malformed line, in source order.

    The source may be a file or a database table, so the hash is of the parsed text rather than of
    bytes on disk; two tapes hash equal exactly when they held the same rows, bad ones included.
    """
    return raw_input_hash(tape.raw_text, tape.malformed)


def raw_input_hash(raw_text: pa.Table | Iterable[pa.Table], malformed: list[MalformedRow]) -> str:
    """:func:`input_hash` of a tape's raw text (whole, or in row order in parts) and malformed lines.

    The Spark ETL passes its parts' raw text one at a time (:func:`content_hash_of_parts`), so the
    driver never holds the tape's text, and the hash is the one the local path records.
    """
    text_hash = content_hash(raw_text) if isinstance(raw_text, pa.Table) else content_hash_of_parts(raw_text)
    digest = hashlib.sha256(text_hash.encode())
    digest.update(json.dumps([asdict(m) for m in malformed], ensure_ascii=False).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class TapeFacts:
    """What an ingestion's record says of the tape itself, whichever engine read it."""

    source: str
    input_sha256: str
    input_rows: int
    malformed_rows: int
    rows_with_type_errors: int
    extra_columns: list[str]

    @classmethod
    def of(cls, tape: TypedTape) -> TapeFacts:
        return cls(redact_credentials(tape.source), input_hash(tape), tape.input_rows, len(tape.malformed),
                   len(tape.type_errors), tape.extra_columns)


def stage_tape(source: str, run_key: str, store: ObjectStore, aws_region: str, *, loan_store: LoanStore,
               as_of: date | None = None, airflow_run_id: str | None = None,
               http: HttpFetcher | None = None) -> dict[str, Any]:
    """Ingest ``source`` and stage the typed tape for the validate step; returns where it is.

    The staged ``source`` (what XCom and the step records carry) has its credentials redacted. A tape
    that cannot be read or breaks a table rule while read is recorded as a rejected ingestion, then
    its :class:`TableContractError` goes on. ``http`` reads an ``https://`` source (a signed URL).
    """
    try:
        tape = ingest(source, aws_region, http)
    except TableContractError as error:
        _record_rejection(error, {"ingestion_id": uuid.uuid4().hex, "source": redact_credentials(source),
                                  "as_of": as_of.isoformat() if as_of else None, "airflow_run_id": airflow_run_id},
                          store, loan_store)
        raise
    prefix = f"staging/{run_key}"
    write_staged_tape(store, prefix, tape)
    return {"source": redact_credentials(source), "staging_prefix": prefix, "input_rows": tape.input_rows,
            "malformed_rows": len(tape.malformed), "rows_with_type_errors": len(tape.type_errors),
            "extra_columns": tape.extra_columns}


def write_staged_tape(store: ObjectStore, prefix: str, tape: TypedTape) -> None:
    """The typed tape (with each row's type errors), its raw text and its malformed lines under ``prefix``."""
    errors = [";".join(tape.type_errors.get(n, [])) or None for n in tape.table.column(ROW_NUMBER).to_pylist()]
    store.put_parquet(f"{prefix}/typed.parquet", tape.table.append_column(TYPE_ERRORS, pa.array(errors, pa.string())))
    store.put_parquet(f"{prefix}/raw.parquet", tape.raw_text)
    store.put_bytes(f"{prefix}/malformed.json", json.dumps([asdict(m) for m in tape.malformed]).encode())


def load_staged_tape(staged: dict[str, Any], store: ObjectStore) -> TypedTape:
    """The tape :func:`write_staged_tape` kept under ``staged["staging_prefix"]``."""
    prefix = staged["staging_prefix"]
    typed = store.get_parquet(f"{prefix}/typed.parquet")
    errors = {n: e.split(";") for n, e in zip(typed.column(ROW_NUMBER).to_pylist(),
                                                typed.column(TYPE_ERRORS).to_pylist(), strict=True) if e}
    malformed = [MalformedRow(**m) for m in json.loads(store.get_bytes(f"{prefix}/malformed.json"))]
    return TypedTape(typed.drop_columns([TYPE_ERRORS]), store.get_parquet(f"{prefix}/raw.parquet"),
                     staged["source"], malformed, errors, staged["extra_columns"])


def validate_and_publish(tape: TypedTape, as_of: date | None, *, store: ObjectStore, loan_store: LoanStore,
                         duplicate_tolerance: float, balance_tolerance: float, work_dir: Path,
                         airflow_run_id: str | None = None, timings: dict[str, float] | None = None,
                         amendments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Validate with GX, then keep the ingestion's record and publish its snapshot; returns the ingestion manifest.

    Raises :class:`TableContractError` naming the top quarantine reasons when no row was accepted,
    after the ingestion and its quarantine were recorded. The seconds of each sub-step are logged
    (the task log shows where a slow run spent its time) and added to ``timings`` when one is given.
    Pending loan ``amendments`` (from the service store) are applied to the accepted loans before the
    snapshot is named, so the new snapshot carries them; the manifest's ``amendments`` says what became
    of each (:func:`pipelines.data.amendments.apply_amendments`).
    """
    timings = {} if timings is None else timings
    ingestion_id = uuid.uuid4().hex
    docs_dir = work_dir / "data_docs"
    try:
        outcome = validate(tape, duplicate_tolerance=duplicate_tolerance, balance_tolerance=balance_tolerance,
                           data_docs_dir=docs_dir, timings=timings)
    except TableContractError as error:
        record_validation_rejection(error, TapeFacts.of(tape), ingestion_id, as_of, airflow_run_id, store, loan_store)
        raise
    return publish_validated(outcome, TapeFacts.of(tape), as_of, ingestion_id=ingestion_id, store=store,
                             loan_store=loan_store, balance_tolerance=balance_tolerance, airflow_run_id=airflow_run_id,
                             timings=timings, amendments=amendments)


def record_validation_rejection(error: TableContractError, facts: TapeFacts, ingestion_id: str, as_of: date | None,
                                airflow_run_id: str | None, store: ObjectStore, loan_store: LoanStore) -> None:
    """Keep the record of an ingestion whose validation stopped on a table rule."""
    _record_rejection(error, {
        "ingestion_id": ingestion_id, "source": facts.source, "input_sha256": facts.input_sha256,
        "as_of": as_of.isoformat() if as_of else None, "input_rows": facts.input_rows,
        "malformed_rows": facts.malformed_rows, "rows_with_type_errors": facts.rows_with_type_errors,
        "airflow_run_id": airflow_run_id}, store, loan_store)


@dataclass(frozen=True)
class StoredValidation:
    """A validation's outcome held in the object store in pieces, as the Spark ETL leaves it.

    ``accepted_keys`` are Parquet pieces of the accepted loans, each sorted by ``LoanId`` and all of
    them in ``LoanId`` order end to end (a range partition); ``quarantine_key`` is the quarantine's
    Parquet, read one row group at a time. :func:`publish_validated` reads each piece when it needs
    it, so the worker that publishes holds one piece, never the snapshot.
    """

    accepted_keys: list[str]
    accepted_rows: int
    quarantine_key: str
    quarantined_rows: int
    input_rows: int
    failed_expectations: dict[str, int]
    data_docs_dir: Path | None


class _ValidatedLoans:
    """The one interface :func:`publish_validated` reads an outcome through, whole or in pieces."""

    def __init__(self, outcome: ValidationOutcome | StoredValidation, store: ObjectStore,
                 timings: dict[str, float]) -> None:
        self.store = store
        self.outcome = outcome
        self.in_memory = isinstance(outcome, ValidationOutcome)
        if isinstance(outcome, ValidationOutcome):
            with timed(timings, "sort"):
                # In LoanId order (unique once duplicates are quarantined): the same loans give the same
                # snapshot whatever order the source delivered them in.
                self.sorted_accepted = outcome.accepted.sort_by("LoanId")
            self.accepted_rows, self.quarantined_rows = outcome.accepted.num_rows, outcome.quarantine.num_rows
        else:
            self.accepted_rows, self.quarantined_rows = outcome.accepted_rows, outcome.quarantined_rows

    def accepted_pieces(self) -> Iterator[pa.Table]:
        if isinstance(self.outcome, ValidationOutcome):
            yield self.sorted_accepted
            return
        for key in self.outcome.accepted_keys:
            yield self.store.get_parquet(key)

    def quarantine_pieces(self) -> Iterator[pa.Table]:
        if isinstance(self.outcome, ValidationOutcome):
            yield self.outcome.quarantine
            return
        import pyarrow.parquet as pq

        with self.store.open_ranges(self.outcome.quarantine_key) as file:
            parquet = pq.ParquetFile(file)
            for group in range(parquet.num_row_groups):
                yield parquet.read_row_group(group)

    def put_quarantine(self, key: str) -> str:
        if isinstance(self.outcome, ValidationOutcome):
            return self.store.put_parquet(key, self.outcome.quarantine)
        return self.store.copy(self.outcome.quarantine_key, key)


def publish_validated(outcome: ValidationOutcome | StoredValidation, facts: TapeFacts, as_of: date | None, *,
                      ingestion_id: str, store: ObjectStore, loan_store: LoanStore, balance_tolerance: float,
                      airflow_run_id: str | None = None, timings: dict[str, float] | None = None,
                      amendments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Keep the ingestion's record and publish the snapshot of a validation ``outcome`` (local or Spark).

    Sorts the accepted loans (a :class:`StoredValidation` comes sorted), applies the pending
    amendments, names the snapshot by its hash, uploads the quarantine and the Data Docs
    (``outcome.data_docs_dir``) and commits; see :func:`validate_and_publish`. An outcome in pieces
    is read piece by piece in each pass (hash, Parquet, loan store), and its snapshot, hash and
    record are the ones the same loans give in one table.
    """
    timings = {} if timings is None else timings
    loans = _ValidatedLoans(outcome, store, timings)
    amendment_outcomes: dict[str, tuple[str, str]] = {}

    def amended_pieces() -> Iterator[pa.Table]:
        # Amendments change no LoanId, so each piece stays sorted; applied again on each pass, they give
        # the same rows each time.
        for piece in loans.accepted_pieces():
            amended, outcomes = apply_amendments(piece, amendments or [], balance_tolerance)
            amendment_outcomes.update(outcomes)
            yield amended

    if loans.in_memory:  # one table: amended once, and hashed and written as the local path always has
        whole = list(amended_pieces())
        pieces: Callable[[], Iterator[pa.Table]] = lambda: iter(whole)  # noqa: E731
    else:
        pieces = amended_pieces
    with timed(timings, "content_hash"):
        if not loans.accepted_rows:
            content_sha256 = None
        elif loans.in_memory:
            content_sha256 = content_hash(whole[0])
        else:
            content_sha256 = content_hash_of_parts(pieces())
    docs_dir = outcome.data_docs_dir
    prefix = f"ingestions/{ingestion_id}"
    with timed(timings, "data_docs_upload"):
        for path in sorted(docs_dir.rglob("*") if docs_dir else []):
            if path.is_file():
                store.put_bytes(f"{prefix}/data_docs/{path.relative_to(docs_dir).as_posix()}", path.read_bytes())
    snapshot_id = content_sha256[:24] if content_sha256 else None
    snapshot_key = f"snapshots/{snapshot_id}"
    with timed(timings, "parquet_upload"):
        quarantine_uri = loans.put_quarantine(f"{prefix}/quarantine.parquet")
        snapshot_complete = snapshot_id is not None and store.exists(f"{snapshot_key}/{SNAPSHOT_MANIFEST}")
        if snapshot_id is None or snapshot_complete:
            snapshot_uri = store.uri(f"{snapshot_key}/loans.parquet") if snapshot_id else None
        else:
            # No manifest: never published, or a run died before committing. The bytes are the same
            # whoever writes them (content-addressed), so writing them again is safe.
            snapshot_uri = store.uri(f"{snapshot_key}/loans.parquet")
            if loans.in_memory:
                store.put_parquet(f"{snapshot_key}/loans.parquet", whole[0])
            else:
                store.put_parquet_parts(f"{snapshot_key}/loans.parquet", pieces())
    reasons: dict[str, int] = {}
    for piece in loans.quarantine_pieces():
        for reason, count in count_by_reason(piece).items():
            reasons[reason] = reasons.get(reason, 0) + count
    manifest = {
        "ingestion_id": ingestion_id,
        "snapshot_id": snapshot_id,
        "content_sha256": content_sha256,
        "input_sha256": facts.input_sha256,
        "source": facts.source,
        "as_of": as_of.isoformat() if as_of else None,
        "input_rows": outcome.input_rows,
        "accepted_rows": loans.accepted_rows,
        "quarantined_rows": loans.quarantined_rows,
        "pass_rate": loans.accepted_rows / outcome.input_rows if outcome.input_rows else 0.0,
        # Most frequent first; a tie keeps the order of first appearance, as in one table's count.
        "quarantine_reasons": dict(sorted(reasons.items(), key=lambda item: -item[1])),
        "failed_expectations": outcome.failed_expectations,
        "extra_columns_ignored": facts.extra_columns,
        "snapshot_uri": snapshot_uri,
        "quarantine_uri": quarantine_uri,
        "data_docs_uri": store.uri(f"{prefix}/data_docs/index.html"),
        "airflow_run_id": airflow_run_id,
        "amendments": {amendment_id: list(outcome) for amendment_id, outcome in amendment_outcomes.items()},
        "validated_at": datetime.now(UTC).isoformat(),
        "status": "published" if snapshot_id else "rejected",
    }
    if snapshot_id is None:
        manifest |= {"failed_rule": NO_ACCEPTABLE_ROW, "error": no_acceptable_row_message(manifest)}
    with timed(timings, "loan_store_load"):
        loan_store.record_ingestion(manifest, pieces() if snapshot_id else None, loans.quarantine_pieces())
    # The manifests last: each one marks its objects as committed to the loan store.
    store.put_bytes(f"{prefix}/manifest.json", json.dumps(manifest, indent=2).encode())
    if snapshot_id and not snapshot_complete:
        store.put_bytes(f"{snapshot_key}/{SNAPSHOT_MANIFEST}", json.dumps({
            **{key: manifest[key] for key in ("snapshot_id", "content_sha256", "accepted_rows", "snapshot_uri")},
            "first_ingestion_id": ingestion_id, "published_at": manifest["validated_at"]}, indent=2).encode())
    log.info("validate and publish of %s rows, seconds per sub-step: %s", outcome.input_rows,
             {step: round(seconds, 2) for step, seconds in timings.items()})
    if snapshot_id is None:
        raise TableContractError(manifest["error"], rule=NO_ACCEPTABLE_ROW)
    return manifest


def no_acceptable_row_message(manifest: dict[str, Any]) -> str:
    """The error of a tape whose every row was quarantined, naming its top quarantine reasons."""
    top = ", ".join(f"{reason} ({count})" for reason, count in
                    list(manifest["quarantine_reasons"].items())[:TOP_REASONS])
    return (f"no row of {manifest['source']!r} passed the contract: all {manifest['input_rows']} rows quarantined; "
            f"top reasons: {top}; quarantine of ingestion {manifest['ingestion_id']} at {manifest['quarantine_uri']}")


def _record_rejection(error: TableContractError, record: dict[str, Any], store: ObjectStore,
                      loan_store: LoanStore) -> None:
    """Keep the audit record of an ingestion stopped by ``error`` (loan store first, its manifest last)."""
    manifest = {**record, "snapshot_id": None, "status": "rejected", "failed_rule": error.rule,
                "error": redact_text(str(error)), "validated_at": datetime.now(UTC).isoformat()}
    loan_store.record_rejection(manifest)
    store.put_bytes(f"ingestions/{manifest['ingestion_id']}/manifest.json", json.dumps(manifest, indent=2).encode())
    log.warning("ingestion %s rejected by %s: %s", manifest["ingestion_id"], error.rule, manifest["error"])
