"""Serving the champion PD model: a SageMaker endpoint and batch transform (aws), or local HTTP/in-process.

**aws** (``STRESS_TARGET=aws``), through the Amazon provider's ``SageMakerHook`` on the Airflow
connection ``STRESS_AWS_CONN_ID`` (``aws_default``; a missing connection means the standard AWS
credential chain), whose ``conn`` is the SageMaker API client (the ``sagemaker`` Python SDK is
deliberately not a dependency: the versions that install next to Airflow 3.3 fail to import with
protobuf 7). :func:`deploy_champion_to_sagemaker` packages the champion's MLflow model directory as
``model.tar.gz`` in the object store (SageMaker unpacks it into ``/opt/ml/model``, where MLflow's
serving image expects the ``MLmodel`` file), then:

1. ``create_model`` ``<endpoint>-v<version>`` with ``sagemaker_image_uri`` (an MLflow pyfunc serving
   image, e.g. built by ``mlflow sagemaker build-and-push-container``) and ``sagemaker_execution_role_arn``,
   unless it exists;
2. ``create_endpoint_config`` of the same name (one production variant), unless it exists;
3. ``create_endpoint`` when the endpoint does not exist, ``update_endpoint`` to the new config when it
   serves another version (SageMaker swaps the fleet without downtime), nothing when it already
   serves this one. Re-running a deployment is therefore idempotent, and a failed one heals.

:func:`start_batch_scoring` scores a CSV in S3 with ``create_transform_job`` on the same SageMaker model.

**local**: the stress test loads the champion in process
(:func:`pipelines.adapters.model_registry.load_quarterly_pd_function`);
``make serve-model`` (``loanstress serve-model``) serves it over HTTP with
``mlflow models serve -m models:/<name>@champion --env-manager local``.

Tested against moto: ``create_model``, ``create_endpoint_config``, ``create_endpoint``, the
``describe_*`` calls and ``create_transform_job``. moto has no ``update_endpoint`` and completes
transform jobs instantly without running anything; the update path is tested with botocore's
Stubber, which checks the request against the SageMaker API model, and what a real container does
with the model archive and CSV payloads is not exercised by the tests.
"""

from __future__ import annotations

import io
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.adapters.model_registry import ModelRegistry
from pipelines.adapters.object_store import ObjectStore
from pipelines.settings import StressSettings

VARIANT_NAME = "AllTraffic"
# The MLflow serving image reads which flavour to serve from this variable.
CONTAINER_ENVIRONMENT = {"MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function"}
MAX_NAME_LENGTH = 63  # SageMaker resource names
# Batch transform: MLflow's scoring server reads a CSV with its header, so each S3 object is sent whole
# (SplitType None) and must stay under the payload limit.
TRANSFORM_CONTENT_TYPE = "text/csv"
TRANSFORM_MAX_PAYLOAD_MB = 100


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
    return {"ModelName": name, "ExecutionRoleArn": role_arn,
            "PrimaryContainer": {"Image": image_uri, "ModelDataUrl": model_data_url,
                                 "Environment": dict(CONTAINER_ENVIRONMENT)},
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


def endpoint_config_request(name: str, model_name: str, instance_type: str, instance_count: int) -> dict[str, Any]:
    return {"EndpointConfigName": name,
            "ProductionVariants": [{"VariantName": VARIANT_NAME, "ModelName": model_name,
                                    "InstanceType": instance_type, "InitialInstanceCount": instance_count,
                                    "InitialVariantWeight": 1.0}]}


def transform_job_request(job_name: str, model_name: str, input_s3_uri: str, output_s3_uri: str,
                          instance_type: str, instance_count: int) -> dict[str, Any]:
    """CreateTransformJob parameters: every CSV object under ``input_s3_uri`` scored whole."""
    return {"TransformJobName": job_name, "ModelName": model_name, "MaxPayloadInMB": TRANSFORM_MAX_PAYLOAD_MB,
            "BatchStrategy": "SingleRecord", "Environment": dict(CONTAINER_ENVIRONMENT),
            "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_s3_uri}},
                               "ContentType": TRANSFORM_CONTENT_TYPE, "SplitType": "None"},
            "TransformOutput": {"S3OutputPath": output_s3_uri, "Accept": TRANSFORM_CONTENT_TYPE,
                                "AssembleWith": "Line"},
            "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count}}


def _describe(describe: Any, **name: str) -> dict[str, Any] | None:
    """A SageMaker resource's description, ``None`` when it does not exist (a ValidationException)."""
    from botocore.exceptions import ClientError

    try:
        return describe(**name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ValidationException":
            return None
        raise


def deploy_endpoint(client: Any, endpoint_name: str, model: dict[str, Any], config: dict[str, Any]) -> dict[str, str]:
    """Create the model and endpoint config if missing, then create or update the endpoint (idempotent)."""
    if _describe(client.describe_model, ModelName=model["ModelName"]) is None:
        client.create_model(**model)
    config_name = config["EndpointConfigName"]
    if _describe(client.describe_endpoint_config, EndpointConfigName=config_name) is None:
        client.create_endpoint_config(**config)
    endpoint = _describe(client.describe_endpoint, EndpointName=endpoint_name)
    if endpoint is None:
        client.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name)
        action = "created"
    elif endpoint["EndpointConfigName"] != config_name:
        client.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name)
        action = "updated"
    else:
        action = "unchanged"
    return {"endpoint_name": endpoint_name, "endpoint_config": config_name, "model_name": model["ModelName"],
            "action": action}


