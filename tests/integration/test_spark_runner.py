"""The Spark runner gives the local runner's partial results, byte for byte, and the same reduced results.

The same plan runs twice through the task functions the DAG calls: once as local mapped tasks
(``simulate`` per batch) and once as one ``spark-submit`` on Spark ``local[2]``
(``simulate_on_spark``); each run's ``reduce`` then combines its own partials.
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from pipelines.settings import CapitalApproach, RWAPath

AS_OF = date(2025, 12, 31)
SCENARIOS = ("2026_severely_adverse", "rate_hike_300bp")
LOCAL_RUN, SPARK_RUN = "manual__local-runner", "manual__spark-runner"


@pytest.fixture
def spark_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from pipelines.settings import get_settings

    for name in list(os.environ):
        if name.startswith("STRESS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STRESS_DATA_HOME", str(tmp_path / "data_home"))
    monkeypatch.setenv("STRESS_SIMULATION_RUNNER", "spark")
    monkeypatch.setenv("STRESS_SPARK_MASTER", "local[2]")
    monkeypatch.setenv("STRESS_SPARK_SUBMIT", str(Path(sys.executable).parent / "spark-submit"))
    monkeypatch.setenv("STRESS_SPARK_CONF", json.dumps({"spark.ui.enabled": "false"}))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def plan(spark_settings, tmp_path: Path) -> dict:
    """A plan of two scenarios x three batches of a 900-loan book, its inputs in the run's object store."""
    from pipelines.composition import current_adapters
    from pipelines.data.features import build_features
    from pipelines.data.synthetic import generate_loan_book, generate_performance_history
    from pipelines.engine.batches import save_scenario
    from pipelines.engine.scenarios import resolve_scenario
    from pipelines.engine.simulation import plan_batches
    from pipelines.model.selection import resolve_stress_model
    from pipelines.tasks.stress import _scenario_key

    store = current_adapters().object_store
    history = tmp_path / "history.parquet"
    generate_performance_history(2000, seed=4).to_parquet(history)
    features = build_features(generate_loan_book(900, seed=21, as_of=AS_OF), AS_OF)
    store.put_parquet("staging/features.parquet", features)
    for run_id in (LOCAL_RUN, SPARK_RUN):
        for scenario_id in SCENARIOS:
            save_scenario(store, _scenario_key(run_id, scenario_id), resolve_scenario(scenario_id, 4))
    return {"scenarios": list(SCENARIOS), "batches": plan_batches(features.num_rows, 300),
            "features_key": "staging/features.parquet",
            "snapshot_id": "snapshot-test", "as_of": AS_OF.isoformat(), "horizon": 4, "n_paths": 300, "seed": 17,
            "pd_model": resolve_stress_model(_trained_registry(history), require_champion=True)}


def _trained_registry(history: Path):
    """The registry after the training DAG's task functions ran on ``history`` (one search candidate): the
    gate leaves a champion, which every Spark executor loads from MLflow like the local runner."""
    from pipelines.composition import current_adapters
    from pipelines.tasks import training

    run = "manual__spark_runner_model"
    split = training.split(training.build_dataset(training.validate_history(
        training.ingest_history(str(history), run), run), run), 8, run)
    trained = training.train(split, 1, run)
    training.promotion_gate(training.register(trained, training.evaluate(split, trained, run), run), run)
    return current_adapters().model_registry


