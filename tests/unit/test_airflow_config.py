"""Where a task's MLflow tracking URI comes from: the Airflow Variable, then STRESS_MLFLOW_TRACKING_URI, then
the embedded store. The Variable is given the way Airflow's secrets chain reads it first, as an
``AIRFLOW_VAR_*`` environment variable (the metadata-database path is in the DAG test of the UI)."""

from __future__ import annotations

from pathlib import Path

import pytest

VARIABLE_ENV = "AIRFLOW_VAR_LOANSTRESS_TRACKING_URI"


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """STRESS_* settings of this test only; the composition root back to environment-only afterwards."""
    import os

    from pipelines.composition import resolve_settings_with
    from pipelines.settings import get_settings

    for name in list(os.environ):
        if name.startswith("STRESS_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv(VARIABLE_ENV, raising=False)
    monkeypatch.setenv("STRESS_DATA_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield monkeypatch
    resolve_settings_with(None)
    get_settings.cache_clear()


def _task_tracking_uri() -> str:
    """The tracking URI a task function's adapters use."""
    from pipelines.composition import current_adapters
    from pipelines.tasks.policy import task_entry

    @task_entry
    def a_task() -> str:
        return current_adapters().model_registry.tracking_uri

    return a_task()


@pytest.mark.parametrize(("variable", "environment_uri", "expected"), [
    ("http://mlflow.from-airflow:5000", "http://mlflow.from-env:5000", "http://mlflow.from-airflow:5000"),
    ("  ", "http://mlflow.from-env:5000", "http://mlflow.from-env:5000"),  # a blank Variable is not set
    (None, "http://mlflow.from-env:5000", "http://mlflow.from-env:5000"),
    (None, None, "embedded"),
])
def test_a_task_takes_the_variable_then_the_environment_then_the_embedded_store(
        environment, tmp_path, variable, environment_uri, expected):
    from pipelines.settings import get_settings

    if variable is not None:
        environment.setenv(VARIABLE_ENV, variable)
    if environment_uri is not None:
        environment.setenv("STRESS_MLFLOW_TRACKING_URI", environment_uri)
    get_settings.cache_clear()
    embedded = f"sqlite:///{tmp_path / 'mlflow.sqlite'}"
    assert _task_tracking_uri() == (embedded if expected == "embedded" else expected)


def test_outside_a_task_the_adapters_follow_the_environment_alone(environment):
    """The command line and the services build from STRESS_* settings: no Airflow Variable is read."""
    from pipelines.composition import current_adapters
    from pipelines.settings import get_settings

    environment.setenv(VARIABLE_ENV, "http://mlflow.from-airflow:5000")
    environment.setenv("STRESS_MLFLOW_TRACKING_URI", "http://mlflow.from-env:5000")
    get_settings.cache_clear()
    assert current_adapters().model_registry.tracking_uri == "http://mlflow.from-env:5000"
    assert _task_tracking_uri() == "http://mlflow.from-airflow:5000"
