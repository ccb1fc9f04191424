"""The Spark runner on this machine: against the local runner on the standard workload, and a large book.

``simulate_spark_local`` runs the standard workload of ``simulate_standard`` (1,000,000 loans x 3
scenarios x 9 quarters x 1,000 paths, batches of 250,000) as one :class:`SimulationJob` twice in the
same process: through the local runner (every work item with :func:`simulate_work_item`, one after
the other, as mapped tasks run it) and through the ``spark`` runner (``spark-submit`` of
``pipelines/engine/spark_job.py`` on ``local[2]``); the figure is the ratio of their walls, and the
partials of the two runs are checked to be the same bytes.

``simulate_spark_local_scale`` runs a book of ``BENCH_SPARK_LOANS`` loans (default 10,000,000) through
the Spark runner alone, then reduces the first scenario's histograms. Its peak memory is that of the
whole process tree (this process, ``spark-submit``, the driver's JVM, the Python workers), sampled
with psutil; the sum of RSS counts pages shared between forked Python workers once per worker, so it
is an upper bound. The 10,000,000-loan book is ten independently seeded 1,000,000-loan synthetic
books (seeds 1 to 10, LoanIds prefixed by the part), written part by part so generating it never
holds more than one part.

``etl_spark_local_1m`` runs the ``loan_tape`` group's task functions on the 1,000,000-loan CSV tape
with each ETL runner in a fresh process and fails unless Spark published the local run's snapshot
and features, byte for byte.
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

from benchmarks.bench_simulation import AS_OF, BATCH_SIZE, HORIZON, N_LOANS, N_PATHS, SCENARIOS
from benchmarks.common import BENCH_DIR, INPUTS, Timer, benchmark, on_request

SPARK_MASTER = "local[2]"
# The driver only collects the batches' small outputs; the Python workers do the work outside the JVM.
SPARK_CONF = {"spark.ui.enabled": "false", "spark.driver.memory": "1g", "spark.executor.memory": "1g"}
SCALE_LOANS = int(os.environ.get("BENCH_SPARK_LOANS", "10000000"))
PART_LOANS = 1_000_000
PD_HISTORY_LOANS = 10_000


def _scale_features(n_loans: int) -> Path:
    """Features of ``n_loans`` loans (independently seeded 1M-loan parts), row groups of one batch."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipelines.data.features import build_features
    from pipelines.data.synthetic import generate_loan_book

    path = INPUTS / f"features_parts_{n_loans}.parquet"
    if path.exists():
        return path
    INPUTS.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    writer = None
    for part, first in enumerate(range(0, n_loans, PART_LOANS)):
        features = build_features(generate_loan_book(min(PART_LOANS, n_loans - first), part + 1, AS_OF), AS_OF)
        ids = pc.binary_join_element_wise(f"P{part:02d}-", features.column("LoanId"), "")
        features = features.set_column(features.schema.get_field_index("LoanId"), "LoanId", ids.cast(pa.string()))
        if writer is None:
            writer = pq.ParquetWriter(partial, features.schema, compression="zstd")
        writer.write_table(features, row_group_size=BATCH_SIZE)
        del features
    writer.close()
    partial.rename(path)
    return path


def _prepared_job(features_path: Path, run: str, scenarios: tuple[str, ...]):
    """A folder object store holding the features, the scenarios and the job of ``run``; (store, job key)."""
    import shutil

    import pyarrow.parquet as pq

    from pipelines.adapters.object_store import LocalObjectStore
    from pipelines.data.synthetic import generate_performance_history
    from pipelines.engine.batches import SimulationJob, WorkItem, save_scenario
    from pipelines.engine.scenarios import resolve_scenario
    from pipelines.engine.simulation import SimulationConfig, plan_batches

    root = BENCH_DIR / "spark" / run
    shutil.rmtree(root, ignore_errors=True)
    store = LocalObjectStore(root)
    store.local_path("inputs/features.parquet").parent.mkdir(parents=True)
    os.link(features_path, store.local_path("inputs/features.parquet"))
    history = root / "history.parquet"
    generate_performance_history(PD_HISTORY_LOANS, seed=2).to_parquet(history)
    n_loans = pq.ParquetFile(features_path).metadata.num_rows
    items = []
    for scenario_id in scenarios:
        save_scenario(store, f"scenarios/{scenario_id}.json", resolve_scenario(scenario_id, HORIZON))
        items += [WorkItem(scenario_id, f"scenarios/{scenario_id}.json", batch,
                           f"simulation/{scenario_id}/batch-{batch['batch']:05d}")
                  for batch in plan_batches(n_loans, BATCH_SIZE)]
    job = SimulationJob("inputs/features.parquet", _registered_model(history, root / "registry"),
                        SimulationConfig(horizon=HORIZON, n_paths=N_PATHS), items)
    store.put_bytes("job/simulation_job.json", job.to_json())
    return store, "job/simulation_job.json", job


