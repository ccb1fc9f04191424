"""Quarterly regulatory stress test of the loan book (also triggered on demand from the UI).

Wiring only: each task is one call into ``pipelines.tasks``; heavy libraries load inside tasks so
the scheduler parses this file in milliseconds.

``loan_tape`` (ingest -> validate -> features) -> plan -> choose_runner -> simulate ->
reduce[scenario] -> check_results -> publish -> attribution (against the previous published run),
optimise and compliance -> emit_metrics -> report -> compliance_gate, and the teardown ``clean_up``
after everything, whatever happened. Results reach the results store only in ``publish``, after the
checks passed. ``validate`` and ``publish`` emit events of the ``validated_loan_snapshot`` and
``stress_test_results`` assets, whose metadata (rows and hash; each scenario's loss and capital
figures) the UI's asset pages show. ``optimise`` (on by the ``optimise`` parameter) recommends the
book's allocation under the severely adverse scenario for the report.

The simulate step has one branch per runner and ``STRESS_SIMULATION_RUNNER`` picks one at run time
(``choose_runner``), so the DAG's shape is the same whatever the runner: ``local`` maps one task per
(scenario, batch); ``spark`` submits every batch as one Spark job and waits; ``emr_serverless`` runs
that job on EMR Serverless with the Amazon provider's operators. The branches write the same partial
results, which ``reduce`` combines.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Asset, Param, TriggerRule, chain, dag, task, teardown

from pipelines.tasks.emr_serverless import emr_serverless_simulation
from pipelines.tasks.groups import loan_tape, loan_tape_params
from pipelines.tasks.policy import DEFAULT_ARGS

# Scenario ids offered in the trigger form; a test keeps this list equal to the scenario library.
SCENARIOS = ["2026_baseline", "2026_severely_adverse", "2025_baseline", "2025_severely_adverse", "rate_hike_300bp"]
DAG_ID = "loan_stress_test"
VALIDATED_LOAN_SNAPSHOT = Asset(name="validated_loan_snapshot", uri="file://loanstress/validated_loan_snapshot")
# An event per published run: its inputs and each scenario's loss and capital figures (the UI's asset events).
STRESS_TEST_RESULTS = Asset(name="stress_test_results", uri="file://loanstress/stress_test_results")


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
        **loan_tape_params(),
        "scenarios": Param(["2026_baseline", "2026_severely_adverse", "rate_hike_300bp"], type="array",
                           title="Scenarios", examples=SCENARIOS, items={"type": "string", "enum": SCENARIOS},
                           description="Fed supervisory scenarios and custom scenarios in scenarios/custom."),
        "rate_shock_bp": Param(0, type="number", minimum=-500, maximum=1000, title="Custom rate shock (bp)",
                               description="Adds a scenario: the baseline with this shock on every interest rate, "
                                           "ramped over 2 quarters, then held. 0: none."),
        # 0 (or empty for the seed): the deployment's setting, so STRESS_* variables set the scheduled runs.
        "horizon_quarters": Param(0, type="integer", minimum=0, maximum=13, title="Horizon (quarters)",
                                  description="0: STRESS_HORIZON_QUARTERS (default 9)."),
        "n_paths": Param(0, type="integer", minimum=0, maximum=100000, title="Monte Carlo paths",
                         description="At least 10; 0: STRESS_N_PATHS (default 1,000)."),
        "seed": Param(None, type=["null", "integer"], title="Random seed",
                      description="Empty: STRESS_SEED (default 20260101)."),
        "batch_size": Param(0, type="integer", minimum=0, title="Loans per batch",
                            description="Loans per simulation batch (mapped task); 0: STRESS_BATCH_SIZE."),
        # On by default: a few dozen small programmes over the seven segments and the run's paths, it never
        # fails the run (an infeasible appetite is reported as such), and the report's allocation section needs it.
        "optimise": Param(True, type="boolean", title="Optimise the allocation",
                          description="Recommend the book's allocation under the severely adverse scenario "
                                      "within the lending appetite (risk_appetite/lending.yaml)."),
    },
    doc_md=__doc__,
)
def loan_stress_test() -> None:
    @task
    def plan(features: dict, params: dict, run_id: str) -> dict:
        from pipelines.tasks.stress import plan as plan_run

        return plan_run(features, params["scenarios"], params["rate_shock_bp"], params["horizon_quarters"],
                        params["n_paths"], params["seed"], params["batch_size"], run_id)

    @task.branch
    def choose_runner() -> str:
        from pipelines.tasks.stress import simulation_runner

        return {"local": "work_items", "spark": "simulate_on_spark",
                "emr_serverless": "emr_serverless.job_config"}[simulation_runner()]

    @task
    def work_items(plan: dict) -> list[dict]:
        from pipelines.tasks.stress import simulation_work_items

        return simulation_work_items(plan)

    @task
    def scenario_ids(plan: dict) -> list[str]:
        return plan["scenarios"]

    @task(map_index_template="{{ scenario_id }} batch {{ batch.batch }}")
    def simulate(plan: dict, scenario_id: str, batch: dict, run_id: str) -> dict:
        from pipelines.tasks.stress import simulate as simulate_batch

        return simulate_batch(plan, scenario_id, batch, run_id)

    @task
    def simulate_on_spark(plan: dict, run_id: str) -> list[dict]:
        from pipelines.tasks.stress import simulate_on_spark as submit_and_wait

        return submit_and_wait(plan, run_id)

    # Runs after whichever simulate branch ran (the others are skipped), never after a failed one.
    @task(map_index_template="{{ scenario_id }}", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def reduce(plan: dict, scenario_id: str, run_id: str) -> dict:
        from pipelines.tasks.stress import reduce as reduce_scenario

        return reduce_scenario(plan, scenario_id, run_id)

    @task
    def check_results(reduced: list[dict], run_id: str) -> dict:
        from pipelines.tasks.stress import check_results as check

        return check(reduced, run_id)

    @task(outlets=[STRESS_TEST_RESULTS])
    def publish(checked: dict, plan: dict, run_id: str, outlet_events=None) -> dict:
        from pipelines.tasks.stress import publish as publish_results
        from pipelines.tasks.stress import results_event_extra

        published = publish_results(checked, plan, run_id)
        outlet_events[STRESS_TEST_RESULTS].extra = results_event_extra(published, run_id)
        return published

    @task
    def attribution(plan: dict, published: dict, run_id: str) -> dict:
        from pipelines.tasks.stress import attribution as attribute

        return attribute(plan, published, run_id)

    @task
    def compliance(manifest: dict, plan: dict, published: dict, run_id: str) -> dict:
        from pipelines.tasks.stress import compliance as judge

        return judge(manifest, plan, published, run_id)

    @task
    def emit_metrics(compliance_result: dict, run_id: str) -> dict:
        from pipelines.tasks.compliance import emit_metrics as emit

        return emit(compliance_result, run_id)

    @task
    def optimise(published: dict, params: dict, run_id: str) -> dict:
        from pipelines.tasks.optimisation import optimise as optimise_allocation

        return optimise_allocation(published, params["optimise"], run_id)

    @task
    def report(manifest: dict, published: dict, compliance_result: dict, attributed: dict, optimisation: dict,
               run_id: str) -> dict:
        from pipelines.tasks.stress import report as render_report

        return render_report(manifest, published, compliance_result, attributed, run_id, optimisation)

    @task
    def compliance_gate(compliance_result: dict) -> dict:
        from pipelines.tasks.compliance import compliance_gate as gate

        return gate(compliance_result)

    @teardown  # runs whatever happened before it; does not decide the run's state
    def clean_up(run_id: str) -> dict:
        from pipelines.tasks.stress import teardown as tear_down

        return tear_down(run_id, DAG_ID)

    tape = loan_tape(snapshot_asset=VALIDATED_LOAN_SNAPSHOT)
    planned = plan(tape["features"])
    runner = choose_runner()
    mapped_items = work_items(planned)
    on_spark = simulate_on_spark(planned)
    on_emr = emr_serverless_simulation(planned, runner)
    chain(planned, runner, [mapped_items, on_spark])
    simulated = simulate.partial(plan=planned).expand_kwargs(mapped_items)
    reduced = reduce.partial(plan=planned).expand(scenario_id=scenario_ids(planned))
    chain([on_spark, on_emr], reduced)
    published = publish(check_results(reduced), planned)
    judged = compliance(tape["manifest"], planned, published)
    reported = report(tape["manifest"], published, judged, attribution(planned, published), optimise(published))
    chain(simulated, reduced)
    chain(emit_metrics(judged), reported, compliance_gate(judged), clean_up())


loan_stress_test()
