"""Gradient-boosted PD model (the ML challenger of the benchmark logistic model).

``XGBoostPD`` predicts the probability of the spec's target (default within the next
``spec.horizon_quarters``, 12 months by default) of every row of any loan performance table a
:class:`models.feature_spec.FeatureSpec` describes. It follows scikit-learn's conventions:
parameters in the constructor, ``fit`` learns (attributes ending in ``_``), ``predict_proba``
returns one PD per row (1-D, like :class:`models.pd_logistic.MacroLogisticPD`), nothing global.

How ``fit`` spends the data, oldest to newest observation quarter (time never leaks backwards)::

    |---------------- fit rows ----------------|-embargo-|-- calibration slice --|
    |  expanding-window CV folds (search)  |val|

* **Monotone constraints** from the spec (PD not lower when LTV, DSTI or unemployment rise, not
  higher when the credit score rises): supervisors expect them, and they keep stressed inputs from
  producing perverse PDs where data are thin.
* **Bounded hyper-parameter search**: at most ``n_candidates`` draws from a small grid, each scored
  by expanding-window cross-validation on the fit rows (fold ``k`` trains on every quarter before its
  validation block, less the embargo) with early stopping on the validation block's AUC; the
  candidate with the best mean validation AUC wins and its mean best iteration becomes the tree
  count. Stopping on AUC, not log loss: the trees only have to rank (calibration comes after), and
  log loss stops early at every shift of the default rate between periods. The search runs on at
  most ``search_max_rows`` sampled fit rows, which bounds its cost on big panels.
* **Embargo**: a row observed at ``t`` has a target covering ``t+1 .. t+h``; rows used to fit a
  model that is judged on rows from quarter ``s`` on must satisfy ``t + h <= s``, otherwise the fit
  sees outcomes of the period it is judged on. The same rule cuts the CV folds, the calibration
  slice and the out-of-time split of the training pipeline (:func:`embargoed`).
* **Calibration** on the latest ``calibration_quarters`` (never seen by the trees): Platt scaling
  of the booster's margin by default. A severe scenario drives margins above anything the (usually
  calm) calibration slice shows, to levels the trees learnt from crisis years; Platt maps them to
  higher PDs, isotonic regression would cap every PD at the slice's highest band. Isotonic is
  available. (The trees themselves are flat beyond the range of each feature in the training data:
  no calibration can make them extrapolate further.)

Quarterly PDs for the stress engine: :meth:`predict_quarterly` (see :mod:`models.pd_horizon`).
"""

from __future__ import annotations

import base64
import itertools
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.feature_spec import FeatureSpec
from models.pd_horizon import quarterly_pd

FloatArray = npt.NDArray[np.float64]
SERIAL_FORMAT = 1
# The search grid: tree shape and regularisation. min_child_weight is in hessian units, p (1 - p) per
# row, so with a few percent of defaults 20 means several hundred rows per leaf.
SEARCH_GRID: dict[str, tuple[float, ...]] = {
    "max_depth": (3, 4, 5),
    "min_child_weight": (5.0, 20.0),
    "subsample": (0.8, 1.0),
    "colsample_bytree": (0.7, 1.0),
    "reg_lambda": (1.0, 10.0),
}


def embargoed(quarters: npt.NDArray[np.int64], start: int, horizon_quarters: int) -> npt.NDArray[np.bool_]:
    """Rows whose whole target window ends before ``start`` (see the module docstring)."""
    return quarters + horizon_quarters <= start


@dataclass(frozen=True)
class Calibration:
    """Map from the booster's margin (log-odds) to a calibrated PD; non-decreasing either way."""

    method: Literal["platt", "isotonic"]
    slope: float = 1.0
    intercept: float = 0.0
    knots_x: tuple[float, ...] = ()
    knots_y: tuple[float, ...] = ()

    @classmethod
    def fit(cls, method: str, margin: FloatArray, target: npt.NDArray[np.integer]) -> Calibration:
        if np.unique(target).size != 2:
            raise ValueError("the calibration slice needs both defaults and non-defaults")
        if method == "platt":
            from sklearn.linear_model import LogisticRegression

            regression = LogisticRegression(C=1e6, max_iter=1000).fit(margin.reshape(-1, 1), target)
            slope, intercept = float(regression.coef_[0, 0]), float(regression.intercept_[0])
            if slope <= 0:
                raise ValueError(f"Platt slope {slope:.4f} <= 0: on the calibration slice a higher score does "
                                 "not mean more defaults, the model does not rank")
            return cls("platt", slope=slope, intercept=intercept)
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(margin, target)
            return cls("isotonic", knots_x=tuple(isotonic.X_thresholds_.tolist()),
                       knots_y=tuple(isotonic.y_thresholds_.tolist()))
        raise ValueError(f"unknown calibration {method!r}: use 'platt' or 'isotonic'")

    def apply(self, margin: FloatArray) -> FloatArray:
        if self.method == "platt":
            return 1.0 / (1.0 + np.exp(-(self.slope * margin + self.intercept)))
        return np.interp(margin, self.knots_x, self.knots_y)


