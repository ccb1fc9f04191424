"""MLflow registry round trip on a temporary SQLite store: register, challenger alias, promotion gate
(a clearly better model is promoted, a worse one refused, the numbers written on the version), and
the champion loaded back as the stress engine's quarterly PD function."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.feature_spec import load_feature_spec
from models.pd_pyfunc import SERVING_MODULES
from models.pd_xgboost import XGBoostPD
from pipelines.adapters.model_registry import CHALLENGER, CHAMPION, ModelRegistry, load_quarterly_pd_function
from pipelines.composition import build_adapters
from pipelines.model.promotion import PromotionPolicy, run_promotion_gate

SPEC = load_feature_spec()
# Seasoning alone: a real but clearly weaker model.
WEAK_SPEC = dataclasses.replace(SPEC, name="seasoning_only", numeric=("LoanAgeQuarters",), categorical=(),
                                monotone={})


@pytest.fixture(scope="module")
def split():
    from pipelines.data.synthetic import generate_performance_history
    from pipelines.model.training import out_of_time_split, point_in_time_dataset

    return out_of_time_split(point_in_time_dataset(generate_performance_history(2000, seed=5), SPEC), SPEC, 8)


@pytest.fixture(scope="module")
def models(split) -> dict[str, XGBoostPD]:
    return {name: XGBoostPD(spec, time_column=spec.date_column, n_candidates=1, n_jobs=1,
                            random_state=1).fit(split.train, split.train[spec.target])
            for name, spec in (("strong", SPEC), ("weak", WEAK_SPEC))}


@pytest.fixture
def registry_settings(settings):
    # Calibration criteria are unit-tested on known cases; here the mechanics are under test. On this small history
    # (about 35 test defaults) the Brier scores of the two models differ by noise of about 0.0006, hence the tolerance.
    return settings.model_copy(update={"promotion_auc_margin": 0.01, "promotion_min_calibrated_band_share": 0.0,
                                       "promotion_brier_tolerance": 0.001})


def _registry(settings) -> ModelRegistry:
    return build_adapters(settings).model_registry


def _register(model: XGBoostPD, split, settings, tmp_path, run: str) -> dict:
    from pipelines.adapters.object_store import LocalObjectStore
    from pipelines.model.training import evaluate

    evaluation = evaluate(split, model.spec, model, {"xgboost": model.predict_pd(split.test)}, 0.01)
    (tmp_path / run).mkdir()
    (tmp_path / run / "model_card.md").write_text(f"# card of {run}\n")
    LocalObjectStore(tmp_path / run).put_bytes("evaluation.json", b"{}")
    provenance = {"source": "synthetic", "data_sha256": "ab" * 32, "airflow_run_id": run}
    return _registry(settings).log_and_register(model, evaluation, tmp_path / run, split.test.head(5), provenance,
                                                run_name=run)


def _gate(version: str, split, settings):
    return run_promotion_gate(_registry(settings), version, split.test, SPEC.target,
                              PromotionPolicy.from_settings(settings), context={"airflow_run_id": "test"})


def test_register_promote_refuse_and_load_the_champion(split, models, registry_settings, tmp_path):
    import mlflow

    settings = registry_settings
    registry = _registry(settings)
    assert registry.champion_info() is None  # empty registry: the caller falls back to the benchmark

    first = _register(models["weak"], split, settings, tmp_path, "run-1")
    client = registry.client()
    name = settings.pd_registered_model_name
    assert first["version"] == "1"
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == "1"
    assert registry.champion_info() is None
    run = client.get_run(first["mlflow_run_id"])
    assert run.data.tags["airflow_run_id"] == "run-1" and run.data.tags["data_sha256"] == "ab" * 32
    assert run.data.metrics["xgboost_auc"] > 0.5 and "xgb.max_depth" in run.data.params
    assert {a.path for a in client.list_artifacts(run.info.run_id, "report")} >= {"report/model_card.md"}

    decision = _gate("1", split, settings)  # no champion, no fallback: calibration only (disabled here)
    assert decision.promote and decision.incumbent == "none"
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "1"

    second = _register(models["strong"], split, settings, tmp_path, "run-2")
    decision = _gate(second["version"], split, settings)
    assert decision.promote, decision.reasons
    assert decision.incumbent == "champion v1"
    assert decision.challenger["auc"] > decision.incumbent_metrics["auc"] + 0.01
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "2"
    promoted = client.get_model_version(name, "2")
    assert promoted.tags["promotion.decision"] == "promoted"
    assert float(promoted.tags["promotion.challenger_auc"]) == pytest.approx(decision.challenger["auc"], rel=1e-5)
    assert promoted.tags["promotion.incumbent"] == "champion v1"
    assert "PROMOTED" in promoted.description and "AUC" in promoted.description
    assert client.get_model_version(name, "1").tags["promotion.superseded_by"] == "2"

    third = _register(models["weak"], split, settings, tmp_path, "run-3")
    decision = _gate(third["version"], split, settings)
    assert not decision.promote
    refused = client.get_model_version(name, "3")
    assert refused.tags["promotion.decision"] == "rejected"
    assert "< margin" in refused.tags["promotion.reasons"]
    assert "NOT promoted" in refused.description
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "2"
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == "3"

    info = registry.champion_info()
    pd_function = load_quarterly_pd_function(info)
    assert info["version"] == "2" and info["model_uri"] == f"models:/{name}/2" and info["output"] == "pd_quarterly"
    np.testing.assert_allclose(pd_function(split.test), models["strong"].predict_quarterly(split.test))

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}@{CHAMPION}", dst_path=str(tmp_path / "dl")))
    assert {p.name for p in (local / "code" / "models").iterdir()} == set(SERVING_MODULES)  # code travels along
    # a model from code: MLflow keeps the entry file and the JSON artifact, and no pickle anywhere
    assert not [p for p in local.rglob("*") if p.suffix in {".pkl", ".pickle", ".cloudpickle"}]
    assert "python_model.pkl" not in (local / "MLmodel").read_text()
    requirements = (local / "requirements.txt").read_text()
    assert all(f"{package}==" in requirements for package in ("xgboost", "pandas", "numpy", "mlflow"))

    served = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    assert [c.name for c in served.metadata.get_output_schema().inputs] == ["pd_horizon", "pd_quarterly"]
    from models.pd_pyfunc import model_input

    output = served.predict(model_input(split.test.head(50), SPEC))
    assert isinstance(output, pd.DataFrame)
    np.testing.assert_allclose(output["pd_horizon"], models["strong"].predict_pd(split.test.head(50)))


def test_an_unreachable_tracking_store_is_an_error_naming_the_setting(monkeypatch):
    """Not "no champion": the stress test would silently fall back to the benchmark model."""
    from pipelines.adapters.model_registry import RegistryUnavailable

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    registry = ModelRegistry("http://127.0.0.1:9", "loan_pd_xgboost", "loan-pd-model")
    with pytest.raises(RegistryUnavailable, match="STRESS_MLFLOW_TRACKING_URI"):
        registry.champion_info()
