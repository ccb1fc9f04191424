"""Compute adapter: where the simulation batches of a run execute.

``STRESS_SIMULATION_RUNNER`` picks one (the composition root builds it):

* ``local``: one Airflow mapped task per (scenario, batch) on the Airflow workers (no adapter needed);
* ``spark``: one ``spark-submit`` of :mod:`pipelines.engine.spark_job` that the simulate task starts and
  waits for (:class:`SparkSubmitRunner`; ``local[N]`` on the worker, or a standalone/YARN/Kubernetes
  master);
* ``emr_serverless``: the same job on EMR Serverless, through the Amazon provider's operators in the DAG
  (:class:`EmrServerlessJob` holds what they need).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPARK_JOB = Path(__file__).resolve().parent.parent / "engine" / "spark_job.py"
# The loan tape's ingestion, validation and features on Spark (STRESS_ETL_RUNNER=spark).
ETL_JOB = Path(__file__).resolve().parent.parent / "data" / "spark_etl.py"
PROJECT_ROOT = SPARK_JOB.parents[2]


class SparkJobError(RuntimeError):
    """spark-submit failed; the message carries the end of its log."""


def job_argument_parser(description: str) -> argparse.ArgumentParser:
    """The command line the Spark jobs read: what :func:`job_arguments` writes (one definition of both sides)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--object-store-uri", required=True)
    parser.add_argument("--job-key", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--kms-key-id", default="", help="SSE-KMS key of the store's writes; empty: SSE-S3")
    return parser


def job_arguments(store_uri: str, job_key: str, region: str, kms_key_id: str = "") -> list[str]:
    """The arguments of the Spark jobs (:mod:`pipelines.engine.spark_job`, :mod:`pipelines.data.spark_etl`; the
    SSE-KMS key only when one is configured)."""
    return ["--object-store-uri", store_uri, "--job-key", job_key, "--region", region,
            *(["--kms-key-id", kms_key_id] if kms_key_id else [])]


@dataclass(frozen=True)
class SparkSubmitRunner:
    """Run the Spark job with ``spark-submit`` and wait for it (its log goes to the task's log)."""

    master: str = "local[2]"
    spark_submit: str = "spark-submit"
    python: str = sys.executable
    conf: dict[str, str] = field(default_factory=dict)
    kms_key_id: str = ""  # the object store's SSE-KMS key: the job's own writes use it too

    def command(self, store_uri: str, job_key: str, region: str, script: Path = SPARK_JOB) -> list[str]:
        """The spark-submit of ``script`` (the simulation job, or :data:`ETL_JOB`) on the job at ``job_key``."""
        conf = [arg for key, value in sorted(self.conf.items()) for arg in ("--conf", f"{key}={value}")]
        name = "loanstress-simulate" if script == SPARK_JOB else "loanstress-etl"
        return [self.spark_submit, "--master", self.master, "--name", name, *conf,
                str(script), *job_arguments(store_uri, job_key, region, self.kms_key_id)]

    def environment(self) -> dict[str, str]:
        """The submitting process's environment, with the project importable by the driver and the workers."""
        path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, "PYSPARK_PYTHON": self.python, "PYSPARK_DRIVER_PYTHON": self.python,
                "PYTHONPATH": path}

    def run(self, store_uri: str, job_key: str, region: str, script: Path = SPARK_JOB) -> None:
        completed = subprocess.run(self.command(store_uri, job_key, region, script), env=self.environment(),
                                   capture_output=True, text=True)
        sys.stderr.write(completed.stderr[-20000:])
        if completed.returncode != 0:
            raise SparkJobError(f"spark-submit of {job_key} exited with {completed.returncode}:\n"
                                f"{completed.stderr[-4000:]}")


@dataclass(frozen=True)
class EmrServerlessJob:
    """What the Amazon provider's EMR Serverless operators need to run the Spark job of a run.

    ``code_uri`` is the S3 folder where ``make spark-bundle``'s output was uploaded: ``spark_job.py``
    (the entry point) and ``loanstress-project.tar.gz`` (the project's packages and data files,
    unpacked by Spark as ``project`` and put on the Python path: the macro history is read from
    files beside the packages, which a ``--py-files`` zip cannot serve), plus
    ``loanstress-env.tar.gz``, a packed Python 3.11 environment of the lock (docs/scale_out.md),
    unpacked as ``environment``.
    """

    release_label: str
    execution_role_arn: str
    code_uri: str
    log_uri: str
    region: str
    kms_key_id: str = ""  # the object store's SSE-KMS key: the job's writes and its logs use it

    def job_driver(self, store_uri: str, job_key: str, entry_point: str = SPARK_JOB.name) -> dict[str, Any]:
        """The ``jobDriver`` of a run of ``entry_point`` (the simulation job, or ``spark_etl.py``) on a job document."""
        code = self.code_uri.rstrip("/")
        parameters = " ".join([
            f"--archives {code}/loanstress-env.tar.gz#environment,{code}/loanstress-project.tar.gz#project",
            "--conf spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON=./environment/bin/python",
            "--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python",
            "--conf spark.emr-serverless.driverEnv.PYTHONPATH=./project",
            "--conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python",
            "--conf spark.executorEnv.PYTHONPATH=./project",
        ])
        return {"sparkSubmit": {
            "entryPoint": f"{code}/{entry_point}",
            "entryPointArguments": job_arguments(store_uri, job_key, self.region, self.kms_key_id),
            "sparkSubmitParameters": parameters,
        }}

    def configuration_overrides(self) -> dict[str, Any]:
        logs = {"logUri": self.log_uri, **({"encryptionKeyArn": self.kms_key_id} if self.kms_key_id else {})}
        return {"monitoringConfiguration": {"s3MonitoringConfiguration": logs}}
