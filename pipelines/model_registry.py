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
  input example.
* **Registry**: every trained model becomes a new version of ``pd_registered_model_name`` with the
  alias ``challenger``. The promotion gate (:func:`decide_promotion`) moves the alias ``champion``
  to it only if, on the *same* out-of-time rows, its AUC beats the incumbent's (the current
  champion; with none yet, the benchmark logistic model fitted on the same training rows) by
  ``promotion_auc_margin``, its Brier score is not worse (``promotion_brier_tolerance``), and at least
  ``promotion_min_calibrated_band_share`` of its score bands pass a binomial test at
  ``promotion_calibration_alpha``. Both models are scored from the registry (what is judged is what
  is served). The decision and every number behind it are written on the version as
  ``promotion.*`` tags and in its description.
* **Stress test**: :func:`champion_info` / :func:`load_quarterly_pd_function` (used by
  :mod:`pipelines.pd_models`) and :func:`load_champion_pd_model`; ``None`` when there is no champion,
  so the caller falls back to the benchmark and says so.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.projection import PD_FEATURES, PDFunction
from pipelines.settings import REPO_ROOT, StressSettings, get_settings
from pipelines.steps import record_step, run_key

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from models.pd_xgboost import XGBoostPD

CHALLENGER, CHAMPION = "challenger", "champion"
MODEL_NAME_IN_RUN = "pd_model"
INPUT_EXAMPLE_ROWS = 5
BENCHMARK_INCUMBENT = "benchmark_logistic"


