"""Which PD model a stress test runs: a required champion is never replaced by the benchmark, and a
configured tracking store that does not exist is an error naming the setting, not an empty registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.adapters.model_registry import ModelRegistry, RegistryUnavailable
from pipelines.adapters.object_store import LocalObjectStore
from pipelines.model.selection import NoChampion, resolve_stress_model
from pipelines.settings import StressSettings, Target


def _registry(tmp_path: Path, configured: bool) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{tmp_path / 'missing' / 'mlflow.sqlite'}", "loan_pd_xgboost", "loan-pd-model",
                         configured=configured)


def test_a_required_champion_that_does_not_exist_fails_instead_of_using_the_benchmark(tmp_path):
    with pytest.raises(NoChampion, match="STRESS_REQUIRE_CHAMPION"):
        resolve_stress_model(_registry(tmp_path, configured=False), str(tmp_path / "history.parquet"), "us-east-1",
                             LocalObjectStore(tmp_path / "objects"), require_champion=True)
    assert not (tmp_path / "history.parquet").exists()  # nothing fitted or generated for a fallback


def test_a_configured_tracking_store_that_does_not_exist_is_an_error_naming_the_setting(tmp_path):
    with pytest.raises(RegistryUnavailable, match=r"STRESS_MLFLOW_TRACKING_URI=.*does not exist"):
        _registry(tmp_path, configured=True).champion_info()
    assert _registry(tmp_path, configured=False).champion_info() is None  # the embedded default, not trained yet


def test_require_champion_defaults_on_for_aws_only():
    assert StressSettings(target=Target.AWS).resolved_require_champion
    assert not StressSettings(target=Target.LOCAL).resolved_require_champion
    assert StressSettings(target=Target.LOCAL, require_champion=True).resolved_require_champion
    assert not StressSettings(target=Target.AWS, require_champion=False).resolved_require_champion
