"""What every task shares: the run's key in the object store and its step records.

Each task's output (what it returns through XCom) is also kept under ``runs/<run>/steps/`` so every
number of a run can be traced after the fact, and a re-run of a task replaces its own record.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import date, datetime
from typing import Any

from pipelines.adapters.object_store import ObjectStore

log = logging.getLogger("loanstress")


def run_key(run_id: str) -> str:
    """A run id made safe for object keys (Airflow run ids contain ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


def run_prefix(run_id: str) -> str:
    return f"runs/{run_key(run_id)}"


def record_step(store: ObjectStore, run_id: str, step: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Keep a step's output under ``runs/<run>/steps/`` and return it (it is also the task's XCom)."""
    store.put_bytes(step_key(run_id, step), json.dumps(payload, indent=2, default=str).encode())
    return payload


def read_run_steps(store: ObjectStore, run_id: str) -> dict[str, dict[str, Any]]:
    """Every recorded step output of a run, by step name (for the command line and audits)."""
    prefix = f"{run_prefix(run_id)}/steps/"
    return {key.removeprefix(prefix).removesuffix(".json"): json.loads(store.get_bytes(key))
            for key in store.list_keys(prefix)}


def resolve_as_of(as_of_param: str | None, logical_date: datetime | None, run_after: datetime | None) -> str:
    """The as-of date of a run: the trigger form's date, else the logical date, else when the run was due.

    A run triggered through the REST API may have no logical date; it still has ``run_after``.
    """
    if as_of_param:
        try:
            return date.fromisoformat(as_of_param).isoformat()
        except ValueError as error:
            raise ValueError(f"as-of date {as_of_param!r} is not a YYYY-MM-DD date") from error
    moment = logical_date or run_after
    if moment is None:
        raise ValueError("the run has neither an as-of date parameter, a logical date nor a run_after time")
    return moment.date().isoformat()


def allocation_key(run_id: str) -> str:
    """Where the ``optimise`` task keeps a run's allocation document (read back by the services)."""
    return f"{run_prefix(run_id)}/optimisation/allocation.json"


def step_key(run_id: str, step: str) -> str:
    """Where :func:`record_step` keeps a step's output."""
    return f"{run_prefix(run_id)}/steps/{step}.json"
