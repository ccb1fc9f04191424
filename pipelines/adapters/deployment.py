"""Serving the champion PD model: a SageMaker endpoint and batch transform (aws), or local HTTP/in-process.

**SageMaker** (``STRESS_MODEL_SERVING=sagemaker``, the default of ``STRESS_TARGET=aws``). The calls that
change SageMaker are made by the Amazon provider's operators (``SageMakerModelOperator``,
``SageMakerEndpointConfigOperator``, ``SageMakerEndpointOperator``, ``SageMakerTransformOperator``; the
task groups of :mod:`pipelines.tasks.sagemaker`), all on the Airflow connection ``STRESS_AWS_CONN_ID``
(``aws_default``). This module builds their configuration and decides, from ``describe_*`` calls made
through the provider's ``SageMakerHook`` on the same connection, which of them a deployment needs
(:func:`deployment_steps`), so a re-run is idempotent and a half-finished one heals:

1. ``create_model`` ``<endpoint>-v<version>`` unless it exists: image ``STRESS_SAGEMAKER_IMAGE_URI``,
   the champion's MLflow model directory packaged as ``model.tar.gz`` in the object store
   (:func:`package_model`; SageMaker unpacks it into ``/opt/ml/model``, where the serving image reads
   the ``MLmodel`` file), role ``STRESS_SAGEMAKER_EXECUTION_ROLE_ARN``, :data:`CONTAINER_ENVIRONMENT`;
2. ``create_endpoint_config`` of the same name (one production variant) unless it exists;
3. ``create_endpoint`` when the endpoint does not exist, ``update_endpoint`` when it serves another
   configuration (SageMaker swaps the fleet without downtime), nothing when it serves this version.

The serving container contract (image, entry point, ``/ping``, ``/invocations``, payloads) is stated in
``docs/deployment.md``. Batch transform (:func:`transform_job_request`) sends each input object whole,
as Parquet, to the same model and reads back MLflow's JSON response (:func:`read_transform_output`).

**local**: the stress test loads the champion in process
(:func:`pipelines.adapters.model_registry.load_quarterly_pd_function`);
``make serve-model`` (``loanstress serve-model``) serves it over HTTP with
``mlflow models serve -m models:/<name>@champion --env-manager local``.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.adapters.object_store import ObjectStore
from pipelines.settings import StressSettings

VARIANT_NAME = "AllTraffic"
# The MLflow serving image serves the pyfunc flavour and knows it runs on SageMaker from these variables
# (what `mlflow sagemaker deploy` sets, mlflow.sagemaker._get_deployment_config).
CONTAINER_ENVIRONMENT = {"MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function", "SERVING_ENVIRONMENT": "SageMaker"}
MAX_NAME_LENGTH = 63  # SageMaker resource names
# Batch transform: each S3 object is one request (SplitType None), sent as Parquet, which MLflow's scoring
# server reads with its column types; the response is MLflow's JSON {"predictions": [...]}.
TRANSFORM_CONTENT_TYPE = "application/vnd.apache.parquet"
TRANSFORM_ACCEPT = "application/json"
TRANSFORM_MAX_PAYLOAD_MB = 100
TRANSFORM_OUTPUT_SUFFIX = ".out"  # SageMaker names each output object <input object name>.out
PREDICTION_COLUMN = "pd_quarterly"  # of models.pd_pyfunc.OUTPUT_COLUMNS: what the stress engine projects with


def versioned_name(endpoint_name: str, version: str) -> str:
    """SageMaker model and endpoint-config name of a registry version."""
    name = f"{endpoint_name}-v{version}"
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"SageMaker name {name!r} is longer than {MAX_NAME_LENGTH} characters")
    return name


def package_model(model_dir: Path) -> bytes:
    """``model.tar.gz`` of an MLflow model directory, its files at the archive root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(model_dir.rglob("*")):
            archive.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)
    return buffer.getvalue()


