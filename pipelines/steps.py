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
    from pipelines.timing import timed

    settings = get_settings()
    store = open_object_store(settings.resolved_object_store_uri, settings.aws_region)
    timings: dict[str, float] = {}
    with timed(timings, "load_staged_tape"):
        tape = load_staged_tape(staged, store)
    manifest = validate_and_publish(tape, date.fromisoformat(as_of), settings, airflow_run_id=run_id,
                                    work_dir=settings.data_home / "tmp" / run_key(run_id), timings=timings)
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


def _store():
    from pipelines.object_store import open_object_store

    settings = get_settings()
    return open_object_store(settings.resolved_object_store_uri, settings.aws_region)


def _simulation_config(plan: dict[str, Any]):
    from pipelines.simulation import CapitalAssumptions, SimulationConfig

    return SimulationConfig(horizon=plan["horizon"], n_paths=plan["n_paths"], seed=plan["seed"],
                            capital=CapitalAssumptions.from_settings(get_settings()))


def _batch_prefix(run_id: str, scenario_id: str, batch: int) -> str:
    return f"runs/{run_key(run_id)}/simulation/{scenario_id}/batch-{batch:05d}"


def plan_step(features: dict[str, Any], scenario_ids: list[str], rate_shock_bp: float, horizon: int,
              n_paths: int, seed: int, batch_size: int, run_id: str) -> dict[str, Any]:
    """Resolve scenarios and the PD model, and cut the book into batches (what the mapped tasks run)."""
    from pipelines.pd_models import resolve_stress_model
    from pipelines.scenarios import ScenarioError, rate_shock_scenario, resolve_scenario
    from pipelines.simulation import plan_batches

    settings = get_settings()
    if not scenario_ids and not rate_shock_bp:
        raise ScenarioError("choose at least one scenario or a rate shock")
    scenarios = [resolve_scenario(name, horizon) for name in scenario_ids]
    if rate_shock_bp:
        from pipelines.macro import load_history

        base = next((s for s in scenario_ids if s.endswith("_baseline")), "2026_baseline")
        scenarios.append(rate_shock_scenario(base, rate_shock_bp, horizon, load_history()))
    store = _store()
    for scenario in scenarios:
        store.put_bytes(f"runs/{run_key(run_id)}/scenarios/{scenario.scenario_id}.json",
                        json.dumps({**scenario.to_dict(), "rate_shock_bp": scenario.rate_shock_bp}).encode())
    model = resolve_stress_model(settings)
    plan = {
        "scenarios": [s.scenario_id for s in scenarios],
        "batches": plan_batches(features["rows"], batch_size or settings.batch_size),
        "features_key": features["features_key"], "snapshot_id": features["snapshot_id"],
        "as_of": features["as_of"], "horizon": horizon, "n_paths": n_paths, "seed": seed, "pd_model": model,
    }
    return record_step(run_id, "plan", plan)


