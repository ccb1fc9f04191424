"""The team's task policy for every DAG: an owner, retries for transient faults only, a failure metric.

DAG files import this module at parse time, so it imports nothing but the standard library at the
top; Airflow's exception and the metrics sink (SQLAlchemy, boto3) load only when they are needed.

Retries are for faults that can heal (a database restarting, a throttled S3 call). An error that
a retry cannot fix (a missing tape, a contract violation, a bad scenario file, a broken result) is
raised as Airflow's ``AirflowFailException`` by :func:`task_entry`, so the run fails at once
instead of holding the DAG's run slot through two backed-off retries.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Deterministic failures: the same inputs give the same error on every attempt.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, LookupError, TypeError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
)


def task_entry(function: Callable[P, R]) -> Callable[P, R]:
    """Mark a task function's permanent errors as non-retryable (the error and its cause stay in the log).

    During the call, the composition root reads the Airflow deployment's Variables
    (:mod:`pipelines.tasks.airflow_config`), so a task's adapters follow what Airflow configures now.

    Its ``run_id`` argument, if it has one, is bound to every log record of the call (JSON logs).
    """

    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from pipelines.composition import settings_resolved_by
        from pipelines.observability.logs import bound_run_id
        from pipelines.tasks.airflow_config import airflow_settings

        try:
            # The deployment's Airflow Variables before STRESS_* settings, read by this call (they can change
            # between two tasks of one worker process).
            with (settings_resolved_by(airflow_settings),
                  bound_run_id(signature.bind_partial(*args, **kwargs).arguments.get("run_id"))):
                return function(*args, **kwargs)
        except PERMANENT_ERRORS as error:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{type(error).__name__}: {error} (not retried: a retry cannot fix it)") \
                from error

    return wrapper


def on_task_failure(context: Mapping[str, Any]) -> None:
    """Emit the failure metric of the task in ``context`` (Airflow calls this after the last retry).

    It never raises: a metrics sink that is down must not replace the task's own error in the log.
    """
    try:
        from pipelines.adapters.metrics_sink import emit_task_failure
        from pipelines.composition import current_adapters

        task_instance = context["ti"]
        emit_task_failure(current_adapters().metrics_sink, task_instance.dag_id, task_instance.task_id,
                          task_instance.run_id)
    except Exception:
        log.exception("could not emit the TaskFailures metric")


DEFAULT_ARGS = {
    "owner": "risk-engineering",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "on_failure_callback": on_task_failure,  # a TaskFailures metric (and its alarm) for every failed task
}
