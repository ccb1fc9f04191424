"""MLflow tracking and registry governance of the PD model: log, register, promote, load the champion.

* **Tracking**: ``settings.resolved_mlflow_tracking_uri`` (SQLite in ``data_home`` by default; a
  remote ``http(s)://`` server in production). A new experiment's artifacts go to
  ``mlflow_artifact_root``, by default ``data_home/mlartifacts`` with the embedded store; a
  remote server keeps its own artifact store.
* **Run content** (one MLflow run per registered version): parameters (constructor, fitted
  hyper-parameters or coefficients, split), out-of-time metrics of every model of the training run
  (the XGBoost model, the benchmark logistic model and, on synthetic data, the true PD), the report
  files (ROC, calibration, SHAP summary, calibration tables, ``evaluation.json``, the model card), the
  feature spec, tags (``model_flavour``, ``candidate``, ``airflow_run_id``, ``data_sha256``,
  ``history_source``, ``code_version``, ``oot_start_quarter``) and the model as a pyfunc
  (:mod:`models.pd_pyfunc`: outputs ``pd_horizon`` and ``pd_quarterly``) with signature and input
  example, logged as a model from code (:mod:`models.pd_pyfunc_entry`): ``mlflow models serve`` and
  the SageMaker container build it from the shipped code and the JSON artifact, no cloudpickle.
* **Registry**: every training run registers *both* its models as new versions of
  ``pd_registered_model_name`` (flavours ``macro_logistic`` and ``xgboost``), and the promotion gate
  (:mod:`pipelines.model.promotion`) judges each in turn and moves the ``champion`` alias to a version
  only when it passes. The decision and every number behind it are written on the version as
  ``promotion.*`` tags and in its description (the reviewer's summary of the model card).
* **Reviewer** (docs/model_governance.md): the alias ``approved`` pins the version the stress test
  uses (over the gate's champion), the tag ``review=rejected`` forbids a version (``review.by``,
  ``review.reason`` are echoed in every note).
* **Stress test**: :mod:`pipelines.model.selection` picks the version from :meth:`ModelRegistry.version_details`;
  :func:`load_quarterly_pd_function` loads it. Whoever can move an alias or write an artifact must
  not be able to run code on the workers, so the stress test never unpickles the pyfunc: it loads
  only a version the gate promoted or a reviewer approved, and no reviewer rejected, checks the
  SHA-256 of its model JSON against the ``model_sha256`` tag written at registration, and reads that
  JSON with the flavour's ``loads`` (data, not code). Any other case raises :class:`UntrustedModel`.
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

    from models.feature_spec import FeatureSpec
    from models.pd_pyfunc import PDModel

CHALLENGER, CHAMPION, APPROVED = "challenger", "champion", "approved"
MODEL_NAME_IN_RUN = "pd_model"
MODEL_FILE = "pd_model.json"  # the model's JSON document, under artifacts/ of the logged pyfunc
MODEL_SHA256_TAG = "model_sha256"
FLAVOUR_TAG = "model_flavour"
DECISION_TAG, PROMOTED = "promotion.decision", "promoted"
REVIEW_TAG, REJECTED = "review", "rejected"


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


def _run_params(model: PDModel) -> dict[str, Any]:
    """The run's parameters: constructor, then what the fit chose (XGBoost) or estimated (logistic)."""
    from models.pd_xgboost import XGBoostPD

    if isinstance(model, XGBoostPD):
        return ({f"init.{k}": v for k, v in model.tracking_params().items()}
                | {f"xgb.{k}": v for k, v in model.params_.items()} | {"xgb.n_trees": model.n_trees_})
    return ({f"init.{k}": v for k, v in model.get_params().items()}
            | {_param_name(f"coef.{k}"): round(v, 6) for k, v in model.coefficient_table().items()})


