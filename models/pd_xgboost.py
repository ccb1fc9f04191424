"""Gradient-boosted PD model (the ML challenger of the benchmark logistic model).

``XGBoostPD`` is a scikit-learn binary classifier (``BaseEstimator``/``ClassifierMixin``):
parameters in the constructor and nothing else, ``fit(X, y)`` learns attributes ending in ``_``,
``predict_proba`` returns the usual ``(n, 2)`` array, ``get_params``/``set_params``, ``clone``,
``Pipeline`` and ``GridSearchCV`` work. The PD of the positive class alone, 1-D, is
:meth:`XGBoostPD.predict_pd`; its horizon in quarters is ``pd_horizon_`` on the fitted model
(``spec.horizon_quarters`` with a :class:`models.feature_spec.FeatureSpec`, else the
``horizon_quarters`` parameter), and :meth:`XGBoostPD.predict_quarterly` is the stress engine's
quarterly PD (see :mod:`models.pd_horizon`).

Input: any table. With a ``spec`` the model reads the spec's features by name (extra columns are
ignored, so the stress engine can hand it wider frames) and applies its monotone constraints.
Without one it reads every column of ``X`` (less ``time_column``): numeric columns as numbers (NaN
is missing), every other column (object, string, category) as categorical, whatever its labels
(``<``, ``[``, ``]`` included: the booster sees positional column names only). A NumPy array is all
numeric.

How ``fit`` spends the data:

1. **Bounded search** of at most ``n_candidates`` draws from :data:`SEARCH_GRID`, each scored by
   cross-validation with early stopping on the validation AUC; the best mean validation AUC wins,
   and its mean best iteration is the tree count. The folds are

   * with ``time_column`` (panel data, e.g. loan-quarters): **expanding-window** folds on the
     observation quarter, each validation block of ``fold_quarters`` trained on every earlier quarter
     less an **embargo** (a row observed at ``t`` has a target covering ``t+1 .. t+h``, so rows used
     to fit a model judged on quarters from ``s`` on must satisfy ``t + h <= s``; :func:`embargoed`,
     also used by the training pipeline's out-of-time split);
   * without it (one row per borrower, no time axis): stratified K-fold (``cv_folds`` folds; 5 by
     default: on the German credit data 5 folds chose better than 3, see ``docs/pd_model.md``).

   The search runs on at most ``search_max_rows`` sampled rows, which bounds its cost on big panels.
2. **Refit on all rows**: the final booster is trained on every row of ``X`` with the chosen
   parameters and tree count; no row is held back for calibration or an embargo.
3. **Calibration** (``calibration="platt"`` or ``"isotonic"``; default ``"none"``): fitted on the
   chosen candidate's *out-of-fold* margins, so it costs no training rows. ``binary:logistic``
   already estimates probabilities; on the 1M-row synthetic history Platt scaling on the
   out-of-fold margins did not improve the out-of-time Brier score (see ``docs/pd_model.md``), hence
   the default. Isotonic regression caps every PD at the highest band it saw, which a severe
   scenario exceeds.

**Monotone constraints** from the spec (PD not lower when LTV, DSTI or unemployment rise, not higher
when the credit score rises): supervisors expect them, and they keep stressed inputs from producing
perverse PDs where data are thin. Trees are flat beyond the range of each feature in the training
data: no calibration can make them extrapolate.
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from models.feature_spec import FeatureSpec
from models.pd_horizon import QUARTERS_PER_YEAR, quarterly_pd

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]
SERIAL_FORMAT = 2
# The search grid: tree shape and regularisation. min_child_weight is in hessian units, p (1 - p) per
# row: with a few percent of defaults 20 means several hundred rows per leaf, with 30 % about a hundred.
SEARCH_GRID: dict[str, tuple[float, ...]] = {
    "max_depth": (2, 3, 4, 5),
    "min_child_weight": (1.0, 5.0, 20.0),
    "subsample": (0.8, 1.0),
    "colsample_bytree": (0.5, 0.8, 1.0),
    "reg_lambda": (1.0, 10.0),
}
CALIBRATIONS = ("none", "platt", "isotonic")


def embargoed(quarters: npt.NDArray[np.int64], start: int, horizon_quarters: int) -> npt.NDArray[np.bool_]:
    """Rows whose whole target window ends before ``start`` (see the module docstring)."""
    return quarters + horizon_quarters <= start


def observation_quarters(dates: pd.Series) -> npt.NDArray[np.int64]:
    """Quarter number (``year * 4 + quarter - 1``) of each date; integers pass through unchanged."""
    if pd.api.types.is_integer_dtype(dates):
        return dates.to_numpy(dtype=np.int64)
    parsed = pd.to_datetime(dates)
    return (parsed.dt.year * 4 + parsed.dt.quarter - 1).to_numpy(dtype=np.int64)


def category_codes(values: pd.Series, categories: list[str]) -> IndexArray:
    """Position of every value's label in ``categories`` (-1: missing or unseen).

    Labels compare as text (``astype("string")``, as :meth:`XGBoostPD._learn_columns` learnt them), but only
    the distinct values are converted: the column is factorised first (a pandas categorical by its integer
    codes), so a million rows of a handful of segments cost integer indexing, not a million string
    conversions and hash look-ups on every scoring call.
    """
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    labels = pd.Series(distinct).astype("string")
    positions = np.asarray(pd.Categorical(labels, categories=categories).codes, dtype=np.intp)
    return np.append(positions, -1)[codes]  # the sentinel -1 of a missing value picks the appended -1


@dataclass(frozen=True)
class Calibration:
    """Map from the booster's margin (log-odds) to a calibrated PD; non-decreasing either way."""

    method: Literal["none", "platt", "isotonic"]
    slope: float = 1.0
    intercept: float = 0.0
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()

    @classmethod
    def fit(cls, method: str, margin: FloatArray, target: npt.NDArray[np.integer]) -> Calibration:
        if method == "none":
            return cls("none")
        if np.unique(target).size != 2:
            raise ValueError("calibration needs both defaults and non-defaults among the out-of-fold rows")
        if method == "platt":
            from sklearn.linear_model import LogisticRegression

            regression = LogisticRegression(C=1e6, max_iter=1000).fit(margin.reshape(-1, 1), target)
            slope, intercept = float(regression.coef_[0, 0]), float(regression.intercept_[0])
            if slope <= 0:
                raise ValueError(f"Platt slope {slope:.4f} <= 0: out of fold a higher score does not mean more "
                                 "defaults, the model does not rank")
            return cls("platt", slope=slope, intercept=intercept)
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(margin, target)
            return cls("isotonic", knots_x=tuple(isotonic.X_thresholds_.tolist()),
                       knots_y=tuple(isotonic.y_thresholds_.tolist()))
        raise ValueError(f"unknown calibration {method!r}: use one of {CALIBRATIONS}")

    def apply(self, margin: FloatArray) -> FloatArray:
        if self.method == "none":
            return 1.0 / (1.0 + np.exp(-margin))
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.slope * margin + self.intercept)))
        return np.interp(margin, self.knots_x, self.knots_y)


