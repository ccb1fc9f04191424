"""A loan tape landing in the inputs folder starts validation and the stress test, without a person.

Airflow 3 event-driven scheduling: the asset ``incoming_loan_tape`` is watched (in the triggerer) by a
``FileDeleteTrigger`` on the landing folder's ``READY`` file (``pipelines/tasks/arrival.py`` explains
the convention). Each event runs this DAG: ``claim_tapes`` moves the landed tapes aside, and
``start_stress_test`` triggers one ``loan_stress_test`` run per tape with the tape as its source; that
DAG's own ``loan_tape`` group validates it first. On AWS the same asset is fed by S3 event
notifications through SQS (docs/event_driven.md).
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.providers.standard.triggers.file import FileDeleteTrigger
from airflow.sdk import Asset, AssetWatcher, dag, task

from pipelines.tasks.arrival import ready_marker
from pipelines.tasks.policy import DEFAULT_ARGS

INCOMING_LOAN_TAPE = Asset(
    name="incoming_loan_tape", uri="file://loanstress/incoming_loan_tape",
    watchers=[AssetWatcher(name="landing_folder_ready", trigger=FileDeleteTrigger(filepath=ready_marker(),
                                                                                  poke_interval=10))],
)


@dag(
    dag_id="loan_tape_arrival",
    description="When a loan tape lands in the inputs folder, start the stress test (validation first) on it.",
    schedule=[INCOMING_LOAN_TAPE],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["stress-test", "event-driven"],
    doc_md=__doc__,
)
def loan_tape_arrival() -> None:
    @task
    def claim_tapes(run_id: str) -> list[dict]:
        from pipelines.tasks.arrival import claim_tapes as claim

        return claim(run_id)

    TriggerDagRunOperator.partial(task_id="start_stress_test", trigger_dag_id="loan_stress_test").expand(
        conf=claim_tapes())


loan_tape_arrival()
