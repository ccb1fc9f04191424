"""PD model speed on a 1,000,000-row performance history: training (goal <= 120 s) and batch scoring
of quarterly PDs (goal >= 2,000,000 rows/s), with the out-of-time AUCs of XGBoost, the benchmark
logistic model and the generator's true PD on the same rows."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import INPUTS, Timer, benchmark

N_ROWS = 1_000_000
HISTORY_LOANS = 58_000  # about 17.5 quarters per loan: a little over N_ROWS rows
HISTORY_SEED = 2026
HOLDOUT_QUARTERS = 8
MODEL_FILE = INPUTS / f"xgboost_pd_{N_ROWS}.json"


def history_1m() -> Any:
    import pandas as pd

    path = INPUTS / f"performance_history_{N_ROWS}.parquet"
    if not path.exists():
        from pipelines.data.synthetic import generate_performance_history

        INPUTS.mkdir(parents=True, exist_ok=True)
        generate_performance_history(HISTORY_LOANS, HISTORY_SEED).head(N_ROWS).to_parquet(path)
    return pd.read_parquet(path)


@benchmark
def train_1m() -> dict[str, float]:
    """Point-in-time dataset, out-of-time split and the XGBoost fit (search, final fit, calibration) with the
    configured budget and threads; then, outside the timed part, the benchmark and the OOT comparison: AUCs
    with Hanley-McNeil standard errors, and XGBoost minus the benchmark with DeLong's paired one."""
    from threadpoolctl import threadpool_limits

    from models.feature_spec import load_feature_spec
    from models.pd_logistic import MacroLogisticPD
    from models.pd_xgboost import XGBoostPD
    from models.projection import PD_FEATURES
    from models.validation_metrics import auc, auc_standard_error, paired_auc_difference
    from pipelines.model.training import (
        PANEL_CV_FOLDS,
        PANEL_LEARNING_RATE,
        out_of_time_predictions,
        out_of_time_split,
        point_in_time_dataset,
    )
    from pipelines.settings import get_settings

    settings = get_settings()
    spec = load_feature_spec()
    history = history_1m()
    cpu = time.process_time()
    with Timer() as timer:
        split = out_of_time_split(point_in_time_dataset(history, spec), spec, HOLDOUT_QUARTERS)
        model = XGBoostPD(spec, time_column=spec.date_column, cv_folds=PANEL_CV_FOLDS,
                          learning_rate=PANEL_LEARNING_RATE, n_candidates=settings.pd_search_candidates,
                          n_jobs=settings.pd_training_threads, random_state=settings.pd_training_seed,
                          ).fit(split.train, split.train[spec.target])
    cpu = time.process_time() - cpu
    MODEL_FILE.write_bytes(model.dumps())
    with Timer() as logistic_timer, threadpool_limits(limits=1, user_api="blas"):
        benchmark_model = MacroLogisticPD().fit(split.train[list(PD_FEATURES)], split.train[spec.target].to_numpy())
    y = split.test[spec.target].to_numpy()
    predictions = out_of_time_predictions(split.test, spec, model, benchmark_model)
    aucs = {name: round(auc(y, p), 4) for name, p in predictions.items()}
    standard_errors = {name: round(auc_standard_error(y, p), 4) for name, p in predictions.items()}
    difference = paired_auc_difference(y, predictions["xgboost"], predictions["benchmark_logistic"])
    return {"history_rows": len(history), "train_rows": len(split.train), "test_rows": len(split.test),
            "wall_s": round(timer.seconds, 1), "cpu_s": round(cpu, 1), "n_trees": model.n_trees_,
            "candidates": len(model.search_results_), "threads": settings.pd_training_threads,
            "logistic_fit_s": round(logistic_timer.seconds, 1),
            "test_defaults": int(y.sum()),
            "oot_auc_xgboost": aucs["xgboost"], "oot_auc_xgboost_se": standard_errors["xgboost"],
            "oot_auc_logistic": aucs["benchmark_logistic"],
            "oot_auc_logistic_se": standard_errors["benchmark_logistic"],
            "oot_auc_true_pd": aucs["true_pd"], "oot_auc_true_pd_se": standard_errors["true_pd"],
            "oot_auc_xgboost_minus_logistic": round(difference.difference, 4),
            "oot_auc_xgboost_minus_logistic_se": round(difference.standard_error, 4)}


@benchmark
def score_1m() -> dict[str, float]:
    """Quarterly PDs (what the stress engine calls) of 1,000,000 history rows with the train_1m model."""
    from models.pd_xgboost import XGBoostPD

    if not MODEL_FILE.exists():
        train_1m()
    model = XGBoostPD.loads(MODEL_FILE.read_bytes())
    frame = history_1m()[list(model.spec.features)]
    model.predict_quarterly(frame.head(1000))  # warm-up: first-call allocations are not throughput
    with Timer() as timer:
        pd_quarterly = model.predict_quarterly(frame)
    assert pd_quarterly.shape == (len(frame),) and ((pd_quarterly >= 0) & (pd_quarterly <= 1)).all()
    return {"rows": len(frame), "wall_s": round(timer.seconds, 3), "rows_per_s": round(len(frame) / timer.seconds),
            "n_trees": model.n_trees_, "threads": model.n_jobs}
