"""The MLflow pyfunc flavour of the PD models: :class:`models.pd_xgboost.XGBoostPD` and the benchmark
:class:`models.pd_logistic.MacroLogisticPD`.

What the registry stores, ``mlflow models serve`` serves and a SageMaker endpoint runs, whichever
model the promotion gate made champion. ``predict`` returns PDs, never labels, in two columns so no
caller has to convert horizons:

* ``pd_horizon``: probability of default within the model's target horizon (``pd_horizon_``;
  4 quarters = 12 months for the default spec), the calibrated output;
* ``pd_quarterly``: the constant-hazard quarterly PD (:func:`models.pd_horizon.quarterly_pd`),
  what the stress engine projects with.

The model itself is the JSON document of the estimator's ``dumps`` (an MLflow artifact); which
estimator reads it is the model's *flavour* (:data:`FLAVOURS`), passed to the pyfunc as its MLflow
``model_config``. The code travels with the model (:data:`SERVING_MODULES` as MLflow ``code_paths``),
so a serving container needs only the pinned packages, not this repository. The pyfunc is logged as
a *model from code* (:data:`ENTRY_FILE`, see :mod:`models.pd_pyfunc_entry`), never as a cloudpickle:
loading a version runs the shipped code on the JSON artifact and unpickles nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from models.pd_horizon import quarterly_pd
from models.pd_logistic import MacroLogisticPD
from models.pd_xgboost import XGBoostPD
from models.projection import PD_FEATURES

MODEL_ARTIFACT = "pd_model"
OUTPUT_COLUMNS = ("pd_horizon", "pd_quarterly")
PDModel = XGBoostPD | MacroLogisticPD
# Flavour name -> estimator class; the name is the model version's ``model_flavour`` tag.
FLAVOURS: dict[str, type[XGBoostPD] | type[MacroLogisticPD]] = {"xgboost": XGBoostPD,
                                                                "macro_logistic": MacroLogisticPD}
# Modules of the models package the pyfunc imports (directly or through the estimators: the logistic
# model reads PD_FEATURES from models.projection, which brings its own imports).
SERVING_MODULES = ("amortisation.py", "basel.py", "feature_spec.py", "lgd.py", "pd_horizon.py", "pd_logistic.py",
                   "pd_pyfunc.py", "pd_xgboost.py", "projection.py", "segments.py", "vasicek.py")
SERVING_PACKAGES = ("numpy", "pandas", "scikit-learn", "scipy", "xgboost")
ENTRY_FILE = Path(__file__).resolve().parent / "pd_pyfunc_entry.py"


def flavour_of(model: PDModel) -> str:
    """The :data:`FLAVOURS` name of a fitted model."""
    return next(name for name, cls in FLAVOURS.items() if isinstance(model, cls))


def load_model(data: bytes, flavour: str) -> PDModel:
    """The model of its JSON document (data only)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown PD model flavour {flavour!r}; known: {sorted(FLAVOURS)}")
    return FLAVOURS[flavour].loads(data)


def input_columns(model: PDModel) -> tuple[list[str], list[str]]:
    """The numeric and the categorical input columns of a model."""
    if isinstance(model, XGBoostPD):
        return list(model.spec.numeric), list(model.spec.categorical)
    return [c for c in PD_FEATURES if c != "ProductSegment"], ["ProductSegment"]


def model_input(frame: pd.DataFrame, model: PDModel) -> pd.DataFrame:
    """The model's input columns in the types of its signature: numeric float64 (NaN for missing),
    categorical plain strings. What an HTTP client or the gate sends the pyfunc."""
    numeric, categorical = input_columns(model)
    columns = {c: pd.to_numeric(frame[c]).to_numpy(dtype=np.float64, na_value=np.nan) for c in numeric}
    columns |= {c: frame[c].astype(str).to_numpy(dtype=object) for c in categorical}
    return pd.DataFrame(columns, index=frame.index)


def pd_outputs(model: PDModel, frame: pd.DataFrame) -> pd.DataFrame:
    probability = model.predict_pd(frame)
    return pd.DataFrame({OUTPUT_COLUMNS[0]: probability,
                         OUTPUT_COLUMNS[1]: quarterly_pd(probability, model.pd_horizon_)},
                        index=frame.index)


class PDModelPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the model artifact of the flavour in ``model_config``; ``predict`` returns :data:`OUTPUT_COLUMNS`."""

    def load_context(self, context: Any) -> None:
        self.model = load_model(Path(context.artifacts[MODEL_ARTIFACT]).read_bytes(), context.model_config["flavour"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return pd_outputs(self.model, model_input)
