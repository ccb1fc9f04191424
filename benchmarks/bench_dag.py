"""The quarterly stress test as it runs: the whole ``loan_stress_test`` DAG on a 1,000,000-loan tape.

Airflow's ``dag.test()`` runs every task in this process (the local executor's work, without the
scheduler's polling), on an embedded SQLite metadata database under ``.bench/dag``. The benchmark
PD model is estimated once before the timed run (the stress test loads a fitted model; it never
fits one), so the figure is the run a data engineer triggers each quarter. Each task's wall time is
read from its task instance; mapped tasks are summed over their map indices.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from benchmarks.bench_ingest import AS_OF, _book_csv
from benchmarks.common import BENCH_DIR, Timer, benchmark, peak_rss_mb

SCENARIOS = ["2026_baseline", "2026_severely_adverse", "rate_hike_300bp"]


def _airflow_environment(home) -> dict[str, str]:
    from pipelines.settings import REPO_ROOT

    return {
        "AIRFLOW_HOME": str(home / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "STRESS_DATA_HOME": str(home / "data_home"),
    }


def airflow_with_a_champion(home):
    """Airflow in ``home`` (its metadata database migrated once) after a ``pd_model_training`` run.

    A registered champion first, as in production (one search candidate: its training is not timed);
    returns the DagBag of the project's DAGs.
    """
    (home / "airflow").mkdir(parents=True, exist_ok=True)
    os.environ.update(_airflow_environment(home))
    if not (home / "airflow" / "airflow.db").exists():
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=os.environ.copy(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    training = bag.get_dag("pd_model_training").test(run_conf={"search_budget": 1})
    if str(training.state) != "success":
        raise RuntimeError(f"pd_model_training ended {training.state}")
    return bag


def stress_test(bag, tape: str):
    """The ``loan_stress_test`` DAG run of ``tape`` with :data:`SCENARIOS`; raises unless it succeeded."""
    run = bag.get_dag("loan_stress_test").test(
        run_conf={"source_uri": tape, "as_of_date": AS_OF.isoformat(), "scenarios": SCENARIOS})
    if str(run.state) != "success":
        raise RuntimeError(f"loan_stress_test ended {run.state}")
    return run


@benchmark
def dag_run_1m() -> dict[str, float]:
    """Wall time of the whole DAG run and of each task, and the peak memory of the process."""
    tape = _book_csv()
    home = BENCH_DIR / "dag"
    shutil.rmtree(home / "data_home", ignore_errors=True)
    bag = airflow_with_a_champion(home)
    with Timer() as timer:
        run = stress_test(bag, tape)
    tasks: dict[str, float] = {}
    for instance in run.get_task_instances():
        name = instance.task_id.removeprefix("loan_tape.")
        tasks[name] = tasks.get(name, 0.0) + (instance.end_date - instance.start_date).total_seconds()
    figures: dict[str, float] = {"loans": 1_000_000, "scenarios": len(SCENARIOS), "wall_s": round(timer.seconds, 1)}
    figures |= {f"task_{name}_s": round(seconds, 1) for name, seconds in sorted(tasks.items())}
    figures["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return figures
