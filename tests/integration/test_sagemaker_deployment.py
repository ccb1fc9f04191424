"""SageMaker deployment against moto (create/describe calls), and botocore's Stubber for update_endpoint.

moto implements create_model, create_endpoint_config, create_endpoint, describe_* and
create_transform_job (a job it marks Completed at once, running nothing); it has no update_endpoint.
The update path is therefore checked with Stubber, which validates our request against the SageMaker
API model. No test runs a serving container.
"""

from __future__ import annotations

import io
import tarfile

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.adapters.deployment import (
    deploy_champion_to_sagemaker,
    deploy_endpoint,
    endpoint_config_request,
    model_request,
    package_model,
    start_batch_scoring,
    transform_job_request,
    versioned_name,
)
from pipelines.adapters.object_store import open_object_store
from pipelines.settings import Target

REGION = "us-east-1"
ENDPOINT = "loan-pd-champion"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:3.17.2"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"


@pytest.fixture
def aws(monkeypatch):
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("sagemaker", region_name=REGION)


def _requests(version: str, data_url: str = "s3://models/model.tar.gz") -> tuple[dict, dict]:
    name = versioned_name(ENDPOINT, version)
    return (model_request(name, IMAGE, ROLE, data_url, {"model_version": version}),
            endpoint_config_request(name, name, "ml.m5.large", 1))


def test_first_deployment_creates_model_config_and_endpoint(aws):
    result = deploy_endpoint(aws, ENDPOINT, *_requests("1"))
    assert result == {"endpoint_name": ENDPOINT, "endpoint_config": f"{ENDPOINT}-v1", "model_name": f"{ENDPOINT}-v1",
                      "action": "created"}
    endpoint = aws.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == f"{ENDPOINT}-v1"
    model = aws.describe_model(ModelName=f"{ENDPOINT}-v1")
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["Environment"] == {"MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function"}
    assert model["ExecutionRoleArn"] == ROLE
    variant = aws.describe_endpoint_config(EndpointConfigName=f"{ENDPOINT}-v1")["ProductionVariants"][0]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        f"{ENDPOINT}-v1", "ml.m5.large", 1)


def test_redeploying_the_same_version_changes_nothing(aws):
    deploy_endpoint(aws, ENDPOINT, *_requests("1"))
    assert deploy_endpoint(aws, ENDPOINT, *_requests("1"))["action"] == "unchanged"
    assert len(aws.list_models()["Models"]) == 1
    assert len(aws.list_endpoint_configs()["EndpointConfigs"]) == 1


def test_a_new_version_updates_the_existing_endpoint():
    """Stubber: moto has no update_endpoint. Each expected request is checked against the API model."""
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    model, config = _requests("2")
    with Stubber(client) as stub:
        stub.add_client_error("describe_model", "ValidationException", expected_params={"ModelName": f"{ENDPOINT}-v2"})
        stub.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/x"}, model)
        stub.add_client_error("describe_endpoint_config", "ValidationException",
                              expected_params={"EndpointConfigName": f"{ENDPOINT}-v2"})
        stub.add_response("create_endpoint_config", {"EndpointConfigArn": "arn:aws:sagemaker:::endpoint-config/x"},
                          config)
        stub.add_response("describe_endpoint", {
            "EndpointName": ENDPOINT, "EndpointArn": "arn:aws:sagemaker:::endpoint/x",
            "EndpointConfigName": f"{ENDPOINT}-v1", "EndpointStatus": "InService",
            "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-01T00:00:00Z",
        }, {"EndpointName": ENDPOINT})
        stub.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:::endpoint/x"},
                          {"EndpointName": ENDPOINT, "EndpointConfigName": f"{ENDPOINT}-v2"})
        result = deploy_endpoint(client, ENDPOINT, model, config)
        stub.assert_no_pending_responses()
    assert result["action"] == "updated"


def test_names_longer_than_sagemaker_allows_are_refused():
    with pytest.raises(ValueError, match="63"):
        versioned_name("x" * 60, "123")


class _Registry:
    """A registry holding one champion, without MLflow (the artifact download is replaced too)."""

    def __init__(self, info: dict | None) -> None:
        self.info = info

    def champion_info(self) -> dict | None:
        return self.info


