"""A loan tape landing in the object store starts validation and the stress test, without a person.

Airflow 3 event-driven scheduling: the asset ``incoming_loan_tape`` is watched in the triggerer by the
target's watcher (``pipelines/tasks/arrival.py``): locally a ``FileDeleteTrigger`` on the landing
folder's ``READY`` file; on AWS (``STRESS_TARGET=aws``) the common-messaging provider's
``MessageQueueTrigger`` on the SQS queue that the landing prefix's S3 event notifications feed
(``STRESS_ARRIVAL_QUEUE_URL``, docs/event_driven.md). Each event runs this DAG, whose shape is the same
on both: ``claim_tapes`` turns the event into the tapes it announced (the S3 URIs in the queue
messages, or the files moved out of the landing folder), and ``start_stress_test`` triggers one
``loan_stress_test`` run per tape with the tape as its source; that DAG's own ``loan_tape`` group
validates it first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, dag, task

from pipelines.tasks.arrival import arrival_watcher
from pipelines.tasks.policy import DEFAULT_ARGS

INCOMING_LOAN_TAPE = Asset(name="incoming_loan_tape", uri="file://loanstress/incoming_loan_tape",
                           watchers=[arrival_watcher()])


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
    def claim_tapes(run_id: str, triggering_asset_events: Any = None) -> list[dict]:
        from pipelines.tasks.arrival import claim_tapes as claim

        extras = [event.extra for events in (triggering_asset_events or {}).values() for event in events]
        return claim(run_id, extras)

    TriggerDagRunOperator.partial(task_id="start_stress_test", trigger_dag_id="loan_stress_test").expand(
        conf=claim_tapes())


loan_tape_arrival()