def _registered_model(history: Path, data_home: Path) -> dict:
    """A gate-promoted PD model version trained on ``history`` (the training DAG's task functions, one search
    candidate) in a registry of its own: what every executor loads from MLflow, as in production."""
    from pipelines.composition import current_adapters
    from pipelines.model.selection import resolve_stress_model
    from pipelines.settings import get_settings
    from pipelines.tasks import training

    os.environ["STRESS_DATA_HOME"] = str(data_home)  # this benchmark's own process (benchmarks.run)
    get_settings.cache_clear()
    run = "manual__bench_spark_model"
    split = training.split(training.build_dataset(training.validate_history(
        training.ingest_history(str(history), run), run), run), 8, run)
    trained = training.train(split, 1, run)
    training.promotion_gate(training.register(trained, training.evaluate(split, trained, run), run), run)
    return resolve_stress_model(current_adapters().model_registry, require_champion=True)


class TreeMemory:
    """Peak of the summed RSS of this process and all its descendants, sampled every ``interval`` s."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self._root = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak_mb = 0.0
        self.peak_processes = 0
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            total, count = 0, 0
            for process in [self._root, *self._root.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                    count += 1
                except psutil.NoSuchProcess:
                    continue
            if total / 2**20 > self.peak_mb:
                self.peak_mb, self.peak_processes = total / 2**20, count
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _spark_runner():
    import sys

    from pipelines.adapters.compute import SparkSubmitRunner

    python = os.environ.get("PYSPARK_PYTHON", sys.executable)
    return SparkSubmitRunner(master=SPARK_MASTER, spark_submit=str(Path(sys.executable).parent / "spark-submit"),
                             python=python, conf=SPARK_CONF)


def _npz_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@benchmark
def simulate_spark_local() -> dict[str, float]:
    """The standard workload through the local runner and the Spark runner (local[2]) in one run."""
    from benchmarks.bench_simulation import _features
    from pipelines.engine.batches import simulate_work_item

    _features(N_LOANS)  # writes the standard book's features to the cache if it is not there yet
    features_path = INPUTS / f"features_{N_LOANS}.parquet"
    local_store, _, job = _prepared_job(features_path, "local", SCENARIOS)
    spark_store, spark_key, _ = _prepared_job(features_path, "spark", SCENARIOS)
    with Timer() as local_timer:
        for item in job.items:
            simulate_work_item(local_store, job.features_key, job.pd_model, job.config, item)
    with TreeMemory() as memory, Timer() as spark_timer:
        _spark_runner().run(spark_store.root_uri, spark_key, "us-east-1")
    partials = local_store.list_keys("simulation/")
    different = [key for key in partials
                 if (_npz_members if key.endswith(".npz") else bytes)(spark_store.get_bytes(key))
                 != (_npz_members if key.endswith(".npz") else bytes)(local_store.get_bytes(key))]
    if different or spark_store.list_keys("simulation/") != partials:
        raise AssertionError(f"the Spark partials differ from the local ones: {different[:5]}")
    return {"loans": N_LOANS, "scenarios": len(SCENARIOS), "quarters": HORIZON, "paths": N_PATHS,
            "batches": len(job.items), "spark_master": SPARK_MASTER,
            "local_runner_wall_s": round(local_timer.seconds, 2), "spark_runner_wall_s": round(spark_timer.seconds, 2),
            "spark_over_local": round(spark_timer.seconds / local_timer.seconds, 3),
            "partials_identical": len(partials), "spark_tree_peak_rss_mb": round(memory.peak_mb, 1)}


@on_request
def simulate_spark_local_scale() -> dict[str, float]:
    """``BENCH_SPARK_LOANS`` loans (default 10,000,000) x 3 scenarios through the Spark runner on local[2]."""
    import json

    from pipelines.engine.batches import load_scenario
    from pipelines.engine.simulation import reduce_scenario

    with Timer() as generate_timer:
        features_path = _scale_features(SCALE_LOANS)
    store, job_key, job = _prepared_job(features_path, "scale", SCENARIOS)
    with TreeMemory() as memory, Timer() as spark_timer:
        _spark_runner().run(store.root_uri, job_key, "us-east-1")
    outputs = json.loads(store.get_bytes("job/outputs.json"))
    simulated = sum(o["loans"] for o in outputs if o["scenario_id"] == SCENARIOS[0])
    if simulated != SCALE_LOANS:
        raise AssertionError(f"the Spark job simulated {simulated} loans of {SCALE_LOANS}")
    # The reduce of the severely adverse scenario from its histograms and aggregates alone (the per-loan
    # tables are not read): what the Monte Carlo needs of 10M loans is classes x nodes x paths.
    from models.portfolio_loss import ExposureHistogram

    severe = [item for item in job.items if item.scenario_id == "2026_severely_adverse"]
    with TreeMemory() as reduce_memory, Timer() as reduce_timer:
        histograms = [ExposureHistogram.from_bytes(store.get_bytes(f"{i.output_prefix}/histogram.npz")) for i in severe]
        aggregates = [json.loads(store.get_bytes(f"{i.output_prefix}/aggregates.json")) for i in severe]
        scenario, _ = load_scenario(store, severe[0].scenario_key)
        reduced = reduce_scenario(histograms, aggregates, scenario, job.config)
    return {"loans": SCALE_LOANS, "scenarios": len(SCENARIOS), "quarters": HORIZON, "paths": N_PATHS,
            "batches": len(job.items), "spark_master": SPARK_MASTER, "book_seconds": round(generate_timer.seconds, 1),
            "spark_wall_s": round(spark_timer.seconds, 1),
            "spark_tree_peak_rss_mb": round(memory.peak_mb, 1), "spark_tree_processes": memory.peak_processes,
            "reduce_severely_adverse_s": round(reduce_timer.seconds, 2),
            "reduce_peak_rss_mb": round(reduce_memory.peak_mb, 1),
            "severely_adverse_loss_rate": round(reduced["loss_rate"], 5),
            "severely_adverse_mc_el_z": round((reduced["expected_loss_mc"] - reduced["expected_loss"])
                                              / reduced["expected_loss_mc_se"], 2)}




ETL_RUNNERS = ("local", "spark")


def _etl_in_this_process(runner: str, tape: str, home: str) -> dict[str, Any]:
    """The ``loan_tape`` group's three task functions on ``tape`` with ``STRESS_ETL_RUNNER=runner``."""
    import json
    import shutil
    import sys

    from benchmarks.bench_ingest import AS_OF
    from benchmarks.common import ResidentSampler
    from pipelines.composition import current_adapters
    from pipelines.settings import get_settings
    from pipelines.tasks import loan_tape

    shutil.rmtree(home, ignore_errors=True)
    for name in [name for name in os.environ if name.startswith("STRESS_")]:
        del os.environ[name]
    os.environ.update({"STRESS_DATA_HOME": home, "STRESS_ETL_RUNNER": runner, "STRESS_SPARK_MASTER": SPARK_MASTER,
                       "STRESS_SPARK_SUBMIT": str(Path(sys.executable).parent / "spark-submit"),
                       "STRESS_SPARK_CONF": json.dumps(SPARK_CONF)})
    get_settings.cache_clear()
    run_id = f"manual__bench_{runner}"
    walls: dict[str, float] = {}
    with TreeMemory() as tree, ResidentSampler() as worker:
        with Timer() as timer:
            staged = loan_tape.ingest(tape, AS_OF.isoformat(), run_id)
        walls["ingest_s"] = round(timer.seconds, 1)
        with Timer() as timer:
            manifest = loan_tape.validate(staged, run_id)
        walls["validate_s"] = round(timer.seconds, 1)
        with Timer() as timer:
            features = loan_tape.build_features(manifest, run_id)
        walls["features_s"] = round(timer.seconds, 1)
    store = current_adapters().object_store
    return {**walls, "tree_peak_rss_mb": round(tree.peak_mb, 1),
            "worker_peak_anonymous_rss_mb": round(worker.peak_anonymous_mb, 1),
            "parts": staged.get("parts", 1), "read_by": staged.get("read_by", "worker"),
            "manifest": {key: manifest[key] for key in ("snapshot_id", "content_sha256", "input_sha256",
                                                        "accepted_rows", "quarantined_rows", "quarantine_reasons")},
            "snapshot_sha256": _sha256(store.get_bytes(f"snapshots/{manifest['snapshot_id']}/loans.parquet")),
            "features_sha256": _sha256(store.get_bytes(features["features_key"]))}


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@on_request
def etl_spark_local_1m() -> dict[str, float]:
    """The 1,000,000-loan CSV tape's ingest, validate and features, local runner against Spark on local[2].

    Each runner runs in a fresh process. The Spark run must publish the local run's snapshot (bytes,
    id, content and input hashes), quarantine counts and features bytes, or the benchmark fails.
    ``worker_peak_anonymous_rss_mb`` is the process that runs the task functions (the Airflow worker's
    part); ``tree_peak_rss_mb`` adds spark-submit, the JVM and the Python workers.
    """
    from benchmarks.bench_ingest import _book_csv
    from benchmarks.common import in_fresh_process

    tape = _book_csv()
    runs = {runner: in_fresh_process(_etl_in_this_process, runner, tape, str(BENCH_DIR / "etl" / runner))
            for runner in ETL_RUNNERS}
    local, spark = runs["local"], runs["spark"]
    for key in ("manifest", "snapshot_sha256", "features_sha256"):
        if spark[key] != local[key]:
            raise AssertionError(f"the Spark ETL's {key} differs: {spark[key]} against {local[key]}")
    figures: dict[str, Any] = {"loans": local["manifest"]["accepted_rows"] + local["manifest"]["quarantined_rows"],
                               "spark_master": SPARK_MASTER, "spark_parts": spark["parts"],
                               "spark_read_by": spark["read_by"], "identical_snapshot_and_features": True}
    for runner, run in runs.items():
        figures |= {f"{runner}_{key}": value for key, value in run.items()
                    if key not in {"manifest", "snapshot_sha256", "features_sha256", "parts", "read_by"}}
    return figures