def sagemaker_client(settings: StressSettings) -> Any:
    """The SageMaker API client of the Amazon provider's hook on the configured Airflow connection."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    return SageMakerHook(aws_conn_id=settings.aws_conn_id, region_name=settings.aws_region).conn


def _require_aws_settings(settings: StressSettings) -> None:
    missing = [name for name in ("sagemaker_image_uri", "sagemaker_execution_role_arn") if not getattr(settings, name)]
    if missing:
        raise ValueError(f"SageMaker deployment needs STRESS_{', STRESS_'.join(m.upper() for m in missing)}")


def deploy_champion_to_sagemaker(settings: StressSettings, registry: ModelRegistry, store: ObjectStore,
                                 client: Any = None) -> dict[str, str]:
    """Deploy the registry's champion to the configured endpoint (see the module docstring)."""
    import tempfile

    import mlflow

    _require_aws_settings(settings)
    info = registry.champion_info()
    if info is None:
        return {"action": "none", "reason": "no champion in the registry"}
    client = client or sagemaker_client(settings)
    name = versioned_name(settings.sagemaker_endpoint_name, info["version"])
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=info["model_uri"], dst_path=tmp,
                                                    tracking_uri=info["tracking_uri"],
                                                    registry_uri=info["tracking_uri"])
        archive = package_model(Path(local))
    model_data_url = store.put_bytes(f"models/{info['name']}/v{info['version']}/model.tar.gz",
                                                       archive)
    tags = {"registered_model": info["name"], "model_version": info["version"]}
    result = deploy_endpoint(
        client, settings.sagemaker_endpoint_name,
        model_request(name, settings.sagemaker_image_uri, settings.sagemaker_execution_role_arn, model_data_url, tags),
        endpoint_config_request(name, name, settings.sagemaker_instance_type, settings.sagemaker_instance_count),
    )
    return result | {"model_data_url": model_data_url, "version": info["version"]}


def start_batch_scoring(input_s3_uri: str, output_s3_uri: str, settings: StressSettings, registry: ModelRegistry,
                        client: Any = None) -> dict[str, str]:
    """Start a SageMaker batch transform of the deployed champion over CSVs (with header) under ``input_s3_uri``."""
    info = registry.champion_info()
    if info is None:
        raise ValueError("no champion in the registry to score with")
    client = client or sagemaker_client(settings)
    model_name = versioned_name(settings.sagemaker_endpoint_name, info["version"])
    if _describe(client.describe_model, ModelName=model_name) is None:
        raise ValueError(f"SageMaker model {model_name} does not exist: deploy the champion first")
    job_name = f"{model_name}-{datetime.now(UTC):%Y%m%d%H%M%S}"[:MAX_NAME_LENGTH]
    request = transform_job_request(job_name, model_name, input_s3_uri, output_s3_uri,
                                    settings.sagemaker_instance_type, settings.sagemaker_instance_count)
    arn = client.create_transform_job(**request)["TransformJobArn"]
    return {"job_name": job_name, "job_arn": arn, "model_name": model_name, "output": output_s3_uri}


def local_serving_uri(settings: StressSettings) -> str:
    return f"http://127.0.0.1:{settings.model_serving_port}/invocations"


def serve_command(settings: StressSettings) -> list[str]:
    """``mlflow models serve`` of the champion alias, in this environment."""
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    return [mlflow, "models", "serve", "-m", f"models:/{settings.pd_registered_model_name}@champion",
            "--env-manager", "local", "--host", "127.0.0.1", "--port", str(settings.model_serving_port)]
