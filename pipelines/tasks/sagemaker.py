"""The SageMaker branches of two DAGs, through the Amazon provider's operators on ``STRESS_AWS_CONN_ID``.

* ``pd_model_training`` deploys the champion (:func:`sagemaker_deployment`): ``deployment_plan``
  packages the champion's MLflow model to the object store and works out which resources are missing
  (:func:`pipelines.adapters.deployment.deployment_steps`); ``resource_route`` runs only the needed
  ones of ``create_model`` (``SageMakerModelOperator``) and ``create_endpoint_config``
  (``SageMakerEndpointConfigOperator``), ``endpoint_route`` then ``create_endpoint`` or ``update_endpoint``
  (``SageMakerEndpointOperator``, operation ``create`` on the first champion, ``update`` on a new one)
  or neither, and ``record_deployment`` records what was done. A re-run after a partial failure resumes where it
  stopped; with the champion already served, nothing is called.
* ``portfolio_monitoring`` scores the whole book by batch transform (:func:`sagemaker_batch_scoring`):
  ``transform_input`` writes the book's PD features as one Parquet object, ``transform``
  (``SageMakerTransformOperator``) runs the champion's SageMaker model over it and waits, and
  ``transform_scores`` reads MLflow's JSON response back into the same scored book as the in-process
  scorer, which the back-test, drift and compliance steps then use unchanged.

As in the provider's system tests, configuration dictionaries are built in one task and handed to
the operators through XCom. Imported by the DAG files at parse time: only the Airflow SDK and the
composition root at the top; the provider's operators load when a group is built.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import TriggerRule, XComArg, chain, task, task_group

from pipelines.composition import current_adapters
from pipelines.tasks.policy import task_entry
from pipelines.tasks.runs import log, record_step, run_key, run_prefix

DEPLOYMENT_GROUP = "sagemaker"
TRANSFORM_GROUP = "batch_transform"
TRANSFORM_INPUT_NAME = "book.parquet"


@task_group(group_id=DEPLOYMENT_GROUP)
def sagemaker_deployment(decision: XComArg, serving_choice: XComArg) -> XComArg:
    """Make the SageMaker endpoint serve the registry's champion; ``serving_choice`` is the branch before it."""
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerEndpointConfigOperator,
        SageMakerEndpointOperator,
        SageMakerModelOperator,
    )

    @task(multiple_outputs=True)
    def deployment_plan(decision: dict, run_id: str) -> dict:
        return plan_deployment(decision, run_id)

    # Two branch points, because a branch never skips a task downstream of a task it follows: the first
    # picks the missing model and endpoint config, the second create, update or neither of the endpoint.
    @task.branch
    def resource_route(steps: list[str]) -> list[str]:
        chosen = [step for step in steps if step in ("create_model", "create_endpoint_config")]
        return [f"{DEPLOYMENT_GROUP}.{step}" for step in [*chosen, "endpoint_route"]]

    # After the first route: runs when it succeeded, whether or not the step before it was needed; skipped
    # with it when local serving was chosen (every upstream skipped).
    after_route = TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS

    @task.branch(trigger_rule=after_route)
    def endpoint_route(steps: list[str]) -> list[str]:
        chosen = [step for step in steps if step in ("create_endpoint", "update_endpoint")]
        return [f"{DEPLOYMENT_GROUP}.{step}" for step in [*chosen, "record_deployment"]]

    @task(trigger_rule=after_route)
    def record_deployment(plan: dict, run_id: str) -> dict:
        return record_sagemaker_deployment(plan, run_id)

    plan = deployment_plan(decision)
    connection = {"aws_conn_id": plan["aws_conn_id"], "region_name": plan["region"]}
    resources = resource_route(plan["steps"])
    create_model = SageMakerModelOperator(task_id="create_model", config=plan["model"], **connection)
    create_config = SageMakerEndpointConfigOperator(task_id="create_endpoint_config", config=plan["endpoint_config"],
                                                    trigger_rule=after_route, **connection)
    endpoint = endpoint_route(plan["steps"])
    operations = [SageMakerEndpointOperator(task_id=f"{operation}_endpoint", config=plan["endpoint"],
                                            operation=operation, check_interval=30, max_ingestion_time=3600,
                                            **connection)
                  for operation in ("create", "update")]
    recorded = record_deployment(plan)
    chain(serving_choice, plan, resources, [create_model, create_config, endpoint])
    chain(create_model, create_config, endpoint, [*operations, recorded])
    chain(operations, recorded)
    return recorded