def model_request(name: str, image_uri: str, role_arn: str, model_data_url: str,
                  tags: dict[str, str]) -> dict[str, Any]:
    """CreateModel parameters (the config of ``SageMakerModelOperator``)."""
    return {"ModelName": name, "ExecutionRoleArn": role_arn,
            "PrimaryContainer": {"Image": image_uri, "ModelDataUrl": model_data_url,
                                 "Environment": dict(CONTAINER_ENVIRONMENT)},
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


def endpoint_config_request(name: str, model_name: str, instance_type: str, instance_count: int) -> dict[str, Any]:
    """CreateEndpointConfig parameters (the config of ``SageMakerEndpointConfigOperator``)."""
    return {"EndpointConfigName": name,
            "ProductionVariants": [{"VariantName": VARIANT_NAME, "ModelName": model_name,
                                    "InstanceType": instance_type, "InitialInstanceCount": instance_count,
                                    "InitialVariantWeight": 1.0}]}


def endpoint_request(endpoint_name: str, config_name: str) -> dict[str, Any]:
    """CreateEndpoint / UpdateEndpoint parameters (the config of ``SageMakerEndpointOperator``)."""
    return {"EndpointName": endpoint_name, "EndpointConfigName": config_name}


def transform_job_request(job_name: str, model_name: str, input_s3_uri: str, output_s3_uri: str,
                          instance_type: str, instance_count: int) -> dict[str, Any]:
    """CreateTransformJob parameters: every object under ``input_s3_uri`` scored whole, as Parquet."""
    return {"TransformJobName": job_name, "ModelName": model_name, "MaxPayloadInMB": TRANSFORM_MAX_PAYLOAD_MB,
            "BatchStrategy": "SingleRecord", "Environment": dict(CONTAINER_ENVIRONMENT),
            "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_s3_uri}},
                               "ContentType": TRANSFORM_CONTENT_TYPE, "SplitType": "None"},
            "TransformOutput": {"S3OutputPath": output_s3_uri, "Accept": TRANSFORM_ACCEPT},
            "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count}}


def sagemaker_client(aws_conn_id: str, region: str) -> Any:
    """The SageMaker API client of the Amazon provider's hook on an Airflow connection."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    return SageMakerHook(aws_conn_id=aws_conn_id, region_name=region).conn


def _describe(describe: Any, **name: str) -> dict[str, Any] | None:
    """A SageMaker resource's description, ``None`` when it does not exist (a ValidationException)."""
    from botocore.exceptions import ClientError

    try:
        return describe(**name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ValidationException":
            return None
        raise


def deployment_steps(client: Any, model_name: str, config_name: str, endpoint_name: str) -> list[str]:
    """Which of ``create_model``, ``create_endpoint_config`` and ``create_endpoint``/``update_endpoint`` a
    deployment of ``config_name`` to ``endpoint_name`` still needs (empty: the endpoint already serves it)."""
    steps = []
    if _describe(client.describe_model, ModelName=model_name) is None:
        steps.append("create_model")
    if _describe(client.describe_endpoint_config, EndpointConfigName=config_name) is None:
        steps.append("create_endpoint_config")
    endpoint = _describe(client.describe_endpoint, EndpointName=endpoint_name)
    if endpoint is None:
        steps.append("create_endpoint")
    elif endpoint["EndpointConfigName"] != config_name:
        steps.append("update_endpoint")
    return steps


def upload_model_archive(champion: dict[str, Any], store: ObjectStore) -> str:
    """Download the champion's MLflow model directory, package it and put it in the object store; its URI."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=champion["model_uri"], dst_path=tmp,
                                                    tracking_uri=champion["tracking_uri"],
                                                    registry_uri=champion["tracking_uri"])
        archive = package_model(Path(local))
    return store.put_bytes(f"models/{champion['name']}/v{champion['version']}/model.tar.gz", archive)


def require_deployed_model(client: Any, model_name: str) -> None:
    """Batch transform runs an existing SageMaker model: refuse clearly when the champion was never deployed."""
    if _describe(client.describe_model, ModelName=model_name) is None:
        raise ValueError(f"SageMaker model {model_name} does not exist: run pd_model_training (its SageMaker "
                         "deployment creates it) before scoring by batch transform")


def transform_output_uri(output_s3_uri: str, input_object_key: str) -> str:
    """Where SageMaker writes the response to one input object: ``<output path>/<object name>.out``."""
    return f"{output_s3_uri.rstrip('/')}/{input_object_key.rsplit('/', 1)[-1]}{TRANSFORM_OUTPUT_SUFFIX}"


def read_transform_output(body: bytes, expected_rows: int) -> pd.DataFrame:
    """The predictions in MLflow's scoring-server response (``{"predictions": [{column: value}, ...]}``),
    one row per input row in input order; an error when the row count is not the input's."""
    document = json.loads(body)
    if not isinstance(document, dict) or "predictions" not in document:
        raise ValueError("batch transform output is not MLflow's scoring response (no 'predictions' key): "
                         f"{body[:200]!r}")
    predictions = pd.DataFrame(document["predictions"])
    if len(predictions) != expected_rows or PREDICTION_COLUMN not in predictions:
        raise ValueError(f"batch transform output has {len(predictions)} rows and columns "
                         f"{list(predictions.columns)}; expected {expected_rows} rows with {PREDICTION_COLUMN!r}")
    return predictions


def local_serving_uri(settings: StressSettings) -> str:
    return f"http://127.0.0.1:{settings.model_serving_port}/invocations"


def serve_command(settings: StressSettings) -> list[str]:
    """``mlflow models serve`` of the champion alias, in this environment."""
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    return [mlflow, "models", "serve", "-m", f"models:/{settings.pd_registered_model_name}@champion",
            "--env-manager", "local", "--host", "127.0.0.1", "--port", str(settings.model_serving_port)]
