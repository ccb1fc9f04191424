"""Task groups more than one DAG declares: the loan tape's ingest -> validate -> features.

Imported by DAG files at parse time: only the Airflow SDK at the top; each task's body imports its
task function when it runs.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, Param, XComArg, task, task_group


def loan_tape_params() -> dict[str, Param]:
    """The trigger-form fields of every DAG that runs the loan_tape group (None: the configured default)."""
    return {
        "source_uri": Param(None, type=["null", "string"], title="Loan tape",
                            description="CSV/Parquet path or file:// / s3:// URI, or a SQL URL with ?table=NAME. "
                                        "Empty: the configured tape (STRESS_LOAN_TAPE_URI)."),
        "as_of_date": Param(None, type=["null", "string"], format="date", title="As-of date",
                            description="Date of the loan tape; empty: the run's logical date (or, for a run "
                                        "without one, the time it was due)."),
    }


@task_group(group_id="loan_tape")
def loan_tape(snapshot_asset: Asset | None = None) -> dict[str, XComArg]:
    """Ingest, validate (GX, quarantine, snapshot) and engineer features; returns the manifest and features.

    Reads the DAG's ``source_uri`` and ``as_of_date`` params (``None``: the configured tape; the run's
    logical date or, for a run without one, the time the run was due). When ``snapshot_asset`` is given,
    the validated snapshot is an event of that asset, carrying its id, hash, row counts and location.
    """

    @task
    def ingest(params: dict, run_id: str, dag_run: Any = None) -> dict:
        from pipelines.tasks.loan_tape import ingest as ingest_tape
        from pipelines.tasks.runs import resolve_as_of

        as_of = resolve_as_of(params.get("as_of_date"), getattr(dag_run, "logical_date", None),
                              getattr(dag_run, "run_after", None))
        return ingest_tape(params.get("source_uri"), as_of, run_id)

    @task(outlets=[snapshot_asset] if snapshot_asset else [])
    def validate(staged: dict, run_id: str, outlet_events: Any = None) -> dict:
        from pipelines.tasks.loan_tape import snapshot_event_extra
        from pipelines.tasks.loan_tape import validate as validate_tape

        manifest = validate_tape(staged, run_id)
        if snapshot_asset is not None:
            outlet_events[snapshot_asset].extra = snapshot_event_extra(manifest)
        return manifest

    @task
    def build_features(manifest: dict, run_id: str) -> dict:
        from pipelines.tasks.loan_tape import build_features as engineer

        return engineer(manifest, run_id)

    manifest = validate(ingest())
    return {"manifest": manifest, "features": build_features(manifest)}
