"""Daily monitoring of the loan book and its PD model, between the quarterly stress tests.

Ingest and validate today's loan tape (the same steps as the stress test), score it with the PD
model the stress test would use (the MLflow champion, else the benchmark logistic model: the score
step records which and why) in process or, with ``STRESS_MONITORING_SCORER=batch_transform`` (the
default when the model is served on SageMaker), by a SageMaker batch transform of the whole book
(``pipelines/tasks/sagemaker.py``); ``choose_scorer`` picks the branch, ``scored_book`` takes whichever
ran, so both feed the same back-test, drift and compliance steps. Then back-test the model on the
latest performance history, measure drift (PSI of the score and the features against the previous
snapshot), judge the compliance rules of scope data and model, and publish the metrics.
Wiring only: each task is one call into ``pipelines.tasks``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import TriggerRule, chain, dag, task

from pipelines.tasks.groups import loan_tape, loan_tape_params
from pipelines.tasks.policy import DEFAULT_ARGS
from pipelines.tasks.sagemaker import sagemaker_batch_scoring

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
        **loan_tape_params(),
    },
    doc_md=__doc__,
)
def portfolio_monitoring() -> None:
    @task.branch
    def choose_scorer() -> str:
        from pipelines.tasks.monitoring import monitoring_scorer

        return {"in_process": "score", "batch_transform": "batch_transform.transform_input"}[monitoring_scorer()]

    @task
    def score(features: dict, run_id: str) -> dict:
        from pipelines.tasks.monitoring import score as score_book

        return score_book(features, run_id)

    # After whichever scorer ran (the other is skipped), never after a failed one.
    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def scored_book(in_process: dict | None, batch_transform: dict | None) -> dict:
        from pipelines.tasks.monitoring import scored_book as whichever_ran

        return whichever_ran(in_process, batch_transform)

    @task
    def backtest(scored: dict, run_id: str) -> dict:
        from pipelines.tasks.monitoring import backtest as run_backtest

        return run_backtest(scored, run_id)

    @task
    def drift(scored: dict, run_id: str) -> dict:
        from pipelines.tasks.monitoring import drift as measure_drift

        return measure_drift(scored, run_id)

    @task
    def compliance(manifest: dict, scored: dict, backtested: dict, drifted: dict, run_id: str) -> dict:
        from pipelines.tasks.monitoring import compliance as judge

        return judge(manifest, scored, backtested, drifted, run_id)

    @task
    def emit_metrics(compliance_result: dict, run_id: str) -> dict:
        from pipelines.tasks.compliance import emit_metrics as emit

        return emit(compliance_result, run_id)

    @task
    def compliance_gate(compliance_result: dict) -> dict:
        from pipelines.tasks.compliance import compliance_gate as gate

        return gate(compliance_result)

    tape = loan_tape()
    scorer = choose_scorer()
    in_process = score(tape["features"])
    chain(tape["features"], scorer, in_process)
    scored = scored_book(in_process, sagemaker_batch_scoring(tape["features"], scorer))
    judged = compliance(tape["manifest"], scored, backtest(scored), drift(scored))
    chain(emit_metrics(judged), compliance_gate(judged))


portfolio_monitoring()