def connect(tracking_uri: str) -> MlflowClient:
    """Point MLflow's tracking and registry at ``tracking_uri`` and return a client for it."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _is_local_store(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("sqlite:", "file:")) or "://" not in tracking_uri


def experiment_id(client: MlflowClient, settings: StressSettings) -> str:
    """The experiment's id, created on first use (artifacts: see the module docstring)."""
    experiment = client.get_experiment_by_name(settings.mlflow_experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    location = settings.mlflow_artifact_root or (
        (settings.data_home / "mlartifacts").resolve().as_uri()
        if _is_local_store(settings.resolved_mlflow_tracking_uri) else None)
    return client.create_experiment(settings.mlflow_experiment_name, artifact_location=location)


# --- log and register --------------------------------------------------------------------------------


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


def log_and_register(model: XGBoostPD, evaluation: dict[str, Any], report_dir: Path, example: pd.DataFrame,
                     provenance: dict[str, Any], settings: StressSettings) -> dict[str, Any]:
    """Log a training run with the model and its report, register the model and alias it ``challenger``."""
    import mlflow
    from mlflow.models import infer_signature

    from models.pd_pyfunc import MODEL_ARTIFACT, SERVING_PACKAGES, XGBoostPDPyfunc, model_input, pd_outputs

    client = connect(settings.resolved_mlflow_tracking_uri)
    name = settings.pd_registered_model_name
    spec = model.spec
    example = model_input(example, spec)
    tags = {"airflow_run_id": provenance["airflow_run_id"], "data_sha256": provenance["data_sha256"],
            "history_source": provenance["source"], "feature_spec": spec.name,
            "pd_horizon_quarters": str(spec.horizon_quarters)}
    params = {f"init.{k}": v for k, v in model.get_params().items()}
    params |= {f"xgb.{k}": v for k, v in model.params_.items()} | {"xgb.n_trees": model.n_trees_}
    params |= {f"split.{k}": v for k, v in evaluation["split"].items()}
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(
            experiment_id=experiment_id(client, settings),
            run_name=f"{spec.name}-{run_key(provenance['airflow_run_id'])}", tags=tags) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(_flat_metrics(evaluation))
        mlflow.log_artifacts(str(report_dir), artifact_path="report")
        mlflow.log_dict(spec.to_dict(), "feature_spec.json")
        model_file = Path(tmp) / "xgboost_pd.json"
        model_file.write_bytes(model.dumps())
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME_IN_RUN, python_model=XGBoostPDPyfunc(), artifacts={MODEL_ARTIFACT: str(model_file)},
            code_paths=[str(_serving_code(Path(tmp)))],
            signature=infer_signature(example, pd_outputs(model, example)), input_example=example,
            pip_requirements=[f"{p}=={importlib.metadata.version(p)}" for p in SERVING_PACKAGES],
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    client.set_registered_model_alias(name, CHALLENGER, version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(name, version, description=(
        f"Challenger trained by Airflow run {provenance['airflow_run_id']} on data {provenance['data_sha256'][:12]}; "
        f"out-of-time AUC {evaluation['models']['xgboost']['auc']:.4f}. Awaiting the promotion gate."))
    return {"model_name": name, "version": version, "mlflow_run_id": run.info.run_id,
            "model_uri": f"models:/{name}/{version}", "tracking_uri": settings.resolved_mlflow_tracking_uri}


# --- the promotion gate ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromotionPolicy:
    auc_margin: float
    calibration_alpha: float
    min_calibrated_band_share: float
    brier_tolerance: float

    @classmethod
    def from_settings(cls, settings: StressSettings) -> PromotionPolicy:
        return cls(settings.promotion_auc_margin, settings.promotion_calibration_alpha,
                   settings.promotion_min_calibrated_band_share, settings.promotion_brier_tolerance)


@dataclass
class PromotionDecision:
    """The gate's verdict and every number behind it."""

    promote: bool
    incumbent: str
    reasons: list[str]
    challenger: dict[str, float]
    incumbent_metrics: dict[str, float] | None
    policy: PromotionPolicy
    test_rows: int
    extra: dict[str, str] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        tags = {"promotion.decision": "promoted" if self.promote else "rejected",
                "promotion.incumbent": self.incumbent, "promotion.reasons": " | ".join(self.reasons),
                "promotion.test_rows": str(self.test_rows)}
        tags |= {f"promotion.challenger_{k}": f"{v:.6g}" for k, v in self.challenger.items()}
        tags |= {f"promotion.incumbent_{k}": f"{v:.6g}" for k, v in (self.incumbent_metrics or {}).items()}
        tags |= {f"promotion.policy_{k}": str(v) for k, v in asdict(self.policy).items()}
        return tags | {f"promotion.{k}": v for k, v in self.extra.items()}

    def description(self) -> str:
        verdict = "PROMOTED to champion" if self.promote else "NOT promoted"
        c = self.challenger
        lines = [f"{verdict} against {self.incumbent} on {self.test_rows:,} out-of-time rows.",
                 f"Challenger: AUC {c['auc']:.4f}, Brier {c['brier']:.6f}, calibrated bands "
                 f"{c['calibrated_band_share']:.0%}, Hosmer-Lemeshow p {c['hosmer_lemeshow_p_value']:.3g}."]
        if self.incumbent_metrics:
            i = self.incumbent_metrics
            lines.append(f"Incumbent: AUC {i['auc']:.4f}, Brier {i['brier']:.6f}.")
        lines += [f"- {reason}" for reason in self.reasons]
        return "\n".join(lines)


def _gate_metrics(y: np.ndarray, probability: np.ndarray, alpha: float) -> dict[str, float]:
    from models import validation_metrics as vm

    table = vm.calibration_table(y, probability)
    return {"auc": vm.auc(y, probability), "brier": vm.brier_score(y, probability),
            "calibrated_band_share": vm.calibrated_band_share(table, alpha),
            "hosmer_lemeshow_p_value": vm.hosmer_lemeshow(y, probability)[1]}


def decide_promotion(y: np.ndarray, challenger_pd: np.ndarray, incumbent_pd: np.ndarray | None, incumbent: str,
                     policy: PromotionPolicy) -> PromotionDecision:
    """The gate as a pure function of outcomes and the two models' PDs on the same rows."""
    challenger = _gate_metrics(y, challenger_pd, policy.calibration_alpha)
    reasons, passed = [], []
    share_ok = challenger["calibrated_band_share"] >= policy.min_calibrated_band_share
    passed.append(share_ok)
    reasons.append(f"calibration: {challenger['calibrated_band_share']:.0%} of bands not rejected at "
                   f"{policy.calibration_alpha:g} ({'>=' if share_ok else '<'} {policy.min_calibrated_band_share:.0%})")
    incumbent_metrics = None
    if incumbent_pd is None:
        reasons.append("no incumbent: discrimination not compared")
    else:
        incumbent_metrics = _gate_metrics(y, incumbent_pd, policy.calibration_alpha)
        gain = challenger["auc"] - incumbent_metrics["auc"]
        auc_ok = gain >= policy.auc_margin
        brier_ok = challenger["brier"] <= incumbent_metrics["brier"] + policy.brier_tolerance
        passed += [auc_ok, brier_ok]
        reasons.append(f"AUC {challenger['auc']:.4f} vs {incumbent_metrics['auc']:.4f}: gain {gain:+.4f} "
                       f"{'>=' if auc_ok else '<'} margin {policy.auc_margin:g}")
        reasons.append(f"Brier {challenger['brier']:.6f} vs {incumbent_metrics['brier']:.6f} "
                       f"({'not worse' if brier_ok else 'worse'} beyond tolerance {policy.brier_tolerance:g})")
    return PromotionDecision(all(passed), incumbent, reasons, challenger, incumbent_metrics, policy, len(y))


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as error:
        if error.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"}:
            return None
        raise


def _registry_pd(model_uri: str, frame: pd.DataFrame) -> np.ndarray:
    """The registered pyfunc's ``pd_horizon`` of every row (through MLflow's schema enforcement)."""
    import mlflow

    from models.pd_pyfunc import OUTPUT_COLUMNS, model_input

    loaded = mlflow.pyfunc.load_model(model_uri)
    spec = loaded.unwrap_python_model().model.spec
    return loaded.predict(model_input(frame, spec))[OUTPUT_COLUMNS[0]].to_numpy()


def run_promotion_gate(version: str, test: pd.DataFrame, target: str, settings: StressSettings,
                       fallback: tuple[str, np.ndarray] | None = None,
                       context: dict[str, str] | None = None) -> PromotionDecision:
    """Judge ``version`` against the champion (else ``fallback``) on ``test``; record and apply the verdict."""
    client = connect(settings.resolved_mlflow_tracking_uri)
    name = settings.pd_registered_model_name
    y = test[target].to_numpy()
    challenger_pd = _registry_pd(f"models:/{name}/{version}", test)
    champion = _alias_version(client, name, CHAMPION)
    if champion is not None and champion != version:
        incumbent, incumbent_pd = f"champion v{champion}", _registry_pd(f"models:/{name}/{champion}", test)
    elif fallback is not None:
        incumbent, incumbent_pd = fallback
    else:
        incumbent, incumbent_pd = "none", None
    decision = decide_promotion(y, challenger_pd, incumbent_pd, incumbent, PromotionPolicy.from_settings(settings))
    decision.extra = {"decided_at": datetime.now(UTC).isoformat(), **(context or {})}
    for key, value in decision.tags().items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(name, version, description=decision.description())
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version)
        if champion is not None and champion != version:
            client.set_model_version_tag(name, champion, "promotion.superseded_by", version)
    return decision


# --- the champion for the stress test ---------------------------------------------------------------------


def champion_info(settings: StressSettings) -> dict[str, Any] | None:
    """Where the champion is (pinned to its version), or ``None`` when there is none."""
    uri = settings.resolved_mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None  # no registry yet: a read must not create (and migrate) an empty MLflow database
    client = connect(uri)
    name = settings.pd_registered_model_name
    version = _alias_version(client, name, CHAMPION)
    if version is None:
        return None
    details = client.get_model_version(name, version)
    return {"name": name, "version": version, "model_uri": f"models:/{name}/{version}",
            "tracking_uri": settings.resolved_mlflow_tracking_uri, "mlflow_run_id": details.run_id,
            "output": "pd_quarterly", "oot_auc": details.tags.get("promotion.challenger_auc"),
            "data_sha256": details.tags.get("data_sha256")}


def load_quarterly_pd_function(info: dict[str, Any]) -> PDFunction:
    """The champion of :func:`champion_info` as the stress engine's PD function (quarterly PDs).

    The pyfunc is loaded from the registry and its XGBoostPD called directly: the same artifact the
    endpoint serves, without per-call schema enforcement on millions of projected rows.
    """
    import mlflow

    connect(info["tracking_uri"])
    model = mlflow.pyfunc.load_model(info["model_uri"]).unwrap_python_model().model
    missing = [c for c in model.spec.features if c not in PD_FEATURES]
    if missing:
        raise ValueError(f"champion {info['model_uri']} reads {missing}, which the stress engine does not provide")
    return model.predict_quarterly


def load_champion_pd_model(settings: StressSettings | None = None) -> tuple[PDFunction, dict[str, Any]] | None:
    """The champion's quarterly PD function and its version info, or ``None`` without a champion (the
    caller then uses the benchmark logistic model and says so)."""
    info = champion_info(settings or get_settings())
    return None if info is None else (load_quarterly_pd_function(info), info)


# --- the DAG steps ------------------------------------------------------------------------------------------


def register_step(trained: dict[str, Any], evaluated: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Log the run, register the model as ``challenger``."""
    import json

    from pipelines.training import load_frame, load_trained, object_store

    settings = get_settings()
    model, _ = load_trained(trained, settings)
    store = object_store(settings)
    with tempfile.TemporaryDirectory() as tmp:
        for key in evaluated["report_files"]:
            (Path(tmp) / key.rsplit("/", 1)[-1]).write_bytes(store.get_bytes(key))
        evaluation = json.loads((Path(tmp) / "evaluation.json").read_text())
        example = load_frame(trained["test_key"], settings).head(INPUT_EXAMPLE_ROWS)
        registered = log_and_register(model, evaluation, Path(tmp), example, trained["provenance"], settings)
    return record_step(run_id, "pd_register", {**registered, "test_key": trained["test_key"],
                                               "model_key": trained["model_key"],
                                               "benchmark_key": trained["benchmark_key"],
                                               "provenance": trained["provenance"]})


def promotion_step(registered: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Run the promotion gate on the run's out-of-time rows (benchmark as incumbent when no champion)."""
    from models.feature_spec import load_feature_spec
    from pipelines.training import load_frame, load_trained

    settings = get_settings()
    spec = load_feature_spec(settings.pd_feature_spec_path)
    test = load_frame(registered["test_key"], settings)
    _, benchmark = load_trained(registered, settings)
    fallback = (f"{BENCHMARK_INCUMBENT} (same training rows)", benchmark.predict_proba(test[list(PD_FEATURES)]))
    decision = run_promotion_gate(registered["version"], test, spec.target, settings, fallback,
                                  {"airflow_run_id": run_id, "data_sha256": registered["provenance"]["data_sha256"]})
    return record_step(run_id, "pd_promotion", {
        "model_name": registered["model_name"], "version": registered["version"], "promoted": decision.promote,
        "incumbent": decision.incumbent, "reasons": decision.reasons, "challenger": decision.challenger,
        "incumbent_metrics": decision.incumbent_metrics, "tracking_uri": registered["tracking_uri"],
    })
