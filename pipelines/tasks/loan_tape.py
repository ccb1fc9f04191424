"""The loan-tape tasks both ``loan_stress_test`` and ``portfolio_monitoring`` run: ingest, validate, features.

Each function is one task body: plain inputs (what XCom carries), the adapters from the composition
root, one call into ``pipelines.data``, and the step record.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pipelines.composition import current_adapters
from pipelines.data.sources import redact_credentials
from pipelines.settings import EtlRunner
from pipelines.tasks.policy import task_entry
from pipelines.tasks.runs import log, record_step, run_key, run_prefix


@task_entry
def ingest(source_uri: str | None, as_of: str, run_id: str) -> dict[str, Any]:
    """Read the loan tape into the canonical typed table and stage it for validation."""
    from pipelines.data.snapshots import stage_tape
    from pipelines.data.spark_tape import stage_tape_on_spark

    adapters = current_adapters()
    settings = adapters.settings
    source = source_uri or settings.resolved_loan_tape_uri
    log.info("ingesting the loan tape %s (as of %s, %s ETL)", redact_credentials(source), as_of, settings.etl_runner)
    if settings.etl_runner is not EtlRunner.LOCAL:
        staged = stage_tape_on_spark(source, run_key(run_id), adapters.object_store, adapters.etl_submitter,
                                     settings.aws_region, loan_store=adapters.loan_store,
                                     chunk_bytes=settings.etl_chunk_bytes, part_rows=settings.etl_part_rows,
                                     as_of=date.fromisoformat(as_of), airflow_run_id=run_id,
                                     http=adapters.http_fetcher)
    else:
        staged = stage_tape(source, run_key(run_id), adapters.object_store, settings.aws_region,
                            loan_store=adapters.loan_store, as_of=date.fromisoformat(as_of), airflow_run_id=run_id,
                            http=adapters.http_fetcher)
    log.info("ingested %s rows (%s malformed, %s with type errors)", f"{staged['input_rows']:,}",
             staged["malformed_rows"], staged["rows_with_type_errors"])
    return record_step(adapters.object_store, run_id, "ingest", {**staged, "as_of": as_of})


@task_entry
def validate(staged: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Validate the staged tape with GX, record the ingestion and publish the accepted snapshot; returns the
    ingestion manifest (a tape with no acceptable row is recorded, then fails the task)."""
    from pipelines.data.snapshots import load_staged_tape, validate_and_publish
    from pipelines.data.spark_tape import validate_and_publish_on_spark

    adapters = current_adapters()
    settings = adapters.settings
    log.info("validating %s rows with Great Expectations (%s ETL)", f"{staged['input_rows']:,}", settings.etl_runner)
    common = {"store": adapters.object_store, "loan_store": adapters.loan_store,
              "duplicate_tolerance": settings.duplicate_id_tolerance,
              "balance_tolerance": settings.balance_over_amount_tolerance,
              "work_dir": settings.data_home / "tmp" / run_key(run_id), "airflow_run_id": run_id,
              "amendments": adapters.service_store.pending_amendments()}
    as_of = date.fromisoformat(staged["as_of"])
    if settings.etl_runner is not EtlRunner.LOCAL:
        manifest = validate_and_publish_on_spark(staged, as_of, runner=adapters.etl_submitter,
                                                 aws_region=settings.aws_region, **common)
    else:
        manifest = validate_and_publish(load_staged_tape(staged, adapters.object_store), as_of, **common)
    if manifest["amendments"]:
        adapters.service_store.resolve_amendments({k: tuple(v) for k, v in manifest["amendments"].items()},
                                                  manifest["ingestion_id"], manifest["snapshot_id"])
        log.info("loan amendments met by this ingestion: %s", manifest["amendments"])
    log.info("ingestion %s, snapshot %s: %s accepted, %s quarantined %s", manifest["ingestion_id"],
             manifest["snapshot_id"],
             f"{manifest['accepted_rows']:,}", f"{manifest['quarantined_rows']:,}", manifest["quarantine_reasons"])
    return record_step(adapters.object_store, run_id, "validate", manifest)


def snapshot_event_extra(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the ``validated_loan_snapshot`` asset event carries: enough to find and trust the snapshot."""
    return {key: manifest[key] for key in ("ingestion_id", "snapshot_id", "content_sha256", "input_sha256", "as_of",
                                           "input_rows", "accepted_rows",
                                           "quarantined_rows", "snapshot_uri", "quarantine_uri", "airflow_run_id")}


@task_entry
def build_features(snapshot: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Engineer the loan features of a validated snapshot at its as-of date; returns where they are."""
    from pipelines.data.features import build_features as engineer
    from pipelines.data.spark_tape import build_features_on_spark

    adapters = current_adapters()
    settings = adapters.settings
    store = adapters.object_store
    snapshot_key = f"snapshots/{snapshot['snapshot_id']}/loans.parquet"
    key = f"{run_prefix(run_id)}/features.parquet"
    as_of = date.fromisoformat(snapshot["as_of"])
    if settings.etl_runner is not EtlRunner.LOCAL:
        built = build_features_on_spark(snapshot_key, as_of, key, store=store, runner=adapters.etl_submitter,
                                        aws_region=settings.aws_region, part_rows=settings.etl_part_rows)
        rows, macro_quarter = built["rows"], built["macro_quarter"]
    else:
        features = engineer(store.get_parquet(snapshot_key), as_of)
        store.put_parquet(key, features)
        rows, macro_quarter = features.num_rows, features.schema.metadata[b"macro_quarter"].decode()
    log.info("engineered features of %s loans as of %s (%s ETL)", f"{rows:,}", snapshot["as_of"], settings.etl_runner)
    return record_step(store, run_id, "features", {
        "features_uri": store.uri(key), "features_key": key, "rows": rows, "snapshot_id": snapshot["snapshot_id"],
        "as_of": snapshot["as_of"], "macro_quarter": macro_quarter,
    })
