"""The DAG steps as plain functions of plain values (what XCom carries), one call per task.

Keeping the step bodies here rather than in ``dags/`` lets them run and be tested without Airflow,
keeps DAG parsing fast (no pandas, GX or MLflow at import time), and lets the command line run the
very same steps.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from pipelines.settings import get_settings


def run_key(run_id: str) -> str:
    """A run id made safe for object keys (Airflow run ids contain ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


def record_step(run_id: str, step: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Keep a step's output under ``runs/<run>/steps/`` so every number of a run can be traced."""
    from pipelines.object_store import open_object_store

    settings = get_settings()
    store = open_object_store(settings.resolved_object_store_uri, settings.aws_region)
    store.put_bytes(f"runs/{run_key(run_id)}/steps/{step}.json", json.dumps(payload, indent=2, default=str).encode())
    return payload


def read_run_steps(run_id: str) -> dict[str, dict[str, Any]]:
    """Every recorded step output of a run, by step name."""
    from pipelines.object_store import open_object_store

    settings = get_settings()
    store = open_object_store(settings.resolved_object_store_uri, settings.aws_region)
    prefix = f"runs/{run_key(run_id)}/steps/"
    return {key.removeprefix(prefix).removesuffix(".json"): json.loads(store.get_bytes(key))
            for key in store.list_keys(prefix)}


def ingest_step(source_uri: str, run_id: str) -> dict[str, Any]:
    """Read the loan tape into the canonical typed table and stage it for validation."""
    from pipelines.snapshots import stage_tape

    settings = get_settings()
    staged = stage_tape(source_uri or settings.resolved_loan_tape_uri, run_key(run_id), settings)
    return record_step(run_id, "ingest", staged)


def validate_step(staged: dict[str, Any], as_of: str, run_id: str) -> dict[str, Any]:
    """Validate the staged tape with GX and publish the accepted snapshot; returns its manifest."""
    from pipelines.object_store import open_object_store
    from pipelines.snapshots import load_staged_tape, validate_and_publish

    settings = get_settings()
    store = open_object_store(settings.resolved_object_store_uri, settings.aws_region)
    tape = load_staged_tape(staged, store)
    manifest = validate_and_publish(tape, date.fromisoformat(as_of), settings, airflow_run_id=run_id,
                                    work_dir=settings.data_home / "tmp" / run_key(run_id))
    return record_step(run_id, "validate", manifest)


def features_step(snapshot: dict[str, Any], as_of: str, run_id: str) -> dict[str, Any]:
    """Engineer the loan features of a validated snapshot at the as-of date; returns where they are."""
    from pipelines.features import build_features
    from pipelines.object_store import open_object_store

    settings = get_settings()
    store = open_object_store(settings.resolved_object_store_uri, settings.aws_region)
    loans = store.get_parquet(f"snapshots/{snapshot['snapshot_id']}/loans.parquet")
    features = build_features(loans, date.fromisoformat(as_of))
    uri = store.put_parquet(f"runs/{run_key(run_id)}/features.parquet", features)
    return record_step(run_id, "features", {
        "features_uri": uri, "features_key": f"runs/{run_key(run_id)}/features.parquet",
        "rows": features.num_rows, "snapshot_id": snapshot["snapshot_id"], "as_of": as_of,
        "macro_quarter": features.schema.metadata[b"macro_quarter"].decode(),
    })
