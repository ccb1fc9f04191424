"""The task bodies of ``pd_model_training``: ingest and validate the history, build the point-in-time
dataset, split out of time, train, evaluate, register, gate and deploy (see :mod:`pipelines.model.training`).

Intermediate tables go through the object store under ``runs/<run>/pd_model/``; XCom carries the keys.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from pipelines.composition import Adapters, current_adapters
from pipelines.data.sources import redact_credentials
from pipelines.tasks.policy import task_entry
from pipelines.tasks.runs import log, record_step, run_key, run_prefix

INPUT_EXAMPLE_ROWS = 5


def _prefix(run_id: str) -> str:
    return f"{run_prefix(run_id)}/pd_model"


def _put_frame(adapters: Adapters, key: str, frame) -> str:
    import pyarrow as pa

    adapters.object_store.put_parquet(key, pa.Table.from_pandas(frame, preserve_index=False))
    return key


def _frame(adapters: Adapters, key: str):
    return adapters.object_store.get_parquet(key).to_pandas()


def _spec(adapters: Adapters):
    from models.feature_spec import load_feature_spec

    return load_feature_spec(adapters.settings.pd_feature_spec_path)


def _trained_models(adapters: Adapters, trained: dict[str, Any]):
    """The run's candidates by name, in the gate's order (:data:`pipelines.model.promotion.CANDIDATES`)."""
    from models.pd_logistic import MacroLogisticPD
    from models.pd_xgboost import XGBoostPD

    store = adapters.object_store
    return {"benchmark_logistic": MacroLogisticPD.loads(store.get_bytes(trained["benchmark_key"])),
            "xgboost": XGBoostPD.loads(store.get_bytes(trained["model_key"]))}


@task_entry
def ingest_history(source_uri: str | None, run_id: str) -> dict[str, Any]:
    """Read the history and stage it; its content hash identifies the data snapshot of the run."""
    import pyarrow as pa

    from pipelines.data.hashing import content_hash
    from pipelines.model.lineage import code_version
    from pipelines.model.selection import performance_history
    from pipelines.model.training import read_history

    started_at_ms = int(time.time() * 1000)  # the MLflow run spans the whole training, not its logging step
    adapters = current_adapters()
    settings = adapters.settings
    history, source = (read_history(source_uri, settings.aws_region) if source_uri else
                       performance_history(settings.resolved_performance_history_uri, settings.aws_region))
    source = redact_credentials(source)  # recorded on the step, the MLflow run and the model version
    log.info("performance history %s: %s rows", source, f"{len(history):,}")
    table = pa.Table.from_pandas(history, preserve_index=False)
    key = f"{_prefix(run_id)}/history.parquet"
    adapters.object_store.put_parquet(key, table)
    return record_step(adapters.object_store, run_id, "pd_ingest_history", {
        "history_key": key, "rows": len(history),
        "provenance": {"source": source, "data_sha256": content_hash(table), "airflow_run_id": run_id,
                       "code_version": code_version(), "feature_spec": _spec(adapters).name,
                       "started_at_ms": started_at_ms},
    })


@task_entry
def validate_history(ingested: dict[str, Any], run_id: str) -> dict[str, Any]:
    from pipelines.model.training import validate_history as run_validation

    adapters = current_adapters()
    accepted, report = run_validation(_frame(adapters, ingested["history_key"]), _spec(adapters),
                                      adapters.settings.history_max_rejected_share)
    log.info("history validation: %s", report)
    key = _put_frame(adapters, f"{_prefix(run_id)}/validated.parquet", accepted)
    return record_step(adapters.object_store, run_id, "pd_validate_history",
                       {"validated_key": key, **report, "provenance": ingested["provenance"]})


@task_entry
def build_dataset(validated: dict[str, Any], run_id: str) -> dict[str, Any]:
    from pipelines.data.features import history_income_missing
    from pipelines.model.training import point_in_time_dataset, quarter_label

    adapters = current_adapters()
    spec = _spec(adapters)
    history = _frame(adapters, validated["validated_key"])
    income_missing_rows = int(history_income_missing(history).sum())
    if income_missing_rows:
        log.warning("%d history rows have no usable income: DSTI set to the stressed value", income_missing_rows)
    dataset = point_in_time_dataset(history, spec)
    key = _put_frame(adapters, f"{_prefix(run_id)}/dataset.parquet", dataset)
    quarters = spec.quarters(dataset)
    return record_step(adapters.object_store, run_id, "pd_dataset", {
        "dataset_key": key, "rows": len(dataset), "target": spec.target,
        "quarters": [quarter_label(int(quarters.min())), quarter_label(int(quarters.max()))],
        "default_rate": float(dataset[spec.target].mean()), "income_missing_rows": income_missing_rows,
        "provenance": validated["provenance"],
    })


@task_entry
def split(dataset: dict[str, Any], holdout_quarters: int, run_id: str) -> dict[str, Any]:
    """Out-of-time split; ``holdout_quarters`` 0 means the configured ``pd_holdout_quarters``."""
    from pipelines.model.training import out_of_time_split

    adapters = current_adapters()
    result = out_of_time_split(_frame(adapters, dataset["dataset_key"]), _spec(adapters),
                               holdout_quarters or adapters.settings.pd_holdout_quarters)
    prefix = _prefix(run_id)
    return record_step(adapters.object_store, run_id, "pd_split", {
        "train_key": _put_frame(adapters, f"{prefix}/train.parquet", result.train),
        "test_key": _put_frame(adapters, f"{prefix}/test.parquet", result.test),
        **result.summary, "provenance": dataset["provenance"],
    })


@task_entry
def train(split_result: dict[str, Any], search_candidates: int, run_id: str) -> dict[str, Any]:
    """Fit both models; ``search_candidates`` 0 means the configured ``pd_search_candidates``."""
    from pipelines.model.training import train_models

    adapters = current_adapters()
    settings, store = adapters.settings, adapters.object_store
    candidates = search_candidates or settings.pd_search_candidates
    log.info("training XGBoost (%d candidates) and the benchmark logistic model", candidates)
    model, benchmark = train_models(_frame(adapters, split_result["train_key"]), _spec(adapters), candidates,
                                    settings.pd_training_seed, settings.pd_training_threads)
    prefix = _prefix(run_id)
    store.put_bytes(f"{prefix}/xgboost_pd.json", model.dumps())
    store.put_bytes(f"{prefix}/benchmark_logistic.json", benchmark.dumps())
    return record_step(store, run_id, "pd_train", {
        "model_key": f"{prefix}/xgboost_pd.json", "benchmark_key": f"{prefix}/benchmark_logistic.json",
        "train_key": split_result["train_key"], "test_key": split_result["test_key"],
        "hyper_parameters": model.params_, "n_trees": model.n_trees_,
        "search_cv_auc": [round(r["mean_auc"], 5) for r in model.search_results_],
        "provenance": split_result["provenance"],
    })


@task_entry
def evaluate(split_result: dict[str, Any], trained: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Evaluate both candidates on the out-of-time rows and write the report (JSON, CSV, figures, model cards)."""
    from pipelines.model.report import write_report
    from pipelines.model.training import OutOfTimeSplit, out_of_time_predictions
    from pipelines.model.training import evaluate as run_evaluation

    adapters = current_adapters()
    spec = _spec(adapters)
    candidates = _trained_models(adapters, trained)
    model, benchmark = candidates["xgboost"], candidates["benchmark_logistic"]
    summary = {k: split_result[k] for k in ("train_quarters", "test_quarters", "embargo_quarters", "train_rows",
                                            "test_rows", "train_default_rate", "test_default_rate")}
    oot = OutOfTimeSplit(_frame(adapters, split_result["train_key"]), _frame(adapters, split_result["test_key"]),
                         summary)
    predictions = out_of_time_predictions(oot.test, spec, model, benchmark)
    evaluation = run_evaluation(oot, spec, model, predictions, adapters.settings.promotion_calibration_alpha)
    report_prefix = f"{_prefix(run_id)}/report"
    files = write_report(adapters.object_store, report_prefix, evaluation, oot, spec, candidates, predictions,
                         trained["provenance"])
    headline = {name: {k: round(m[k], 5) for k in ("auc", "auc_se", "gini", "ks", "brier", "log_loss",
                                                   "calibrated_band_share")}
                for name, m in evaluation["models"].items()}
    log.info("out-of-time evaluation: %s", headline)
    return record_step(adapters.object_store, run_id, "pd_evaluate", {
        "report_prefix": report_prefix, "report_files": files, "metrics": headline,
        "psi_score": round(evaluation["psi"]["score"], 5), "provenance": trained["provenance"],
    })


