"""Airflow for the DAG tests: an embedded SQLite metadata database in a temporary folder.

The environment is set when this file is imported, before any test imports Airflow, because
Airflow reads its configuration once at import time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
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
    "STRESS_DATA_HOME": str(_HOME / "data_home"),
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
def stress_settings():
    """Settings read afresh from the environment this file set up."""
    from pipelines.settings import get_settings

    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