def _param_name(name: str) -> str:
    """An MLflow parameter name (``segment[auto]`` -> ``segment.auto``: brackets are not allowed)."""
    return name.replace("[", ".").replace("]", "")


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

    def log_and_register(self, model: PDModel, spec: FeatureSpec, candidate: str, evaluation: dict[str, Any],
                         report_dir: Path, example: pd.DataFrame, provenance: dict[str, Any],
                         run_name: str) -> dict[str, Any]:
        """Log a training run with the model and its report, register the model and alias it ``challenger``.

        ``candidate`` names the model in ``evaluation["models"]`` (``xgboost``, ``benchmark_logistic``).
        """
        import mlflow
        from mlflow.models import infer_signature

        from models.pd_pyfunc import (
            ENTRY_FILE,
            MODEL_ARTIFACT,
            SERVING_PACKAGES,
            flavour_of,
            model_input,
            pd_outputs,
        )

        self._create_local_store()
        client = self.client()
        name = self.model_name
        flavour = flavour_of(model)
        example = model_input(example, model)
        model_bytes = model.dumps()
        split = evaluation["split"]
        tags = {MODEL_SHA256_TAG: hashlib.sha256(model_bytes).hexdigest(), FLAVOUR_TAG: flavour,
                "candidate": candidate, "airflow_run_id": provenance["airflow_run_id"],
                "data_sha256": provenance["data_sha256"], "history_source": provenance["source"],
                "code_version": provenance["code_version"], "feature_spec": spec.name,
                "pd_horizon_quarters": str(model.pd_horizon_), "oot_start_quarter": split["test_quarters"][0],
                "train_window": "..".join(split["train_quarters"])}
        params = _run_params(model) | {f"split.{k}": v for k, v in split.items()}
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
                model_config={"flavour": flavour}, code_paths=[str(_serving_code(Path(tmp)))],
                signature=infer_signature(example, pd_outputs(model, example)), input_example=example,
                pip_requirements=[f"{p}=={importlib.metadata.version(p)}" for p in SERVING_PACKAGES],
                registered_model_name=name,
            )
        version = str(info.registered_model_version)
        client.update_registered_model(name, description=(
            f"{spec.description.strip()} PD model ({spec.name}, horizon {model.pd_horizon_} quarters) of the "
            "stress test. Every run of the pd_model_training DAG registers two versions fitted on the same rows: "
            "the benchmark macro-linked logistic model (flavour macro_logistic) and the XGBoost model (flavour "
            f"xgboost). The promotion gate judges each out of time and moves the '{CHAMPION}' alias to a version "
            "only when it passes (promotion.* tags; the version description summarises the run's "
            f"report/model_card.md). A reviewer pins a version with the '{APPROVED}' alias or forbids one with "
            f"the tag {REVIEW_TAG}={REJECTED} (docs/model_governance.md); the next stress test honours both."))
        client.set_registered_model_alias(name, CHALLENGER, version)
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        client.update_model_version(name, version, description=(
            f"{candidate} ({flavour}) trained by Airflow run {provenance['airflow_run_id']} on data "
            f"{provenance['data_sha256'][:12]}; out-of-time AUC {evaluation['models'][candidate]['auc']:.4f}. "
            "Awaiting the promotion gate."))
        return {"model_name": name, "version": version, "mlflow_run_id": run.info.run_id, "flavour": flavour,
                "candidate": candidate, "model_uri": f"models:/{name}/{version}", "tracking_uri": self.tracking_uri}

    def publish_model_card(self, version: str, run_id: str, card: str, summary: str) -> None:
        """Replace the run's ``report/model_card.md`` by ``card`` and the version's description by ``summary``."""
        client = self.client()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model_card.md"
            path.write_text(card)
            client.log_artifact(run_id, str(path), artifact_path="report")
        client.update_model_version(self.model_name, version, description=summary)

    def alias_version(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client().get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException as error:
            if error.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}:
                return None
            raise

    def horizon_pd(self, version: str, frame: pd.DataFrame) -> np.ndarray:
        """``pd_horizon`` of every row from the version's registered model JSON, after checking its SHA-256
        (:func:`_verified_model`): the bytes the pyfunc serves, read as data, never unpickled."""
        from models.pd_pyfunc import OUTPUT_COLUMNS, model_input, pd_outputs

        model = _verified_model(self.client(), self.model_name, version)
        return pd_outputs(model, model_input(frame, model))[OUTPUT_COLUMNS[0]].to_numpy()

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

    def check_exists(self) -> bool:
        """Whether the store exists (False only for the embedded default not created yet); a configured store
        that is missing or unreachable is :class:`RegistryUnavailable`, never an empty registry."""
        if not self.exists():
            if self.configured:
                raise RegistryUnavailable(f"the MLflow tracking store STRESS_MLFLOW_TRACKING_URI={self.tracking_uri!r} "
                                          "does not exist")
            return False
        self.check_reachable()
        return True

    def version_details(self, version: str) -> dict[str, Any]:
        """Where a version is (pinned), its flavour, aliases, the gate's verdict and any reviewer's."""
        details = self.client().get_model_version(self.model_name, version)
        tags = details.tags
        return {"name": self.model_name, "version": str(version), "aliases": sorted(details.aliases),
                "flavour": tags.get(FLAVOUR_TAG), "candidate": tags.get("candidate"),
                "model_uri": f"models:/{self.model_name}/{version}", "tracking_uri": self.tracking_uri,
                "mlflow_run_id": details.run_id, "output": "pd_quarterly",
                "oot_auc": tags.get("promotion.challenger_auc"), "oot_start_quarter": tags.get("oot_start_quarter"),
                "data_sha256": tags.get("data_sha256"), "gate_decision": tags.get(DECISION_TAG),
                "gate_incumbent": tags.get("promotion.incumbent"), "gate_reasons": tags.get("promotion.reasons"),
                "gate_decided_at": tags.get("promotion.decided_at"), "review": tags.get(REVIEW_TAG),
                "review_by": tags.get("review.by"), "review_reason": tags.get("review.reason")}

    def champion_info(self) -> dict[str, Any] | None:
        """:meth:`version_details` of the champion, or ``None`` when there is none (see :meth:`check_exists`)."""
        if not self.check_exists():
            return None
        version = self.alias_version(CHAMPION)
        return None if version is None else self.version_details(version)

    def promoted_versions(self) -> list[str]:
        """Every version the gate promoted, newest first."""
        versions = self.client().search_model_versions(f"name='{self.model_name}'")
        return [str(v.version) for v in sorted(versions, key=lambda v: -int(v.version))
                if v.tags.get(DECISION_TAG) == PROMOTED]