@dataclass
class XGBoostPD:
    """Monotone, calibrated XGBoost PD model (see the module docstring)."""

    spec: FeatureSpec
    n_candidates: int = 8
    cv_folds: int = 3
    fold_quarters: int = 4
    calibration_quarters: int = 4
    calibration: Literal["platt", "isotonic"] = "platt"
    # On the 1M-row synthetic history, rates 0.1 and 0.2 reach the same CV AUC (0.844) and out-of-time AUC
    # (0.840) with 60 and 41 trees; scoring cost is linear in trees and the stress engine scores every loan
    # every quarter of every scenario, so the faster rate is the default.
    learning_rate: float = 0.2
    max_trees: int = 400
    early_stopping_rounds: int = 25
    search_max_rows: int = 100_000
    n_jobs: int = 2
    random_state: int = 0

    booster_: Any = field(default=None, init=False, repr=False)
    params_: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    n_trees_: int = field(default=0, init=False)
    categories_: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)
    calibration_: Calibration | None = field(default=None, init=False, repr=False)
    search_results_: list[dict[str, Any]] = field(default_factory=list, init=False, repr=False)

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (the spec by name), e.g. for experiment tracking."""
        params = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        return params | {"spec": self.spec.name}

    # --- fitting ---------------------------------------------------------------------------------

    def fit(self, frame: pd.DataFrame, y: npt.ArrayLike | None = None) -> XGBoostPD:
        """Search, fit and calibrate on ``frame`` (spec features and date; target column unless ``y``)."""
        import xgboost as xgb

        target = np.asarray(frame[self.spec.target] if y is None else y).astype(np.int8)
        if not np.isin(target, (0, 1)).all():
            raise ValueError(f"target {self.spec.target!r} must be 0/1")
        quarters = self.spec.quarters(frame)
        distinct = np.unique(quarters)
        # the oldest fold trains on at least one quarter; two embargoes: before its validation block and before
        # the calibration slice
        needed = 1 + 2 * self.spec.horizon_quarters + self.cv_folds * self.fold_quarters + self.calibration_quarters
        if distinct.size < needed:
            raise ValueError(f"{distinct.size} observation quarters are too few: {self.cv_folds} CV folds of "
                             f"{self.fold_quarters} quarters, {self.spec.horizon_quarters}-quarter embargoes and a "
                             f"{self.calibration_quarters}-quarter calibration slice need {needed}")
        self.categories_ = {c: sorted(frame[c].dropna().astype(str).unique().tolist()) for c in self.spec.categorical}
        matrix = self._matrix(frame)
        calibration_start = int(distinct[-self.calibration_quarters])
        calibrate = quarters >= calibration_start
        fit_rows = embargoed(quarters, calibration_start, self.spec.horizon_quarters)

        self.search_results_ = self._search(matrix[fit_rows], target[fit_rows], quarters[fit_rows])
        best = max(self.search_results_, key=lambda result: result["mean_auc"])
        self.params_ = self._booster_params(best["params"])
        self.n_trees_ = best["n_trees"]
        self.booster_ = xgb.train(self.params_, self._dmatrix(matrix[fit_rows], target[fit_rows]), self.n_trees_)
        margin = self.booster_.inplace_predict(matrix[calibrate], predict_type="margin")
        self.calibration_ = Calibration.fit(self.calibration, margin.astype(np.float64), target[calibrate])
        return self

    def _candidates(self) -> list[dict[str, float]]:
        grid = [dict(zip(SEARCH_GRID, values, strict=True)) for values in itertools.product(*SEARCH_GRID.values())]
        rng = np.random.default_rng(self.random_state)
        picks = rng.choice(len(grid), size=min(self.n_candidates, len(grid)), replace=False)
        return [grid[i] for i in sorted(picks)]

    def _folds(self, quarters: npt.NDArray[np.int64]) -> list[tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]]:
        """Expanding-window folds: validation blocks of ``fold_quarters`` at the end of the fit rows."""
        distinct = np.unique(quarters)
        folds = []
        for k in range(self.cv_folds, 0, -1):
            block = distinct[-k * self.fold_quarters:][: self.fold_quarters]
            train = embargoed(quarters, int(block[0]), self.spec.horizon_quarters)
            folds.append((train, np.isin(quarters, block)))
        return folds

    def _search(self, matrix: npt.NDArray[np.float32], target: npt.NDArray[np.int8],
                quarters: npt.NDArray[np.int64]) -> list[dict[str, Any]]:
        import xgboost as xgb

        if len(target) > self.search_max_rows:
            rng = np.random.default_rng(self.random_state)
            rows = np.sort(rng.choice(len(target), size=self.search_max_rows, replace=False))
            matrix, target, quarters = matrix[rows], target[rows], quarters[rows]
        folds = []  # binned once per fold, shared by every candidate
        for number, (train, valid) in enumerate(self._folds(quarters)):
            for name, rows in (("training", train), ("validation", valid)):
                if np.unique(target[rows]).size != 2:
                    raise ValueError(f"CV fold {number} {name} rows need both defaults and non-defaults")
            fold_train = self._dmatrix(matrix[train], target[train])
            folds.append((fold_train, self._dmatrix(matrix[valid], target[valid], ref=fold_train)))
        results = []
        for candidate in self._candidates():
            params = self._booster_params(candidate)
            aucs, iterations = [], []
            for fold_train, fold_valid in folds:
                booster = xgb.train(params, fold_train, num_boost_round=self.max_trees,
                                    evals=[(fold_valid, "validation")],
                                    early_stopping_rounds=self.early_stopping_rounds, verbose_eval=False)
                iterations.append(booster.best_iteration + 1)
                aucs.append(float(booster.best_score))
            results.append({"params": candidate, "fold_auc": aucs, "mean_auc": float(np.mean(aucs)),
                            "best_iterations": iterations, "n_trees": max(1, round(float(np.mean(iterations))))})
        return results

    def _booster_params(self, candidate: dict[str, float]) -> dict[str, Any]:
        return {"objective": "binary:logistic", "eval_metric": "auc", "tree_method": "hist",
                "learning_rate": self.learning_rate, "nthread": self.n_jobs, "seed": self.random_state,
                "monotone_constraints": str(self._monotone_vector()), **candidate,
                "max_depth": int(candidate["max_depth"])}

    def _dmatrix(self, matrix: npt.NDArray[np.float32], target: npt.NDArray[np.int8], ref: Any = None) -> Any:
        import xgboost as xgb

        return xgb.QuantileDMatrix(matrix, label=target, feature_names=self._columns(), nthread=self.n_jobs, ref=ref)

    # --- prediction ------------------------------------------------------------------------------

    def _columns(self) -> list[str]:
        """Booster input columns: the numeric features, then one indicator per category seen in training."""
        return [*self.spec.numeric, *(f"{c}={v}" for c in self.spec.categorical for v in self.categories_[c])]

    def _monotone_vector(self) -> tuple[int, ...]:
        return tuple(self.spec.monotone.get(c, 0) for c in self.spec.numeric) + (0,) * (
            len(self._columns()) - len(self.spec.numeric))

    def _matrix(self, frame: pd.DataFrame) -> npt.NDArray[np.float32]:
        """Model input as one contiguous float32 array: numeric columns (NaN = missing, e.g. no collateral),
        then categorical columns one-hot (an unseen or missing category is all zeros). Plain dense input
        takes XGBoost's fastest prediction path, about twice as fast as a frame with categorical columns,
        and seven segments need no partition splits."""
        missing = [c for c in self.spec.features if c not in frame.columns]
        if missing:
            raise ValueError(f"frame lacks the model's feature columns {missing}")
        matrix = np.zeros((len(frame), len(self._columns())), dtype=np.float32)
        for i, column in enumerate(self.spec.numeric):
            matrix[:, i] = pd.to_numeric(frame[column]).to_numpy(dtype=np.float32, na_value=np.nan)
        offset = len(self.spec.numeric)
        rows = np.arange(len(frame))
        for column in self.spec.categorical:
            codes = np.asarray(pd.Categorical(frame[column], categories=self.categories_[column]).codes)
            known = codes >= 0
            matrix[rows[known], offset + codes[known]] = 1.0
            offset += len(self.categories_[column])
        return matrix

    def _fitted(self) -> None:
        if self.booster_ is None or self.calibration_ is None:
            raise RuntimeError("fit the model first")

    def margin(self, frame: pd.DataFrame) -> FloatArray:
        """The booster's uncalibrated log-odds of every row (monotone in the PD)."""
        self._fitted()
        return self.booster_.inplace_predict(self._matrix(frame), predict_type="margin").astype(np.float64)

    def predict_proba(self, frame: pd.DataFrame) -> FloatArray:
        """Calibrated probability of the target (default within ``spec.horizon_quarters``), in [0, 1]."""
        margin = self.margin(frame)
        return self.calibration_.apply(margin)

    def predict_quarterly(self, frame: pd.DataFrame) -> FloatArray:
        """Quarterly PD (constant-hazard equivalent of :meth:`predict_proba`), what the stress engine uses."""
        return quarterly_pd(self.predict_proba(frame), self.spec.horizon_quarters)

    __call__ = predict_quarterly

    def _feature_of_column(self) -> list[str]:
        """The spec feature behind each booster column (a categorical feature owns its indicators)."""
        return [*self.spec.numeric, *(c for c in self.spec.categorical for _ in self.categories_[c])]

    def shap_values(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Exact TreeSHAP contributions to the margin (log-odds, before calibration) per feature, plus
        ``bias``; rows sum to :meth:`margin`. From XGBoost's ``pred_contribs``: no ``shap`` package.
        SHAP values are additive, so a categorical feature's is the sum over its indicator columns."""
        import xgboost as xgb

        self._fitted()
        matrix = xgb.DMatrix(self._matrix(frame), feature_names=self._columns(), nthread=self.n_jobs)
        contributions = pd.DataFrame(self.booster_.predict(matrix, pred_contribs=True), index=frame.index,
                                     columns=[*self._columns(), "bias"])
        by_feature = contributions.T.groupby([*self._feature_of_column(), "bias"], sort=False).sum().T
        return by_feature[[*self.spec.features, "bias"]]

    def feature_importance(self) -> dict[str, float]:
        """Total gain of the splits on each feature (0 for features no tree uses)."""
        self._fitted()
        gain = self.booster_.get_score(importance_type="total_gain")
        importance = dict.fromkeys(self.spec.features, 0.0)
        for column, feature in zip(self._columns(), self._feature_of_column(), strict=True):
            importance[feature] += float(gain.get(column, 0.0))
        return importance

    # --- persistence -------------------------------------------------------------------------------

    def dumps(self) -> bytes:
        """The fitted model as one JSON document (booster in XGBoost's own stable UBJSON format):
        inspectable, version-tolerant, and no pickle to trust."""
        self._fitted()
        document = {
            "format": SERIAL_FORMAT,
            "spec": self.spec.to_dict(),
            "init": {k: v for k, v in self.get_params().items() if k != "spec"},
            "params": self.params_,
            "n_trees": self.n_trees_,
            "categories": self.categories_,
            "calibration": asdict(self.calibration_),
            "search_results": self.search_results_,
            "booster_ubj": base64.b64encode(bytes(self.booster_.save_raw("ubj"))).decode(),
        }
        return json.dumps(document).encode()

    @classmethod
    def loads(cls, data: bytes) -> XGBoostPD:
        import xgboost as xgb

        document = json.loads(data)
        if document.get("format") != SERIAL_FORMAT:
            raise ValueError(f"unsupported XGBoostPD format {document.get('format')!r}")
        model = cls(spec=FeatureSpec.from_dict(document["spec"]), **document["init"])
        model.params_ = document["params"]
        model.n_trees_ = document["n_trees"]
        model.categories_ = document["categories"]
        calibration = document["calibration"]
        model.calibration_ = Calibration(**{k: tuple(v) if isinstance(v, list) else v for k, v in calibration.items()})
        model.search_results_ = document["search_results"]
        booster = xgb.Booster(params={"nthread": model.n_jobs})
        booster.load_model(bytearray(base64.b64decode(document["booster_ubj"])))
        model.booster_ = booster
        return model
