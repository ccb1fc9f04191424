"""The loan tape's three steps through the Spark ETL: write the stage's job, run it, keep what it made.

The ``loan_tape`` tasks call these in place of :func:`~pipelines.data.snapshots.stage_tape`,
:func:`~pipelines.data.snapshots.validate_and_publish` and :func:`~pipelines.data.features.build_features`
when ``STRESS_ETL_RUNNER=spark``; each returns what its local counterpart returns, and a table rule
broken on Spark is recorded as a rejected ingestion by the same functions, so the DAG, the audit
records and the loan store cannot tell which engine ran (see :mod:`pipelines.data.spark_etl`).
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import urlparse

from pipelines.adapters.http_source import HttpFetcher
from pipelines.adapters.loan_store import LoanStore
from pipelines.adapters.object_store import ObjectStore
from pipelines.data.ingestion import TableContractError
from pipelines.data.sources import redact_credentials
from pipelines.data.spark_etl import FEATURES, INGEST, VALIDATE, EtlJob, job_key, result_key


class EtlSubmitter(Protocol):
    """Runs a Spark script on a job document in the object store and waits (``SparkSubmitRunner``, or
    ``EmrServerlessSubmitter``); raises when the job fails."""

    def run(self, store_uri: str, job_key: str, region: str, script: Path) -> None: ...


def _stage_http_copy(source: str, prefix: str, store: ObjectStore, http: HttpFetcher | None) -> str:
    """Fetch an ``https://`` tape into the staging prefix (its path's suffix kept, for its format); the copy's URI.

    The body goes to a local file as it arrives and is streamed up, so the task never holds the tape.
    """
    import tempfile

    from pipelines.data.ingestion import download_tape

    suffix = PurePosixPath(urlparse(source).path).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="loanstress-tape-") as folder:
        path = Path(folder) / f"tape{suffix}"
        download_tape(source, path, http)
        return store.put_file(f"{prefix}/source/tape{suffix}", path)


def _run_stage(store: ObjectStore, runner: EtlSubmitter, job: EtlJob) -> dict[str, Any]:
    """Write the stage's job, run it, and read its ``result.json``, which a job that ended well must have left."""
    from pipelines.adapters.compute import ETL_JOB, SparkJobError

    key = job_key(job.staging_prefix, job.stage)
    store.put_bytes(key, job.to_json())
    store.delete_prefix(result_key(key))  # a previous attempt's result must not pass for this one's
    runner.run(store.root_uri, key, job.region, ETL_JOB)
    if not store.exists(result_key(key)):
        # The driver writes it last, a table rule's failure included: without it nothing the job did is known.
        raise SparkJobError(f"the Spark ETL {job.stage} job of {store.uri(key)} succeeded but left no result at "
                            f"{store.uri(result_key(key))}")
    return json.loads(store.get_bytes(result_key(key)))


