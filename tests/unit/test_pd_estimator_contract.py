"""Both PD models as scikit-learn classifiers: estimator checks, clone, Pipeline, GridSearchCV, any table.

``XGBoostPD`` without a spec passes every check of ``sklearn.utils.estimator_checks`` (none is
expected to fail). ``MacroLogisticPD`` reads the named columns of ``models.projection.PD_FEATURES``,
so the generic checks, which feed unnamed random arrays, do not apply to it; its contract is
tested here on frames with those columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from models.pd_logistic import MacroLogisticPD
from models.pd_xgboost import XGBoostPD
from models.validation_metrics import auc

FAST = {"n_candidates": 2, "max_trees": 30, "n_jobs": 1}


@parametrize_with_checks([XGBoostPD(**FAST)])
def test_xgboost_pd_passes_the_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def hostile_table(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Column names and category labels with ``<``, ``[``, ``]``, spaces and ``=``; no date column;
    the label of a category drives the risk, so a model that mangles the labels cannot rank."""
    rng = np.random.default_rng(seed)
    labels = np.array(["... < 0 DM", "0 <= ... < 200 DM", "[none]", "a=b ]["])
    status = rng.choice(labels, n)
    amount = rng.lognormal(8, 1, n)
    risk = -2.5 + 3.0 * (status == labels[0]) + 1.5 * (status == labels[2]) + 0.5 * np.log(amount / 3000)
    y = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(int)
    frame = pd.DataFrame({"status <checking> [DM]": status, "amount[EUR]": amount,
                          "noise": rng.normal(size=n)})
    return frame, np.where(y == 1, "bad", "good")