def _candidate_report(store, report_prefix: str, files: list[str], candidate: str, directory: Path) -> Path:
    """The report a candidate's MLflow run logs: the run's shared files and the candidate's own (``<candidate>/``)."""
    directory.mkdir()
    for key in files:
        relative = key.removeprefix(f"{report_prefix}/")
        owner, _, name = relative.rpartition("/")
        if owner in ("", candidate):
            (directory / name).write_bytes(store.get_bytes(key))
    return directory


@task_entry
def register(trained: dict[str, Any], evaluated: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Log one MLflow run per candidate and register each as a version (``challenger``), in the gate's order."""
    from pipelines.model.promotion import CANDIDATES

    adapters = current_adapters()
    store = adapters.object_store
    spec = _spec(adapters)
    candidates = _trained_models(adapters, trained)
    evaluation = json.loads(store.get_bytes(f"{evaluated['report_prefix']}/evaluation.json"))
    example = _frame(adapters, trained["test_key"]).head(INPUT_EXAMPLE_ROWS)
    registered = []
    with tempfile.TemporaryDirectory() as tmp:
        for candidate in CANDIDATES:
            report = _candidate_report(store, evaluated["report_prefix"], evaluated["report_files"], candidate,
                                       Path(tmp) / candidate)
            registered.append(adapters.model_registry.log_and_register(
                candidates[candidate], spec, candidate, evaluation, report, example, trained["provenance"],
                run_name=f"{spec.name}-{candidate}-{run_key(run_id)}"))
            log.info("registered %s as %s version %s", candidate, registered[-1]["model_name"],
                     registered[-1]["version"])
    return record_step(store, run_id, "pd_register", {
        "model_name": registered[0]["model_name"], "tracking_uri": registered[0]["tracking_uri"],
        "candidates": registered, "test_key": trained["test_key"], "report_prefix": evaluated["report_prefix"],
        "model_key": trained["model_key"], "benchmark_key": trained["benchmark_key"],
        "provenance": trained["provenance"]})


@task_entry
def promotion_gate(registered: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Judge the run's candidates in order on its out-of-time rows; write each verdict into its model card."""
    from pipelines.model.promotion import PromotionPolicy, run_promotion_gate
    from pipelines.model.report import model_card, version_summary

    adapters = current_adapters()
    store, registry = adapters.object_store, adapters.model_registry
    spec = _spec(adapters)
    test = _frame(adapters, registered["test_key"])
    provenance = registered["provenance"]
    decisions = run_promotion_gate(registry, [c["version"] for c in registered["candidates"]], test, spec.target,
                                   PromotionPolicy.from_settings(adapters.settings),
                                   {"airflow_run_id": run_id, "data_sha256": provenance["data_sha256"]})
    evaluation = json.loads(store.get_bytes(f"{registered['report_prefix']}/evaluation.json"))
    models = _trained_models(adapters, registered)
    verdicts = []
    for candidate, decision in zip(registered["candidates"], decisions, strict=True):
        name = candidate["candidate"]
        verdict = {"candidate": name, "version": candidate["version"], "flavour": candidate["flavour"],
                   "promote": decision.promote, "incumbent": decision.incumbent, "reasons": decision.reasons,
                   "decided_at": decision.extra["decided_at"], "challenger": decision.challenger,
                   "incumbent_metrics": decision.incumbent_metrics}
        shap = json.loads(store.get_bytes(f"{registered['report_prefix']}/{name}/shap_mean_abs.json"))
        registry.publish_model_card(
            candidate["version"], candidate["mlflow_run_id"],
            model_card(evaluation, spec, name, models[name], provenance, shap, verdict, candidate),
            version_summary(evaluation, name, provenance, shap, verdict, candidate))
        log.info("promotion gate: %s v%s %s against %s: %s", name, candidate["version"],
                 "PROMOTED" if decision.promote else "not promoted", decision.incumbent, "; ".join(decision.reasons))
        verdicts.append(verdict)
    champion = registry.champion_info()
    return record_step(store, run_id, "pd_promotion", {
        "model_name": registered["model_name"], "tracking_uri": registered["tracking_uri"], "decisions": verdicts,
        "promoted": any(v["promote"] for v in verdicts), "champion": champion,
    })


def model_serving() -> str:
    """``local`` or ``sagemaker`` (``STRESS_MODEL_SERVING``): the deploy branch the DAG takes."""
    return current_adapters().settings.resolved_model_serving.value


@task_entry
def serve_locally(decision: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Local serving: nothing to deploy; record where ``make serve-model`` serves the champion."""
    from pipelines.adapters.deployment import local_serving_uri

    adapters = current_adapters()
    champion = adapters.model_registry.champion_info()
    payload = {"target": "local", "serving_uri": local_serving_uri(adapters.settings), "command": "make serve-model",
               "champion_version": champion["version"] if champion else None,
               "promoted_this_run": decision["promoted"]}
    return record_step(adapters.object_store, run_id, "pd_deploy", payload)