def stage_tape_on_spark(source: str, run_key: str, store: ObjectStore, runner: EtlSubmitter, aws_region: str, *,
                        loan_store: LoanStore, chunk_bytes: int, part_rows: int, as_of: date | None = None,
                        airflow_run_id: str | None = None, http: HttpFetcher | None = None) -> dict[str, Any]:
    """:func:`~pipelines.data.snapshots.stage_tape` on Spark: the tape staged in parts under ``staging/<run>``.

    The job document is kept in the object store, so a source with credentials in its URI is refused:
    give a database's password through the environment (``PGPASSWORD``, ``.pgpass``) instead. An
    ``https://`` tape is the exception: it is fetched here through ``http`` (the local path's fetcher:
    its timeouts, retries, body limit and certificate checks) into ``staging/<run>/source/``, and the
    job reads that copy, knowing the tape only by its redacted URL. A read or table rule that fails
    is recorded as a rejected ingestion, as the local path records it.
    """
    from pipelines.data.snapshots import _record_rejection

    shown = redact_credentials(source)
    prefix = f"staging/{run_key}"
    try:
        read_from = ""
        if urlparse(source).scheme == "https":
            read_from = _stage_http_copy(source, prefix, store, http)
        elif shown != source:
            raise TableContractError(f"the Spark ETL writes its source into the object store; {shown!r} carries "
                                     "credentials: pass them through the environment instead", rule="readable_tape")
        result = _run_stage(store, runner, EtlJob(INGEST, prefix, source=shown, read_from=read_from,
                                                  region=aws_region, chunk_bytes=chunk_bytes, part_rows=part_rows))
        if "table_error" in result:
            raise TableContractError(result["table_error"]["message"], rule=result["table_error"]["rule"])
    except TableContractError as error:
        _record_rejection(error, {"ingestion_id": uuid.uuid4().hex, "source": shown,
                                  "as_of": as_of.isoformat() if as_of else None, "airflow_run_id": airflow_run_id},
                          store, loan_store)
        raise
    parts = result["parts"]
    return {"source": shown, "staging_prefix": prefix, "input_rows": sum(p["input_rows"] for p in parts),
            "malformed_rows": sum(p["malformed_rows"] for p in parts),
            "rows_with_type_errors": sum(p["rows_with_type_errors"] for p in parts),
            "extra_columns": parts[0]["extra_columns"], "parts": len(parts), "read_by": result["read_by"]}


def validate_and_publish_on_spark(staged: dict[str, Any], as_of: date | None, *, store: ObjectStore,
                                  runner: EtlSubmitter, aws_region: str, loan_store: LoanStore,
                                  duplicate_tolerance: float, balance_tolerance: float, work_dir: Path,
                                  airflow_run_id: str | None = None,
                                  amendments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """:func:`~pipelines.data.snapshots.validate_and_publish` with the GX suite and the quarantine on Spark."""
    from pipelines.data.snapshots import StoredValidation, TapeFacts, publish_validated, record_validation_rejection

    result = _run_stage(store, runner, EtlJob(VALIDATE, staged["staging_prefix"], source=staged["source"],
                                              region=aws_region, parts=staged["parts"],
                                              balance_tolerance=balance_tolerance,
                                              duplicate_tolerance=duplicate_tolerance))
    facts = TapeFacts(staged["source"], result["input_sha256"], result["input_rows"], staged["malformed_rows"],
                      staged["rows_with_type_errors"], staged["extra_columns"])
    ingestion_id = uuid.uuid4().hex
    if "table_error" in result:
        error = TableContractError(result["table_error"]["message"], rule=result["table_error"]["rule"])
        record_validation_rejection(error, facts, ingestion_id, as_of, airflow_run_id, store, loan_store)
        raise error
    validated = result["validated_prefix"]
    docs_dir = work_dir / "data_docs"
    for key in store.list_keys(f"{validated}/data_docs/"):
        path = docs_dir / key.removeprefix(f"{validated}/data_docs/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.get_bytes(key))
    outcome = StoredValidation(result["accepted_pieces"], result["accepted_rows"], result["quarantine_key"],
                               result["quarantined_rows"], result["input_rows"], result["failed_expectations"],
                               docs_dir)
    return publish_validated(outcome, facts, as_of, ingestion_id=ingestion_id, store=store, loan_store=loan_store,
                             balance_tolerance=balance_tolerance, airflow_run_id=airflow_run_id,
                             amendments=amendments)


def build_features_on_spark(snapshot_key: str, as_of: date, features_key: str, *, store: ObjectStore,
                            runner: EtlSubmitter, aws_region: str, part_rows: int) -> dict[str, Any]:
    """:func:`~pipelines.data.features.build_features` of a snapshot on Spark, written to ``features_key``."""
    staging = features_key.rpartition("/")[0]
    return _run_stage(store, runner, EtlJob(FEATURES, staging, region=aws_region, part_rows=part_rows,
                                            snapshot_key=snapshot_key, as_of=as_of.isoformat(),
                                            features_key=features_key))
