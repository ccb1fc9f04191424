"""Where a task's MLflow tracking URI comes from: the Airflow Variable, then STRESS_MLFLOW_TRACKING_URI, then
the embedded store. The Variable is given the way Airflow's secrets chain reads it first, as an
``AIRFLOW_VAR_*`` environment variable (the metadata-database path is in tests/dags/test_airflow_variables.py
and the DAG test of the UI)."""

from __future__ import annotations

from pathlib import Path

import pytest

VARIABLE_ENV = "AIRFLOW_VAR_LOANSTRESS_TRACKING_URI"


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """STRESS_* settings of this test only."""
    import os

    from pipelines.settings import get_settings

    for name in list(os.environ):
        if name.startswith("STRESS_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv(VARIABLE_ENV, raising=False)
    monkeypatch.setenv("STRESS_DATA_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield monkeypatch
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


def test_a_variable_set_after_an_earlier_task_is_read_by_the_next_and_its_deletion_falls_back(environment):
    """One worker process, one read of the environment: the Variable is read by each task, not once per process."""
    from pipelines.settings import get_settings

    environment.setenv("STRESS_MLFLOW_TRACKING_URI", "http://mlflow.from-env:5000")
    get_settings.cache_clear()
    assert _task_tracking_uri() == "http://mlflow.from-env:5000"
    environment.setenv(VARIABLE_ENV, "http://mlflow.from-airflow:5000")
    assert _task_tracking_uri() == "http://mlflow.from-airflow:5000"
    environment.setenv(VARIABLE_ENV, "http://mlflow.moved:5000")
    assert _task_tracking_uri() == "http://mlflow.moved:5000"
    environment.delenv(VARIABLE_ENV)
    assert _task_tracking_uri() == "http://mlflow.from-env:5000"


def test_a_task_does_not_leave_its_variables_to_the_code_that_runs_after_it(environment):
    """A DAG file parsed after a task ran (dag.test parses the whole folder) builds from the environment, and the
    next task still reads the Variable: adapters built outside a task are not what a task gets."""
    from pipelines.composition import current_adapters
    from pipelines.settings import get_settings

    environment.setenv(VARIABLE_ENV, "http://mlflow.from-airflow:5000")
    environment.setenv("STRESS_MLFLOW_TRACKING_URI", "http://mlflow.from-env:5000")
    get_settings.cache_clear()
    assert _task_tracking_uri() == "http://mlflow.from-airflow:5000"
    assert current_adapters().model_registry.tracking_uri == "http://mlflow.from-env:5000"
    assert _task_tracking_uri() == "http://mlflow.from-airflow:5000"


def test_adapters_are_reused_while_the_resolved_settings_stay_the_same(environment):
    """A worker process keeps its adapters (and their connection pools) from task to task until a value changes."""
    from pipelines.composition import current_adapters
    from pipelines.tasks.policy import task_entry

    @task_entry
    def a_task():
        return current_adapters()

    environment.setenv(VARIABLE_ENV, "http://mlflow.from-airflow:5000")
    first = a_task()
    assert a_task() is first
    environment.setenv(VARIABLE_ENV, "http://mlflow.moved:5000")
    assert a_task() is not first
