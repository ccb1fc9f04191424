"""Airflow for the DAG tests: an embedded SQLite metadata database in a temporary folder.

The environment is set when this file is imported, before any test imports Airflow, because
Airflow reads its configuration once at import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.settings import REPO_ROOT

_HOME = Path(tempfile.mkdtemp(prefix="loanstress-airflow-"))
os.environ.update({
    "AIRFLOW_HOME": str(_HOME / "airflow"),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME / 'airflow' / 'airflow.db'}",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
})


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database, created once per session."""
    (_HOME / "airflow").mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=os.environ.copy(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _HOME


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO_ROOT / "dags"))


@pytest.fixture
def stress_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings of one DAG test: a data home of its own, so no test sees another's stores or models."""
    from pipelines.settings import get_settings

    for name in list(os.environ):
        if name.startswith("STRESS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STRESS_DATA_HOME", str(tmp_path / "data_home"))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def _small_history_file() -> Path:
    from pipelines.data.synthetic import generate_performance_history

    path = _HOME / "inputs" / "performance_history_3000.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    generate_performance_history(3000, seed=5).to_parquet(path)
    return path


@pytest.fixture(scope="session")
def _trained_registry(airflow_db: Path, dagbag, _small_history_file: Path) -> str:
    """The MLflow tracking URI of a registry the real pd_model_training DAG trained once, on the small history.

    The gate leaves a champion in it (the benchmark logistic model, judged first, or the XGBoost model if it
    beat it); the DAG tests that score or simulate use it as STRESS_MLFLOW_TRACKING_URI and only read it.
    """
    from pipelines.settings import get_settings

    home = _HOME / "trained_registry"
    saved = {name: value for name, value in os.environ.items() if name.startswith("STRESS_")}
    for name in saved:
        del os.environ[name]
    os.environ.update({"STRESS_DATA_HOME": str(home), "STRESS_PD_TRAINING_THREADS": "1"})
    get_settings.cache_clear()
    try:
        run = dagbag.get_dag("pd_model_training").test(run_conf={
            "history_source_uri": str(_small_history_file), "holdout_quarters": 8, "search_budget": 1})
        assert str(run.state) == "success", "pd_model_training failed: no registry for the DAG tests"
        uri = get_settings().resolved_mlflow_tracking_uri
    finally:
        for name in [n for n in os.environ if n.startswith("STRESS_")]:
            del os.environ[name]
        os.environ.update(saved)
        get_settings.cache_clear()
    return uri


@pytest.fixture
def small_performance_history(_small_history_file: Path, _trained_registry: str, stress_settings,
                              monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 3,000-loan synthetic performance history as STRESS_PERFORMANCE_HISTORY_URI, for one test, and the
    registry pd_model_training trained on it as STRESS_MLFLOW_TRACKING_URI (a champion to score with)."""
    from pipelines.settings import get_settings

    monkeypatch.setenv("STRESS_PERFORMANCE_HISTORY_URI", str(_small_history_file))
    monkeypatch.setenv("STRESS_MLFLOW_TRACKING_URI", _trained_registry)
    get_settings.cache_clear()
    yield _small_history_file
    get_settings.cache_clear()
