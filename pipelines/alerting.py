"""The ``on_failure_callback`` of every task: a failed task becomes a ``TaskFailures`` metric.

DAG files import this module at parse time, so it imports nothing but the standard library; the
metrics sink (SQLAlchemy, boto3) loads only when a task has actually failed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)


def on_task_failure(context: Mapping[str, Any]) -> None:
    """Emit the failure metric of the task in ``context`` (Airflow calls this after the last retry).

    It never raises: a metrics sink that is down must not replace the task's own error in the log.
    """
    try:
        from pipelines.metrics_sink import emit_task_failure
        from pipelines.settings import get_settings

        task_instance = context["ti"]
        emit_task_failure(task_instance.dag_id, task_instance.task_id, task_instance.run_id, get_settings())
    except Exception:
        log.exception("could not emit the TaskFailures metric")


# The team's task policy for every DAG: an owner, retries with backoff, and a failure metric.
DEFAULT_ARGS = {
    "owner": "risk-engineering",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "on_failure_callback": on_task_failure,  # a TaskFailures metric (and its alarm) for every failed task
}