def local_artifact_root(tracking_uri: str, data_home: Path) -> str | None:
    """Artifacts of a new experiment beside an embedded tracking store; a server keeps its own."""
    return (data_home / "mlartifacts").resolve().as_uri() if _is_local_store(tracking_uri) else None


def load_quarterly_pd_function(info: dict[str, Any]) -> PDFunction:
    """A version of :meth:`ModelRegistry.version_details` as the stress engine's PD function (quarterly PDs).

    The version's model JSON (the artifact the endpoint serves) is read as data after the checks
    of :func:`_trusted_model`, never by unpickling the pyfunc, and called directly: without
    per-call schema enforcement on millions of projected rows.
    """
    from models.pd_xgboost import XGBoostPD

    model = _trusted_model(connect(info["tracking_uri"]), info["name"], str(info["version"]))
    missing = [c for c in model.spec.features if c not in PD_FEATURES] if isinstance(model, XGBoostPD) else []
    if missing:
        raise ValueError(f"{info['model_uri']} reads {missing}, which the stress engine does not provide")
    return model.predict_quarterly


def _trusted_model(client: MlflowClient, name: str, version: str) -> PDModel:
    """The model of ``name`` ``version``, if the gate promoted it or a reviewer approved it, no reviewer
    rejected it, and its file is the one registered."""
    details = client.get_model_version(name, version)
    tags = details.tags
    where = f"PD model {name} version {version}"
    if tags.get(REVIEW_TAG) == REJECTED:
        raise UntrustedModel(f"{where} is not loaded: a reviewer rejected it ({REVIEW_TAG}={REJECTED}"
                             f"{_review_detail(tags)})")
    if tags.get(DECISION_TAG) != PROMOTED and APPROVED not in details.aliases:
        raise UntrustedModel(f"{where} is not loaded: its gate decision ({DECISION_TAG}) is "
                             f"{tags.get(DECISION_TAG)!r}, not {PROMOTED!r}, and no reviewer approved it (alias "
                             f"{APPROVED!r}); point the {CHAMPION} alias at a promoted version")
    return _verified_model(client, name, version)


def _review_detail(tags: dict[str, str]) -> str:
    return "".join(f", {key} {tags[key]!r}" for key in ("review.by", "review.reason") if tags.get(key))


def _verified_model(client: MlflowClient, name: str, version: str) -> PDModel:
    """The model of ``name`` ``version`` if the SHA-256 of its JSON is the one recorded at registration."""
    import mlflow

    from models.pd_pyfunc import load_model

    tags = client.get_model_version(name, version).tags
    where = f"PD model {name} version {version}"
    expected, flavour = tags.get(MODEL_SHA256_TAG), tags.get(FLAVOUR_TAG)
    if not expected or not flavour:
        missing = " and ".join(t for t, v in ((MODEL_SHA256_TAG, expected), (FLAVOUR_TAG, flavour)) if not v)
        raise UntrustedModel(
            f"{where} is not loaded: it has no {missing} tag. It was registered by an earlier release, before the "
            "SHA-256 and the flavour of the model artifact were recorded at registration, so its artifact cannot be "
            "verified, and it is refused until a retrained version replaces it. Retrain: trigger the "
            "pd_model_training DAG (`airflow dags trigger pd_model_training`, or locally "
            "`airflow dags test pd_model_training`; `make demo` runs it too); the new versions are registered with "
            f"their hash and, once the promotion gate promotes one, the {CHAMPION} alias points at it. Re-registering "
            "the old artifact is not offered: its bytes have nothing to be checked against")
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}/artifacts/{MODEL_FILE}",
                                                   dst_path=tmp)
        data = Path(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise UntrustedModel(f"{where} is not loaded: its artifact {MODEL_FILE} has SHA-256 {actual}, not the "
                             f"{expected} recorded at registration (the artifact was changed)")
    return load_model(data, flavour)