@task_group(group_id=TRANSFORM_GROUP)
def sagemaker_batch_scoring(features: XComArg, scorer_choice: XComArg) -> XComArg:
    """Score the book of ``features`` with the champion's SageMaker model by batch transform."""
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTransformOperator

    @task(multiple_outputs=True)
    def transform_input(features: dict, run_id: str) -> dict:
        return prepare_batch_scoring(features, run_id)

    @task
    def transform_scores(features: dict, prepared: dict, run_id: str) -> dict:
        return read_batch_scores(features, prepared, run_id)

    prepared = transform_input(features)
    transform = SageMakerTransformOperator(task_id="transform", config=prepared["transform"],
                                           aws_conn_id=prepared["aws_conn_id"], region_name=prepared["region"],
                                           wait_for_completion=True, check_interval=60, max_ingestion_time=6 * 3600)
    scores = transform_scores(features, prepared)
    chain(scorer_choice, prepared, transform, scores)
    return scores


@task_entry
def plan_deployment(decision: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The SageMaker requests of the champion's deployment and which of them are still needed."""
    from pipelines.adapters.deployment import (
        deployment_steps,
        endpoint_config_request,
        endpoint_request,
        model_request,
        sagemaker_client,
        upload_model_archive,
        versioned_name,
    )
    from pipelines.model.selection import NoChampion, resolve_stress_model

    adapters = current_adapters()
    settings = adapters.settings
    plan: dict[str, Any] = {
        "aws_conn_id": settings.aws_conn_id, "region": settings.aws_region,
        "endpoint_name": settings.sagemaker_endpoint_name, "promoted_this_run": decision["promoted"],
        "model": {}, "endpoint_config": {}, "endpoint": {}, "steps": [], "version": None,
    }
    try:  # the version the stress test and monitoring use: a reviewer's approved pin, else the champion
        champion = resolve_stress_model(adapters.model_registry, settings.resolved_require_champion)
    except NoChampion as missing:
        return plan | {"reason": f"nothing to deploy: {missing}"}
    name = versioned_name(settings.sagemaker_endpoint_name, champion["version"])
    steps = deployment_steps(sagemaker_client(settings.aws_conn_id, settings.aws_region), name, name,
                             settings.sagemaker_endpoint_name)
    archive_key = f"models/{champion['name']}/v{champion['version']}/model.tar.gz"
    model_data_url = (upload_model_archive(champion, adapters.object_store) if "create_model" in steps
                      else adapters.object_store.uri(archive_key))
    tags = {"registered_model": champion["name"], "model_version": str(champion["version"]),
            "airflow_run_id": run_id}
    log.info("SageMaker deployment of %s v%s to %s: %s", champion["name"], champion["version"],
             settings.sagemaker_endpoint_name, ", ".join(steps) or "already served")
    return plan | {
        "version": str(champion["version"]), "registered_model": champion["name"], "model_data_url": model_data_url,
        "model": model_request(name, settings.sagemaker_image_uri, settings.sagemaker_execution_role_arn,
                               model_data_url, tags),
        "endpoint_config": endpoint_config_request(name, name, settings.sagemaker_instance_type,
                                                   settings.sagemaker_instance_count),
        "endpoint": endpoint_request(settings.sagemaker_endpoint_name, name), "steps": steps,
    }


@task_entry
def record_sagemaker_deployment(plan: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The deployment step's record: which champion version the endpoint serves and what this run changed."""
    steps = plan["steps"]
    if plan["version"] is None:
        action = "none"
    elif "create_endpoint" in steps:
        action = "created"
    elif "update_endpoint" in steps:
        action = "updated"
    else:
        action = "unchanged"
    payload = {"target": "sagemaker", "action": action, "operations": steps,
               **{key: plan.get(key) for key in ("endpoint_name", "version", "registered_model", "model_data_url",
                                                 "promoted_this_run", "reason")},
               "model_name": plan["model"].get("ModelName"),
               "endpoint_config": plan["endpoint_config"].get("EndpointConfigName")}
    return record_step(current_adapters().object_store, run_id, "pd_deploy", payload)


def _transform_prefix(run_id: str) -> str:
    return f"{run_prefix(run_id)}/monitoring/batch_transform"


@task_entry
def prepare_batch_scoring(features: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Write the book's PD features as the transform's input and build the job's configuration."""
    import pyarrow as pa

    from pipelines.adapters.deployment import (
        require_deployed_model,
        sagemaker_client,
        transform_job_request,
        versioned_name,
    )
    from pipelines.data.macro import load_history
    from pipelines.model.monitoring import book_to_score
    from pipelines.tasks.monitoring import scoring_model

    adapters = current_adapters()
    settings, store = adapters.settings, adapters.object_store
    model = scoring_model()  # a registered version; require_deployed_model below checks it is on SageMaker
    model_name = versioned_name(settings.sagemaker_endpoint_name, str(model["version"]))
    require_deployed_model(sagemaker_client(settings.aws_conn_id, settings.aws_region), model_name)
    book = book_to_score(store.get_parquet(features["features_key"]), load_history())
    prefix = _transform_prefix(run_id)
    input_key = f"{prefix}/input/{TRANSFORM_INPUT_NAME}"
    store.put_parquet(input_key, pa.Table.from_pandas(_model_input(book), preserve_index=False))
    job_name = f"{model_name}-{run_key(run_id)}".replace("_", "-").replace(".", "-")
    job_name = job_name[:63].rstrip("-")  # SageMaker job names: at most 63 characters, no trailing hyphen
    log.info("batch transform %s of %s loans with %s", job_name, f"{len(book):,}", model_name)
    return {"aws_conn_id": settings.aws_conn_id, "region": settings.aws_region, "model": model,
            "input_key": input_key, "output_uri": store.uri(f"{prefix}/output"), "rows": len(book),
            "transform": transform_job_request(job_name, model_name, store.uri(f"{prefix}/input/"),
                                               store.uri(f"{prefix}/output"), settings.sagemaker_instance_type,
                                               settings.sagemaker_instance_count)}


def _model_input(book: Any) -> Any:
    """The pyfunc's input types: numeric columns as float64, the others as strings (MLflow's signature types);
    LoanId rides along so the object is the whole scored book (MLflow ignores columns its signature lacks)."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame({column: (values if column == "LoanId" else
                                  values.astype(np.float64) if pd.api.types.is_numeric_dtype(values)
                                  else values.astype(str))
                         for column, values in book.items()})


@task_entry
def read_batch_scores(features: dict[str, Any], prepared: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Read the transform's output back into the scored book, as the in-process scorer records it."""
    from pipelines.adapters.deployment import PREDICTION_COLUMN, read_transform_output, transform_output_uri
    from pipelines.model.monitoring import with_score
    from pipelines.tasks.monitoring import record_scores

    store = current_adapters().object_store
    book = store.get_parquet(prepared["input_key"]).to_pandas()
    output_key = transform_output_uri(prepared["output_uri"], prepared["input_key"]).removeprefix(
        store.root_uri.rstrip("/") + "/")
    if not store.exists(output_key):
        raise FileNotFoundError(f"batch transform {prepared['transform']['TransformJobName']} left no output at "
                                f"{store.uri(output_key)}")
    predictions = read_transform_output(store.get_bytes(output_key), expected_rows=len(book))
    scores = with_score(book, predictions[PREDICTION_COLUMN].to_numpy())
    return record_scores(features, prepared["model"], scores, "batch_transform", run_id)
