"""The EMR Serverless branch of the simulate step, run by ``dag.test()`` against moto.

What moto checks: the runner branch picks the group and skips the other runners; the job
configuration task writes the run's simulation job and hands the operators its job driver; the
application is created, waited for and given the job run (entry point, arguments naming the job
document in the run's store, role, archives, log location); the job sensor sees the run finish; the
application is stopped and deleted (teardowns) and the DAG's clean_up removes the run's partials.
What it cannot check: moto marks a job run ``SUCCESS`` without running anything, so no batch is
simulated and the driver's ``outputs.json`` never appears; ``job_outputs`` therefore fails here,
which also shows that a job that wrote nothing fails the run (nothing reduced, nothing published)
while the teardowns still remove the application. The Spark job itself runs on local Spark in
``tests/integration/test_spark_runner.py``; the packed environment, the EMR release's Python, IAM
and S3 permissions are not exercised.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

BUCKET = "loanstress-emr-test"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/loanstress-emr-job"
AS_OF = date(2025, 12, 31)
EMR_TASKS = ("job_config", "create_application", "wait_for_application", "start_job", "wait_for_job")


@pytest.fixture
def emr_settings(stress_settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    import boto3
    from moto import mock_aws

    from pipelines.settings import get_settings

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("STRESS_SIMULATION_RUNNER", "emr_serverless")
    monkeypatch.setenv("STRESS_OBJECT_STORE_URI", f"s3://{BUCKET}/stress")
    monkeypatch.setenv("STRESS_EMR_EXECUTION_ROLE_ARN", ROLE)
    monkeypatch.setenv("STRESS_EMR_CODE_URI", f"s3://{BUCKET}/code/")
    # EMR Serverless creates an application in state CREATED; moto's starts as STARTED, which the provider's
    # "application created" waiter (run by the create operator whatever wait_for_completion says) never accepts.
    monkeypatch.setattr("moto.emrserverless.models.APPLICATION_STATUS", "CREATED")
    get_settings.cache_clear()
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        yield get_settings()
    get_settings.cache_clear()


def test_the_emr_serverless_branch_of_the_dag_on_moto(airflow_db, small_performance_history, emr_settings,
                                                      tmp_path) -> None:
    import boto3
    from airflow.dag_processing.dagbag import DagBag

    from pipelines.adapters.results_store import ResultsStore
    from pipelines.data.export import write_table
    from pipelines.data.synthetic import generate_loan_book
    from pipelines.settings import REPO_ROOT
    from pipelines.tasks.runs import run_key

    tape = str(tmp_path / "tape.csv")
    write_table(generate_loan_book(120, seed=5, as_of=AS_OF), tape)
    # A DAG of its own: dag.test(run_conf=...) leaves the conf in the DAG's params for later runs of the same object.
    dag = DagBag(str(REPO_ROOT / "dags" / "loan_stress_test.py")).get_dag("loan_stress_test")
    run = dag.test(run_conf={"source_uri": tape, "as_of_date": AS_OF.isoformat(), "scenarios": ["2026_baseline"],
                             "batch_size": 100})
    states = {ti.task_id.removeprefix("emr_serverless."): str(ti.state) for ti in run.get_task_instances()}
    assert {name: states[name] for name in EMR_TASKS} == dict.fromkeys(EMR_TASKS, "success")
    assert states["work_items"] == states["simulate_on_spark"] == "skipped"
    assert states["job_outputs"] == "failed"  # moto ran no Spark driver: nothing to reduce, the run fails
    assert states["reduce"] == "upstream_failed" and str(run.state) == "failed"
    assert states["stop_application"] == states["delete_application"] == "success"

    emr = boto3.client("emr-serverless", region_name=REGION)
    [application] = emr.list_applications()["applications"]
    assert application["state"] == "TERMINATED" and application["releaseLabel"] == emr_settings.emr_release_label
    [job_run] = emr.list_job_runs(applicationId=application["id"])["jobRuns"]
    detail = emr.get_job_run(applicationId=application["id"], jobRunId=job_run["id"])["jobRun"]
    submit = detail["jobDriver"]["sparkSubmit"]
    assert detail["executionRole"] == ROLE
    assert submit["entryPoint"] == f"s3://{BUCKET}/code/spark_job.py"
    arguments = dict(zip(submit["entryPointArguments"][::2], submit["entryPointArguments"][1::2], strict=True))
    assert arguments["--object-store-uri"] == f"s3://{BUCKET}/stress"
    assert f"s3://{BUCKET}/code/loanstress-project.tar.gz#project" in submit["sparkSubmitParameters"]
    assert detail["configurationOverrides"]["monitoringConfiguration"]["s3MonitoringConfiguration"]["logUri"] \
        == f"s3://{BUCKET}/stress/emr-logs/"

    # The job document was under the run's simulation prefix, which the DAG's clean_up removed.
    assert arguments["--job-key"] == f"runs/{run_key(run.run_id)}/simulation/job/simulation_job.json"
    assert states["clean_up"] == "success"
    assert ResultsStore(emr_settings.resolved_loan_store_url).run_status(run.run_id, "loan_stress_test")["status"] \
        == "failed_nothing_published"
    left = boto3.client("s3", region_name=REGION).list_objects_v2(
        Bucket=BUCKET, Prefix=f"stress/runs/{run_key(run.run_id)}/simulation/").get("KeyCount")
    assert left == 0
