"""Structured JSON logs of the project's loggers, with the Airflow run id on every line.

:func:`bound_run_id` (entered by every task function through :func:`pipelines.tasks.policy.task_entry`)
puts the run id in a context variable; :class:`JsonFormatter` writes each record as one JSON object
with that run id, so a log pipeline (CloudWatch Logs, Loki) can select one run's lines across tasks,
workers and Spark drivers. ``STRESS_LOG_FORMAT=json`` switches it on (the composition root calls
:func:`configure_logging`); the default leaves Airflow's own task-log format alone.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

PROJECT_LOGGERS = ("loanstress", "pipelines", "models")
_run_id: ContextVar[str | None] = ContextVar("loanstress_run_id", default=None)


@contextmanager
def bound_run_id(run_id: str | None) -> Iterator[None]:
    """Every record logged inside the block carries ``run_id``."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, run id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage(),
                 "run_id": _run_id.get()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(log_format: str, stream=None) -> None:
    """Give the project's loggers one JSON handler (``json``) or leave them to Airflow's (``text``)."""
    if log_format != "json":
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if not isinstance(h.formatter, JsonFormatter)] + [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False  # one line per record, not a second copy in another format