class XGBoostPD(ClassifierMixin, BaseEstimator):
    """Monotone XGBoost PD model, a scikit-learn binary classifier (see the module docstring).

    Fitted attributes: ``classes_``, ``n_features_in_`` (and ``feature_names_in_`` for a frame without
    a spec), ``numeric_`` and ``categories_`` (the input columns as the booster sees them),
    ``pd_horizon_``, ``params_`` and ``n_trees_`` (the chosen booster), ``search_results_``,
    ``calibration_``, ``booster_``.
    """

    def __init__(self, spec: FeatureSpec | None = None, *, time_column: str | None = None,
                 horizon_quarters: int | None = None, n_candidates: int = 8, cv_folds: int = 5,
                 fold_quarters: int = 4, calibration: Literal["none", "platt", "isotonic"] = "none",
                 learning_rate: float = 0.1, max_trees: int = 400, early_stopping_rounds: int = 25,
                 search_max_rows: int = 100_000, n_jobs: int = 2, random_state: int = 0) -> None:
        self.spec = spec
        self.time_column = time_column
        self.horizon_quarters = horizon_quarters
        self.n_candidates = n_candidates
        self.cv_folds = cv_folds
        self.fold_quarters = fold_quarters
        self.calibration = calibration
        self.learning_rate = learning_rate
        self.max_trees = max_trees
        self.early_stopping_rounds = early_stopping_rounds
        self.search_max_rows = search_max_rows
        self.n_jobs = n_jobs
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN is XGBoost's missing value (e.g. no collateral: no LTV)
        tags.classifier_tags.multi_class = False  # a PD is the probability of one event
        return tags

    def tracking_params(self) -> dict[str, Any]:
        """Constructor parameters as plain values (the spec by name), e.g. for experiment tracking."""
        return self.get_params() | {"spec": self.spec.name if self.spec is not None else None}

    # --- input ---------------------------------------------------------------------------------------

    def _resolved_horizon(self) -> int:
        if self.spec is None:
            return QUARTERS_PER_YEAR if self.horizon_quarters is None else int(self.horizon_quarters)
        if self.horizon_quarters not in (None, self.spec.horizon_quarters):
            raise ValueError(f"horizon_quarters={self.horizon_quarters} contradicts the spec's "
                             f"{self.spec.horizon_quarters}; leave it None with a spec")
        return self.spec.horizon_quarters

    def _input_frame(self, X: Any, reset: bool) -> pd.DataFrame:
        """``X`` as a frame of the model's input columns (checked the scikit-learn way without a spec)."""
        if self.spec is not None:
            if not isinstance(X, pd.DataFrame):
                raise TypeError(f"XGBoostPD with spec {self.spec.name!r} reads columns by name: pass a DataFrame")
            missing = [c for c in self.spec.features if c not in X.columns]
            if missing:
                raise ValueError(f"frame lacks the model's feature columns {missing}")
            if reset:
                self.n_features_in_ = len(self.spec.features)
            return X
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, reset=reset, skip_check_array=True)
            if len(X) == 0:
                raise ValueError("Found array with 0 sample(s) (shape=(0, ...)) while a minimum of 1 is required.")
            return X
        array = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan")
        return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])

    def _learn_columns(self, frame: pd.DataFrame) -> None:
        if self.spec is not None:
            numeric, categorical = list(self.spec.numeric), list(self.spec.categorical)
        else:
            columns = [c for c in frame.columns if c != self.time_column]
            categorical = [c for c in columns if not (pd.api.types.is_numeric_dtype(frame[c])
                                                      or pd.api.types.is_bool_dtype(frame[c]))]
            numeric = [c for c in columns if c not in categorical]
        self.numeric_ = numeric
        self.categories_ = {c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in categorical}

    def _width(self) -> int:
        return len(self.numeric_) + sum(len(v) for v in self.categories_.values())

    def _matrix(self, frame: pd.DataFrame) -> npt.NDArray[np.float32]:
        """Model input as one contiguous float32 array: numeric columns (NaN = missing), then categorical
        columns one-hot (an unseen or missing category is all zeros). Plain dense input takes XGBoost's
        fastest prediction path, about twice as fast as a frame with categorical columns."""
        matrix = np.zeros((len(frame), self._width()), dtype=np.float32)
        for i, column in enumerate(self.numeric_):
            values = pd.to_numeric(frame[column]).to_numpy(dtype=np.float64, na_value=np.nan)
            if np.isinf(values).any():
                raise ValueError(f"column {column!r} holds infinite values; use NaN for a missing value")
            matrix[:, i] = values
        offset = len(self.numeric_)
        rows = np.arange(len(frame))
        for column, categories in self.categories_.items():
            codes = category_codes(frame[column], categories)
            known = codes >= 0
            matrix[rows[known], offset + codes[known]] = 1.0
            offset += len(categories)
        return matrix

    def _monotone_vector(self) -> tuple[int, ...]:
        directions = self.spec.monotone if self.spec is not None else {}
        return tuple(directions.get(c, 0) for c in self.numeric_) + (0,) * (self._width() - len(self.numeric_))

    def _target(self, y: Any) -> npt.NDArray[np.int8]:
        from sklearn.utils.multiclass import check_classification_targets, type_of_target

        y = column_or_1d(y, warn=True)
        check_classification_targets(y)  # "Unknown label type" for continuous targets
        kind = type_of_target(y, input_name="y")
        if kind != "binary":
            raise ValueError(f"Only binary classification is supported (default / no default); y is {kind}")
        self.classes_ = np.unique(y)
        if self.classes_.size != 2:
            raise ValueError(f"y holds 1 class, {self.classes_.tolist()}: a PD model needs defaults and "
                             "non-defaults")
        return (y == self.classes_[1]).astype(np.int8)

    # --- fitting -------------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> XGBoostPD:
        """Search, refit on all rows and (optionally) calibrate out of fold; see the module docstring."""
        import xgboost as xgb

        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"unknown calibration {self.calibration!r}: use one of {CALIBRATIONS}")
        frame = self._input_frame(X, reset=True)
        target = self._target(y)
        if len(target) != len(frame):
            raise ValueError(f"X has {len(frame)} rows but y has {len(target)}")
        self.pd_horizon_ = self._resolved_horizon()
        self._learn_columns(frame)
        matrix = self._matrix(frame)
        quarters = None
        if self.time_column is not None:
            if self.time_column not in frame.columns:
                raise ValueError(f"time_column {self.time_column!r} is not a column of X")
            quarters = observation_quarters(frame[self.time_column])
        best, out_of_fold = self._search(matrix, target, quarters)
        self.params_ = self._booster_params(best["params"])
        self.n_trees_ = best["n_trees"]
        self.booster_ = xgb.train(self.params_, self._dmatrix(matrix, target), self.n_trees_)
        margin, rows = out_of_fold
        self.calibration_ = Calibration.fit(self.calibration, margin, target[rows])
        return self

    def _candidates(self) -> list[dict[str, float]]:
        grid = [dict(zip(SEARCH_GRID, values, strict=True)) for values in itertools.product(*SEARCH_GRID.values())]
        rng = np.random.default_rng(self.random_state)
        picks = rng.choice(len(grid), size=min(max(int(self.n_candidates), 1), len(grid)), replace=False)
        return [grid[i] for i in sorted(picks)]

    def _time_folds(self, quarters: npt.NDArray[np.int64]) -> list[tuple[IndexArray, IndexArray]]:
        """Expanding-window folds: validation blocks of ``fold_quarters`` at the end of the panel."""
        distinct = np.unique(quarters)
        needed = 1 + self.pd_horizon_ + self.cv_folds * self.fold_quarters
        if distinct.size < needed:
            raise ValueError(f"{distinct.size} observation quarters are too few: {self.cv_folds} CV folds of "
                             f"{self.fold_quarters} quarters after a {self.pd_horizon_}-quarter embargo need {needed}")
        folds = []
        for k in range(self.cv_folds, 0, -1):
            block = distinct[-k * self.fold_quarters:][: self.fold_quarters]
            train = embargoed(quarters, int(block[0]), self.pd_horizon_)
            folds.append((np.flatnonzero(train), np.flatnonzero(np.isin(quarters, block))))
        return folds

    def _random_folds(self, target: npt.NDArray[np.int8]) -> list[tuple[IndexArray, IndexArray]]:
        from sklearn.model_selection import StratifiedKFold

        splits = min(self.cv_folds, int(np.bincount(target, minlength=2).min()))
        if splits < 2:
            raise ValueError("the search needs at least 2 rows of each class for cross-validation")
        folds = StratifiedKFold(splits, shuffle=True, random_state=self.random_state)
        return list(folds.split(np.zeros(len(target)), target))

    def _search(self, matrix: npt.NDArray[np.float32], target: npt.NDArray[np.int8],
                quarters: npt.NDArray[np.int64] | None) -> tuple[dict[str, Any], tuple[FloatArray, IndexArray]]:
        """Score every candidate by CV; return the best and its out-of-fold margins (and their row numbers)."""
        import xgboost as xgb

        rows = np.arange(len(target))
        if len(target) > self.search_max_rows:
            rng = np.random.default_rng(self.random_state)
            rows = np.sort(rng.choice(len(target), size=self.search_max_rows, replace=False))
        sample, labels = matrix[rows], target[rows]
        folds = self._random_folds(labels) if quarters is None else self._time_folds(quarters[rows])
        binned = []  # binned once per fold, shared by every candidate
        for number, (train, valid) in enumerate(folds):
            for name, part in (("training", train), ("validation", valid)):
                if np.unique(labels[part]).size != 2:
                    raise ValueError(f"CV fold {number} {name} rows need both defaults and non-defaults")
            fold_train = self._dmatrix(sample[train], labels[train])
            binned.append((fold_train, self._dmatrix(sample[valid], labels[valid], ref=fold_train)))
        self.search_results_ = []
        best, best_margins = None, None
        for candidate in self._candidates():
            params = self._booster_params(candidate)
            aucs, iterations, boosters = [], [], []
            for fold_train, fold_valid in binned:
                booster = xgb.train(params, fold_train, num_boost_round=self.max_trees,
                                    evals=[(fold_valid, "validation")],
                                    early_stopping_rounds=self.early_stopping_rounds, verbose_eval=False)
                iterations.append(booster.best_iteration + 1)
                aucs.append(float(booster.best_score))
                boosters.append(booster)
            result = {"params": candidate, "fold_auc": aucs, "mean_auc": float(np.mean(aucs)),
                      "best_iterations": iterations, "n_trees": max(1, round(float(np.mean(iterations))))}
            self.search_results_.append(result)
            if best is None or result["mean_auc"] > best["mean_auc"]:
                best = result
                best_margins = [b.inplace_predict(sample[valid], predict_type="margin",
                                                  iteration_range=(0, min(result["n_trees"], b.num_boosted_rounds())))
                                for b, (_, valid) in zip(boosters, folds, strict=True)]
        valid_rows = np.concatenate([rows[valid] for _, valid in folds])
        return best, (np.concatenate(best_margins).astype(np.float64), valid_rows)

    def _booster_params(self, candidate: dict[str, float]) -> dict[str, Any]:
        return {"objective": "binary:logistic", "eval_metric": "auc", "tree_method": "hist",
                "learning_rate": self.learning_rate, "nthread": self.n_jobs, "seed": self.random_state,
                "monotone_constraints": str(self._monotone_vector()), **candidate,
                "max_depth": int(candidate["max_depth"])}

    def _dmatrix(self, matrix: npt.NDArray[np.float32], target: npt.NDArray[np.int8], ref: Any = None) -> Any:
        import xgboost as xgb

        return xgb.QuantileDMatrix(matrix, label=target, nthread=self.n_jobs, ref=ref)

    # --- prediction ----------------------------------------------------------------------------------

    def margin(self, X: Any) -> FloatArray:
        """The booster's uncalibrated log-odds of every row (monotone in the PD)."""
        check_is_fitted(self, "booster_")
        matrix = self._matrix(self._input_frame(X, reset=False))
        return self.booster_.inplace_predict(matrix, predict_type="margin").astype(np.float64)

    def predict_pd(self, X: Any) -> FloatArray:
        """Probability of the positive class (default within ``pd_horizon_`` quarters) of every row, 1-D."""
        margin = self.margin(X)  # checks the model is fitted
        return self.calibration_.apply(margin)

    def predict_proba(self, X: Any) -> FloatArray:
        """``(n, 2)``: probabilities of ``classes_[0]`` (no default) and ``classes_[1]`` (default)."""
        p = self.predict_pd(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> npt.NDArray[Any]:
        positive = self.predict_pd(X) > 0.5
        return self.classes_[positive.astype(np.intp)]

    def predict_quarterly(self, X: Any) -> FloatArray:
        """Quarterly PD (constant-hazard equivalent of :meth:`predict_pd`), what the stress engine uses."""
        return quarterly_pd(self.predict_pd(X), self.pd_horizon_)

    __call__ = predict_quarterly

    @property
    def features_(self) -> list[str]:
        """The input columns the model reads, numeric first."""
        return [*self.numeric_, *self.categories_]

    def _feature_of_column(self) -> list[str]:
        """The input feature behind each booster column (a categorical feature owns its indicators)."""
        return [*self.numeric_, *(c for c, categories in self.categories_.items() for _ in categories)]

    def shap_values(self, X: Any) -> pd.DataFrame:
        """Exact TreeSHAP contributions to the margin (log-odds, before calibration) per feature, plus
        ``bias``; rows sum to :meth:`margin`. From XGBoost's ``pred_contribs``: no ``shap`` package.
        SHAP values are additive, so a categorical feature's is the sum over its indicator columns."""
        import xgboost as xgb

        check_is_fitted(self, "booster_")
        frame = self._input_frame(X, reset=False)
        matrix = xgb.DMatrix(self._matrix(frame), nthread=self.n_jobs)
        columns = [f"c{i}" for i in range(self._width())]
        contributions = pd.DataFrame(self.booster_.predict(matrix, pred_contribs=True), index=frame.index,
                                     columns=[*columns, "bias"])
        by_feature = contributions.T.groupby([*self._feature_of_column(), "bias"], sort=False).sum().T
        return by_feature[[*self.features_, "bias"]]

    def feature_importance(self) -> dict[str, float]:
        """Total gain of the splits on each feature (0 for features no tree uses)."""
        check_is_fitted(self, "booster_")
        gain = self.booster_.get_score(importance_type="total_gain")
        importance = dict.fromkeys(self.features_, 0.0)
        for i, feature in enumerate(self._feature_of_column()):
            importance[feature] += float(gain.get(f"f{i}", 0.0))
        return importance

    # --- persistence ---------------------------------------------------------------------------------

    def dumps(self) -> bytes:
        """The fitted model as one JSON document (booster in XGBoost's own stable UBJSON format):
        inspectable, version-tolerant, and no pickle to trust."""
        check_is_fitted(self, "booster_")
        init = self.get_params() | {"spec": self.spec.to_dict() if self.spec is not None else None}
        document = {
            "format": SERIAL_FORMAT,
            "init": init,
            "classes": self.classes_.tolist(),
            "n_features_in": self.n_features_in_,
            "feature_names_in": self.feature_names_in_.tolist() if hasattr(self, "feature_names_in_") else None,
            "numeric": self.numeric_,
            "categories": self.categories_,
            "pd_horizon": self.pd_horizon_,
            "params": self.params_,
            "n_trees": self.n_trees_,
            "calibration": asdict(self.calibration_),
            "search_results": self.search_results_,
            "booster_ubj": base64.b64encode(bytes(self.booster_.save_raw("ubj"))).decode(),
        }
        return json.dumps(document).encode()

    @classmethod
    def loads(cls, data: bytes) -> XGBoostPD:
        """The model of :meth:`dumps` (data only: JSON and the booster's UBJSON, never code)."""
        import xgboost as xgb

        document = json.loads(data)
        if document.get("format") != SERIAL_FORMAT:
            raise ValueError(f"unsupported XGBoostPD format {document.get('format')!r} (this code reads "
                             f"{SERIAL_FORMAT}); re-train the model")
        init = dict(document["init"])
        if init["spec"] is not None:
            init["spec"] = FeatureSpec.from_dict(init["spec"])
        model = cls(**init)
        model.classes_ = np.asarray(document["classes"])
        model.n_features_in_ = document["n_features_in"]
        if document["feature_names_in"] is not None:
            model.feature_names_in_ = np.asarray(document["feature_names_in"], dtype=object)
        model.numeric_ = document["numeric"]
        model.categories_ = document["categories"]
        model.pd_horizon_ = document["pd_horizon"]
        model.params_ = document["params"]
        model.n_trees_ = document["n_trees"]
        model.calibration_ = Calibration(**{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in document["calibration"].items()})
        model.search_results_ = document["search_results"]
        booster = xgb.Booster(params={"nthread": model.n_jobs})
        booster.load_model(bytearray(base64.b64decode(document["booster_ubj"])))
        model.booster_ = booster
        return model
