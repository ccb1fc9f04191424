"""Which PD model a stress test runs: nothing registered is an error, never an unregistered model; a configured
tracking store that does not exist is an error naming the setting, not an empty registry; and the monitoring's
back-test is out of time, or flagged in-sample and then not judged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.adapters.model_registry import ModelRegistry, RegistryUnavailable
from pipelines.model.selection import NoChampion, resolve_stress_model
from pipelines.settings import StressSettings, Target


def _registry(tmp_path: Path, configured: bool) -> ModelRegistry:
    return ModelRegistry(f"sqlite:///{tmp_path / 'missing' / 'mlflow.sqlite'}", "loan_pd_model", "loan-pd-model",
                         configured=configured)


@pytest.mark.parametrize("require_champion", [True, False])
def test_no_registry_yet_fails_whatever_the_setting(tmp_path, require_champion):
    with pytest.raises(NoChampion, match=r"no MLflow tracking store yet .*run pd_model_training"):
        resolve_stress_model(_registry(tmp_path, configured=False), require_champion)
    assert not (tmp_path / "missing").exists()  # a read never creates the store


def test_a_configured_tracking_store_that_does_not_exist_is_an_error_naming_the_setting(tmp_path):
    with pytest.raises(RegistryUnavailable, match=r"STRESS_MLFLOW_TRACKING_URI=.*does not exist"):
        resolve_stress_model(_registry(tmp_path, configured=True), require_champion=False)
    assert _registry(tmp_path, configured=False).champion_info() is None  # the embedded default, not trained yet


def test_require_champion_defaults_on_for_aws_only():
    assert StressSettings(target=Target.AWS).resolved_require_champion
    assert not StressSettings(target=Target.LOCAL).resolved_require_champion
    assert StressSettings(target=Target.LOCAL, require_champion=True).resolved_require_champion
    assert not StressSettings(target=Target.AWS, require_champion=False).resolved_require_champion


def _history(quarters: int = 12, loans: int = 400, seed: int = 3) -> pd.DataFrame:
    """A history whose default flag follows the credit score, so a score-based PD discriminates."""
    rng = np.random.default_rng(seed)
    dates = pd.period_range("2022Q1", periods=quarters, freq="Q").to_timestamp()
    score = rng.uniform(500, 800, loans)
    frame = pd.DataFrame({"ObservationQuarter": np.repeat(dates, loans), "CreditScore": np.tile(score, quarters)})
    frame["DefaultFlag"] = (rng.uniform(size=len(frame)) < 0.2 * (800 - frame["CreditScore"]) / 300).astype(int)
    return frame


def test_the_backtest_uses_only_quarters_after_the_training_window(monkeypatch):
    from pipelines.model import monitoring

    monkeypatch.setattr("pipelines.data.features.history_pd_features", lambda frame: frame)
    pd_function = lambda frame: (800 - frame["CreditScore"].to_numpy()) / 1500  # noqa: E731
    result = monitoring.backtest(_history(), pd_function, quarters=4, alpha=0.01, oot_start_quarter="2024Q3")
    assert not result["in_sample"] and result["window"] == "2024Q3..2024Q4"  # 2 quarters after the window
    assert result["rows"] == 800 and 0.5 < result["auc"] < 1
    assert result["note"].startswith("out of time (from 2024Q3")
    after = monitoring.backtest(_history(), pd_function, 4, 0.01, oot_start_quarter="2026Q1")
    assert after["rows"] == 0 and after["auc"] is None and "nothing to back-test out of time" in after["note"]


def test_an_in_sample_backtest_is_flagged_and_its_records_are_not_judged(monkeypatch):
    from pipelines.compliance.rules import model_observations
    from pipelines.model import monitoring

    monkeypatch.setattr("pipelines.data.features.history_pd_features", lambda frame: frame)
    pd_function = lambda frame: (800 - frame["CreditScore"].to_numpy()) / 1500  # noqa: E731
    result = monitoring.backtest(_history(), pd_function, quarters=4, alpha=0.01, oot_start_quarter=None)
    assert result["in_sample"] and result["window"] == "2024Q1..2024Q4" and result["auc"] > 0.5
    assert result["note"].startswith("IN-SAMPLE")
    auc, calibration = model_observations(result, None)[:2]
    assert (auc.value, calibration.value) == (None, None)  # "Not Evaluated", never "Compliant"
    assert auc.note.startswith("IN-SAMPLE") and f"in-sample AUC {result['auc']}" in auc.note
    out_of_time = monitoring.backtest(_history(), pd_function, 4, 0.01, oot_start_quarter="2023Q1")
    assert model_observations(out_of_time, None)[0].value == out_of_time["auc"]
