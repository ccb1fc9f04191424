"""Quarterly regulatory stress test of the loan book (also triggered on demand from the UI).

Wiring only: each task is one call into ``pipelines.steps``; heavy libraries load inside tasks so
the scheduler parses this file in milliseconds.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, Param, dag, task

from pipelines.alerting import DEFAULT_ARGS

# Scenario ids offered in the trigger form; a test keeps this list equal to the scenario library.
SCENARIOS = ["2026_baseline", "2026_severely_adverse", "2025_baseline", "2025_severely_adverse", "rate_hike_300bp"]
DAG_ID = "loan_stress_test"
VALIDATED_LOAN_SNAPSHOT = Asset(name="validated_loan_snapshot", uri="file://loanstress/validated_loan_snapshot")


@dag(
    dag_id=DAG_ID,
    description="Ingest and validate the loan tape, engineer features, run the stress scenarios, check "
                "compliance, publish metrics and write the report.",
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
        "scenarios": Param(["2026_baseline", "2026_severely_adverse", "rate_hike_300bp"], type="array",
                           title="Scenarios", examples=SCENARIOS, items={"type": "string", "enum": SCENARIOS},
                           description="Fed supervisory scenarios and custom scenarios in scenarios/custom."),
        "rate_shock_bp": Param(0, type="number", minimum=-500, maximum=1000, title="Custom rate shock (bp)",
                               description="Adds a scenario: the baseline with this shock on every interest rate, "
                                           "ramped over 2 quarters, then held. 0: none."),
        "horizon_quarters": Param(9, type="integer", minimum=1, maximum=13, title="Horizon (quarters)"),
        "n_paths": Param(1000, type="integer", minimum=10, maximum=100000, title="Monte Carlo paths"),
        "seed": Param(20260101, type="integer", title="Random seed"),
        "batch_size": Param(0, type="integer", minimum=0, title="Loans per batch",
                            description="Loans per simulation batch (mapped task); 0: STRESS_BATCH_SIZE."),
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

    @task
    def plan(features: dict, params: dict, run_id: str) -> dict:
        from pipelines.steps import plan_step

        return plan_step(features, params["scenarios"], params["rate_shock_bp"], params["horizon_quarters"],
                         params["n_paths"], params["seed"], params["batch_size"], run_id)

    @task
    def work_items(plan: dict) -> list[dict]:
        from pipelines.steps import simulation_work_items

        return simulation_work_items(plan)

    @task
    def scenario_ids(plan: dict) -> list[str]:
        return plan["scenarios"]

    @task(map_index_template="{{ scenario_id }} batch {{ batch.batch }}")
    def simulate(plan: dict, scenario_id: str, batch: dict, run_id: str) -> dict:
        from pipelines.steps import simulate_step

        return simulate_step(plan, scenario_id, batch, run_id)

    @task(map_index_template="{{ scenario_id }}")
    def reduce(plan: dict, scenario_id: str, run_id: str) -> dict:
        from pipelines.steps import reduce_step

        return reduce_step(plan, scenario_id, run_id)

    @task
    def check_results(plan: dict, run_id: str) -> dict:
        from pipelines.steps import check_results_step

        return check_results_step(plan, run_id)

    @task
    def compliance(run_id: str) -> dict:
        from pipelines.steps import compliance_step

        return compliance_step(run_id, DAG_ID)

    @task
    def emit_metrics(run_id: str) -> dict:
        from pipelines.steps import emit_metrics_step

        return emit_metrics_step(run_id)

    @task
    def report(plan: dict, run_id: str) -> dict:
        from pipelines.steps import report_step

        return report_step(plan, run_id)

    planned = plan(build_features(validate(ingest())))
    simulated = simulate.partial(plan=planned).expand_kwargs(work_items(planned))
    reduced = reduce.partial(plan=planned).expand(scenario_id=scenario_ids(planned))
    simulated >> reduced >> check_results(planned) >> compliance() >> emit_metrics() >> report(planned)


loan_stress_test()
