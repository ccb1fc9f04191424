"""XGBoostPD on panel data: monotone where the spec says so, PDs in [0, 1], time-aware search, persistence.

The scikit-learn contract (estimator checks, Pipeline, GridSearchCV, any table) is in
``test_pd_estimator_contract.py``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from models.feature_spec import load_feature_spec
from models.pd_horizon import quarterly_pd
from models.pd_xgboost import Calibration, XGBoostPD, embargoed
from models.validation_metrics import auc

SPEC = load_feature_spec()
SEGMENTS = ("first_lien_mortgage", "heloc", "auto", "credit_card", "personal", "commercial_real_estate",
            "commercial_industrial")


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    from pipelines.data.synthetic import generate_performance_history
    from pipelines.model.training import point_in_time_dataset

    return point_in_time_dataset(generate_performance_history(2000, seed=21), SPEC)


@pytest.fixture(scope="module")
def fitted(panel: pd.DataFrame) -> XGBoostPD:
    train = panel[SPEC.quarters(panel) < SPEC.quarters(panel).max() - 8]
    return XGBoostPD(SPEC, time_column=SPEC.date_column, n_candidates=2, n_jobs=1, random_state=3).fit(
        train, train[SPEC.target])


def test_fit_searches_the_budget_and_ranks_out_of_time(fitted, panel):
    assert len(fitted.search_results_) == 2
    assert all(len(r["fold_auc"]) == fitted.cv_folds for r in fitted.search_results_)
    assert fitted.n_trees_ >= 1
    # numeric features in spec order, then one unconstrained indicator per segment
    expected = tuple(SPEC.monotone.get(c, 0) for c in SPEC.numeric) + (0,) * len(SEGMENTS)
    assert fitted.params_["monotone_constraints"] == str(expected)
    recent = panel[SPEC.quarters(panel) >= SPEC.quarters(panel).max() - 4]
    assert auc(recent[SPEC.target], fitted.predict_pd(recent)) > 0.7


def _base_rows(panel: pd.DataFrame, index: int, size: int) -> pd.DataFrame:
    return pd.concat([panel.iloc[[index % len(panel)]]] * size, ignore_index=True)


@pytest.mark.parametrize("feature", sorted(SPEC.monotone))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 10**9), values=st.lists(st.floats(-5, 1000, allow_nan=False), min_size=2, max_size=30))
def test_raising_a_constrained_feature_never_moves_the_pd_the_wrong_way(fitted, panel, feature, index, values):
    rows = _base_rows(panel, index, len(values))
    rows[feature] = np.sort(values)
    steps = np.diff(fitted.predict_pd(rows)) * SPEC.monotone[feature]
    assert (steps >= 0).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 10**9),
       ltv=st.lists(st.floats(0, 3, allow_nan=False), min_size=2, max_size=20),
       unemployment=st.floats(2, 25), score=st.floats(300, 850), dsti=st.floats(0, 2))
def test_raising_ltv_never_lowers_the_pd_whatever_the_other_features(fitted, panel, index, ltv, unemployment, score,
                                                                    dsti):
    rows = _base_rows(panel, index, len(ltv)).assign(unemployment_rate_avg_4q=unemployment, CreditScore=score,
                                                     DSTI=dsti)
    rows["CurrentLTV"] = np.sort(ltv)
    assert (np.diff(fitted.predict_pd(rows)) >= 0).all()


numbers = st.floats(-1e6, 1e6) | st.just(float("nan"))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries({**{c: numbers for c in SPEC.numeric},
                                            "ProductSegment": st.sampled_from([*SEGMENTS, "unseen_segment"])}),
                     min_size=1, max_size=25))
def test_pds_are_probabilities_for_any_input(fitted, rows):
    frame = pd.DataFrame(rows)
    p = fitted.predict_pd(frame)
    q = fitted.predict_quarterly(frame)
    assert p.shape == (len(rows),)
    assert ((p >= 0) & (p <= 1)).all()
    assert ((q >= 0) & (q <= p + 1e-15)).all()


def test_quarterly_pd_is_the_constant_hazard_of_the_12_month_pd(fitted, panel):
    sample = panel.head(200)
    np.testing.assert_allclose(fitted.predict_quarterly(sample), quarterly_pd(fitted.predict_pd(sample)))
    np.testing.assert_allclose(fitted(sample), fitted.predict_quarterly(sample))


def test_serialised_model_predicts_identically(fitted, panel):
    sample = panel.sample(500, random_state=1)
    restored = XGBoostPD.loads(fitted.dumps())
    np.testing.assert_array_equal(restored.predict_pd(sample), fitted.predict_pd(sample))
    assert restored.get_params() == fitted.get_params()


def test_shap_values_add_up_to_the_margin(fitted, panel):
    sample = panel.sample(300, random_state=2)
    shap = fitted.shap_values(sample)
    assert list(shap.columns) == [*SPEC.features, "bias"]
    np.testing.assert_allclose(shap.sum(axis=1), fitted.margin(sample), atol=1e-4)
    importance = fitted.feature_importance()
    assert set(importance) == set(SPEC.features) and sum(importance.values()) > 0


def test_missing_columns_and_unfitted_models_are_refused(fitted, panel):
    with pytest.raises(ValueError, match="CurrentLTV"):
        fitted.predict_pd(panel.drop(columns="CurrentLTV"))
    with pytest.raises(NotFittedError):
        XGBoostPD(SPEC).predict_pd(panel)


def test_fit_refuses_too_short_a_history(panel):
    recent = panel[SPEC.quarters(panel) >= SPEC.quarters(panel).max() - 10]
    with pytest.raises(ValueError, match="too few"):
        XGBoostPD(SPEC, time_column=SPEC.date_column).fit(recent, recent[SPEC.target])


def test_cv_folds_expand_and_keep_the_embargo():
    quarters = np.repeat(np.arange(100, 130), 3)
    model = XGBoostPD(SPEC, cv_folds=3, fold_quarters=4)
    model.pd_horizon_ = SPEC.horizon_quarters
    folds = model._time_folds(quarters)
    assert len(folds) == 3
    previous_validation_start = 0
    for train, valid in folds:
        start = quarters[valid].min()
        assert quarters[valid].max() - start == 3
        assert quarters[train].max() + SPEC.horizon_quarters == start  # embargo, no more
        assert start > previous_validation_start
        previous_validation_start = start
    assert embargoed(np.array([95, 96, 97]), 100, 4).tolist() == [True, True, False]


@given(margins=st.lists(st.floats(-30, 30), min_size=1, max_size=50))
@settings(max_examples=50, deadline=None)
def test_both_calibrations_map_any_margin_monotonically_into_0_1(margins):
    rng = np.random.default_rng(0)
    train_margin = rng.normal(-3, 1.5, 5000)
    y = (rng.random(5000) < 1 / (1 + np.exp(-train_margin))).astype(int)
    x = np.sort(np.asarray(margins))
    for method in ("none", "platt", "isotonic"):
        p = Calibration.fit(method, train_margin, y).apply(x)
        assert ((p >= 0) & (p <= 1)).all()
        assert (np.diff(p) >= 0).all()


def test_platt_refuses_a_score_that_does_not_rank():
    margin = np.linspace(-3, 3, 1000)
    with pytest.raises(ValueError, match="does not rank"):
        Calibration.fit("platt", margin, (margin < -2).astype(int))
