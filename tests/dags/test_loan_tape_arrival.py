"""The local event-driven path end to end: a tape and READY land, the watcher fires, the arrival DAG
claims the tape and triggers the stress test on it, and that run validates and stress-tests the tape.

The triggerer and the scheduler are not running here: the test runs the asset watcher's own trigger
(``FileDeleteTrigger`` from the parsed DAG) until it fires, then runs what the scheduler would start
on that asset event (``loan_tape_arrival``) and what its trigger operator starts (``loan_stress_test``
with the claimed tape), each with ``dag.test()``.
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest

AS_OF = date(2025, 12, 31)


def _watcher_trigger():
    """The trigger of the asset the arrival DAG is scheduled on, from the DAG file parsed with these settings."""
    from airflow.dag_processing.dagbag import DagBag

    from pipelines.settings import REPO_ROOT

    bag = DagBag(str(REPO_ROOT / "dags" / "loan_tape_arrival.py"))
    assert bag.import_errors == {}
    [asset] = bag.dags["loan_tape_arrival"].timetable.asset_condition.objects
    [watcher] = asset.watchers
    return watcher.trigger


async def _first_event(trigger):
    async for event in trigger.run():
        return event
    return None


def test_a_landed_tape_is_validated_and_stress_tested(airflow_db, small_performance_history, stress_settings) -> None:
    from airflow.models.dagrun import DagRun

    from pipelines.adapters.results_store import ResultsStore
    from pipelines.data.export import write_table
    from pipelines.data.synthetic import generate_loan_book
    from pipelines.tasks.arrival import landing_folder

    landing = landing_folder()
    assert landing == stress_settings.data_home / "inputs" / "incoming"
    trigger = _watcher_trigger()
    assert Path(trigger.filepath) == landing / "READY"
    trigger.poke_interval = 0.1

    landing.mkdir(parents=True)
    write_table(generate_loan_book(150, seed=8, as_of=AS_OF), str(landing / "branch_book.csv"))
    (landing / "READY").touch()
    event = asyncio.run(asyncio.wait_for(_first_event(trigger), timeout=60))
    assert event is not None and not (landing / "READY").exists()

    from airflow.dag_processing.dagbag import DagBag

    from pipelines.settings import REPO_ROOT

    bag = DagBag(str(REPO_ROOT / "dags"))
    arrival = bag.get_dag("loan_tape_arrival").test()
    assert str(arrival.state) == "success"
    assert list(landing.iterdir()) == []  # the tape left the landing folder
    [triggered] = DagRun.find(dag_id="loan_stress_test", run_type="operator_triggered")  # by start_stress_test
    claimed = Path(triggered.conf["source_uri"])
    assert claimed.name == "branch_book.csv" and claimed.is_file() and "arrived" in claimed.parts

    stress = bag.get_dag("loan_stress_test").test(run_conf={**triggered.conf, "as_of_date": AS_OF.isoformat(),
                                                            "scenarios": ["2026_baseline"]})
    assert str(stress.state) == "success"
    published = ResultsStore(stress_settings.resolved_loan_store_url).simulations_of_run(stress.run_id)
    assert [r["ScenarioDescription"].startswith("Federal Reserve") for r in published] == [True]


def test_ready_without_a_tape_fails_clearly(stress_settings) -> None:
    from pipelines.tasks.arrival import claim_tapes, landing_folder

    landing_folder().mkdir(parents=True)
    with pytest.raises(Exception, match="without a tape"):
        claim_tapes("manual__empty", [])
