"""Benchmark macro-linked logistic PD model (the challenger every ML model has to beat).

A regulator-friendly, transparent model: quarterly default probability as a logistic function of
a small set of point-in-time loan and macro features (:data:`models.projection.PD_FEATURES`),
with segment intercepts. The coefficients are estimated by maximum likelihood on the loan
performance history joined to the Fed macro history; nothing is typed in. It is a scikit-learn
binary classifier: parameters in the constructor, ``fit(X, y)`` learns ``coefficients_``,
``classes_`` and ``pd_horizon_`` (the target's horizon in quarters, the ``horizon_quarters``
parameter: 1 for the quarterly default flag, 4 beside the 12-month XGBoost target),
``predict_proba`` is ``(n, 2)`` and :meth:`MacroLogisticPD.predict_pd` the 1-D PD. ``X`` is a frame
holding :data:`models.projection.PD_FEATURES` (read by name; other columns are ignored), so
scikit-learn's generic estimator checks, which feed unnamed random arrays, do not apply to it.

Design matrix (why each term): segment one-hot (base rates differ by an order of magnitude);
credit score per 100 points; log(1 + loan age) (seasoning); LTV, with 0 and an ``unsecured`` flag
where there is no collateral, its excess over 80 % and over 100 % (thin and negative equity), and
negative equity times unemployment above 5 % (the "double trigger" of mortgage default); DSTI capped
at 1.5 and its excess over 43 % (the qualified-mortgage limit); the payment shock in points times
DSTI (repricing hurts stretched borrowers); the 4-quarter average unemployment rate and its rise;
the 4-quarter house-price change.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from models.pd_horizon import quarterly_pd
from models.projection import PD_FEATURES
from models.segments import SEGMENT_NAMES, segment_codes

DSTI_CAP = 1.5
NUMERIC_TERMS = ("score_per_100", "log_age", "ltv", "ltv_over_80", "ltv_over_100", "negative_equity_x_unemployment",
                 "unsecured", "dsti", "dsti_over_43", "payment_shock_x_dsti", "unemployment", "unemployment_rise",
                 "house_price_change")
# Terms whose effect on default risk has a known direction get a sign-constrained coefficient, so the
# benchmark can never say that more debt service, deeper negative equity, higher unemployment or a
# larger payment shock lowers PD, however the sample is confounded.
NON_NEGATIVE_TERMS = frozenset({"ltv", "ltv_over_80", "ltv_over_100", "negative_equity_x_unemployment", "dsti",
                                "dsti_over_43", "payment_shock_x_dsti", "unemployment", "unemployment_rise"})
NON_POSITIVE_TERMS = frozenset({"score_per_100", "house_price_change"})
DSTI_LIMIT = 0.43
UNEMPLOYMENT_REFERENCE = 5.0
SERIAL_FORMAT = "loanstress.macro_logistic_pd/1"


def numeric_terms(features: pd.DataFrame) -> tuple[NDArray[np.intp], list[NDArray[np.float64]]]:
    """Segment codes and the columns of :data:`NUMERIC_TERMS`, from PD_FEATURES columns."""
    missing = [c for c in PD_FEATURES if c not in features.columns]
    if missing:
        raise ValueError(f"PD features missing: {missing}")
    ltv = features["CurrentLTV"].to_numpy(dtype=np.float64)
    unsecured = ~np.isfinite(ltv)
    ltv = np.where(unsecured, 0.0, np.clip(ltv, 0.0, 3.0))
    dsti = np.clip(np.nan_to_num(features["DSTI"].to_numpy(dtype=np.float64), nan=0.0), 0.0, DSTI_CAP)
    unemployment = features["unemployment_rate_avg_4q"].to_numpy(dtype=np.float64)
    negative_equity = np.maximum(ltv - 1.0, 0.0)
    terms = [
        (features["CreditScore"].to_numpy(dtype=np.float64) - 700.0) / 100.0,
        np.log1p(np.maximum(features["LoanAgeQuarters"].to_numpy(dtype=np.float64), 0.0)),
        ltv,
        np.maximum(ltv - 0.8, 0.0),
        negative_equity,
        negative_equity * np.maximum(unemployment - UNEMPLOYMENT_REFERENCE, 0.0),
        unsecured.astype(np.float64),
        dsti,
        np.maximum(dsti - DSTI_LIMIT, 0.0),
        np.maximum(np.nan_to_num(features["PaymentShockPoints"].to_numpy(dtype=np.float64)), 0.0) * dsti,
        unemployment,
        np.maximum(np.nan_to_num(features["unemployment_rate_avg_4q_chg_4q"].to_numpy(dtype=np.float64)), 0.0),
        np.nan_to_num(features["house_price_index_chg_4q"].to_numpy(dtype=np.float64)),
    ]
    return segment_codes(features["ProductSegment"]).astype(np.intp), terms


def design_matrix(features: pd.DataFrame) -> NDArray[np.float64]:
    """The model's regressors: segments one-hot, then :data:`NUMERIC_TERMS`."""
    codes, terms = numeric_terms(features)
    return np.hstack([np.eye(len(SEGMENT_NAMES))[codes], np.column_stack(terms)])


