"""MLflow tracking and registry governance of the PD model: log, register, promote, load the champion.

* **Tracking**: ``settings.resolved_mlflow_tracking_uri`` (SQLite in ``data_home`` by default; a
  remote ``http(s)://`` server in production). A new experiment's artifacts go to
  ``mlflow_artifact_root``, by default ``data_home/mlartifacts`` with the embedded store; a
  remote server keeps its own artifact store.
* **Run content**: parameters (constructor, chosen hyper-parameters, split), out-of-time metrics of
  the challenger, the benchmark and (synthetic data) the true PD, the report files (ROC, calibration,
  feature importance, SHAP summary, calibration tables, ``evaluation.json``, the model card), the
  feature spec, tags ``airflow_run_id``, ``data_sha256`` and ``history_source``, and the model as a
  pyfunc (:mod:`models.pd_pyfunc`: outputs ``pd_horizon`` and ``pd_quarterly``) with signature and
  input example, logged as a model from code (:mod:`models.pd_pyfunc_entry`): ``mlflow models serve``
  and the SageMaker container build it from the shipped code and the JSON artifact, no cloudpickle.
* **Registry**: every trained model becomes a new version of ``pd_registered_model_name`` with the
  alias ``challenger``. The promotion gate (:mod:`pipelines.model.promotion`) moves the alias ``champion``
  to it only if, on the *same* out-of-time rows, its AUC beats the incumbent's (the current
  champion; with none yet, the benchmark logistic model fitted on the same training rows) by
  ``promotion_auc_margin``, its Brier score is not worse (``promotion_brier_tolerance``), and at least
  ``promotion_min_calibrated_band_share`` of its score bands pass a binomial test at
  ``promotion_calibration_alpha``. Both models are scored from their registered XGBoost JSON after
  its SHA-256 is checked (what is judged is what is served). The decision and every number behind
  it are written on the version as ``promotion.*`` tags and in its description.
* **Stress test**: :meth:`ModelRegistry.champion_info` / :func:`load_quarterly_pd_function` (used by
  :mod:`pipelines.model.selection`); ``None`` when there is no champion,
  so the caller falls back to the benchmark and says so. Whoever can move an alias or write an
  artifact must not be able to run code on the workers, so the stress test never unpickles the
  pyfunc: it loads only a version whose gate decision is ``promoted``, checks the SHA-256 of its
  model JSON against the ``model_sha256`` tag written at registration, and reads that JSON with
  :meth:`XGBoostPD.loads` (data, not code). Any other case raises :class:`UntrustedModel`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.projection import PD_FEATURES, PDFunction
from pipelines.settings import REPO_ROOT

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from models.pd_xgboost import XGBoostPD

CHALLENGER, CHAMPION = "challenger", "champion"
MODEL_NAME_IN_RUN = "pd_model"
MODEL_FILE = "xgboost_pd.json"  # the XGBoostPD JSON, under artifacts/ of the logged pyfunc
MODEL_SHA256_TAG = "model_sha256"
DECISION_TAG, PROMOTED = "promotion.decision", "promoted"


class RegistryUnavailable(RuntimeError):
    """The configured MLflow tracking store cannot be reached or read (never a silent fallback)."""


class UntrustedModel(ValueError):
    """A registered version the stress test refuses to load: not promoted by the gate, or its artifact changed.

    A ValueError, so the task policy fails the run at once: a retry would load the same version.
    """


def connect(tracking_uri: str) -> MlflowClient:
    """Point MLflow's tracking and registry at ``tracking_uri`` and return a client for it."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _is_local_store(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri


def _flat_metrics(evaluation: dict[str, Any]) -> dict[str, float]:
    metrics = {f"{name}_{key}": float(value) for name, model in evaluation["models"].items()
               for key, value in model.items() if isinstance(value, int | float)}
    metrics["xgboost_train_auc"] = float(evaluation["train_auc_xgboost"])
    metrics["psi_score"] = float(evaluation["psi"]["score"])
    metrics |= {f"psi_{name}": float(value) for name, value in evaluation["psi"]["features"].items()}
    return metrics


def _serving_code(directory: Path) -> Path:
    """A ``models`` package holding only the modules the pyfunc needs (MLflow ``code_paths``)."""
    from models.pd_pyfunc import SERVING_MODULES

    package = directory / "models"
    package.mkdir()
    for module in SERVING_MODULES:
        shutil.copy2(REPO_ROOT / "models" / module, package / module)
    return package


