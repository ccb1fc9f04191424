"""The SageMaker branches of pd_model_training and portfolio_monitoring, run by ``dag.test()`` against moto.

What moto checks: ``choose_serving`` takes the sagemaker branch and skips ``serve_locally``; the plan
packages the champion's MLflow model into ``model.tar.gz`` in the run's S3 store; the provider's
``SageMakerModelOperator``, ``SageMakerEndpointConfigOperator`` and ``SageMakerEndpointOperator``
(operation ``create``) create the model (image, role, environment, model data), the endpoint config
and the endpoint, all through the ``aws_default`` connection; the ``update`` operator is skipped; a
second deployment of the same champion plans nothing. In monitoring, ``choose_scorer`` takes the batch
transform branch and ``SageMakerTransformOperator`` creates the transform job on the champion's model
with the run's input and output paths.

What moto cannot check: it has no ``UpdateEndpoint`` (tested with botocore's Stubber in
``tests/integration/test_sagemaker_deployment.py``), it marks endpoints ``InService`` and transform jobs
``Completed`` at once and runs no container, so no transform output appears and ``transform_scores``
fails here (a job that wrote nothing fails the run). The test then plays the container's part: it
unpacks the archive the deployment uploaded, runs MLflow's scoring server on it (the inference
process of the serving image), sends it the transform's input object as SageMaker would, puts the
answer where SageMaker writes it, and checks that the read-back gives the in-process scores and feeds
the same back-test.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest

BUCKET = "loanstress-sagemaker-test"
REGION = "us-east-1"
ENDPOINT = "loan-pd-test"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:3.17.2"
ROLE = "arn:aws:iam::123456789012:role/loanstress-sagemaker"
SERVER_PORT = 18121
AS_OF = date(2025, 12, 31)


@pytest.fixture
def sagemaker_settings(stress_settings, _small_history_file, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """The aws serving settings on moto, with this test's own MLflow store in its data home (the training
    DAG writes to it; the session's shared registry is only read by other tests)."""
    import boto3
    from moto import mock_aws

    from pipelines.settings import get_settings

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
        "AIRFLOW_CONN_AWS_DEFAULT": '{"conn_type": "aws", "extra": {"region_name": "us-east-1"}}',
        "STRESS_MODEL_SERVING": "sagemaker", "STRESS_OBJECT_STORE_URI": f"s3://{BUCKET}/stress",
        "STRESS_SAGEMAKER_IMAGE_URI": IMAGE, "STRESS_SAGEMAKER_EXECUTION_ROLE_ARN": ROLE,
        "STRESS_SAGEMAKER_ENDPOINT_NAME": ENDPOINT, "STRESS_PD_TRAINING_THREADS": "1",
        "STRESS_PERFORMANCE_HISTORY_URI": str(_small_history_file),
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        yield get_settings()
    get_settings.cache_clear()


