"""Event-driven runs: a loan tape landing in the inputs folder starts validation and the stress test.

The convention on the landing folder (``<data_home>/inputs/incoming/``): the sender writes one or more
tapes (``*.csv``, ``*.parquet``), then an empty ``READY`` file. The ``loan_tape_arrival`` DAG's asset
is watched by a ``FileDeleteTrigger`` on ``READY`` (in the triggerer; the file is deleted when it
fires), so a half-written tape is never picked up and one batch of tapes makes one event. The DAG
then claims the tapes (moves them to ``inputs/arrived/<run>/``, so a tape is stress-tested once and
the next delivery cannot overwrite it) and triggers one ``loan_stress_test`` run per tape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.composition import current_adapters
from pipelines.tasks.policy import task_entry
from pipelines.tasks.runs import log, run_key

TAPE_SUFFIXES = (".csv", ".parquet")
READY_MARKER = "READY"


def landing_folder() -> Path:
    """Where tapes land (read by the DAG file at parse time, so the watcher watches the configured folder)."""
    return current_adapters().settings.data_home / "inputs" / "incoming"


def ready_marker() -> str:
    return str(landing_folder() / READY_MARKER)


@task_entry
def claim_tapes(run_id: str) -> list[dict[str, Any]]:
    """Move every landed tape out of the landing folder; one stress-test trigger configuration per tape."""
    landing = landing_folder()
    tapes = sorted(p for p in landing.glob("*") if p.is_file() and p.suffix.lower() in TAPE_SUFFIXES)
    if not tapes:
        raise FileNotFoundError(f"{READY_MARKER} arrived in {landing} without a tape (*.csv, *.parquet) beside it")
    claimed = landing.parent / "arrived" / run_key(run_id)
    claimed.mkdir(parents=True, exist_ok=True)
    configurations = []
    for tape in tapes:
        target = claimed / tape.name
        tape.replace(target)  # same file system: atomic, and the tape leaves the landing folder at once
        log.info("claimed %s as %s", tape.name, target)
        configurations.append({"source_uri": str(target)})
    return configurations
