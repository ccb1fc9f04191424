"""Every DAG imports cleanly, parses fast, and follows the team's policies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.settings import REPO_ROOT

DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))
MAX_PARSE_SECONDS = 2.0


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG found"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_parse_time_under_two_seconds(dagbag, dag_file):
    stats = {stat.file.rsplit("/", 1)[-1]: stat.duration for stat in dagbag.dagbag_stats}
    assert dag_file.name in stats
    assert stats[dag_file.name].total_seconds() < MAX_PARSE_SECONDS


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_files_do_not_import_heavy_libraries(dag_file):
    """Parsing must not pull pandas, GX, MLflow or XGBoost: they belong inside tasks."""
    probe = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "heavy = [m for m in ('pandas', 'great_expectations', 'mlflow', 'xgboost', 'sklearn') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(dag_file)], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_policies(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.description, f"{dag_id} has no description"
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id} retries {task.retries} < 2"
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"