def _states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _dag(file: str, dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    from pipelines.settings import REPO_ROOT

    bag = DagBag(str(REPO_ROOT / "dags" / file))
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


def test_training_deploys_with_the_providers_operators_and_monitoring_scores_by_batch_transform(
        airflow_db, sagemaker_settings, _small_history_file, tmp_path) -> None:
    import boto3

    from pipelines.composition import current_adapters
    from pipelines.tasks.runs import read_run_steps
    from pipelines.tasks.sagemaker import plan_deployment

    training = _dag("pd_model_training.py", "pd_model_training").test(run_conf={
        "history_source_uri": str(_small_history_file), "holdout_quarters": 8, "search_budget": 2})
    states = _states(training)
    assert str(training.state) == "success", states
    assert states["serve_locally"] == "skipped" and states["sagemaker.update_endpoint"] == "skipped"
    assert {states[f"sagemaker.{task}"] for task in ("deployment_plan", "resource_route", "create_model",
                                                    "create_endpoint_config", "endpoint_route", "create_endpoint",
                                                    "record_deployment")} == {"success"}, states

    adapters = current_adapters()
    champion = adapters.model_registry.champion_info()  # the benchmark (judged first), or XGBoost if it beat it
    assert champion is not None, "the training run's gate left no champion to deploy"
    name = f"{ENDPOINT}-v{champion['version']}"
    deployed = read_run_steps(adapters.object_store, training.run_id)["pd_deploy"]
    assert (deployed["action"], deployed["version"], deployed["model_name"]) == ("created", champion["version"], name)
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    assert sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == name
    variant = sagemaker.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"][0]
    assert (variant["ModelName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (name, "ml.m5.large", 1)
    model = sagemaker.describe_model(ModelName=name)
    container = model["PrimaryContainer"]
    assert (container["Image"], model["ExecutionRoleArn"]) == (IMAGE, ROLE)
    assert container["Environment"] == {"MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function",
                                        "SERVING_ENVIRONMENT": "SageMaker"}
    assert container["ModelDataUrl"] == deployed["model_data_url"] == (
        f"s3://{BUCKET}/stress/models/{champion['name']}/v{champion['version']}/model.tar.gz")
    model_dir = _unpack(container["ModelDataUrl"], tmp_path / "opt_ml_model")
    assert (model_dir / "MLmodel").is_file() and (model_dir / "artifacts" / "pd_model.json").is_file()
    # Deploying the same champion again changes nothing.
    assert plan_deployment({"promoted": False}, "manual__again")["steps"] == []

    monitoring = _dag("portfolio_monitoring.py", "portfolio_monitoring").test(run_conf={
        "as_of_date": AS_OF.isoformat(), "source_uri": _tape(tmp_path / "book.csv")})
    states = _states(monitoring)
    assert states["score"] == "skipped", states
    assert {states[f"batch_transform.{t}"] for t in ("transform_input", "transform")} == {"success"}
    assert states["batch_transform.transform_scores"] == "failed"  # moto ran no container: no output
    assert states["scored_book"] == "upstream_failed" and str(monitoring.state) == "failed"
    [summary] = sagemaker.list_transform_jobs()["TransformJobSummaries"]
    job = sagemaker.describe_transform_job(TransformJobName=summary["TransformJobName"])
    prefix = f"s3://{BUCKET}/stress/runs/{_key(monitoring.run_id)}/monitoring/batch_transform"
    assert job["ModelName"] == name
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"{prefix}/input/"
    assert (job["TransformInput"]["ContentType"], job["TransformInput"]["SplitType"]) == (
        "application/vnd.apache.parquet", "None")
    assert job["TransformOutput"]["S3OutputPath"] == f"{prefix}/output"

    _play_the_container_and_check_the_read_back(monitoring.run_id, model_dir)


def _play_the_container_and_check_the_read_back(run_id: str, model_dir: Path) -> None:
    """What SageMaker would do with the job, with MLflow's scoring server on the deployed archive."""
    from pipelines.composition import current_adapters
    from pipelines.tasks.monitoring import backtest, score
    from pipelines.tasks.runs import read_run_steps
    from pipelines.tasks.sagemaker import prepare_batch_scoring, read_batch_scores

    store = current_adapters().object_store
    features = read_run_steps(store, run_id)["features"]
    prepared = prepare_batch_scoring(features, run_id)
    with _scoring_server(model_dir) as base:
        assert urllib.request.urlopen(f"{base}/ping", timeout=10).status == 200
        request = urllib.request.Request(f"{base}/invocations", data=store.get_bytes(prepared["input_key"]),
                                         headers={"Content-Type": prepared["transform"]["TransformInput"]
                                                  ["ContentType"]})
        answer = urllib.request.urlopen(request, timeout=60).read()
    store.put_bytes(f"{prepared['input_key'].replace('/input/', '/output/')}.out", answer)

    by_transform = read_batch_scores(features, prepared, run_id)
    in_process = score(features, "manual__in_process")
    assert by_transform["scorer"] == "batch_transform" and in_process["scorer"] == "in_process"
    assert by_transform["model"] == in_process["model"] and by_transform["rows"] == in_process["rows"] > 0
    transformed = store.get_parquet(by_transform["scores_key"]).to_pandas()
    local = store.get_parquet(in_process["scores_key"]).to_pandas()
    assert transformed["LoanId"].tolist() == local["LoanId"].tolist()
    np.testing.assert_allclose(transformed["QuarterlyPD"], local["QuarterlyPD"], rtol=1e-12)
    assert backtest(by_transform, run_id)["model_version"] == by_transform["model"]["version"]


def _scoring_server(model_dir: Path):
    """MLflow's scoring server on ``model_dir``, started with the serving image's own command."""
    import contextlib
    import sys

    from mlflow.pyfunc import scoring_server

    @contextlib.contextmanager
    def serve():
        command, env = scoring_server.get_cmd(model_uri=str(model_dir), port=SERVER_PORT, nworkers=1)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        process = subprocess.Popen(["/bin/bash", "-c", command], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        try:
            for _ in range(600):  # up to a minute to import MLflow and load the model
                if process.poll() is not None:
                    raise RuntimeError(f"scoring server exited: {process.stderr.read().decode()[-2000:]}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", SERVER_PORT), 0.2):
                    break
                time.sleep(0.1)
            yield f"http://127.0.0.1:{SERVER_PORT}"
        finally:
            process.terminate()
            process.wait(timeout=30)

    return serve()


def _unpack(s3_uri: str, target: Path) -> Path:
    import boto3

    bucket, key = s3_uri.removeprefix("s3://").split("/", 1)
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        archive.extractall(target, filter="data")
    return target


def _tape(path: Path) -> str:
    from pipelines.data.export import write_table
    from pipelines.data.synthetic import generate_loan_book

    write_table(generate_loan_book(200, seed=41, as_of=AS_OF), str(path))
    return str(path)


def _key(run_id: str) -> str:
    from pipelines.tasks.runs import run_key

    return run_key(run_id)
