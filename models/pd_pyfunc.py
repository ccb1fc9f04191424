"""The MLflow pyfunc flavour of :class:`models.pd_xgboost.XGBoostPD`.

What the registry stores, ``mlflow models serve`` serves and a SageMaker endpoint runs. ``predict``
returns PDs, never labels, in two columns so no caller has to convert horizons:

* ``pd_horizon``: probability of default within the model's target horizon
  (``spec.horizon_quarters``; 4 quarters = 12 months for the default spec), the calibrated output;
* ``pd_quarterly``: the constant-hazard quarterly PD (:func:`models.pd_horizon.quarterly_pd`),
  what the stress engine projects with.

The model itself is the JSON document of :meth:`XGBoostPD.dumps` (an MLflow artifact); the code
travels with the model (:data:`SERVING_MODULES` as MLflow ``code_paths``), so a serving container
needs only the pinned packages, not this repository. The pyfunc is logged as a *model from code*
(:data:`ENTRY_FILE`, see :mod:`models.pd_pyfunc_entry`), never as a cloudpickle: loading a version
runs the shipped code on the JSON artifact and unpickles nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from models.feature_spec import FeatureSpec
from models.pd_horizon import quarterly_pd
from models.pd_xgboost import XGBoostPD

MODEL_ARTIFACT = "pd_model"
OUTPUT_COLUMNS = ("pd_horizon", "pd_quarterly")
# Modules of the models package the pyfunc imports (directly or through XGBoostPD).
SERVING_MODULES = ("feature_spec.py", "pd_horizon.py", "pd_pyfunc.py", "pd_xgboost.py")
SERVING_PACKAGES = ("numpy", "pandas", "scikit-learn", "xgboost")
ENTRY_FILE = Path(__file__).resolve().parent / "pd_pyfunc_entry.py"


def model_input(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The spec's feature columns in the types of the model signature: numeric float64 (NaN for
    missing), categorical plain strings. What an HTTP client or the gate sends the pyfunc."""
    columns = {c: pd.to_numeric(frame[c]).to_numpy(dtype=np.float64, na_value=np.nan) for c in spec.numeric}
    columns |= {c: frame[c].astype(str).to_numpy(dtype=object) for c in spec.categorical}
    return pd.DataFrame(columns, index=frame.index)


def pd_outputs(model: XGBoostPD, frame: pd.DataFrame) -> pd.DataFrame:
    probability = model.predict_pd(frame)
    return pd.DataFrame({OUTPUT_COLUMNS[0]: probability,
                         OUTPUT_COLUMNS[1]: quarterly_pd(probability, model.pd_horizon_)},
                        index=frame.index)


class XGBoostPDPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the XGBoostPD artifact; ``predict`` returns :data:`OUTPUT_COLUMNS` for every input row."""

    def load_context(self, context: Any) -> None:
        self.model = XGBoostPD.loads(Path(context.artifacts[MODEL_ARTIFACT]).read_bytes())

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return pd_outputs(self.model, model_input)
