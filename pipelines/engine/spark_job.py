"""The simulation batches of one run as a PySpark job (``spark-submit pipelines/engine/spark_job.py``).

The driver reads the :class:`~pipelines.engine.batches.SimulationJob` the plan's runner wrote to the
object store, makes one Spark task per (scenario, batch), and each task calls the same
:func:`~pipelines.engine.batches.simulate_work_item` as a local mapped Airflow task, writing the same
keyed partial results. Spark only decides *where* a batch runs: the random streams are keyed by
loan, seed, scenario and quarter, so the partials are the same bytes whichever runner produced them.
The driver then writes the batches' outputs beside the job (``outputs.json``) for the Airflow task
that waits on the job.

Arguments: ``--object-store-uri`` (``file://`` or ``s3://``), ``--job-key`` (the job's key in that
store), ``--region`` and, when the store encrypts with SSE-KMS, ``--kms-key-id``. No settings are
read here: everything comes from the job document, so an EMR Serverless driver needs no ``STRESS_*``
environment.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any


def outputs_key(job_key: str) -> str:
    """Where the driver leaves the batches' outputs: beside the job document."""
    return f"{job_key.rpartition('/')[0]}/outputs.json"


def _open_store(store_uri: str, region: str, kms_key_id: str):
    from pipelines.adapters.object_store import ServerSideEncryption, open_object_store

    return open_object_store(store_uri, region, ServerSideEncryption(kms_key_id))


def _simulate_partition(store_uri: str, region: str, kms_key_id: str, job_json: bytes, items: list[dict[str, Any]]):
    """Run on an executor: simulate this partition's work items (one store client per partition)."""
    from pipelines.engine.batches import SimulationJob, WorkItem, simulate_work_item

    store = _open_store(store_uri, region, kms_key_id)
    job = SimulationJob.from_json(job_json)
    for item in items:
        yield simulate_work_item(store, job.features_key, job.pd_model, job.config, WorkItem(**item))


def run(store_uri: str, job_key: str, region: str, kms_key_id: str = "") -> list[dict[str, Any]]:
    """Simulate every work item of the job on the active Spark cluster; returns the outputs in job order."""
    from pyspark.sql import SparkSession

    from pipelines.engine.batches import SimulationJob, check_job_outputs

    store = _open_store(store_uri, region, kms_key_id)
    job_json = store.get_bytes(job_key)
    job = SimulationJob.from_json(job_json)
    spark = SparkSession.builder.appName(f"loanstress-simulate {job_key}").getOrCreate()
    try:
        items = [dataclasses.asdict(item) for item in job.items]
        # One partition per batch: a batch is the unit of work, as a mapped task is locally.
        rdd = spark.sparkContext.parallelize(items, numSlices=len(items))
        outputs = rdd.mapPartitions(
            lambda part: _simulate_partition(store_uri, region, kms_key_id, job_json, list(part)))
        checked = check_job_outputs(job, outputs.collect())
    finally:
        spark.stop()
    store.put_bytes(outputs_key(job_key), json.dumps(checked, indent=2).encode())
    return checked


def main(argv: list[str]) -> None:
    from pipelines.adapters.compute import job_argument_parser

    args = job_argument_parser(__doc__.splitlines()[0]).parse_args(argv)
    outputs = run(args.object_store_uri, args.job_key, args.region, args.kms_key_id)
    print(f"simulated {len(outputs)} batches of {args.job_key}")


if __name__ == "__main__":
    main(sys.argv[1:])
