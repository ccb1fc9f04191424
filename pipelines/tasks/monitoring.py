"""The task bodies of ``portfolio_monitoring`` after the loan-tape tasks: score, back-test, drift, compliance."""

from __future__ import annotations

from typing import Any

from pipelines.composition import current_adapters
from pipelines.tasks.policy import task_entry
from pipelines.tasks.runs import log, record_step, run_prefix

DAG_ID = "portfolio_monitoring"


@task_entry
def score(features: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Score the validated book in this process with the stress test's PD model version
    (:mod:`pipelines.model.selection`)."""
    from pipelines.adapters.model_registry import load_quarterly_pd_function
    from pipelines.data.macro import load_history
    from pipelines.model.monitoring import score_book
    from pipelines.model.selection import describe_model

    adapters = current_adapters()
    model = scoring_model()
    log.info("scoring %s loans in process with %s: %s", f"{features['rows']:,}", describe_model(model),
             model["note"])
    store = adapters.object_store
    scores = score_book(store.get_parquet(features["features_key"]), load_history(), load_quarterly_pd_function(model))
    return record_scores(features, model, scores, "in_process", run_id)


def scoring_model() -> dict[str, Any]:
    """The PD model version the stress test would use (:func:`pipelines.model.selection.resolve_stress_model`)."""
    from pipelines.model.selection import resolve_stress_model

    adapters = current_adapters()
    return resolve_stress_model(adapters.model_registry, adapters.settings.resolved_require_champion)


def record_scores(features: dict[str, Any], model: dict[str, Any], scores: Any, scorer: str,
                  run_id: str) -> dict[str, Any]:
    """Keep the scored book (a frame of :func:`pipelines.model.monitoring.with_score`) and record the step."""
    import pyarrow as pa

    from pipelines.model.monitoring import SCORE

    store = current_adapters().object_store
    key = f"{run_prefix(run_id)}/monitoring/scores.parquet"
    return record_step(store, run_id, "score", {
        "model": model, "scorer": scorer, "scores_key": key,
        "scores_uri": store.put_parquet(key, pa.Table.from_pandas(scores, preserve_index=False)),
        "rows": len(scores), "mean_quarterly_pd": float(scores[SCORE].mean()),
        "snapshot_id": features["snapshot_id"], "as_of": features["as_of"], "macro_quarter": features["macro_quarter"],
    })


def monitoring_scorer() -> str:
    """``in_process`` or ``batch_transform`` (``STRESS_MONITORING_SCORER``): the branch the DAG takes."""
    return current_adapters().settings.resolved_monitoring_scorer.value


def scored_book(in_process: dict[str, Any] | None, batch_transform: dict[str, Any] | None) -> dict[str, Any]:
    """The score step of whichever scorer ran (the other branch was skipped and returned nothing)."""
    ran = [result for result in (in_process, batch_transform) if result is not None]
    if len(ran) != 1:
        raise RuntimeError(f"expected exactly one scorer's result, got {len(ran)}")
    return ran[0]


@task_entry
def backtest(scored: dict[str, Any], run_id: str) -> dict[str, Any]:
    """AUC and calibration of the scoring model on the latest performance-history quarters after its training
    window (out of time)."""
    from pipelines.adapters.model_registry import load_quarterly_pd_function
    from pipelines.model.monitoring import backtest as run_backtest
    from pipelines.model.selection import performance_history

    adapters = current_adapters()
    settings, store = adapters.settings, adapters.object_store
    history, source = performance_history(settings.resolved_performance_history_uri, settings.aws_region)
    result = run_backtest(history, load_quarterly_pd_function(scored["model"]), settings.monitoring_backtest_quarters,
                          settings.promotion_calibration_alpha, scored["model"]["oot_start_quarter"])
    return record_step(store, run_id, "backtest", {**result, "history_source": source,
                                                   "model_version": scored["model"]["version"]})


@task_entry
def drift(scored: dict[str, Any], run_id: str) -> dict[str, Any]:
    """PSI of the score and the PD features against the reference snapshot; remembers this one as the next."""
    from pipelines.model.monitoring import drift as measure_drift
    from pipelines.model.monitoring import reference_snapshot, remember_scored_snapshot

    store = current_adapters().object_store
    version = scored["model"]["version"]
    reference = reference_snapshot(store, scored["snapshot_id"], version)
    if reference is None:
        result = {"score_psi": None, "feature_psi": {}, "reference": None,
                  "note": f"no earlier snapshot scored by PD model version {version}: no reference distribution yet"}
    else:
        current = store.get_parquet(scored["scores_key"]).to_pandas()
        result = {**measure_drift(store.get_parquet(reference["scores_key"]).to_pandas(), current),
                  "reference": reference,
                  "note": f"reference: snapshot {reference['snapshot_id']} (as of {reference['as_of']}) "
                          f"scored in run {reference['run_id']}"}
    remember_scored_snapshot(store, {"snapshot_id": scored["snapshot_id"], "model_version": version,
                                     "scores_key": scored["scores_key"], "as_of": scored["as_of"], "run_id": run_id})
    return record_step(store, run_id, "drift", result)


@task_entry
def compliance(manifest: dict[str, Any], scored: dict[str, Any], backtested: dict[str, Any],
               drifted: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Judge the data and model rules on what this monitoring run measured."""
    from pipelines.compliance.rules import evaluate_run, load_rules
    from pipelines.tasks.compliance import compliance_outcome

    adapters = current_adapters()
    settings = adapters.settings
    records = evaluate_run(load_rules(settings.compliance_rules_path), run_id=run_id, dag_id=DAG_ID,
                           steps={"validate": manifest, "score": scored, "backtest": backtested, "drift": drifted},
                           scenario_results=None, model_evidence=None, settings=settings)
    return compliance_outcome(adapters, records, run_id, DAG_ID)
