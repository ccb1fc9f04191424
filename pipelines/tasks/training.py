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
    from models.pd_logistic import MacroLogisticPD
    from models.pd_xgboost import XGBoostPD

    store = adapters.object_store
    model = XGBoostPD.loads(store.get_bytes(trained["model_key"]))
    stored = json.loads(store.get_bytes(trained["benchmark_key"]))
    benchmark = MacroLogisticPD.from_coefficients(stored["coefficients"], stored["horizon_quarters"])
    return model, benchmark


@task_entry
def ingest_history(source_uri: str | None, run_id: str) -> dict[str, Any]:
    """Read the history and stage it; its content hash identifies the data snapshot of the run."""
    import pyarrow as pa

    from pipelines.data.snapshots import content_hash
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
                       "feature_spec": _spec(adapters).name, "started_at_ms": started_at_ms},
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
    store.put_bytes(f"{prefix}/benchmark_logistic.json", json.dumps(
        {"coefficients": benchmark.coefficient_table(), "horizon_quarters": benchmark.pd_horizon_}).encode())
    return record_step(store, run_id, "pd_train", {
        "model_key": f"{prefix}/xgboost_pd.json", "benchmark_key": f"{prefix}/benchmark_logistic.json",
        "train_key": split_result["train_key"], "test_key": split_result["test_key"],
        "hyper_parameters": model.params_, "n_trees": model.n_trees_,
        "search_cv_auc": [round(r["mean_auc"], 5) for r in model.search_results_],
        "provenance": split_result["provenance"],
    })


@task_entry
def evaluate(split_result: dict[str, Any], trained: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Evaluate on the out-of-time rows and write the report (JSON, CSV, figures, model card)."""
    from pipelines.model.report import write_report
    from pipelines.model.training import OutOfTimeSplit, out_of_time_predictions
    from pipelines.model.training import evaluate as run_evaluation

    adapters = current_adapters()
    spec = _spec(adapters)
    model, benchmark = _trained_models(adapters, trained)
    summary = {k: split_result[k] for k in ("train_quarters", "test_quarters", "embargo_quarters", "train_rows",
                                            "test_rows", "train_default_rate", "test_default_rate")}
    oot = OutOfTimeSplit(_frame(adapters, split_result["train_key"]), _frame(adapters, split_result["test_key"]),
                         summary)
    predictions = out_of_time_predictions(oot.test, spec, model, benchmark)
    evaluation = run_evaluation(oot, spec, model, predictions, adapters.settings.promotion_calibration_alpha)
    report_prefix = f"{_prefix(run_id)}/report"
    files = write_report(adapters.object_store, report_prefix, evaluation, oot, spec, model, predictions,
                         trained["provenance"])
    headline = {name: {k: round(m[k], 5) for k in ("auc", "gini", "ks", "brier", "log_loss", "calibrated_band_share")}
                for name, m in evaluation["models"].items()}
    log.info("out-of-time evaluation: %s", headline)
    return record_step(adapters.object_store, run_id, "pd_evaluate", {
        "report_prefix": report_prefix, "report_files": files, "metrics": headline,
        "psi_score": round(evaluation["psi"]["score"], 5), "provenance": trained["provenance"],
    })


@task_entry
def register(trained: dict[str, Any], evaluated: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Log the run, register the model as ``challenger``."""
    adapters = current_adapters()
    store = adapters.object_store
    model, _ = _trained_models(adapters, trained)
    with tempfile.TemporaryDirectory() as tmp:
        for key in evaluated["report_files"]:
            (Path(tmp) / key.rsplit("/", 1)[-1]).write_bytes(store.get_bytes(key))
        evaluation = json.loads((Path(tmp) / "evaluation.json").read_text())
        example = _frame(adapters, trained["test_key"]).head(INPUT_EXAMPLE_ROWS)
        registered = adapters.model_registry.log_and_register(
            model, evaluation, Path(tmp), example, trained["provenance"],
            run_name=f"{model.spec.name}-{run_key(run_id)}")
    log.info("registered %s version %s as challenger", registered["model_name"], registered["version"])
    return record_step(store, run_id, "pd_register", {**registered, "test_key": trained["test_key"],
                                                      "model_key": trained["model_key"],
                                                      "benchmark_key": trained["benchmark_key"],
                                                      "provenance": trained["provenance"]})


@task_entry
def promotion_gate(registered: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Run the promotion gate on the run's out-of-time rows (benchmark as incumbent when no champion)."""
    from models.projection import PD_FEATURES
    from pipelines.model.promotion import BENCHMARK_INCUMBENT, PromotionPolicy, run_promotion_gate

    adapters = current_adapters()
    test = _frame(adapters, registered["test_key"])
    _, benchmark = _trained_models(adapters, registered)
    fallback = (f"{BENCHMARK_INCUMBENT} (same training rows)", benchmark.predict_pd(test[list(PD_FEATURES)]))
    decision = run_promotion_gate(adapters.model_registry, registered["version"], test, _spec(adapters).target,
                                  PromotionPolicy.from_settings(adapters.settings), fallback,
                                  {"airflow_run_id": run_id, "data_sha256": registered["provenance"]["data_sha256"]})
    log.info("promotion gate: %s against %s: %s", "PROMOTED" if decision.promote else "not promoted",
             decision.incumbent, "; ".join(decision.reasons))
    return record_step(adapters.object_store, run_id, "pd_promotion", {
        "model_name": registered["model_name"], "version": registered["version"], "promoted": decision.promote,
        "incumbent": decision.incumbent, "reasons": decision.reasons, "challenger": decision.challenger,
        "incumbent_metrics": decision.incumbent_metrics, "tracking_uri": registered["tracking_uri"],
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
