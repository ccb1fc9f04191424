"""``pd_public_data``: the project's PD model against plain baselines, on real public credit data and on the
1,000,000-row synthetic history (see :mod:`benchmarks.model_comparison` for the data, its licence and the
statistics)."""

from __future__ import annotations

from typing import Any

from benchmarks.common import Timer, benchmark
from benchmarks.model_comparison import german_credit, one_hot_logistic, plain_xgboost, repeated_cv_auc

N_SPLITS, N_REPEATS, SEED, THREADS = 5, 5, 0, 2


def _public_data_figures() -> dict[str, Any]:
    from models.pd_xgboost import XGBoostPD

    X, y = german_credit()
    with Timer() as timer:
        result = repeated_cv_auc({"project": lambda: XGBoostPD(n_jobs=THREADS, random_state=SEED),
                                  "plain_xgboost": lambda: plain_xgboost(THREADS, SEED),
                                  "one_hot_logistic": lambda: one_hot_logistic(X)},
                                 X, y, N_SPLITS, N_REPEATS, SEED)
    figures: dict[str, Any] = {"german_rows": len(X), "german_bad_rate": round(float(y.mean()), 3),
                               "german_folds": N_SPLITS * N_REPEATS, "german_cv_s": round(timer.seconds, 1)}
    for name, stats in result.summary().items():
        figures |= {f"german_{name}_auc": round(stats["mean_auc"], 4),
                    f"german_{name}_auc_sd": round(stats["sd_auc"], 4)}
    for baseline in ("plain_xgboost", "one_hot_logistic"):
        difference = result.paired_difference("project", baseline)
        figures |= {f"german_project_minus_{baseline}": round(difference["mean"], 4),
                    f"german_project_minus_{baseline}_se": round(difference["se"], 4),
                    f"german_project_minus_{baseline}_se_naive": round(difference["se_naive"], 4),
                    f"german_project_beats_{baseline}_folds": difference["folds_won"]}
    return figures


def _synthetic_figures() -> dict[str, Any]:
    """Out of time on the train_1m history: the three models beside the generator's true PD, each AUC with its
    Hanley-McNeil standard error and the project's AUC difference to each other with DeLong's paired one."""
    from threadpoolctl import threadpool_limits

    from benchmarks.bench_training import HOLDOUT_QUARTERS, history_1m
    from models.feature_spec import load_feature_spec
    from models.pd_horizon import horizon_pd
    from models.pd_xgboost import XGBoostPD
    from models.validation_metrics import paired_auc_difference
    from pipelines.model.training import (
        PANEL_CV_FOLDS,
        PANEL_LEARNING_RATE,
        TRUE_PD_COLUMN,
        out_of_time_split,
        performance_metrics,
        point_in_time_dataset,
    )

    spec = load_feature_spec()
    split = out_of_time_split(point_in_time_dataset(history_1m(), spec), spec, HOLDOUT_QUARTERS)
    features = list(spec.features)
    train_y, test_y = split.train[spec.target].to_numpy(), split.test[spec.target].to_numpy()
    models = {"project": XGBoostPD(spec, time_column=spec.date_column, cv_folds=PANEL_CV_FOLDS,
                                   learning_rate=PANEL_LEARNING_RATE, n_jobs=THREADS, random_state=SEED),
              "plain_xgboost": plain_xgboost(THREADS, SEED),
              "one_hot_logistic": one_hot_logistic(split.train[features])}
    figures: dict[str, Any] = {"synthetic_train_rows": len(split.train), "synthetic_test_rows": len(split.test)}
    predictions = {}
    for name, model in models.items():
        with Timer() as timer, threadpool_limits(limits=1, user_api="blas"):
            model.fit(split.train if name == "project" else split.train[features], train_y)
        figures[f"synthetic_{name}_fit_s"] = round(timer.seconds, 1)
        predictions[name] = model.predict_proba(split.test if name == "project" else split.test[features])[:, 1]
    predictions["true_pd"] = horizon_pd(split.test[TRUE_PD_COLUMN].to_numpy(), spec.horizon_quarters)
    for name, probability in predictions.items():
        metrics = performance_metrics(test_y, probability, alpha=0.01)
        figures |= {f"synthetic_{name}_oot_auc": round(metrics["auc"], 4),
                    f"synthetic_{name}_oot_auc_se": round(metrics["auc_se"], 4),
                    f"synthetic_{name}_oot_brier": round(metrics["brier"], 5),
                    f"synthetic_{name}_mean_pd": round(metrics["mean_pd"], 4),
                    f"synthetic_{name}_calibrated_bands": round(metrics["calibrated_band_share"], 2)}
    for baseline in ("plain_xgboost", "one_hot_logistic", "true_pd"):
        difference = paired_auc_difference(test_y, predictions["project"], predictions[baseline])
        figures |= {f"synthetic_project_minus_{baseline}_oot_auc": round(difference.difference, 4),
                    f"synthetic_project_minus_{baseline}_oot_auc_se": round(difference.standard_error, 4)}
    figures["synthetic_observed_default_rate"] = round(float(test_y.mean()), 4)
    return figures


@benchmark
def pd_public_data() -> dict[str, Any]:
    """German credit under 5 x 5-fold stratified CV, then the 1M-row synthetic history out of time."""
    return _public_data_figures() | _synthetic_figures()
