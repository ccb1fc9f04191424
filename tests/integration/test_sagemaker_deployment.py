"""SageMaker deployment requests and steps against moto, and the provider's update operator with botocore's Stubber.

moto implements create_model, create_endpoint_config, create_endpoint, the describe_* calls and
create_transform_job (marked Completed at once, running nothing); it has no update_endpoint. The
operator's update path is therefore run with Stubber, which checks every request against the
SageMaker API model. The DAG-level runs are in tests/dags/test_sagemaker_moto.py; no test here runs a
serving container.
"""

from __future__ import annotations

import io
import json
import tarfile

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.adapters.deployment import (
    deployment_steps,
    endpoint_config_request,
    endpoint_request,
    model_request,
    package_model,
    read_transform_output,
    require_deployed_model,
    transform_job_request,
    transform_output_uri,
    versioned_name,
)

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


def _create(client, version: str, endpoint: bool = True) -> None:
    name = versioned_name(ENDPOINT, version)
    client.create_model(**model_request(name, IMAGE, ROLE, "s3://models/model.tar.gz", {"model_version": version}))
    client.create_endpoint_config(**endpoint_config_request(name, name, "ml.m5.large", 1))
    if endpoint:
        client.create_endpoint(**endpoint_request(ENDPOINT, name))


def _steps(client, version: str) -> list[str]:
    name = versioned_name(ENDPOINT, version)
    return deployment_steps(client, name, name, ENDPOINT)


def test_a_first_deployment_needs_every_resource(aws):
    assert _steps(aws, "1") == ["create_model", "create_endpoint_config", "create_endpoint"]


def test_the_served_version_needs_nothing_and_a_new_one_updates_the_endpoint(aws):
    _create(aws, "1")
    assert _steps(aws, "1") == []
    assert _steps(aws, "2") == ["create_model", "create_endpoint_config", "update_endpoint"]


def test_a_half_finished_deployment_resumes_where_it_stopped(aws):
    name = versioned_name(ENDPOINT, "3")
    aws.create_model(**model_request(name, IMAGE, ROLE, "s3://models/model.tar.gz", {}))
    assert _steps(aws, "3") == ["create_endpoint_config", "create_endpoint"]


def test_the_model_request_names_the_serving_contract(aws):
    _create(aws, "1", endpoint=False)
    model = aws.describe_model(ModelName=f"{ENDPOINT}-v1")
    assert model["PrimaryContainer"]["Image"] == IMAGE and model["ExecutionRoleArn"] == ROLE
    assert model["PrimaryContainer"]["Environment"] == {"MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function",
                                                        "SERVING_ENVIRONMENT": "SageMaker"}
    variant = aws.describe_endpoint_config(EndpointConfigName=f"{ENDPOINT}-v1")["ProductionVariants"][0]
    assert (variant["VariantName"], variant["ModelName"], variant["InitialInstanceCount"]) == (
        "AllTraffic", f"{ENDPOINT}-v1", 1)


def test_the_providers_endpoint_operator_updates_the_endpoint():
    """Stubber in place of the hook's client: moto has no update_endpoint. Requests are checked against the
    SageMaker API model, and the operator must call UpdateEndpoint, not CreateEndpoint."""
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerEndpointOperator

    request = endpoint_request(ENDPOINT, f"{ENDPOINT}-v2")
    operator = SageMakerEndpointOperator(task_id="update_endpoint", config=dict(request), operation="update",
                                         wait_for_completion=False, aws_conn_id=None, region_name=REGION)
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    operator.hook.__dict__["conn"] = client  # the hook's cached client
    endpoint = {"EndpointName": ENDPOINT, "EndpointArn": f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/x",
                "EndpointConfigName": f"{ENDPOINT}-v2", "EndpointStatus": "Updating",
                "CreationTime": "2026-01-01T00:00:00Z", "LastModifiedTime": "2026-01-02T00:00:00Z"}
    with Stubber(client) as stub:
        stub.add_response("update_endpoint", {"EndpointArn": endpoint["EndpointArn"],
                                             "ResponseMetadata": {"HTTPStatusCode": 200}}, request)
        stub.add_response("describe_endpoint_config", {
            "EndpointConfigName": f"{ENDPOINT}-v2", "EndpointConfigArn": "arn:aws:sagemaker:::endpoint-config/x",
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": f"{ENDPOINT}-v2"}],
            "CreationTime": "2026-01-02T00:00:00Z"}, {"EndpointConfigName": f"{ENDPOINT}-v2"})
        stub.add_response("describe_endpoint", endpoint, {"EndpointName": ENDPOINT})
        result = operator.execute(context={})
        stub.assert_no_pending_responses()
    assert result["Endpoint"]["EndpointConfigName"] == f"{ENDPOINT}-v2"


def test_names_longer_than_sagemaker_allows_are_refused():
    with pytest.raises(ValueError, match="63"):
        versioned_name("x" * 60, "123")


def test_batch_transform_needs_a_deployed_model(aws):
    with pytest.raises(ValueError, match="run pd_model_training"):
        require_deployed_model(aws, f"{ENDPOINT}-v9")
    _create(aws, "9", endpoint=False)
    require_deployed_model(aws, f"{ENDPOINT}-v9")


def test_the_transform_job_request_is_accepted_and_kept(aws):
    _create(aws, "4", endpoint=False)
    request = transform_job_request("job-1", f"{ENDPOINT}-v4", "s3://bucket/in/", "s3://bucket/out", "ml.m5.large",
                                    2)
    aws.create_transform_job(**request)
    described = aws.describe_transform_job(TransformJobName="job-1")
    assert described["TransformInput"] == request["TransformInput"]
    assert described["TransformInput"]["SplitType"] == "None"  # each object whole, as one Parquet payload
    assert described["TransformOutput"] == request["TransformOutput"]
    assert described["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 2}
    assert described["TransformJobStatus"] == "Completed"  # at once, and nothing ran: moto runs no container


def test_the_output_of_an_input_object_is_its_name_with_out():
    assert transform_output_uri("s3://b/run/output", "stress/run/input/book.parquet") == \
        "s3://b/run/output/book.parquet.out"


def test_the_scoring_response_is_read_in_input_order_and_checked():
    body = json.dumps({"predictions": [{"pd_horizon": 0.04, "pd_quarterly": 0.0101},
                                       {"pd_horizon": 0.08, "pd_quarterly": 0.0206}]}).encode()
    assert read_transform_output(body, expected_rows=2)["pd_quarterly"].tolist() == [0.0101, 0.0206]
    with pytest.raises(ValueError, match="expected 3 rows"):
        read_transform_output(body, expected_rows=3)
    with pytest.raises(ValueError, match="no 'predictions' key"):
        read_transform_output(b'[{"pd_quarterly": 0.01}]', expected_rows=1)
    with pytest.raises(ValueError, match="'pd_quarterly'"):
        read_transform_output(json.dumps({"predictions": [{"label": 1}]}).encode(), expected_rows=1)


def test_package_puts_the_model_files_at_the_archive_root(tmp_path):
    (tmp_path / "code" / "models").mkdir(parents=True)
    (tmp_path / "MLmodel").write_text("x")
    (tmp_path / "code" / "models" / "pd_xgboost.py").write_text("y")
    with tarfile.open(fileobj=io.BytesIO(package_model(tmp_path))) as archive:
        assert set(archive.getnames()) == {"MLmodel", "code", "code/models", "code/models/pd_xgboost.py"}
