"""The EMR Serverless branch of the simulate step: the Amazon provider's operators and sensors.

Every operator and sensor uses the Airflow connection ``STRESS_AWS_CONN_ID`` (``aws_default``), which
the configuration task hands them as a templated ``aws_conn_id``.

Follows the provider's own system test (``example_emr_serverless``): the job's configuration is built
in one task (:func:`pipelines.tasks.stress.emr_serverless_job`), then create application -> wait for
it -> start job run -> wait for the job -> read the batches' outputs, with stop and delete of the
application as teardowns. They are Airflow teardowns of ``create_application`` rather than plain
``trigger_rule=ALL_DONE`` tasks: they run whatever happened once the application was created, and
are skipped (not run against an application that does not exist) when another runner was chosen.

Imported by the DAG file at parse time, so only the Airflow SDK is imported at the top; the provider's
operators (about 0.6 s of imports) load when the group is built.
"""

from __future__ import annotations

from airflow.sdk import XComArg, chain, task, task_group


@task_group(group_id="emr_serverless")
def emr_serverless_simulation(plan: XComArg, runner_choice: XComArg) -> XComArg:
    """Run every (scenario, batch) of ``plan`` as one Spark job on a per-run EMR Serverless application.

    ``runner_choice`` is the branch that picks the runner: the group's first task must follow it directly.
    """
    from airflow.providers.amazon.aws.operators.emr import (
        EmrServerlessCreateApplicationOperator,
        EmrServerlessDeleteApplicationOperator,
        EmrServerlessStartJobOperator,
        EmrServerlessStopApplicationOperator,
    )
    from airflow.providers.amazon.aws.sensors.emr import EmrServerlessApplicationSensor, EmrServerlessJobSensor

    class CreateApplication(EmrServerlessCreateApplicationOperator):
        # The release label and the name come from the job configuration task (the settings), not the DAG file.
        template_fields = (*EmrServerlessCreateApplicationOperator.template_fields, "release_label", "config")

    @task(multiple_outputs=True)
    def job_config(plan: dict, run_id: str) -> dict:
        from pipelines.tasks.stress import emr_serverless_job

        return emr_serverless_job(plan, run_id)

    @task
    def job_outputs(run_id: str) -> list[dict]:
        from pipelines.tasks.stress import cluster_job_outputs

        return cluster_job_outputs(run_id)

    config = job_config(plan)
    aws = {"region_name": config["region"], "aws_conn_id": config["aws_conn_id"]}  # templated on every operator
    create = CreateApplication(task_id="create_application", release_label=config["release_label"],
                               job_type="SPARK", config={"name": config["application_name"]},
                               **aws, wait_for_completion=False)
    application_id = create.output
    application_ready = EmrServerlessApplicationSensor(task_id="wait_for_application", application_id=application_id,
                                                       **aws, poke_interval=15)
    start = EmrServerlessStartJobOperator(task_id="start_job", application_id=application_id,
                                          execution_role_arn=config["execution_role_arn"],
                                          job_driver=config["job_driver"],
                                          configuration_overrides=config["configuration_overrides"],
                                          **aws, wait_for_completion=False)
    job_done = EmrServerlessJobSensor(task_id="wait_for_job", application_id=application_id, job_run_id=start.output,
                                      **aws, poke_interval=30)
    stop = EmrServerlessStopApplicationOperator(task_id="stop_application", application_id=application_id,
                                                force_stop=True, **aws)
    delete = EmrServerlessDeleteApplicationOperator(task_id="delete_application", application_id=application_id,
                                                    **aws)
    outputs = job_outputs()
    chain(runner_choice, config, create, application_ready, start, job_done, outputs)
    chain(job_done, stop.as_teardown(setups=create), delete.as_teardown(setups=create))
    return outputs