def _champion(monkeypatch, tmp_path, version: str = "4") -> _Registry:
    """A registry champion without MLflow: champion_info and the artifact download are replaced."""
    model_dir = tmp_path / "model"
    (model_dir / "artifacts").mkdir(parents=True)
    (model_dir / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    (model_dir / "artifacts" / "xgboost_pd.json").write_text("{}")
    info = {"name": "loan_pd_xgboost", "version": version, "model_uri": f"models:/loan_pd_xgboost/{version}",
            "tracking_uri": "sqlite:///unused.sqlite"}
    monkeypatch.setattr("mlflow.artifacts.download_artifacts", lambda **kwargs: str(model_dir))
    return _Registry(info)


@pytest.fixture
def aws_settings(settings):
    return settings.model_copy(update={
        "target": Target.AWS, "object_store_uri": "s3://pd-models/loanstress", "aws_region": REGION,
        "sagemaker_image_uri": IMAGE, "sagemaker_execution_role_arn": ROLE, "sagemaker_endpoint_name": ENDPOINT,
    })


def test_champion_is_packaged_to_s3_and_deployed(aws, aws_settings, monkeypatch, tmp_path):
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="pd-models")
    registry = _champion(monkeypatch, tmp_path)
    store = open_object_store(aws_settings.object_store_uri, REGION)
    result = deploy_champion_to_sagemaker(aws_settings, registry, store, client=aws)
    assert result["action"] == "created" and result["version"] == "4"
    assert result["model_data_url"] == "s3://pd-models/loanstress/models/loan_pd_xgboost/v4/model.tar.gz"
    container = aws.describe_model(ModelName=f"{ENDPOINT}-v4")["PrimaryContainer"]
    assert container["ModelDataUrl"] == result["model_data_url"]
    body = boto3.client("s3", region_name=REGION).get_object(
        Bucket="pd-models", Key="loanstress/models/loan_pd_xgboost/v4/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        assert {"MLmodel", "artifacts/xgboost_pd.json"} <= set(archive.getnames())


def test_without_a_client_the_deployment_goes_through_the_providers_hook(aws, aws_settings, monkeypatch, tmp_path):
    """The Amazon provider's SageMakerHook on the aws_default connection (an environment connection here)
    creates the resources moto records; with another connection id the hook is asked for that one."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws", "extra": {"region_name": "us-east-1"}}')
    asked = []
    original = SageMakerHook.__init__

    def recording_init(self, *args, **kwargs):
        asked.append(kwargs.get("aws_conn_id"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(SageMakerHook, "__init__", recording_init)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="pd-models")
    result = deploy_champion_to_sagemaker(aws_settings, _champion(monkeypatch, tmp_path, version="5"),
                                          open_object_store("s3://pd-models/prefix", REGION))
    assert asked == ["aws_default"] and result["action"] == "created"
    assert aws.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == f"{ENDPOINT}-v5"


def test_deployment_needs_image_and_role(aws_settings):
    with pytest.raises(ValueError, match="STRESS_SAGEMAKER_IMAGE_URI"):
        deploy_champion_to_sagemaker(aws_settings.model_copy(update={"sagemaker_image_uri": ""}), _Registry(None),
                                     open_object_store("file:///tmp/unused"))


def test_batch_scoring_job_request(aws, aws_settings, monkeypatch, tmp_path):
    registry = _champion(monkeypatch, tmp_path, version="4")
    with pytest.raises(ValueError, match="deploy the champion first"):
        start_batch_scoring("s3://in/", "s3://out/", aws_settings, registry, client=aws)
    deploy_endpoint(aws, ENDPOINT, *_requests("4"))
    job = start_batch_scoring("s3://pd-models/to-score/", "s3://pd-models/scored/", aws_settings, registry,
                              client=aws)
    described = aws.describe_transform_job(TransformJobName=job["job_name"])
    assert described["ModelName"] == f"{ENDPOINT}-v4"
    assert described["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://pd-models/to-score/"
    assert described["TransformInput"]["SplitType"] == "None"  # whole CSVs: MLflow needs the header
    assert described["TransformOutput"]["S3OutputPath"] == "s3://pd-models/scored/"
    # moto reports "Completed" at once without running anything; only the request is really tested.
    expected = transform_job_request(job["job_name"], f"{ENDPOINT}-v4", "s3://pd-models/to-score/",
                                     "s3://pd-models/scored/", "ml.m5.large", 1)
    assert described["TransformResources"] == expected["TransformResources"]


def test_package_puts_the_model_files_at_the_archive_root(tmp_path):
    (tmp_path / "code" / "models").mkdir(parents=True)
    (tmp_path / "MLmodel").write_text("x")
    (tmp_path / "code" / "models" / "pd_xgboost.py").write_text("y")
    with tarfile.open(fileobj=io.BytesIO(package_model(tmp_path))) as archive:
        assert set(archive.getnames()) == {"MLmodel", "code", "code/models", "code/models/pd_xgboost.py"}
