"""The Spark ETL's stages as EMR Serverless job runs (``STRESS_ETL_RUNNER=emr_serverless``), on moto.

What moto checks: the ``ingest`` task writes the stage's job document (SSE-KMS with the configured
key) and starts a job run on the configured application through the Amazon provider's hook, with
the simulation job's driver (the bundle's ``spark_etl.py``, the job's arguments, the archives),
the execution role and the log configuration (its KMS key included), and waits for it to end.
What it cannot check: moto marks a job run ``SUCCESS`` without running anything, so no driver
writes the stage's ``result.json``; the task must then fail with that said (a job that ran and
left nothing is never a success) and publish and record nothing, as the local path does when a
read fails. The job itself runs on local Spark in ``tests/integration/test_spark_etl.py``; the
waiter's failure paths are checked on a stubbed client below.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

BUCKET = "loanstress-etl-emr-test"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/loanstress-emr-job"
AS_OF = date(2025, 12, 31)


@pytest.fixture
def emr_etl(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    import boto3
    from moto import mock_aws

    from pipelines.settings import get_settings

    for name in list(os.environ):
        if name.startswith("STRESS_"):
            monkeypatch.delenv(name)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        key_arn = boto3.client("kms", region_name=REGION).create_key(Description="loanstress")["KeyMetadata"]["Arn"]
        application = boto3.client("emr-serverless", region_name=REGION).create_application(
            name="loanstress-etl", releaseLabel="emr-7.5.0", type="SPARK")["applicationId"]
        for name, value in {"DATA_HOME": str(tmp_path / "data_home"), "ETL_RUNNER": "emr_serverless",
                            "OBJECT_STORE_URI": f"s3://{BUCKET}/stress", "OBJECT_STORE_KMS_KEY_ID": key_arn,
                            "EMR_EXECUTION_ROLE_ARN": ROLE, "EMR_CODE_URI": f"s3://{BUCKET}/code/",
                            "EMR_ETL_APPLICATION_ID": application, "EMR_ETL_POLL_SECONDS": "0.01"}.items():
            monkeypatch.setenv(f"STRESS_{name}", value)
        get_settings.cache_clear()
        yield {"application": application, "key_arn": key_arn}
    get_settings.cache_clear()


def test_an_etl_stage_runs_as_an_emr_serverless_job_run_and_a_run_without_result_fails(emr_etl) -> None:
    import boto3
    import pyarrow.csv as pacsv

    from pipelines.adapters.compute import SparkJobError
    from pipelines.composition import current_adapters
    from pipelines.data.synthetic import generate_loan_book
    from pipelines.tasks import loan_tape
    from pipelines.tasks.runs import run_key

    s3 = boto3.client("s3", region_name=REGION)
    buffer = io.BytesIO()
    pacsv.write_csv(generate_loan_book(50, seed=3, as_of=AS_OF), buffer)
    s3.put_object(Bucket=BUCKET, Key="tapes/tape.csv", Body=buffer.getvalue())
    run_id = "manual__emr_etl"
    job_key = f"staging/{run_key(run_id)}/etl/ingest/job.json"

    with pytest.raises(SparkJobError, match=rf"succeeded but left no result at "
                                            rf"s3://{BUCKET}/stress/{job_key.removesuffix('job.json')}result\.json"):
        loan_tape.ingest(f"s3://{BUCKET}/tapes/tape.csv", AS_OF.isoformat(), run_id)

    emr = boto3.client("emr-serverless", region_name=REGION)
    [summary] = emr.list_job_runs(applicationId=emr_etl["application"])["jobRuns"]
    run = emr.get_job_run(applicationId=emr_etl["application"], jobRunId=summary["id"])["jobRun"]
    submit = run["jobDriver"]["sparkSubmit"]
    assert run["state"] == "SUCCESS" and run["executionRole"] == ROLE
    assert submit["entryPoint"] == f"s3://{BUCKET}/code/spark_etl.py"
    assert submit["entryPointArguments"] == ["--object-store-uri", f"s3://{BUCKET}/stress", "--job-key", job_key,
                                             "--region", REGION, "--kms-key-id", emr_etl["key_arn"]]
    assert f"s3://{BUCKET}/code/loanstress-project.tar.gz#project" in submit["sparkSubmitParameters"]
    assert run["configurationOverrides"]["monitoringConfiguration"]["s3MonitoringConfiguration"] == {
        "logUri": f"s3://{BUCKET}/stress/emr-logs/", "encryptionKeyArn": emr_etl["key_arn"]}

    # The job document the run names is in the store, written with the store's KMS key.
    head = s3.head_object(Bucket=BUCKET, Key=f"stress/{job_key}")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == emr_etl["key_arn"]
    store = current_adapters().object_store
    assert b'"source": "s3://loanstress-etl-emr-test/tapes/tape.csv"' in store.get_bytes(job_key)
    # Nothing published, nothing recorded: no snapshot, no ingestion manifest, no row in the loan store.
    assert store.list_keys("snapshots/") == [] and store.list_keys("ingestions/") == []
    assert current_adapters().loan_store.latest_snapshot_id() is None


def _job_run(state: str, details: str = "running") -> dict:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return {"jobRun": {"applicationId": "app-1", "jobRunId": "run-1",
                       "arn": "arn:aws:emr-serverless:us-east-1:123456789012:/applications/app-1/jobruns/run-1",
                       "createdBy": "arn:aws:iam::123456789012:user/loanstress", "createdAt": now, "updatedAt": now,
                       "executionRole": ROLE, "state": state, "stateDetails": details,
                       "releaseLabel": "emr-7.5.0",
                       "jobDriver": {"sparkSubmit": {"entryPoint": "s3://code/spark_etl.py"}}}}


def test_the_job_run_waiter_fails_with_the_run_id_and_emr_state_details(caplog) -> None:
    import boto3
    from botocore.stub import Stubber

    from pipelines.adapters.compute import SparkJobError, wait_for_job_run

    client = boto3.client("emr-serverless", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    request = {"applicationId": "app-1", "jobRunId": "run-1"}
    sleeps: list[float] = []
    with Stubber(client) as stub, caplog.at_level("INFO", logger="pipelines.adapters.compute"):
        for state in ("SUBMITTED", "RUNNING", "RUNNING"):
            stub.add_response("get_job_run", _job_run(state), request)
        stub.add_response("get_job_run", _job_run("FAILED", "Job failed, ExitCode: 1. OutOfMemoryError"), request)
        with pytest.raises(SparkJobError, match=r"job run run-1 on application app-1 ended FAILED: "
                                                r"Job failed, ExitCode: 1\. OutOfMemoryError"):
            wait_for_job_run(client, "app-1", "run-1", timeout_seconds=3600, poll_seconds=5, sleep=sleeps.append)
        stub.assert_no_pending_responses()
    assert sleeps == [5, 5, 5]
    # Each state once, as it is entered (progress), not once per poll.
    states = [record.args[2] for record in caplog.records if record.msg.startswith("EMR Serverless job run")]
    assert states == ["SUBMITTED", "RUNNING", "FAILED"]


def test_a_job_run_over_its_timeout_is_cancelled_and_fails() -> None:
    import boto3
    from botocore.stub import Stubber

    from pipelines.adapters.compute import SparkJobError, wait_for_job_run

    client = boto3.client("emr-serverless", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    request = {"applicationId": "app-1", "jobRunId": "run-1"}
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with Stubber(client) as stub:
        for _ in range(3):  # at 0, 30 and 60 s; the deadline is 60 s
            stub.add_response("get_job_run", _job_run("RUNNING", "waiting for capacity"), request)
        stub.add_response("cancel_job_run", {"applicationId": "app-1", "jobRunId": "run-1"}, request)
        with pytest.raises(SparkJobError, match=r"run-1 on application app-1 still RUNNING after 60 s "
                                                r"\(STRESS_EMR_ETL_TIMEOUT_SECONDS\); cancelled: waiting for capacity"):
            wait_for_job_run(client, "app-1", "run-1", timeout_seconds=60, poll_seconds=30, sleep=sleep,
                             clock=lambda: now[0])
        stub.assert_no_pending_responses()
