"""Quarterly regulatory stress test of the loan book (also triggered on demand from the UI).

Wiring only: each task is one call into ``pipelines.steps``; heavy libraries load inside tasks so
the scheduler parses this file in milliseconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, task

VALIDATED_LOAN_SNAPSHOT = Asset(name="validated_loan_snapshot", uri="file://loanstress/validated_loan_snapshot")

DEFAULT_ARGS = {
    "owner": "risk-engineering",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
}


@dag(
    dag_id="loan_stress_test",
    description="Ingest and validate the loan tape, engineer features, run the stress scenarios.",
    schedule="0 6 1 1,4,7,10 *",  # 06:00 UTC on the first day of each quarter
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["stress-test", "credit-risk", "regulatory"],
    params={
        "source_uri": Param("", type="string", title="Loan tape",
                            description="CSV/Parquet path or file:// / s3:// URI, or a SQL URL with ?table=NAME. "
                                        "Empty: the configured tape (STRESS_LOAN_TAPE_URI)."),
        "as_of_date": Param("", type="string", title="As-of date",
                            description="YYYY-MM-DD date of the loan tape; empty: the run's logical date."),
    },
    doc_md=__doc__,
)
def loan_stress_test() -> None:
    @task
    def ingest(params: dict, run_id: str) -> dict:
        from pipelines.steps import ingest_step

        return ingest_step(params["source_uri"], run_id)

    @task(outlets=[VALIDATED_LOAN_SNAPSHOT])
    def validate(staged: dict, params: dict, run_id: str, ds: str) -> dict:
        from pipelines.steps import validate_step

        return validate_step(staged, params["as_of_date"] or ds, run_id)

    @task
    def build_features(snapshot: dict, params: dict, run_id: str, ds: str) -> dict:
        from pipelines.steps import features_step

        return features_step(snapshot, params["as_of_date"] or ds, run_id)

    build_features(validate(ingest()))


loan_stress_test()
