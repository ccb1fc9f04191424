"""The MLflow "model from code" of the PD model: the file MLflow logs and runs instead of a pickle.

``mlflow.pyfunc.log_model(python_model=<this file>)`` copies this file into the logged model, and
every load (the registry, ``mlflow models serve``, the SageMaker serving container) executes it:
the pyfunc is built from code shipped with the model (``code/models/``) and the model JSON
artifact, so no cloudpickle is ever written or read.
"""

import mlflow.models

from models.pd_pyfunc import PDModelPyfunc

mlflow.models.set_model(PDModelPyfunc())