def simulation_work_items(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """One mapped simulate task per (scenario, batch)."""
    return [{"scenario_id": scenario, "batch": batch} for scenario in plan["scenarios"] for batch in plan["batches"]]


def _load_scenario(run_id: str, scenario_id: str):
    """The exact scenario path the plan step resolved (so every batch uses the same numbers)."""
    import pandas as pd

    from pipelines.macro import load_history
    from pipelines.scenarios import Scenario

    saved = json.loads(_store().get_bytes(f"runs/{run_key(run_id)}/scenarios/{scenario_id}.json"))
    index = pd.PeriodIndex([pd.Period(q, freq="Q") for q in saved["quarters"]], name="quarter")
    path = pd.DataFrame(saved["path"], index=index)
    history = load_history()
    jump_off = history.loc[pd.Period(saved["jump_off_quarter"], freq="Q")].fillna(path.iloc[0])
    return Scenario(saved["scenario_id"], saved["description"], path, jump_off, saved["rate_shock_bp"]), history


def simulate_step(plan: dict[str, Any], scenario_id: str, batch: dict[str, int], run_id: str) -> dict[str, Any]:
    """Simulate one (scenario, batch): per-loan results, exposure histogram and aggregates to the store."""
    from pipelines.pd_models import load_pd_function
    from pipelines.simulation import simulate_batch

    store = _store()
    features = store.get_parquet(plan["features_key"]).slice(batch["start"], batch["stop"] - batch["start"])
    scenario, history = _load_scenario(run_id, scenario_id)
    result = simulate_batch(features, scenario, history, load_pd_function(plan["pd_model"], store),
                            _simulation_config(plan))
    prefix = _batch_prefix(run_id, scenario_id, batch["batch"])
    store.put_parquet(f"{prefix}/loans.parquet", result.loans)
    store.put_bytes(f"{prefix}/histogram.npz", result.histogram.to_bytes())
    store.put_bytes(f"{prefix}/aggregates.json", json.dumps(result.aggregates).encode())
    return {"scenario_id": scenario_id, "batch": batch["batch"], "loans": result.aggregates["loans"]}


def reduce_step(plan: dict[str, Any], scenario_id: str, run_id: str) -> dict[str, Any]:
    """Add the batches of one scenario, run the Monte Carlo, and store the simulation result."""
    import pyarrow as pa

    from models.portfolio_loss import ExposureHistogram
    from pipelines.simulation import reduce_scenario, simulation_id

    store = _store()
    scenario, _ = _load_scenario(run_id, scenario_id)
    config = _simulation_config(plan)
    prefixes = [_batch_prefix(run_id, scenario_id, b["batch"]) for b in plan["batches"]]
    histograms = [ExposureHistogram.from_bytes(store.get_bytes(f"{p}/histogram.npz")) for p in prefixes]
    aggregates = [json.loads(store.get_bytes(f"{p}/aggregates.json")) for p in prefixes]
    metrics = reduce_scenario(histograms, aggregates, scenario, config)
    loans = pa.concat_tables([store.get_parquet(f"{p}/loans.parquet") for p in prefixes])
    sim_id = simulation_id(plan["snapshot_id"], scenario, plan["pd_model"]["version"], config)
    result_prefix = f"runs/{run_key(run_id)}/results/{scenario_id}"
    loans_uri = store.put_parquet(f"{result_prefix}/affected_loans.parquet", loans)
    result = {
        # The Simulation Results Schema; AffectedLoans is the Parquet file beside this document.
        "SimulationId": sim_id,
        "ScenarioDescription": scenario.description,
        "InterestRateScenario": scenario.interest_rate_scenario,
        "StartDate": scenario.start_date,
        "EndDate": scenario.end_date,
        "AffectedLoans": loans_uri,
        "OverallImpact": round(metrics["expected_loss"], 2),
        "metrics": metrics,
        "scenario": scenario.to_dict(),
        "provenance": {"snapshot_id": plan["snapshot_id"], "as_of": plan["as_of"], "pd_model": plan["pd_model"],
                       "airflow_run_id": run_id, "seed": config.seed, "n_paths": config.n_paths,
                       "horizon": config.horizon, "batches": len(plan["batches"])},
    }
    store.put_bytes(f"{result_prefix}/simulation_result.json", json.dumps(result, indent=2).encode())
    from pipelines.results_store import ResultsStore

    ResultsStore(get_settings().resolved_loan_store_url).save_simulation(result, run_id)
    return record_step(run_id, f"result_{scenario_id}", {k: v for k, v in result.items() if k != "scenario"})


def check_results_step(plan: dict[str, Any], run_id: str) -> dict[str, Any]:
    """GX checks on every scenario's results of this run (fails the task on a broken result)."""
    from pipelines.result_checks import check_results

    store = _store()
    prefix = f"runs/{run_key(run_id)}/results"
    results = [json.loads(store.get_bytes(f"{prefix}/{s}/simulation_result.json")) for s in plan["scenarios"]]
    loans = [store.get_parquet(f"{prefix}/{s}/affected_loans.parquet").drop_columns(["QuarterlyPD"]).to_pandas()
             for s in plan["scenarios"]]
    return record_step(run_id, "check_results", check_results(results, loans))


# --- compliance, metrics and the report (both DAGs) --------------------------------------------------


def _scenario_results(plan: dict[str, Any], run_id: str) -> list[dict[str, Any]]:
    """The simulation_result.json of every scenario of the run's plan."""
    store = _store()
    prefix = f"runs/{run_key(run_id)}/results"
    return [json.loads(store.get_bytes(f"{prefix}/{s}/simulation_result.json")) for s in plan["scenarios"]]


def compliance_step(run_id: str, dag_id: str) -> dict[str, Any]:
    """Judge the run against the compliance rules; the records go to the results store, beside earlier runs'."""
    from pipelines.compliance import evaluate_run, load_rules, status_counts
    from pipelines.results_store import ResultsStore

    settings = get_settings()
    steps = read_run_steps(run_id)
    results_store = ResultsStore(settings.resolved_loan_store_url)
    records = evaluate_run(load_rules(settings.compliance_rules_path), run_id=run_id, dag_id=dag_id, steps=steps,
                           scenario_results=_scenario_results(steps["plan"], run_id) if "plan" in steps else None,
                           store=results_store, settings=settings)
    results_store.save_compliance(run_id, dag_id, records)
    return record_step(run_id, "compliance", {"status": status_counts(records),
                                              "records": [record.to_dict() for record in records]})


def emit_metrics_step(run_id: str) -> dict[str, Any]:
    """Publish the run's compliance records to the metrics sink and make sure the rules' alarms exist."""
    from pipelines.compliance import load_rules
    from pipelines.metrics_sink import publish_compliance
    from pipelines.results_store import ResultsStore

    settings = get_settings()
    records = ResultsStore(settings.resolved_loan_store_url).compliance_of_run(run_id)
    return record_step(run_id, "metrics", publish_compliance(records, load_rules(settings.compliance_rules_path),
                                                             settings))


def report_step(plan: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Render the run's HTML and PDF report into ``runs/<run>/report/``."""
    from datetime import UTC, datetime

    from pipelines.compliance import load_rules
    from pipelines.report import ReportData, capital_lines, render
    from pipelines.results_store import ResultsStore

    settings = get_settings()
    data = ReportData(run_id=run_id, manifest=read_run_steps(run_id)["validate"],
                      results=_scenario_results(plan, run_id),
                      records=ResultsStore(settings.resolved_loan_store_url).compliance_of_run(run_id),
                      capital_lines=capital_lines(load_rules(settings.compliance_rules_path), settings),
                      generated_at=datetime.now(UTC))
    report = render(data)
    store = _store()
    prefix = f"runs/{run_key(run_id)}/report"
    return record_step(run_id, "report", {
        "html_uri": store.put_bytes(f"{prefix}/stress_test_report.html", report.html.encode()),
        "pdf_uri": store.put_bytes(f"{prefix}/stress_test_report.pdf", report.pdf), "pdf_pages": report.pages,
    })


# --- daily portfolio monitoring ------------------------------------------------------------------------


def score_step(features: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Score the validated book with the stress test's PD model (the champion, else the benchmark)."""
    import pyarrow as pa

    from pipelines.macro import load_history
    from pipelines.monitoring import SCORE, score_book
    from pipelines.pd_models import load_pd_function, resolve_stress_model

    store = _store()
    model = resolve_stress_model(get_settings())
    scores = score_book(store.get_parquet(features["features_key"]), load_history(), load_pd_function(model, store))
    key = f"runs/{run_key(run_id)}/monitoring/scores.parquet"
    return record_step(run_id, "score", {
        "model": model, "scores_key": key,
        "scores_uri": store.put_parquet(key, pa.Table.from_pandas(scores, preserve_index=False)),
        "rows": len(scores), "mean_quarterly_pd": float(scores[SCORE].mean()),
        "snapshot_id": features["snapshot_id"], "as_of": features["as_of"], "macro_quarter": features["macro_quarter"],
    })


def backtest_step(score: dict[str, Any], run_id: str) -> dict[str, Any]:
    """AUC and calibration of the scoring model on the latest quarters of the performance history."""
    from pipelines.monitoring import backtest
    from pipelines.pd_models import load_pd_function, performance_history

    settings = get_settings()
    history, source = performance_history(settings)
    result = backtest(history, load_pd_function(score["model"], _store()), settings.monitoring_backtest_quarters,
                      settings.promotion_calibration_alpha)
    return record_step(run_id, "backtest", {**result, "history_source": source,
                                            "model_version": score["model"]["version"]})


def drift_step(score: dict[str, Any], run_id: str) -> dict[str, Any]:
    """PSI of the score and the PD features against the reference snapshot; remembers this one as the next."""
    from pipelines.monitoring import drift, reference_snapshot, remember_scored_snapshot

    store = _store()
    version = score["model"]["version"]
    reference = reference_snapshot(store, score["snapshot_id"], version)
    if reference is None:
        result = {"score_psi": None, "feature_psi": {}, "reference": None,
                  "note": f"no earlier snapshot scored by PD model version {version}: no reference distribution yet"}
    else:
        current = store.get_parquet(score["scores_key"]).to_pandas()
        result = {**drift(store.get_parquet(reference["scores_key"]).to_pandas(), current), "reference": reference,
                  "note": f"reference: snapshot {reference['snapshot_id']} (as of {reference['as_of']}) "
                          f"scored in run {reference['run_id']}"}
    remember_scored_snapshot(store, {"snapshot_id": score["snapshot_id"], "model_version": version,
                                     "scores_key": score["scores_key"], "as_of": score["as_of"], "run_id": run_id})
    return record_step(run_id, "drift", result)