def _npz_members(data: bytes) -> dict[str, bytes]:
    """The arrays of an .npz, as the bytes of each member (the zip container also holds write times)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_spark_runner_writes_the_local_partials_and_reduces_to_the_same_results(plan) -> None:
    from pipelines.composition import current_adapters
    from pipelines.tasks import stress
    from pipelines.tasks.runs import run_prefix

    store = current_adapters().object_store
    local_outputs = [stress.simulate(plan, item["scenario_id"], item["batch"], LOCAL_RUN)
                     for item in stress.simulation_work_items(plan)]
    spark_outputs = stress.simulate_on_spark(plan, SPARK_RUN)
    assert spark_outputs == local_outputs and len(spark_outputs) == 6

    local_keys = store.list_keys(f"{run_prefix(LOCAL_RUN)}/simulation/")
    spark_keys = store.list_keys(f"{run_prefix(SPARK_RUN)}/simulation/")
    partials = [key.removeprefix(run_prefix(LOCAL_RUN)) for key in local_keys]
    assert len(partials) == 6 * 4  # loans, histogram, segment histogram, aggregates per batch
    assert [key.removeprefix(run_prefix(SPARK_RUN)) for key in spark_keys if "/job/" not in key] == partials
    for partial in partials:
        local = store.get_bytes(run_prefix(LOCAL_RUN) + partial)
        spark = store.get_bytes(run_prefix(SPARK_RUN) + partial)
        if partial.endswith(".npz"):
            assert _npz_members(spark) == _npz_members(local), partial
        else:
            assert spark == local, partial

    for scenario_id in SCENARIOS:
        reduced = {run: stress.reduce(plan, scenario_id, run) for run in (LOCAL_RUN, SPARK_RUN)}
        local, spark = (json.loads(store.get_bytes(reduced[run]["result_key"])) for run in (LOCAL_RUN, SPARK_RUN))
        assert local["metrics"]["expected_loss"] > 0
        for result in (local, spark):
            result["provenance"].pop("airflow_run_id")
            result.pop("AffectedLoans")
            result.pop("SegmentPathLosses")
        assert spark == local
        assert store.get_bytes(reduced[SPARK_RUN]["loans_key"]) == store.get_bytes(reduced[LOCAL_RUN]["loans_key"])
        assert _npz_members(store.get_bytes(reduced[SPARK_RUN]["segment_losses_key"])) == _npz_members(
            store.get_bytes(reduced[LOCAL_RUN]["segment_losses_key"]))


def test_a_failed_spark_job_fails_the_task_with_its_log(plan) -> None:
    from pipelines.adapters.compute import SparkJobError
    from pipelines.composition import current_adapters
    from pipelines.tasks import stress

    broken = {**plan, "features_key": "staging/no-such-features.parquet"}
    with pytest.raises(SparkJobError, match=r"spark-submit of .* exited with") as raised:
        stress.simulate_on_spark(broken, SPARK_RUN)
    assert "no-such-features" in str(raised.value)
    assert not current_adapters().object_store.list_keys("runs/manual__spark-runner/simulation/2026")


def test_the_simulation_job_round_trips_through_json() -> None:
    from pipelines.engine.batches import SimulationJob, WorkItem
    from pipelines.engine.simulation import CapitalAssumptions, SimulationConfig

    config = SimulationConfig(horizon=5, n_paths=123, seed=9, factor_persistence=0.4,
                              capital=replace(CapitalAssumptions(), approach=CapitalApproach.IRB,
                                              rwa_path=RWAPath.PROJECTED, starting_cet1=1.5e9))
    job = SimulationJob("f.parquet", {"name": "loan_pd_model", "version": "1"}, config,
                        [WorkItem("s", "s.json", {"batch": 0, "start": 0, "stop": 10}, "out/batch-00000")])
    assert SimulationJob.from_json(job.to_json()) == job
    assert SimulationJob.from_json(job.to_json()).config.capital.approach is CapitalApproach.IRB


def test_job_outputs_must_cover_every_batch_once() -> None:
    from pipelines.engine.batches import SimulationJob, WorkItem, check_job_outputs
    from pipelines.engine.simulation import SimulationConfig

    items = [WorkItem("s", "s.json", {"batch": b, "start": 0, "stop": 1}, f"out/{b}") for b in (0, 1)]
    job = SimulationJob("f", {}, SimulationConfig(), items)
    outputs = [{"scenario_id": "s", "batch": 1, "loans": 1}, {"scenario_id": "s", "batch": 0, "loans": 1}]
    assert [o["batch"] for o in check_job_outputs(job, outputs)] == [0, 1]
    with pytest.raises(RuntimeError, match="missing"):
        check_job_outputs(job, outputs[:1])
    with pytest.raises(RuntimeError):
        check_job_outputs(job, [*outputs, outputs[0]])
