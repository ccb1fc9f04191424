"""Settings an Airflow deployment holds where Airflow's convention holds them: Variables and Connections.

Inside a task, the MLflow tracking URI comes from the Airflow Variable ``loanstress_tracking_uri``
when it is set (through Airflow's secrets chain: a secrets backend such as AWS Secrets Manager, an
``AIRFLOW_VAR_LOANSTRESS_TRACKING_URI`` environment variable, or the metadata database), else from
``STRESS_MLFLOW_TRACKING_URI``, else the embedded SQLite store in the data home. AWS credentials
stay in the Airflow connection named by ``STRESS_AWS_CONN_ID`` (``aws_default``), which the Amazon
provider's operators and hooks read (EMR Serverless, SageMaker). Precedence: docs/deployment.md.

:func:`pipelines.tasks.policy.task_entry` runs each task function's call with :func:`airflow_settings`
as the composition root's resolver (read anew by every call: a Variable can be set or deleted between two
tasks of one worker process); the composition root still builds every adapter.
"""

from __future__ import annotations

from pipelines.settings import StressSettings

TRACKING_URI_VARIABLE = "loanstress_tracking_uri"


def airflow_settings(settings: StressSettings) -> StressSettings:
    """``settings`` with the values the Airflow deployment configures (its Variables) in place."""
    from airflow.sdk import Variable

    tracking_uri = (Variable.get(TRACKING_URI_VARIABLE, default=None) or "").strip()
    if not tracking_uri:
        return settings
    return settings.model_copy(update={"mlflow_tracking_uri": tracking_uri})
