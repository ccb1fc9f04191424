"""The task bodies of ``loan_stress_test`` after the loan-tape tasks: plan, simulate, reduce, check,
publish, compliance, metrics, report and teardown.

Data moves between tasks through what they return (small dicts with the object keys of what they
wrote); no task reads another step's output behind its back. Results reach the results store, which
services and dashboards read, only in :func:`publish`, after :func:`check_results` passed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pipelines.composition import Adapters, current_adapters
from pipelines.engine.headline import headline_by_scenario, headline_figures
from pipelines.tasks.policy import task_entry
from pipelines.tasks.runs import log, record_step, run_key, run_prefix

DAG_ID = "loan_stress_test"


def _simulation_config(plan: dict[str, Any], adapters: Adapters):
    from models.portfolio_loss import FactorModel
    from pipelines.engine.simulation import CapitalAssumptions, SimulationConfig

    return SimulationConfig(horizon=plan["horizon"], n_paths=plan["n_paths"], seed=plan["seed"],
                            capital=CapitalAssumptions.from_settings(adapters.settings),
                            factor_model=FactorModel(adapters.settings.factor_model),
                            factor_persistence=adapters.settings.factor_persistence)


def _batch_prefix(run_id: str, scenario_id: str, batch: int) -> str:
    return f"{run_prefix(run_id)}/simulation/{scenario_id}/batch-{batch:05d}"


def _scenario_key(run_id: str, scenario_id: str) -> str:
    return f"{run_prefix(run_id)}/scenarios/{scenario_id}.json"


def _work_item(run_id: str, scenario_id: str, batch: dict[str, int]):
    """The (scenario, batch) every runner simulates, with the keys of its scenario and its partials."""
    from pipelines.engine.batches import WorkItem

    return WorkItem(scenario_id, _scenario_key(run_id, scenario_id), batch,
                    _batch_prefix(run_id, scenario_id, batch["batch"]))


@task_entry
def plan(features: dict[str, Any], scenario_ids: list[str], rate_shock_bp: float, horizon: int,
         n_paths: int, seed: int | None, batch_size: int, run_id: str) -> dict[str, Any]:
    """Resolve scenarios and the PD model, and cut the book into batches (what the mapped tasks run).

    A horizon, path count or batch size of 0 and an empty seed take the deployment's settings
    (``STRESS_HORIZON_QUARTERS``, ``STRESS_N_PATHS``, ``STRESS_BATCH_SIZE``, ``STRESS_SEED``).
    """
    from pipelines.adapters.model_registry import load_quarterly_pd_function
    from pipelines.data.macro import load_history
    from pipelines.engine.batches import save_scenario
    from pipelines.engine.scenarios import ScenarioError, rate_shock_scenario, resolve_scenario
    from pipelines.engine.simulation import plan_batches
    from pipelines.model.selection import describe_model, resolve_stress_model

    adapters = current_adapters()
    settings, store = adapters.settings, adapters.object_store
    horizon, n_paths = horizon or settings.horizon_quarters, n_paths or settings.n_paths
    seed = settings.seed if seed is None else seed
    if n_paths < 10:
        raise ValueError(f"n_paths must be at least 10 (got {n_paths})")
    if not scenario_ids and not rate_shock_bp:
        raise ScenarioError("choose at least one scenario or a rate shock")
    log.info("resolving scenarios %s (rate shock %s bp, %s quarters)", scenario_ids, rate_shock_bp, horizon)
    scenarios = [resolve_scenario(name, horizon) for name in scenario_ids]
    if rate_shock_bp:
        base = next((s for s in scenario_ids if s.endswith("_baseline")), "2026_baseline")
        scenarios.append(rate_shock_scenario(base, rate_shock_bp, horizon, load_history()))
    for scenario in scenarios:
        save_scenario(store, _scenario_key(run_id, scenario.scenario_id), scenario)
    log.info("resolving the PD model version (reviewer-approved, else the gate's champion)")
    model = resolve_stress_model(adapters.model_registry, settings.resolved_require_champion)
    log.info("PD model: %s: %s", describe_model(model), model["note"])
    load_quarterly_pd_function(model)  # an untrusted or unreadable model fails the plan, not every batch
    batches = plan_batches(features["rows"], batch_size or settings.batch_size)
    log.info("plan: %d scenarios x %d batches of up to %s loans, %s paths", len(scenarios), len(batches),
             f"{batch_size or settings.batch_size:,}", f"{n_paths:,}")
    return record_step(store, run_id, "plan", {
        "scenarios": [s.scenario_id for s in scenarios], "batches": batches,
        "features_key": features["features_key"], "snapshot_id": features["snapshot_id"],
        "as_of": features["as_of"], "horizon": horizon, "n_paths": n_paths, "seed": seed, "pd_model": model,
    })


def simulation_work_items(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """One mapped simulate task per (scenario, batch) (the local runner)."""
    return [{"scenario_id": scenario, "batch": batch} for scenario in plan["scenarios"] for batch in plan["batches"]]


def simulation_runner() -> str:
    """The configured runner of the simulation batches (``local``, ``spark`` or ``emr_serverless``)."""
    return current_adapters().settings.simulation_runner.value


@task_entry
def simulate(plan: dict[str, Any], scenario_id: str, batch: dict[str, int], run_id: str) -> dict[str, Any]:
    """Simulate one (scenario, batch): per-loan results, exposure histogram and aggregates to the store."""
    from pipelines.engine.batches import simulate_work_item

    adapters = current_adapters()
    log.info("simulating %s batch %d: loans %s-%s", scenario_id, batch["batch"], batch["start"], batch["stop"])
    start = time.perf_counter()
    output = simulate_work_item(adapters.object_store, plan["features_key"], plan["pd_model"],
                                _simulation_config(plan, adapters), _work_item(run_id, scenario_id, batch))
    _record_simulate_seconds(adapters, run_id, f"local_{scenario_id}_batch-{batch['batch']:05d}", "local", start)
    return output


def _record_simulate_seconds(adapters: Adapters, run_id: str, name: str, runner: str, start: float) -> None:
    """Keep the simulate work's wall seconds as a step record (the run's metrics read them)."""
    record_step(adapters.object_store, run_id, f"simulate_{name}",
                {"runner": runner, "seconds": round(time.perf_counter() - start, 3)})


def _write_simulation_job(adapters: Adapters, plan: dict[str, Any], run_id: str) -> str:
    """The run's :class:`SimulationJob` (every scenario x batch) in the object store; returns its key."""
    from pipelines.engine.batches import SimulationJob

    job = SimulationJob(plan["features_key"], plan["pd_model"], _simulation_config(plan, adapters),
                        [_work_item(run_id, s, b) for s in plan["scenarios"] for b in plan["batches"]])
    key = _simulation_job_key(run_id)
    adapters.object_store.put_bytes(key, job.to_json())
    return key


