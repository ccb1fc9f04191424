"""Every DAG imports cleanly, pulls no heavy library at parse time, and follows the team's policies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.settings import REPO_ROOT

DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG found"


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
            if not task.is_teardown:  # a teardown cleans up once, whatever happened; it is not retried
                assert task.retries >= 2, f"{dag_id}.{task.task_id} retries {task.retries} < 2"
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has no owner"
