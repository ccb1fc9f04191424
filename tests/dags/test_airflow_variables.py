"""The tracking-URI Variable as one worker process sees it across the tasks of a run (one dag.test() run).

In dag.test() every task runs in the test's process, and before the run Airflow parses the whole DAG folder
(``loan_tape_arrival`` asks the composition root for its settings at parse time, outside any task). Each
task must read the Variable as it is when that task runs, from the metadata database: set by an earlier
task of the run, then deleted by another, after which the environment's URI holds again.
"""

from __future__ import annotations

from datetime import datetime

ENVIRONMENT_URI = "http://mlflow.from-env:5000"
VARIABLE_URI = "http://mlflow.from-airflow:5000"


def test_each_task_reads_the_variable_as_it_is_when_the_task_runs(airflow_db, stress_settings, tmp_path, monkeypatch):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.sdk import Variable, chain, dag, task

    from pipelines.composition import current_adapters
    from pipelines.settings import get_settings
    from pipelines.tasks.airflow_config import TRACKING_URI_VARIABLE
    from pipelines.tasks.policy import task_entry

    @task_entry
    def tracking_uri() -> str:
        return current_adapters().model_registry.tracking_uri

    @dag(dag_id="tracking_uri_variable", schedule=None, start_date=datetime(2025, 1, 1), catchup=False)
    def tracking_uri_variable() -> None:
        @task
        def before() -> str:
            return tracking_uri()

        @task
        def set_variable() -> None:
            Variable.set(TRACKING_URI_VARIABLE, VARIABLE_URI)

        @task
        def while_set() -> str:
            return tracking_uri()

        @task
        def delete_variable() -> None:
            Variable.delete(TRACKING_URI_VARIABLE)

        @task
        def after_delete() -> str:
            return tracking_uri()

        chain(before(), set_variable(), while_set(), delete_variable(), after_delete())

    monkeypatch.setenv("STRESS_MLFLOW_TRACKING_URI", ENVIRONMENT_URI)
    get_settings.cache_clear()
    variable_dag = tracking_uri_variable()
    # dag.test runs only a DAG serialized in a bundle: this one joins the DAG folder's bundle.
    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(tmp_path))
    bag.bag_dag(variable_dag)
    sync_bag_to_db(bag, "dags-folder", None)
    run = variable_dag.test()
    assert str(run.state) == "success"
    seen = {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in run.get_task_instances()
            if ti.task_id in {"before", "while_set", "after_delete"}}
    assert seen == {"before": ENVIRONMENT_URI, "while_set": VARIABLE_URI, "after_delete": ENVIRONMENT_URI}
