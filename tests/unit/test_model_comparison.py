"""The pd_public_data comparison code on a small sample: the data as shipped, fold bookkeeping, the
paired statistics against hand-computed values, and that the comparison tells a model from a coin."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from benchmarks.model_comparison import (
    CrossValidatedAUC,
    german_credit,
    one_hot_logistic,
    plain_xgboost,
    repeated_cv_auc,
)
from models.pd_xgboost import XGBoostPD


def test_german_credit_is_the_statlog_table_with_its_labels():
    X, y = german_credit()
    assert X.shape == (1000, 20)
    assert int(y.sum()) == 300  # 700 good, 300 bad in the Statlog data
    assert "... < 0 DM" in set(X["status_of_existing_checking_account"])


def test_paired_difference_uses_the_corrected_standard_error():
    a = np.array([0.80, 0.78, 0.82, 0.79, 0.81, 0.77])
    b = np.array([0.79, 0.78, 0.80, 0.80, 0.78, 0.76])
    result = CrossValidatedAUC({"a": a, "b": b}, n_splits=3, n_repeats=2).paired_difference("a", "b")
    d = a - b  # 0.01, 0, 0.02, -0.01, 0.03, 0.01: mean 0.01
    sd = np.sqrt(((d - 0.01) ** 2).sum() / 5)
    assert result["mean"] == pytest.approx(0.01)
    assert result["se_naive"] == pytest.approx(sd / np.sqrt(6))
    assert result["se"] == pytest.approx(sd * np.sqrt(1 / 6 + 1 / 2))  # n_test / n_train = 1 / (3 - 1)
    assert result["folds_won"] == 4


def test_the_comparison_ranks_real_models_above_a_coin_on_the_same_folds():
    X, y = german_credit()
    sample = np.random.default_rng(0).choice(len(X), 400, replace=False)
    X, y = X.iloc[sample].reset_index(drop=True), y[sample]
    result = repeated_cv_auc({"project": lambda: XGBoostPD(n_candidates=2, max_trees=50, n_jobs=1),
                              "plain_xgboost": lambda: plain_xgboost(1, 0),
                              "one_hot_logistic": lambda: one_hot_logistic(X),
                              "coin": lambda: DummyClassifier(strategy="uniform", random_state=0)},
                             X, y, n_splits=3, n_repeats=2, seed=1)
    assert all(len(aucs) == 6 for aucs in result.fold_auc.values())
    summary = result.summary()
    assert summary["coin"]["mean_auc"] == pytest.approx(0.5)  # a constant score ties every pair
    for name in ("project", "plain_xgboost", "one_hot_logistic"):
        assert summary[name]["mean_auc"] > 0.65
        versus_coin = result.paired_difference(name, "coin")
        assert versus_coin["mean"] > 3 * versus_coin["se"]
    itself = result.paired_difference("project", "project")
    assert itself["mean"] == 0 and itself["se"] == 0
