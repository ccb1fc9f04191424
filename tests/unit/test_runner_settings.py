"""The composition root builds the simulation runner from the settings and refuses half an EMR setup."""

from __future__ import annotations

import pytest

from pipelines.composition import ConfigurationError, build_adapters
from pipelines.settings import SimulationRunner, StressSettings

EMR = {"simulation_runner": "emr_serverless", "object_store_uri": "s3://bank-risk/stress",
       "emr_execution_role_arn": "arn:aws:iam::123456789012:role/emr", "emr_code_uri": "s3://bank-risk/code"}


@pytest.mark.parametrize(("missing", "message"), [
    ("object_store_uri", "STRESS_OBJECT_STORE_URI=s3://"), ("emr_execution_role_arn", "STRESS_EMR_EXECUTION_ROLE_ARN"),
    ("emr_code_uri", "STRESS_EMR_CODE_URI")])
def test_emr_serverless_needs_an_s3_store_a_role_and_the_code(tmp_path, missing: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_adapters(StressSettings(data_home=tmp_path, **{**EMR, missing: ""}))


def test_the_emr_job_driver_names_the_job_and_the_bundle(tmp_path) -> None:
    adapters = build_adapters(StressSettings(data_home=tmp_path, **EMR))
    job_key = "runs/r/simulation/job/simulation_job.json"
    driver = adapters.emr_serverless_job.job_driver("s3://bank-risk/stress", job_key)
    submit = driver["sparkSubmit"]
    assert submit["entryPoint"] == "s3://bank-risk/code/spark_job.py"
    assert submit["entryPointArguments"][:4] == ["--object-store-uri", "s3://bank-risk/stress", "--job-key", job_key]
    assert "spark.executorEnv.PYTHONPATH=./project" in submit["sparkSubmitParameters"]
    assert adapters.emr_serverless_job.log_uri == "s3://bank-risk/stress/emr-logs/"
    etl = adapters.emr_serverless_job.job_driver("s3://bank-risk/stress", "staging/r/etl/ingest/job.json",
                                                 entry_point="spark_etl.py")["sparkSubmit"]
    assert etl["entryPoint"] == "s3://bank-risk/code/spark_etl.py"
    assert etl["sparkSubmitParameters"] == submit["sparkSubmitParameters"]


def test_the_spark_runner_follows_the_settings(tmp_path) -> None:
    settings = StressSettings(data_home=tmp_path, simulation_runner="spark", spark_master="spark://risk:7077",
                              spark_python="/opt/venv/bin/python", spark_conf={"spark.executor.memory": "4g"})
    assert settings.simulation_runner is SimulationRunner.SPARK
    runner = build_adapters(settings).spark_runner
    command = runner.command("file:///store", "runs/r/job.json", "us-east-1")
    assert command[command.index("--master") + 1] == "spark://risk:7077"
    assert command[command.index("--conf") + 1] == "spark.executor.memory=4g"
    assert command[-6:] == ["--object-store-uri", "file:///store", "--job-key", "runs/r/job.json", "--region",
                            "us-east-1"]
    assert runner.environment()["PYSPARK_PYTHON"] == "/opt/venv/bin/python"


def test_the_spark_job_writes_with_the_object_store_kms_key(tmp_path) -> None:
    key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    adapters = build_adapters(StressSettings(data_home=tmp_path, **EMR, object_store_kms_key_id=key))
    submit = adapters.emr_serverless_job.job_driver("s3://bank-risk/stress", "runs/r/job.json")["sparkSubmit"]
    assert submit["entryPointArguments"][-2:] == ["--kms-key-id", key]
    logs = adapters.emr_serverless_job.configuration_overrides()["monitoringConfiguration"]["s3MonitoringConfiguration"]
    assert logs["encryptionKeyArn"] == key
    spark = build_adapters(StressSettings(data_home=tmp_path, simulation_runner="spark", object_store_kms_key_id=key))
    assert spark.spark_runner.command("file:///s", "runs/r/job.json", "us-east-1")[-2:] == ["--kms-key-id", key]
    plain = build_adapters(StressSettings(data_home=tmp_path, **EMR)).emr_serverless_job
    assert "--kms-key-id" not in plain.job_driver("s3://bank-risk/stress", "k")["sparkSubmit"]["entryPointArguments"]
    assert "encryptionKeyArn" not in plain.configuration_overrides()["monitoringConfiguration"][
        "s3MonitoringConfiguration"]


ETL_EMR = {"etl_runner": "emr_serverless", "object_store_uri": "s3://bank-risk/stress",
           "emr_execution_role_arn": "arn:aws:iam::123456789012:role/emr", "emr_code_uri": "s3://bank-risk/code",
           "emr_etl_application_id": "00fabc123", "emr_etl_timeout_seconds": 900}


@pytest.mark.parametrize(("missing", "message"), [
    ("object_store_uri", "STRESS_ETL_RUNNER=emr_serverless needs STRESS_OBJECT_STORE_URI=s3://"),
    ("emr_execution_role_arn", "STRESS_EMR_EXECUTION_ROLE_ARN"), ("emr_code_uri", "STRESS_EMR_CODE_URI"),
    ("emr_etl_application_id", "STRESS_EMR_ETL_APPLICATION_ID")])
def test_the_etl_on_emr_serverless_needs_its_application_role_code_and_s3(tmp_path, missing: str,
                                                                          message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build_adapters(StressSettings(data_home=tmp_path, **{**ETL_EMR, missing: ""}))


def test_the_etl_submitter_follows_the_etl_runner(tmp_path) -> None:
    from pipelines.adapters.compute import EmrServerlessSubmitter, SparkSubmitRunner

    submitter = build_adapters(StressSettings(data_home=tmp_path, **ETL_EMR)).etl_submitter
    assert isinstance(submitter, EmrServerlessSubmitter)
    assert (submitter.application_id, submitter.aws_conn_id, submitter.timeout_seconds) == \
        ("00fabc123", "aws_default", 900)
    # The simulation's job settings, not a copy of them.
    assert submitter.job.execution_role_arn == ETL_EMR["emr_execution_role_arn"]
    assert submitter.job.code_uri == "s3://bank-risk/code"
    assert isinstance(build_adapters(StressSettings(data_home=tmp_path, etl_runner="spark")).etl_submitter,
                      SparkSubmitRunner)


@pytest.mark.parametrize("configured", [
    "alias/loanstress-data", "1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws:kms:us-east-1:111122223333:alias/loanstress-data"])
def test_a_kms_key_that_is_not_a_key_arn_is_described_to_find_its_arn(configured: str) -> None:
    from pipelines.adapters.compute import kms_key_arn

    key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    asked: list[str] = []

    def describe_key(key_id: str) -> dict:
        asked.append(key_id)
        return {"KeyMetadata": {"Arn": key}}

    assert kms_key_arn(configured, describe_key) == key and asked == [configured]
    assert kms_key_arn(key, describe_key) == key and kms_key_arn("", describe_key) == "" and len(asked) == 1
    assert kms_key_arn("arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/abcd-12", describe_key).startswith(
        "arn:aws-us-gov:kms:") and len(asked) == 1


@pytest.mark.parametrize(("code", "refused"), [("NotFoundException", True), ("AccessDeniedException", True),
                                               ("ThrottlingException", False), ("KMSInternalException", False)])
def test_only_kms_refusals_are_configuration_errors(tmp_path, monkeypatch: pytest.MonkeyPatch, code: str,
                                                    refused: bool) -> None:
    """A key KMS cannot name fails the run as misconfigured; throttling or a KMS fault stays retryable."""
    import boto3
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from botocore.exceptions import ClientError
    from botocore.stub import Stubber

    kms = boto3.client("kms", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    monkeypatch.setattr(AwsBaseHook, "conn", property(lambda hook: kms))
    adapters = build_adapters(StressSettings(data_home=tmp_path, **EMR, object_store_kms_key_id="alias/loanstress"))
    with Stubber(kms) as stub:
        stub.add_client_error("describe_key", service_error_code=code, http_status_code=400)
        with pytest.raises(ConfigurationError if refused else ClientError, match=code) as raised:
            _ = adapters.emr_serverless_job
    assert isinstance(raised.value, ConfigurationError) is refused
