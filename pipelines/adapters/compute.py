"""Compute adapter: where the simulation batches of a run execute.

``STRESS_SIMULATION_RUNNER`` picks one (the composition root builds it):

* ``local``: one Airflow mapped task per (scenario, batch) on the Airflow workers (no adapter needed);
* ``spark``: one ``spark-submit`` of :mod:`pipelines.engine.spark_job` that the simulate task starts and
  waits for (:class:`SparkSubmitRunner`; ``local[N]`` on the worker, or a standalone/YARN/Kubernetes
  master);
* ``emr_serverless``: the same job on EMR Serverless, through the Amazon provider's operators in the DAG
  (:class:`EmrServerlessJob` holds what they need).

The loan tape's ETL stages (``STRESS_ETL_RUNNER``) are run by an ``EtlSubmitter``: the
:class:`SparkSubmitRunner`, or :class:`EmrServerlessSubmitter`, which starts each stage as a job run of
the same job driver on a standing application through the provider's ``EmrServerlessHook`` and waits.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SPARK_JOB = Path(__file__).resolve().parent.parent / "engine" / "spark_job.py"
# The loan tape's ingestion, validation and features on Spark (STRESS_ETL_RUNNER=spark).
ETL_JOB = Path(__file__).resolve().parent.parent / "data" / "spark_etl.py"
PROJECT_ROOT = SPARK_JOB.parents[2]


# A KMS key ARN (not an alias, not a bare key id): what EMR Serverless's ``encryptionKeyArn`` accepts.
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")


def kms_key_arn(key_id: str, describe_key: Callable[[str], dict[str, Any]]) -> str:
    """The ARN of the KMS key ``key_id`` (an id, an alias or its ARN, or a key ARN), or ``""`` for none.

    S3 takes any of the four forms as ``SSEKMSKeyId``, but EMR Serverless takes only a key ARN for the
    encryption of its logs; ``describe_key`` (KMS ``DescribeKey``) names the key behind an alias or id.
    """
    if not key_id or _KMS_KEY_ARN.match(key_id):
        return key_id
    return str(describe_key(key_id)["KeyMetadata"]["Arn"])


class SparkJobError(RuntimeError):
    """A Spark job failed (spark-submit's exit, an EMR Serverless job run's end); the message says why."""


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
    kms_key_id: str = ""  # the object store's SSE-KMS key, as configured: the job's writes use it
    log_key_arn: str = ""  # the ARN of that key (kms_key_arn): the job's S3 logs are encrypted with it

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
        logs = {"logUri": self.log_uri, **({"encryptionKeyArn": self.log_key_arn} if self.log_key_arn else {})}
        return {"monitoringConfiguration": {"s3MonitoringConfiguration": logs}}


# EMR Serverless job-run states (the provider's EmrServerlessHook.JOB_* sets, without importing it at module level).
_JOB_SUCCESS = frozenset({"SUCCESS"})
_JOB_FAILURE = frozenset({"FAILED", "CANCELLING", "CANCELLED"})


def wait_for_job_run(client: Any, application_id: str, job_run_id: str, *, timeout_seconds: float,
                     poll_seconds: float, sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Poll ``get_job_run`` until the run ends; log each state it enters; its ``jobRun`` on ``SUCCESS``.

    A failed or cancelled run, or one still going after ``timeout_seconds`` (then cancelled, so it
    does not go on spending), raises :class:`SparkJobError` with the run's id and ``stateDetails``.
    The provider's own waiter only logs the state on each poll and raises a generic waiter error,
    which would hide the reason EMR gives.
    """
    deadline = clock() + timeout_seconds
    state = ""
    while True:
        run = client.get_job_run(applicationId=application_id, jobRunId=job_run_id)["jobRun"]
        if run["state"] != state:
            state = run["state"]
            log.info("EMR Serverless job run %s on %s: %s %s", job_run_id, application_id, state,
                     run.get("stateDetails", ""))
        if state in _JOB_SUCCESS:
            return run
        if state in _JOB_FAILURE:
            raise SparkJobError(f"EMR Serverless job run {job_run_id} on application {application_id} ended "
                                f"{state}: {run.get('stateDetails') or 'no state details'}")
        if clock() >= deadline:
            client.cancel_job_run(applicationId=application_id, jobRunId=job_run_id)
            raise SparkJobError(f"EMR Serverless job run {job_run_id} on application {application_id} still "
                                f"{state} after {timeout_seconds:g} s (STRESS_EMR_ETL_TIMEOUT_SECONDS); "
                                f"cancelled: {run.get('stateDetails') or 'no state details'}")
        sleep(poll_seconds)


@dataclass(frozen=True)
class EmrServerlessSubmitter:
    """Run a Spark job as a job run on a standing EMR Serverless application and wait (the ETL stages).

    The job run is the simulation's (:class:`EmrServerlessJob`: the bundle's entry point in S3, the
    packed environment and project, the logs and their KMS key), so both jobs ship and run alike.
    Unlike the simulation, whose DAG creates an application per run, an ETL stage is one step of a
    task: it runs on ``application_id``, created once with auto-start and auto-stop, so three short
    stages do not each wait for an application to be created and started.
    """

    job: EmrServerlessJob
    application_id: str
    aws_conn_id: str
    timeout_seconds: float = 4 * 3600.0
    poll_seconds: float = 30.0

    def client(self) -> Any:
        """The ``emr-serverless`` client of the provider's hook on the Airflow connection ``aws_conn_id``."""
        from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook

        return EmrServerlessHook(aws_conn_id=self.aws_conn_id, region_name=self.job.region).conn

    def run(self, store_uri: str, job_key: str, region: str, script: Path = SPARK_JOB) -> None:
        """Start ``script`` (its name in the bundle) on the job document at ``job_key`` and wait for the run.

        ``region`` is the store's, the one the job run's arguments carry (:attr:`EmrServerlessJob.region`).
        """
        client = self.client()
        name = f"loanstress-{script.stem}-{job_key}"[:256]
        started = client.start_job_run(
            applicationId=self.application_id, executionRoleArn=self.job.execution_role_arn, name=name,
            jobDriver=self.job.job_driver(store_uri, job_key, script.name),
            configurationOverrides=self.job.configuration_overrides())
        job_run_id = started["jobRunId"]
        log.info("started EMR Serverless job run %s (%s) on application %s", job_run_id, name, self.application_id)
        wait_for_job_run(client, self.application_id, job_run_id, timeout_seconds=self.timeout_seconds,
                         poll_seconds=self.poll_seconds)