def test_any_column_names_and_category_labels_are_accepted_and_learnt():
    X, y = hostile_table(3000, seed=1)
    model = XGBoostPD(**FAST).fit(X.iloc[:2000], y[:2000])
    assert model.classes_.tolist() == ["bad", "good"]
    assert sorted(model.categories_["status <checking> [DM]"]) == sorted(set(X["status <checking> [DM]"]))
    proba = model.predict_proba(X.iloc[2000:])
    assert proba.shape == (1000, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # classes_[1] is "good": its probability must fall with the risky label
    good = y[2000:] == "good"
    assert auc(good.astype(int), proba[:, 1]) > 0.7
    assert model.pd_horizon_ == 4
    restored = XGBoostPD.loads(model.dumps())
    np.testing.assert_array_equal(restored.predict_proba(X.iloc[2000:]), proba)
    assert restored.classes_.tolist() == ["bad", "good"]


def test_the_final_trees_are_fitted_on_every_training_row():
    """The chosen booster equals an independent refit on all rows with the chosen parameters and tree count
    (a model that held rows back for calibration or an embargo would differ)."""
    import xgboost as xgb

    X, y = hostile_table(2000, seed=2)
    model = XGBoostPD(**FAST).fit(X, y)
    matrix = model._matrix(X)
    target = (y == model.classes_[1]).astype(int)
    independent = xgb.train(model.params_, xgb.QuantileDMatrix(matrix, label=target, nthread=1), model.n_trees_)
    np.testing.assert_array_equal(independent.inplace_predict(matrix, predict_type="margin"), model.margin(X))


def test_platt_calibration_uses_out_of_fold_margins_and_keeps_the_ranking():
    X, y = hostile_table(3000, seed=3)
    raw = XGBoostPD(**FAST).fit(X, y)
    platt = XGBoostPD(**FAST, calibration="platt").fit(X, y)
    assert platt.calibration_.method == "platt" and platt.calibration_.slope > 0
    np.testing.assert_array_equal(platt.margin(X), raw.margin(X))  # the same trees
    order = np.argsort(raw.margin(X), kind="stable")
    assert (np.diff(platt.predict_pd(X)[order]) >= 0).all()


def test_clone_pipeline_and_grid_search_work():
    X, y = hostile_table(1500, seed=4)
    model = XGBoostPD(**FAST, learning_rate=0.3)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and not hasattr(twin, "booster_")
    pipeline = Pipeline([("identity", FunctionTransformer(validate=False)), ("pd", model)]).fit(X, y)
    assert pipeline.predict_proba(X).shape == (len(X), 2)
    search = GridSearchCV(XGBoostPD(**FAST), {"learning_rate": [0.1, 0.3]}, scoring="roc_auc",
                          cv=StratifiedKFold(2, shuffle=True, random_state=0)).fit(X, y)
    assert search.best_params_["learning_rate"] in (0.1, 0.3)
    assert search.best_estimator_.predict(X).shape == (len(X),)


def test_time_aware_search_is_an_option_for_panel_data():
    X, y = hostile_table(4000, seed=5)
    X["observed"] = pd.Timestamp("2010-01-01") + pd.to_timedelta(np.repeat(np.arange(20), 200) * 91, unit="D")
    model = XGBoostPD(**FAST, time_column="observed", horizon_quarters=2, cv_folds=2, fold_quarters=3).fit(X, y)
    assert "observed" not in model.features_
    assert all(len(result["fold_auc"]) == 2 for result in model.search_results_)
    assert model.pd_horizon_ == 2
    with pytest.raises(ValueError, match="too few"):
        XGBoostPD(**FAST, time_column="observed", cv_folds=2, fold_quarters=10).fit(X, y)


def test_logistic_benchmark_is_a_scikit_learn_classifier_stating_its_horizon(pd_feature_panel):
    features, flags = pd_feature_panel
    model = MacroLogisticPD(horizon_quarters=4)
    assert "coefficients_" not in model.get_params()
    # one BLAS thread: small L-BFGS products lose to thread overhead on a shared machine
    with threadpool_limits(limits=1, user_api="blas"):
        fitted = clone(model).fit(features, flags)
        search = GridSearchCV(MacroLogisticPD(), {"l2_penalty": [1e-6, 1e-2]}, scoring="roc_auc", cv=2)
        assert search.fit(features, flags).best_estimator_.pd_horizon_ == 1
    assert fitted.pd_horizon_ == 4 and fitted.classes_.tolist() == [0, 1]
    proba = fitted.predict_proba(features)
    assert proba.shape == (len(features), 2)
    np.testing.assert_allclose(proba[:, 1], fitted.predict_pd(features))
    # quarterly hazard of a 4-quarter PD: 1 - (1 - p) ** (1 / 4)
    np.testing.assert_allclose(fitted(features), 1 - (1 - proba[:, 1]) ** 0.25)
    restored = MacroLogisticPD.loads(fitted.dumps())
    assert restored.pd_horizon_ == 4 and restored.get_params() == fitted.get_params()
    np.testing.assert_allclose(restored.predict_proba(features), proba)
    # linear SHAP: every row's contributions add up to its log-odds
    shap = fitted.shap_values(features.head(50))
    np.testing.assert_allclose(shap.sum(axis=1), np.log(proba[:50, 1] / proba[:50, 0]), rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def pd_feature_panel() -> tuple[pd.DataFrame, np.ndarray]:
    from pipelines.data.features import history_pd_features
    from pipelines.data.synthetic import generate_performance_history

    panel = generate_performance_history(800, seed=8)
    return history_pd_features(panel), panel["DefaultFlag"].to_numpy()


def one_hot_by_label(values: pd.Series, categories: list[str]) -> np.ndarray:
    """The encoding's definition, row by row: indicator of the value's text among the learnt labels."""
    text = [None if pd.isna(v) else str(v) for v in values]
    return np.array([[label == category for category in categories] for label in text], dtype=np.float32)


@pytest.mark.parametrize("as_type", ["category", "object", "string"])
def test_category_encoding_is_the_label_by_label_one_hot_to_the_bit(as_type):
    """The fast encoding (factorise, then look the distinct labels up) must give exactly the one-hot of
    the labels as text, for categorical, object and string columns, with missing values, labels the
    model never saw and categories the column declares but does not hold; so scores are bit-identical."""
    X, y = hostile_table(1500, seed=4)
    column = "status <checking> [DM]"
    model = XGBoostPD(**FAST).fit(X, y)
    categories = model.categories_[column]
    scored = X.copy()
    scored.loc[::7, column] = "never seen <x>"
    scored.loc[::11, column] = None
    scored[column] = scored[column].astype(as_type)
    if as_type == "category":
        scored[column] = scored[column].cat.add_categories(["declared, absent"])
    matrix = model._matrix(scored)
    width = len(model.numeric_)
    np.testing.assert_array_equal(matrix[:, width:], one_hot_by_label(scored[column], categories))
    reference = np.column_stack([scored[model.numeric_].to_numpy(dtype=np.float32),
                                 one_hot_by_label(scored[column], categories)])
    expected = model.booster_.inplace_predict(reference, predict_type="margin").astype(np.float64)
    np.testing.assert_array_equal(model.margin(scored), expected)
