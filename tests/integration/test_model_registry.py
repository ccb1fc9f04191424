"""MLflow registry round trip on a temporary SQLite store: register, challenger alias, promotion gate
(a clearly better model is promoted, a worse one refused, the numbers written on the version), the
champion loaded back as the stress engine's quarterly PD function, and the reviewer's governance
(``approved`` alias, ``review=rejected`` tag) the next stress test's model selection honours."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.feature_spec import load_feature_spec
from models.pd_pyfunc import SERVING_MODULES
from models.pd_xgboost import XGBoostPD
from pipelines.adapters.model_registry import (
    APPROVED,
    CHALLENGER,
    CHAMPION,
    ModelRegistry,
    UntrustedModel,
    load_quarterly_pd_function,
)
from pipelines.composition import build_adapters
from pipelines.model.promotion import PromotionPolicy, run_promotion_gate
from pipelines.model.selection import NoChampion, resolve_stress_model

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
                                       "promotion_brier_tolerance": 0.001, "promotion_max_mean_pd_ratio": 100.0})


def _registry(settings) -> ModelRegistry:
    return build_adapters(settings).model_registry


def _register(model, split, settings, tmp_path, run: str, candidate: str = "xgboost",
              run_mate: XGBoostPD | None = None) -> dict:
    """Register ``model`` as ``candidate``; a logistic candidate's evaluation also needs the XGBoost model of its
    run (``run_mate``: the stability section reads its score)."""
    from pipelines.model.training import evaluate

    evaluation = evaluate(split, SPEC, run_mate or model, {candidate: model.predict_pd(split.test)}, 0.01)
    (tmp_path / run).mkdir()
    (tmp_path / run / "model_card.md").write_text(f"# card of {run}\n")
    provenance = {"source": "synthetic", "data_sha256": "ab" * 32, "airflow_run_id": run, "code_version": "abc"}
    return _registry(settings).log_and_register(model, SPEC, candidate, evaluation, tmp_path / run,
                                                split.test.head(5), provenance, run_name=run)


def _gate(version: str, split, settings):
    (decision,) = run_promotion_gate(_registry(settings), [version], split.test, SPEC.target,
                                     PromotionPolicy.from_settings(settings), context={"airflow_run_id": "test"})
    return decision


def test_register_promote_refuse_and_load_the_champion(split, models, registry_settings, tmp_path):
    import mlflow

    settings = registry_settings
    registry = _registry(settings)
    assert registry.champion_info() is None  # an empty registry

    first = _register(models["weak"], split, settings, tmp_path, "run-1")
    client = registry.client()
    name = settings.pd_registered_model_name
    assert first["version"] == "1"
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == "1"
    assert registry.champion_info() is None
    run = client.get_run(first["mlflow_run_id"])
    assert run.data.tags["airflow_run_id"] == "run-1" and run.data.tags["data_sha256"] == "ab" * 32
    assert (run.data.tags["model_flavour"], run.data.tags["code_version"]) == ("xgboost", "abc")
    assert run.data.metrics["xgboost_auc"] > 0.5 and "xgb.max_depth" in run.data.params
    assert {a.path for a in client.list_artifacts(run.info.run_id, "report")} >= {"report/model_card.md"}

    decision = _gate("1", split, settings)  # no champion, no earlier candidate: calibration only (disabled here)
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

    output = served.predict(model_input(split.test.head(50), models["strong"]))
    assert isinstance(output, pd.DataFrame)
    np.testing.assert_allclose(output["pd_horizon"], models["strong"].predict_pd(split.test.head(50)))


def test_an_unreachable_tracking_store_is_an_error_naming_the_uri(monkeypatch):
    """Not "no champion": the stress test must not run on some other model because the store is down."""
    from pipelines.adapters.model_registry import RegistryUnavailable

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    registry = ModelRegistry("http://127.0.0.1:9", "loan_pd_model", "loan-pd-model", configured=True)
    with pytest.raises(RegistryUnavailable, match=r"STRESS_MLFLOW_TRACKING_URI='http://127.0.0.1:9'"):
        resolve_stress_model(registry, require_champion=False)


def test_a_tracking_store_that_is_not_a_database_is_an_error_naming_the_uri(tmp_path):
    from pipelines.adapters.model_registry import RegistryUnavailable

    garbage = tmp_path / "mlflow.sqlite"
    garbage.write_text("not a database")
    with pytest.raises(RegistryUnavailable, match=f"STRESS_MLFLOW_TRACKING_URI='sqlite:///{garbage}'"):
        resolve_stress_model(ModelRegistry(f"sqlite:///{garbage}", "loan_pd_model", "x", configured=True), False)


# --------------------------------------------------------------------------------------------------
# Governance: the gate over a run's two candidates, the reviewer, and what the next stress test uses
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def benchmarks(split, models) -> dict:
    """The benchmark logistic model fitted on the split, and a clearly worse one: its coefficients but seasoning
    alone, one intercept for every segment (the segment intercepts carry most of the ranking here)."""
    from threadpoolctl import threadpool_limits

    from models.pd_logistic import MacroLogisticPD
    from models.projection import PD_FEATURES

    with threadpool_limits(limits=1, user_api="blas"):
        fitted = MacroLogisticPD(horizon_quarters=4).fit(split.train[list(PD_FEATURES)], split.train[SPEC.target])
    table = fitted.coefficient_table()
    intercept = float(np.mean([v for k, v in table.items() if k.startswith("segment[")]))
    weak = MacroLogisticPD.loads(fitted.dumps())
    weak.coefficients_ = np.array([intercept if k.startswith("segment[") else v if k == "log_age" else 0.0
                                   for k, v in table.items()])
    return {"fitted": fitted, "weak": weak, "run_mate": models["strong"]}


def test_the_gate_judges_a_run_benchmark_first_and_the_reviewer_overrides_it(split, models, benchmarks,
                                                                            registry_settings, tmp_path):
    settings = registry_settings.model_copy(update={"promotion_min_calibrated_band_share": 0.0})
    registry = _registry(settings)
    with pytest.raises(NoChampion, match="no MLflow tracking store yet"):  # nothing trained: never a fallback
        resolve_stress_model(registry, require_champion=False)

    # One training run: the weak benchmark, then the XGBoost model, judged in that order.
    weak = _register(benchmarks["weak"], split, settings, tmp_path, "run-1", "benchmark_logistic", models["strong"])
    strong = _register(models["strong"], split, settings, tmp_path, "run-1x")
    assert weak["flavour"] == "macro_logistic" and strong["flavour"] == "xgboost"
    with pytest.raises(NoChampion, match=r"no champion alias .*STRESS_REQUIRE_CHAMPION is on"):
        resolve_stress_model(registry, require_champion=True)
    with pytest.raises(NoChampion, match="no other version of it passed the promotion gate"):
        resolve_stress_model(registry, require_champion=False)
    first, second = run_promotion_gate(registry, [weak["version"], strong["version"]], split.test, SPEC.target,
                                       PromotionPolicy.from_settings(settings), context={"airflow_run_id": "run-1"})
    assert first.promote and first.incumbent == "none"  # challenger promoted: the first calibrated candidate
    assert second.promote and second.incumbent == "champion v1"  # and the XGBoost model beat it
    used = resolve_stress_model(registry, require_champion=True)
    assert (used["version"], used["alias"], used["flavour"]) == ("2", CHAMPION, "xgboost")
    assert used["note"].startswith("the promotion gate's champion: gate promoted against champion v1")

    # The next run's benchmark is the fitted one: better than the weak one, not better than the XGBoost champion.
    third = _register(benchmarks["fitted"], split, settings, tmp_path, "run-2", "benchmark_logistic",
                      models["strong"])
    (rejected,) = run_promotion_gate(registry, [third["version"]], split.test, SPEC.target,
                                     PromotionPolicy.from_settings(settings), context={"airflow_run_id": "run-2"})
    assert not rejected.promote and rejected.incumbent == "champion v2"  # challenger rejected, with its reasons
    assert any("< margin" in reason for reason in rejected.reasons)
    with pytest.raises(UntrustedModel, match="'rejected', not 'promoted', and no reviewer approved it"):
        load_quarterly_pd_function(registry.version_details(third["version"]))

    # A reviewer rejects the champion: the next stress test does not use it.
    client = registry.client()
    client.set_model_version_tag(registry.model_name, "2", "review", "rejected")
    client.set_model_version_tag(registry.model_name, "2", "review.reason", "segment shift not explained")
    with pytest.raises(NoChampion, match=r"champion v2 .*rejected by a reviewer .*segment shift"):
        resolve_stress_model(registry, require_champion=True)
    fallback = resolve_stress_model(registry, require_champion=False)
    assert (fallback["version"], fallback["alias"]) == ("1", "none")
    assert fallback["note"].startswith("FALLBACK: the champion v2")
    assert "STRESS_REQUIRE_CHAMPION is off" in fallback["note"]
    with pytest.raises(UntrustedModel, match=r"version 2 is not loaded: a reviewer rejected it"):
        load_quarterly_pd_function(registry.version_details("2"))

    # A reviewer approves the gate-rejected benchmark: it is used, and loads, with both verdicts in the note.
    client.set_registered_model_alias(registry.model_name, APPROVED, third["version"])
    approved = resolve_stress_model(registry, require_champion=True)
    assert (approved["version"], approved["alias"], approved["flavour"]) == ("3", APPROVED, "macro_logistic")
    assert approved["note"].startswith("approved by a reviewer")
    assert "gate rejected against champion v2" in approved["note"]
    np.testing.assert_allclose(load_quarterly_pd_function(approved)(split.test),
                               benchmarks["fitted"].predict_quarterly(split.test))
    client.set_model_version_tag(registry.model_name, "3", "review", "rejected")
    with pytest.raises(NoChampion, match="holds the reviewer's 'approved' alias and is tagged review=rejected"):
        resolve_stress_model(registry, require_champion=False)


def test_the_logistic_version_serves_through_its_pyfunc(split, benchmarks, registry_settings, tmp_path):
    import mlflow

    from models.pd_pyfunc import model_input

    registered = _register(benchmarks["fitted"], split, registry_settings, tmp_path, "run-l", "benchmark_logistic",
                           benchmarks["run_mate"])
    served = mlflow.pyfunc.load_model(registered["model_uri"])
    output = served.predict(model_input(split.test.head(50), benchmarks["fitted"]))
    np.testing.assert_allclose(output["pd_horizon"], benchmarks["fitted"].predict_pd(split.test.head(50)))