def _simulation_job_key(run_id: str) -> str:
    return f"{run_prefix(run_id)}/simulation/job/simulation_job.json"


def _job_outputs(adapters: Adapters, job_key: str) -> list[dict[str, Any]]:
    """What the Spark driver reported for every batch, checked against the job's items."""
    from pipelines.engine.batches import SimulationJob, check_job_outputs
    from pipelines.engine.spark_job import outputs_key

    store = adapters.object_store
    job = SimulationJob.from_json(store.get_bytes(job_key))
    return check_job_outputs(job, json.loads(store.get_bytes(outputs_key(job_key))))


@task_entry
def simulate_on_spark(plan: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """Every (scenario, batch) as one spark-submit that this task waits for (the spark runner)."""
    adapters = current_adapters()
    job_key = _write_simulation_job(adapters, plan, run_id)
    runner = adapters.spark_runner
    log.info("submitting %s to Spark (%s)", job_key, runner.master)
    start = time.perf_counter()
    runner.run(adapters.object_store.root_uri, job_key, adapters.settings.aws_region)
    outputs = _job_outputs(adapters, job_key)
    _record_simulate_seconds(adapters, run_id, "spark", "spark", start)
    log.info("Spark simulated %d batches", len(outputs))
    return outputs


@task_entry
def emr_serverless_job(plan: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Write the run's simulation job and return what the EMR Serverless operators need to run it."""
    adapters = current_adapters()
    job_key = _write_simulation_job(adapters, plan, run_id)
    emr = adapters.emr_serverless_job
    store_uri = adapters.object_store.root_uri
    log.info("EMR Serverless job %s on %s (code %s)", job_key, emr.release_label, emr.code_uri)
    return {"release_label": emr.release_label, "application_name": f"loanstress-{run_key(run_id)}"[:64],
            "execution_role_arn": emr.execution_role_arn, "region": emr.region,
            "aws_conn_id": adapters.settings.aws_conn_id,
            "job_driver": emr.job_driver(store_uri, job_key), "configuration_overrides": emr.configuration_overrides(),
            "job_key": job_key}


@task_entry
def cluster_job_outputs(run_id: str) -> list[dict[str, Any]]:
    """The batches' outputs a cluster's Spark driver wrote, checked against the job (after the job sensor)."""
    outputs = _job_outputs(current_adapters(), _simulation_job_key(run_id))
    log.info("the cluster simulated %d batches", len(outputs))
    return outputs


@task_entry
def reduce(plan: dict[str, Any], scenario_id: str, run_id: str) -> dict[str, Any]:
    """Add the batches of one scenario, run the Monte Carlo, and stage the scenario's result (unpublished)."""
    import io

    import numpy as np

    from models.portfolio_loss import ExposureHistogram
    from pipelines.engine.batches import load_scenario, read_partials
    from pipelines.engine.drilldown import top_loss_contributors, write_loan_results
    from pipelines.engine.simulation import reduce_scenario, segment_path_losses, simulation_id

    adapters = current_adapters()
    store = adapters.object_store
    scenario, _ = load_scenario(store, _scenario_key(run_id, scenario_id))
    config = _simulation_config(plan, adapters)
    prefixes = [_batch_prefix(run_id, scenario_id, b["batch"]) for b in plan["batches"]]
    histograms, aggregates, loans = read_partials(store, prefixes)
    log.info("reducing %s: %d batches, Monte Carlo over %s paths", scenario_id, len(prefixes), f"{config.n_paths:,}")
    metrics = reduce_scenario(histograms, aggregates, scenario, config)
    if metrics["data_warnings"]["income_missing_loans"]:
        log.warning("%s: %d loans without income scored at the stressed DSTI", scenario_id,
                    metrics["data_warnings"]["income_missing_loans"])
    sim_id = simulation_id(plan["snapshot_id"], scenario, plan["pd_model"]["version"], config)
    result_prefix = f"{run_prefix(run_id)}/results/{scenario_id}"
    segment_losses = segment_path_losses(
        [ExposureHistogram.from_bytes(store.get_bytes(f"{p}/segment_histogram.npz")) for p in prefixes],
        scenario, config)
    buffer = io.BytesIO()
    np.savez(buffer, **segment_losses)  # segment -> horizon loss per path (systematic part), see the engine
    segment_losses_key = f"{result_prefix}/segment_path_losses.npz"
    store.put_bytes(segment_losses_key, buffer.getvalue())
    result = {
        # The Simulation Results Schema; AffectedLoans is the Parquet file beside this document.
        "SimulationId": sim_id,
        "ScenarioDescription": scenario.description,
        "InterestRateScenario": scenario.interest_rate_scenario,
        "StartDate": scenario.start_date,
        "EndDate": scenario.end_date,
        "AffectedLoans": write_loan_results(store, f"{result_prefix}/affected_loans.parquet", loans),
        "OverallImpact": round(metrics["expected_loss"], 2),
        "SegmentPathLosses": segment_losses_key,
        "TopLossContributors": top_loss_contributors(loans),  # the dashboard's drill-down reads only these
        "metrics": metrics,
        "scenario": scenario.to_dict(),
        "provenance": {"snapshot_id": plan["snapshot_id"], "as_of": plan["as_of"], "pd_model": plan["pd_model"],
                       "airflow_run_id": run_id, "seed": config.seed, "n_paths": config.n_paths,
                       "horizon": config.horizon, "batches": len(plan["batches"])},
    }
    store.put_bytes(f"{result_prefix}/simulation_result.json", json.dumps(result, indent=2).encode())
    summary = {k: v for k, v in result.items() if k not in ("scenario", "TopLossContributors")}
    record_step(store, run_id, f"result_{scenario_id}", summary)
    # Keys of what it wrote and the headline figures: the loss distribution stays in the object store.
    return {"scenario_id": scenario_id, "SimulationId": sim_id,
            "result_key": f"{result_prefix}/simulation_result.json",
            "loans_key": f"{result_prefix}/affected_loans.parquet", "segment_losses_key": segment_losses_key,
            "figures": headline_figures(result)}


def _results(store, reduced: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The full simulation results the reduce tasks returned the keys of, in scenario order."""
    return [json.loads(store.get_bytes(r["result_key"])) for r in sorted(reduced, key=lambda r: r["scenario_id"])]


@task_entry
def check_results(reduced: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    """GX checks on every scenario's results of this run (fails the task on a broken result)."""
    from pipelines.engine.drilldown import LOAN_PATH_COLUMNS
    from pipelines.engine.result_checks import check_results as run_checks

    store = current_adapters().object_store
    # Airflow hands mapped outputs over as a lazy sequence; indexing by its length avoids probing past the end.
    reduced = [dict(reduced[index]) for index in range(len(reduced))]
    loans = [store.get_parquet(r["loans_key"]).drop_columns(list(LOAN_PATH_COLUMNS)).to_pandas()
             for r in sorted(reduced, key=lambda r: r["scenario_id"])]
    outcome = run_checks(_results(store, reduced), loans)
    log.info("result checks passed: %s", outcome)
    return record_step(store, run_id, "check_results", {**outcome, "reduced": reduced})


def _run_inputs(plan: dict[str, Any], results: list[dict[str, Any]], adapters: Adapters) -> dict[str, Any]:
    """What fixed this run and what it measured, as the next run's attribution needs them: data, model,
    scenarios, parameters, and each scenario's attributed measures."""
    from pipelines.engine.attribution import measures, run_parameters

    scenarios = {scenario_id: json.loads(adapters.object_store.get_bytes(
        f"{run_prefix(plan['run_id'])}/scenarios/{scenario_id}.json"))["fingerprint"]
        for scenario_id in plan["scenarios"]}
    return {"data": {"snapshot_id": plan["snapshot_id"], "as_of": plan["as_of"], "features_key": plan["features_key"]},
            "model": plan["pd_model"], "scenarios": scenarios,
            "parameters": run_parameters(_simulation_config(plan, adapters)),
            "measures": {r["metrics"]["scenario_id"]: measures(r["metrics"]) for r in results}}


@task_entry
def publish(checked: dict[str, Any], plan: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Publish the checked results to the results store (all scenarios in one transaction), with what fixed them."""
    adapters = current_adapters()
    results = _results(adapters.object_store, checked["reduced"])
    adapters.results_store.publish_simulations(results, run_id, DAG_ID,
                                               _run_inputs(plan | {"run_id": run_id}, results, adapters))
    adapters.cache.invalidate()  # the services' cached reads now show this run
    log.info("published %d simulation results of run %s", len(results), run_id)
    return record_step(adapters.object_store, run_id, "publish", {
        "simulation_ids": [r["SimulationId"] for r in results], "reduced": checked["reduced"],
        "snapshot_id": plan["snapshot_id"], "as_of": plan["as_of"], "pd_model_version": plan["pd_model"]["version"]})


def results_event_extra(published: dict[str, Any], run_id: str) -> dict[str, Any]:
    """What the ``stress_test_results`` asset event carries: the run, its inputs and each scenario's figures."""
    return {"airflow_run_id": run_id, "snapshot_id": published["snapshot_id"], "as_of": published["as_of"],
            "pd_model_version": published["pd_model_version"], "simulation_ids": published["simulation_ids"],
            "scenarios": {r["scenario_id"]: r["figures"] for r in published["reduced"]}}


@task_entry
def compliance(manifest: dict[str, Any], plan: dict[str, Any], published: dict[str, Any],
               run_id: str) -> dict[str, Any]:
    """Judge the run against the compliance rules; the records go to the results store, beside earlier runs'."""
    from pipelines.compliance.rules import MONITORING_DAG_ID, evaluate_run, load_rules
    from pipelines.tasks.compliance import compliance_outcome

    adapters = current_adapters()
    settings = adapters.settings
    evidence = adapters.results_store.latest_model_compliance(MONITORING_DAG_ID, plan["pd_model"]["version"])
    records = evaluate_run(load_rules(settings.compliance_rules_path), run_id=run_id, dag_id=DAG_ID,
                           steps={"validate": manifest, "plan": plan},
                           scenario_results=_results(adapters.object_store, published["reduced"]),
                           model_evidence=evidence, settings=settings)
    return compliance_outcome(adapters, records, run_id, DAG_ID)


@task_entry
def attribution(plan: dict[str, Any], published: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Split each scenario's change since the previous published run into data, model, scenario and parameters.

    The waterfalls go to ``runs/<run>/results/attribution.json`` and the results store's ``run_attribution``
    table; the first run of the DAG records that there is no previous run.
    """
    from pipelines.adapters.model_registry import load_quarterly_pd_function
    from pipelines.data.macro import load_history
    from pipelines.engine.attribution import NO_PREVIOUS_RUN, Loaders, attribute_runs, config_from_parameters
    from pipelines.engine.batches import load_scenario

    adapters = current_adapters()
    store, results_store = adapters.object_store, adapters.results_store
    previous = results_store.previous_published_run(DAG_ID, run_id)
    if previous is None:
        log.info(NO_PREVIOUS_RUN)
        outcome, rows = {"previous_run_id": None, "note": NO_PREVIOUS_RUN, "scenarios": {}}, []
    else:
        loaders = Loaders(features=store.get_parquet, pd_model=load_quarterly_pd_function,
                          scenario=lambda at: load_scenario(store, _scenario_key(at["run_id"], at["scenario_id"]))[0],
                          config=lambda parameters: config_from_parameters(parameters, plan["horizon"]))
        results = _results(store, published["reduced"])
        outcome, rows = attribute_runs(previous, run_id, _run_inputs(plan | {"run_id": run_id}, results, adapters),
                                       results, loaders, load_history(), adapters.settings.batch_size)
        for scenario_id, reason in outcome["unavailable"].items():
            log.warning("cannot attribute %s: %s", scenario_id, reason)
    results_store.save_attribution(run_id, DAG_ID, outcome["previous_run_id"] or "", rows)
    key = f"{run_prefix(run_id)}/results/attribution.json"
    return record_step(store, run_id, "attribution", outcome | {
        "attribution_key": key, "attribution_uri": store.put_bytes(key, json.dumps(outcome, indent=2).encode())})


@task_entry
def report(manifest: dict[str, Any], published: dict[str, Any], compliance_result: dict[str, Any],
           attributed: dict[str, Any], run_id: str, optimisation: dict[str, Any] | None = None) -> dict[str, Any]:
    """Render the run's HTML and PDF report into ``runs/<run>/report/`` (with the allocation, when optimised)."""
    from datetime import UTC, datetime

    from pipelines.compliance.report import ReportData, capital_lines, render
    from pipelines.compliance.rules import load_rules
    from pipelines.tasks.compliance import load_compliance_records
    from pipelines.tasks.optimisation import load_allocation

    adapters = current_adapters()
    settings, store = adapters.settings, adapters.object_store
    results = _results(store, published["reduced"])
    data = ReportData(run_id=run_id, manifest=manifest, results=results,
                      records=load_compliance_records(store, compliance_result),
                      capital_lines=capital_lines(load_rules(settings.compliance_rules_path), settings),
                      generated_at=datetime.now(UTC), attribution=attributed,
                      optimisation=load_allocation(store, optimisation) if optimisation is not None else None)
    log.info("rendering the HTML and PDF report")
    rendered = render(data)
    prefix = f"{run_prefix(run_id)}/report"
    html_key, pdf_key = f"{prefix}/stress_test_report.html", f"{prefix}/stress_test_report.pdf"
    # Where the report is (object-store keys and URIs) and what it says in a few figures: what the
    # task's XCom and the run's report link show in the Airflow UI.
    return record_step(store, run_id, "report", {
        "report": {"html": {"key": html_key, "uri": store.put_bytes(html_key, rendered.html.encode())},
                   "pdf": {"key": pdf_key, "uri": store.put_bytes(pdf_key, rendered.pdf), "pages": rendered.pages}},
        "scenarios": headline_by_scenario(results), "compliance": compliance_result["status"],
    })


def _write_run_metrics(adapters: Adapters, steps: dict[str, dict[str, Any]], run_id: str, dag_id: str,
                       status: str) -> None:
    """The run's Prometheus exposition beside the run and, when configured, in node_exporter's textfile."""
    from pipelines.observability.metrics import run_metrics, write_textfile

    exposition = run_metrics(steps, run_id, dag_id, status)
    adapters.object_store.put_bytes(f"{run_prefix(run_id)}/metrics.prom", exposition)
    if adapters.settings.metrics_textfile:
        write_textfile(adapters.settings.metrics_textfile, exposition)


def teardown(run_id: str, dag_id: str) -> dict[str, Any]:
    """Remove the run's staging, batch partials and temporary files; record the run's final status.

    Runs whatever happened before it (``trigger_rule=ALL_DONE``). The status is read from what the run
    recorded: a run that published and reported succeeded; one that published without a report is
    ``published_without_report``; anything else left nothing published.
    """
    import shutil

    from pipelines.tasks.runs import read_run_steps

    adapters = current_adapters()
    store = adapters.object_store
    steps = read_run_steps(store, run_id)
    removed = store.delete_prefix(f"staging/{run_key(run_id)}/")
    removed += store.delete_prefix(f"{run_prefix(run_id)}/simulation/")
    shutil.rmtree(adapters.settings.data_home / "tmp" / run_key(run_id), ignore_errors=True)
    if "report" in steps:
        status = "succeeded"
    elif "publish" in steps:
        status = "published_without_report"
    else:
        status = "failed_nothing_published"
    detail = {"steps_recorded": sorted(steps), "temporary_objects_removed": removed,
              "compliance": steps.get("compliance", {}).get("status")}
    adapters.results_store.save_run_status(run_id, dag_id, status, detail)
    _write_run_metrics(adapters, steps, run_id, dag_id, status)
    log.info("run %s of %s: %s (%d temporary objects removed)", run_id, dag_id, status, removed)
    return record_step(store, run_id, "teardown", {"status": status, **detail})