@dataclass(frozen=True)
class ModelRegistry:
    """The MLflow tracking store and model registry of the PD model (one registered model name)."""

    tracking_uri: str
    model_name: str
    experiment_name: str
    artifact_root: str | None = None  # a new experiment's artifact location; None: the server's own
    # The URI was set (STRESS_MLFLOW_TRACKING_URI), not the embedded default: a SQLite file that does not exist
    # is then a mistyped or lost store, an error, rather than a registry nobody has trained into yet.
    configured: bool = False

    def client(self) -> MlflowClient:
        return connect(self.tracking_uri)

    def exists(self) -> bool:
        """False only for an embedded SQLite store not created yet (a read must not create and migrate one)."""
        return not (self.tracking_uri.startswith("sqlite:///")
                    and not Path(self.tracking_uri.removeprefix("sqlite:///")).exists())

    def check_reachable(self) -> None:
        """Raise :class:`RegistryUnavailable` naming the setting when the tracking store cannot be read."""
        if not self.exists():
            return
        try:
            self.client().search_registered_models(max_results=1)
        except Exception as error:
            raise RegistryUnavailable(f"the MLflow tracking store STRESS_MLFLOW_TRACKING_URI={self.tracking_uri!r} "
                                      f"cannot be read: {error}") from error

    def _create_local_store(self) -> None:
        """Create an embedded SQLite store with its Default experiment's artifacts under ``artifact_root``.

        MLflow creates a new SQLite store with a Default experiment whose artifacts go to ``./mlruns`` in
        the working directory; creating the store here first keeps every artifact under the data home.
        """
        if self.exists() or not self.artifact_root or not self.tracking_uri.startswith("sqlite:///"):
            return
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        SqlAlchemyStore(self.tracking_uri, self.artifact_root)

    def experiment_id(self, client: MlflowClient) -> str:
        """The experiment's id, created on first use (artifacts: see the module docstring)."""
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        return client.create_experiment(self.experiment_name, artifact_location=self.artifact_root)

    def log_and_register(self, model: XGBoostPD, evaluation: dict[str, Any], report_dir: Path,
                         example: pd.DataFrame, provenance: dict[str, Any], run_name: str) -> dict[str, Any]:
        """Log a training run with the model and its report, register the model and alias it ``challenger``."""
        import mlflow
        from mlflow.models import infer_signature

        from models.pd_pyfunc import ENTRY_FILE, MODEL_ARTIFACT, SERVING_PACKAGES, model_input, pd_outputs

        self._create_local_store()
        client = self.client()
        name = self.model_name
        spec = model.spec
        example = model_input(example, spec)
        model_bytes = model.dumps()
        tags = {MODEL_SHA256_TAG: hashlib.sha256(model_bytes).hexdigest(),
                "airflow_run_id": provenance["airflow_run_id"], "data_sha256": provenance["data_sha256"],
                "history_source": provenance["source"], "feature_spec": spec.name,
                "pd_horizon_quarters": str(model.pd_horizon_)}
        params = {f"init.{k}": v for k, v in model.tracking_params().items()}
        params |= {f"xgb.{k}": v for k, v in model.params_.items()} | {"xgb.n_trees": model.n_trees_}
        params |= {f"split.{k}": v for k, v in evaluation["split"].items()}
        # Created with the training's start time, so the run's duration is the training's, not this step's.
        created = client.create_run(self.experiment_id(client), start_time=provenance.get("started_at_ms"),
                                    tags=tags, run_name=run_name)
        with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_id=created.info.run_id) as run:
            mlflow.log_params(params)
            mlflow.log_metrics(_flat_metrics(evaluation))
            mlflow.log_artifacts(str(report_dir), artifact_path="report")
            mlflow.log_dict(spec.to_dict(), "feature_spec.json")
            model_file = Path(tmp) / MODEL_FILE
            model_file.write_bytes(model_bytes)
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME_IN_RUN, python_model=str(ENTRY_FILE), artifacts={MODEL_ARTIFACT: str(model_file)},
                code_paths=[str(_serving_code(Path(tmp)))],
                signature=infer_signature(example, pd_outputs(model, example)), input_example=example,
                pip_requirements=[f"{p}=={importlib.metadata.version(p)}" for p in SERVING_PACKAGES],
                registered_model_name=name,
            )
        version = str(info.registered_model_version)
        client.update_registered_model(name, description=(
            f"{spec.description.strip()} XGBoost PD model ({spec.name}, horizon {model.pd_horizon_} quarters) "
            "of the stress test. Every version is a challenger trained by the pd_model_training DAG; the "
            f"promotion gate moves the '{CHAMPION}' alias to it only when it beats the incumbent out of time "
            "(promotion.* tags and the version description give the verdict and its numbers; the run's "
            "report/model_card.md the evidence)."))
        client.set_registered_model_alias(name, CHALLENGER, version)
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        client.update_model_version(name, version, description=(
            f"Challenger trained by Airflow run {provenance['airflow_run_id']} on data "
            f"{provenance['data_sha256'][:12]}; out-of-time AUC {evaluation['models']['xgboost']['auc']:.4f}. "
            "Awaiting the promotion gate."))
        return {"model_name": name, "version": version, "mlflow_run_id": run.info.run_id,
                "model_uri": f"models:/{name}/{version}", "tracking_uri": self.tracking_uri}

    def alias_version(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client().get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException as error:
            if error.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}:
                return None
            raise

    def horizon_pd(self, version: str, frame: pd.DataFrame) -> np.ndarray:
        """``pd_horizon`` of every row from the version's registered XGBoost JSON, after checking its SHA-256
        (:func:`_verified_model_bytes`): the bytes the pyfunc serves, read as data, never unpickled."""
        from models.pd_pyfunc import OUTPUT_COLUMNS, model_input, pd_outputs
        from models.pd_xgboost import XGBoostPD

        model = XGBoostPD.loads(_verified_model_bytes(self.client(), self.model_name, version))
        return pd_outputs(model, model_input(frame, model.spec))[OUTPUT_COLUMNS[0]].to_numpy()

    def record_decision(self, version: str, tags: dict[str, str], description: str, promote: bool,
                        superseded: str | None) -> None:
        """Write a gate's verdict (its tags and description) on the version; when it passed, move ``champion``.

        The verdict arrives as plain values so the registry knows nothing of the gate that made it.
        """
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(self.model_name, version, key, value)
        client.update_model_version(self.model_name, version, description=description)
        if promote:
            client.set_registered_model_alias(self.model_name, CHAMPION, version)
            if superseded is not None and superseded != version:
                client.set_model_version_tag(self.model_name, superseded, "promotion.superseded_by", version)

    def champion_info(self) -> dict[str, Any] | None:
        """Where the champion is (pinned to its version) and why the gate promoted it, or ``None`` when there is
        none; :class:`RegistryUnavailable` when a configured store is missing or unreachable."""
        if not self.exists():
            if self.configured:
                raise RegistryUnavailable(f"the MLflow tracking store STRESS_MLFLOW_TRACKING_URI={self.tracking_uri!r} "
                                          "does not exist")
            return None
        self.check_reachable()  # a mistyped or unreachable store must not silently mean "no champion"
        version = self.alias_version(CHAMPION)
        if version is None:
            return None
        details = self.client().get_model_version(self.model_name, version)
        return {"name": self.model_name, "version": version, "model_uri": f"models:/{self.model_name}/{version}",
                "tracking_uri": self.tracking_uri, "mlflow_run_id": details.run_id,
                "output": "pd_quarterly", "oot_auc": details.tags.get("promotion.challenger_auc"),
                "data_sha256": details.tags.get("data_sha256"),
                "gate_incumbent": details.tags.get("promotion.incumbent"),
                "gate_reasons": details.tags.get("promotion.reasons"),
                "gate_decided_at": details.tags.get("promotion.decided_at")}