class MacroLogisticPD(ClassifierMixin, BaseEstimator):
    """Logistic regression of a default flag on loan and macro features (see the module docstring)."""

    def __init__(self, l2_penalty: float = 1e-6, max_iter: int = 2000, horizon_quarters: int = 1) -> None:
        self.l2_penalty = l2_penalty
        self.max_iter = max_iter
        self.horizon_quarters = horizon_quarters

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> MacroLogisticPD:
        """Maximum likelihood with a small ridge penalty and the sign constraints, by L-BFGS-B."""
        from scipy.optimize import minimize
        from scipy.special import expit, log_expit
        from sklearn.utils.validation import column_or_1d

        labels = column_or_1d(y, warn=True)
        classes = np.unique(labels)
        if classes.size != 2:
            raise ValueError("the default flag needs both defaults and non-defaults to fit "
                             f"(Only binary classification is supported; y holds {classes.tolist()})")
        target = (labels == classes[1]).astype(np.float64)
        x = design_matrix(X)
        if len(x) != len(target):
            raise ValueError(f"X has {len(x)} rows but y has {len(target)}")
        n = len(target)

        def loss_and_gradient(beta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
            score = x @ beta
            log_likelihood = target @ log_expit(score) + (1.0 - target) @ log_expit(-score)
            gradient = x.T @ (expit(score) - target) / n + self.l2_penalty * beta
            return -log_likelihood / n + 0.5 * self.l2_penalty * beta @ beta, gradient

        names = self.term_names()
        bounds = [(0.0, None) if name in NON_NEGATIVE_TERMS else (None, 0.0) if name in NON_POSITIVE_TERMS
                  else (None, None) for name in names]
        start = np.zeros(len(names))
        start[: len(SEGMENT_NAMES)] = np.log(target.mean() / (1.0 - target.mean()))
        solution = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B", bounds=bounds,
                            options={"maxiter": self.max_iter})
        if not solution.success:
            raise RuntimeError(f"logistic fit did not converge ({solution.nit} of at most {self.max_iter} "
                               f"iterations): {solution.message}")
        # A score that puts every default above 0 and every non-default below separates the sample:
        # scaling it up (the sign bounds are cones) always raises the likelihood, so no maximum exists
        # and the optimizer's "success" only means the penalty stopped the coefficients somewhere.
        score = x @ solution.x
        if np.all((score > 0.0) == (target == 1.0)) and np.all(score != 0.0):
            raise RuntimeError("logistic fit did not converge: the default flag is perfectly separated by the "
                               "features, so the maximum-likelihood coefficients do not exist")
        self._set_fitted(solution.x, classes)
        return self

    def _set_fitted(self, coefficients: NDArray[np.float64], classes: NDArray[Any]) -> None:
        self.coefficients_ = coefficients
        self.classes_ = classes
        self.n_features_in_ = len(PD_FEATURES)
        self.pd_horizon_ = int(self.horizon_quarters)

    @staticmethod
    def term_names() -> list[str]:
        return [f"segment[{s}]" for s in SEGMENT_NAMES] + list(NUMERIC_TERMS)

    def predict_pd(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Probability of default within ``pd_horizon_`` quarters of every row, 1-D."""
        check_is_fitted(self, "coefficients_")
        # Accumulate term by term: the stress engine scores millions of rows per quarter, and never
        # materialising the design matrix saves most of the time and memory.
        codes, terms = numeric_terms(X)
        score = self.coefficients_[codes].copy()
        for coefficient, term in zip(self.coefficients_[len(SEGMENT_NAMES):], terms, strict=True):
            score += coefficient * term
        return 1.0 / (1.0 + np.exp(-score))

    def predict_proba(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """``(n, 2)``: probabilities of ``classes_[0]`` (no default) and ``classes_[1]`` (default)."""
        p = self.predict_pd(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> NDArray[Any]:
        positive = self.predict_pd(X) > 0.5
        return self.classes_[positive.astype(np.intp)]

    def predict_quarterly(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Quarterly PD (constant hazard over ``pd_horizon_``), what the stress engine projects with."""
        p = self.predict_pd(X)
        return p if self.pd_horizon_ == 1 else quarterly_pd(p, self.pd_horizon_)

    __call__ = predict_quarterly

    def coefficient_table(self) -> dict[str, float]:
        check_is_fitted(self, "coefficients_")
        return dict(zip(self.term_names(), self.coefficients_.tolist(), strict=True))

    def term_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """The design matrix as a frame, one column per regressor of :meth:`term_names`."""
        return pd.DataFrame(design_matrix(X), columns=self.term_names(), index=X.index)

    def shap_values(self, X: pd.DataFrame) -> pd.DataFrame:
        """Exact SHAP values of the log-odds per regressor, with the rows of ``X`` as background.

        The model is linear in its regressors, so the (interventional) SHAP value of regressor k is
        ``beta_k (x_k - mean of x_k)`` and ``bias`` the log-odds at the mean; each row adds up to its
        log-odds. The regressors, not the raw features, are the players: an LTV enters through four
        terms, and each is shown with its own contribution.
        """
        check_is_fitted(self, "coefficients_")
        terms = design_matrix(X)
        mean = terms.mean(axis=0)
        frame = pd.DataFrame((terms - mean) * self.coefficients_, columns=self.term_names(), index=X.index)
        frame["bias"] = float(mean @ self.coefficients_)
        return frame

    def dumps(self) -> bytes:
        """The fitted model as one JSON document (constructor parameters and coefficients by name)."""
        check_is_fitted(self, "coefficients_")
        return json.dumps({"format": SERIAL_FORMAT, "init": self.get_params(),
                           "coefficients": self.coefficient_table(), "pd_horizon": self.pd_horizon_}).encode()

    @classmethod
    def loads(cls, data: bytes) -> MacroLogisticPD:
        """The model of :meth:`dumps` (data only, never code)."""
        document = json.loads(data)
        if document.get("format") != SERIAL_FORMAT:
            raise ValueError(f"unsupported MacroLogisticPD format {document.get('format')!r} (this code reads "
                             f"{SERIAL_FORMAT}); re-train the model")
        model = cls(**document["init"])
        table = document["coefficients"]
        model._set_fitted(np.array([table[name] for name in cls.term_names()]), np.array([0, 1]))
        return model
