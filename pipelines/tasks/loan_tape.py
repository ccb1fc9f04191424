"""The loan-tape tasks both ``loan_stress_test`` and ``portfolio_monitoring`` run: ingest, validate, features.

Each function is one task body: plain inputs (what XCom carries), the adapters from the composition
root, one call into ``pipelines.data``, and the step record.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pipelines.composition import current_adapters
from pipelines.data.sources import redact_credentials
from pipelines.tasks.policy import task_entry
from pipelines.tasks.runs import log, record_step, run_key, run_prefix


@task_entry
def ingest(source_uri: str | None, as_of: str, run_id: str) -> dict[str, Any]:
    """Read the loan tape into the canonical typed table and stage it for validation."""
    from pipelines.data.snapshots import stage_tape

    adapters = current_adapters()
    source = source_uri or adapters.settings.resolved_loan_tape_uri
    log.info("ingesting the loan tape %s (as of %s)", redact_credentials(source), as_of)
    staged = stage_tape(source, run_key(run_id), adapters.object_store, adapters.settings.aws_region,
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

    adapters = current_adapters()
    settings = adapters.settings
    tape = load_staged_tape(staged, adapters.object_store)
    log.info("validating %s rows with Great Expectations", f"{tape.input_rows:,}")
    manifest = validate_and_publish(
        tape, date.fromisoformat(staged["as_of"]), store=adapters.object_store, loan_store=adapters.loan_store,
        duplicate_tolerance=settings.duplicate_id_tolerance, balance_tolerance=settings.balance_over_amount_tolerance,
        work_dir=settings.data_home / "tmp" / run_key(run_id), airflow_run_id=run_id,
        amendments=adapters.service_store.pending_amendments())
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

    adapters = current_adapters()
    store = adapters.object_store
    loans = store.get_parquet(f"snapshots/{snapshot['snapshot_id']}/loans.parquet")
    features = engineer(loans, date.fromisoformat(snapshot["as_of"]))
    key = f"{run_prefix(run_id)}/features.parquet"
    log.info("engineered features of %s loans as of %s", f"{features.num_rows:,}", snapshot["as_of"])
    return record_step(store, run_id, "features", {
        "features_uri": store.put_parquet(key, features), "features_key": key,
        "rows": features.num_rows, "snapshot_id": snapshot["snapshot_id"], "as_of": snapshot["as_of"],
        "macro_quarter": features.schema.metadata[b"macro_quarter"].decode(),
    })
