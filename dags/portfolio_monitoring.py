"""Daily monitoring of the loan book and its PD model, between the quarterly stress tests.

Ingest and validate today's loan tape (the same steps as the stress test), score it with the PD
model the stress test would use (the MLflow champion, else the benchmark logistic model: the score
step records which and why), back-test the model on the latest performance history, measure drift
(PSI of the score and the features against the previous snapshot), judge the compliance rules of
scope data and model, and publish the metrics. Wiring only: each task is one call into
``pipelines.steps``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task

from pipelines.alerting import DEFAULT_ARGS

DAG_ID = "portfolio_monitoring"


@dag(
    dag_id=DAG_ID,
    description="Daily: validate the loan tape, score it, back-test the PD model, measure drift, check compliance "
                "and publish metrics.",
    schedule="0 7 * * *",  # 07:00 UTC every day, after the nightly tape
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,  # drift compares with the previous run's snapshot
    default_args=DEFAULT_ARGS,
    tags=["monitoring", "credit-risk", "model-risk"],
    params={
        "source_uri": Param("", type="string", title="Loan tape",
                            description="CSV/Parquet path or file:// / s3:// URI, or a SQL URL with ?table=NAME. "
                                        "Empty: the configured tape (STRESS_LOAN_TAPE_URI)."),
        "as_of_date": Param("", type="string", title="As-of date",
                            description="YYYY-MM-DD date of the loan tape; empty: the run's logical date."),
    },
    doc_md=__doc__,
)
def portfolio_monitoring() -> None:
    @task
    def ingest(params: dict, run_id: str) -> dict:
        from pipelines.steps import ingest_step

        return ingest_step(params["source_uri"], run_id)

    @task
    def validate(staged: dict, params: dict, run_id: str, ds: str) -> dict:
        from pipelines.steps import validate_step

        return validate_step(staged, params["as_of_date"] or ds, run_id)

    @task
    def build_features(snapshot: dict, params: dict, run_id: str, ds: str) -> dict:
        from pipelines.steps import features_step

        return features_step(snapshot, params["as_of_date"] or ds, run_id)

    @task
    def score(features: dict, run_id: str) -> dict:
        from pipelines.steps import score_step

        return score_step(features, run_id)

    @task
    def backtest(score: dict, run_id: str) -> dict:
        from pipelines.steps import backtest_step

        return backtest_step(score, run_id)

    @task
    def drift(score: dict, run_id: str) -> dict:
        from pipelines.steps import drift_step

        return drift_step(score, run_id)

    @task
    def compliance(run_id: str) -> dict:
        from pipelines.steps import compliance_step

        return compliance_step(run_id, DAG_ID)

    @task
    def emit_metrics(run_id: str) -> dict:
        from pipelines.steps import emit_metrics_step

        return emit_metrics_step(run_id)

    scored = score(build_features(validate(ingest())))
    [backtest(scored), drift(scored)] >> compliance() >> emit_metrics()


portfolio_monitoring()