def local_artifact_root(tracking_uri: str, data_home: Path) -> str | None:
    """Artifacts of a new experiment beside an embedded tracking store; a server keeps its own."""
    return (data_home / "mlartifacts").resolve().as_uri() if _is_local_store(tracking_uri) else None


def load_quarterly_pd_function(info: dict[str, Any]) -> PDFunction:
    """The champion of :meth:`ModelRegistry.champion_info` as the stress engine's PD function (quarterly PDs).

    The version's XGBoostPD JSON (the artifact the endpoint serves) is read as data after the checks
    of :func:`_trusted_model_bytes`, never by unpickling the pyfunc, and called directly: without
    per-call schema enforcement on millions of projected rows.
    """
    from models.pd_xgboost import XGBoostPD

    model = XGBoostPD.loads(_trusted_model_bytes(connect(info["tracking_uri"]), info["name"], str(info["version"])))
    missing = [c for c in model.spec.features if c not in PD_FEATURES]
    if missing:
        raise ValueError(f"champion {info['model_uri']} reads {missing}, which the stress engine does not provide")
    return model.predict_quarterly


def _trusted_model_bytes(client: MlflowClient, name: str, version: str) -> bytes:
    """The model JSON of ``name`` ``version``, if the gate promoted it and the file is the one registered."""
    tags = client.get_model_version(name, version).tags
    if tags.get(DECISION_TAG) != PROMOTED:
        raise UntrustedModel(f"PD model {name} version {version} is not loaded: its gate decision ({DECISION_TAG}) "
                             f"is {tags.get(DECISION_TAG)!r}, not {PROMOTED!r}; point the {CHAMPION} alias at a "
                             "promoted version")
    return _verified_model_bytes(client, name, version)


def _verified_model_bytes(client: MlflowClient, name: str, version: str) -> bytes:
    """The model JSON of ``name`` ``version`` if its SHA-256 is the one recorded at registration."""
    import mlflow

    tags = client.get_model_version(name, version).tags
    where = f"PD model {name} version {version}"
    expected = tags.get(MODEL_SHA256_TAG)
    if not expected:
        raise UntrustedModel(
            f"{where} is not loaded: it has no {MODEL_SHA256_TAG} tag. It was registered before the SHA-256 of "
            "the model artifact was recorded at registration, so its artifact cannot be verified, and it is refused "
            "until a retrained version replaces it. Retrain: trigger the pd_model_training DAG "
            "(`airflow dags trigger pd_model_training`, or locally `airflow dags test pd_model_training`; "
            "`make demo` runs it too); the new version is registered with its hash and, once the promotion gate "
            f"promotes it, the {CHAMPION} alias points at it. Re-registering the old artifact is not offered: "
            "its bytes have nothing to be checked against")
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}/artifacts/{MODEL_FILE}",
                                                   dst_path=tmp)
        data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise UntrustedModel(f"{where} is not loaded: its artifact {MODEL_FILE} has SHA-256 {actual}, not the "
                             f"{expected} recorded at registration (the artifact was changed)")
    return data
