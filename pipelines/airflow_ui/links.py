"""Operator extra links from every task of a ``loan_stress_test`` run to its dashboard page and its report.

The DAG's tasks are TaskFlow ``@task`` functions: instances of Airflow's decorated Python operator,
not operator classes of this project, so a link cannot be attached to "our operator". The links are
the plugin's *global* operator extra links instead. Airflow's API server asks every global link of
every task it shows (``GET .../taskInstances/{task_id}/links``); these answer only for
``loan_stress_test`` and return ``""`` elsewhere, which the API turns into ``null`` and the UI leaves
out. They run in the API server, not on a worker, so what they show comes from the metadata
database (the ``publish`` and ``report`` tasks' XCom) and the settings.

- **Stress dashboard**: ``<STRESS_DASHBOARD_URL>/runs/<run id>`` once the run has published, by default
  the dashboard the plugin mounts in the API server (``/loanstress/dashboard``; the run
  id is the Airflow run id, the ``airflow_run_id`` the application layer's ``list_runs`` returns),
  percent-encoded as a single path segment (run ids hold ``:`` and ``+``).
- **Report (HTML)** / **Report (PDF)**: the run's report served by the plugin's report app behind
  Airflow's authentication (:mod:`pipelines.airflow_ui.reports`). A browser cannot follow the
  report's ``file://`` or ``s3://`` URI from the UI, which opens only http(s) and same-origin links.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

from pipelines.composition import current_adapters

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey

STRESS_DAG_ID = "loan_stress_test"
PUBLISH_TASK_ID = "publish"
REPORT_TASK_ID = "report"
REPORTS_URL_PREFIX = "/loanstress-reports"
DASHBOARD_URL_PREFIX = "/loanstress/dashboard"  # where the plugin mounts the dashboard in the API server
REPORT_FORMATS = ("html", "pdf")


def task_output(dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
    """The return value (XCom) of an unmapped task of a run, or None while it has none."""
    from airflow.models.xcom import XCOM_RETURN_KEY, XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        value = session.execute(XComModel.get_many(key=XCOM_RETURN_KEY, run_id=run_id, dag_ids=dag_id,
                                                   task_ids=task_id, map_indexes=-1)
                                .with_only_columns(XComModel.value)).scalar()
    return json.loads(value) if isinstance(value, str) else value


def dashboard_run_url(dashboard_url: str, run_id: str) -> str:
    """The dashboard page of one run."""
    return f"{dashboard_url.rstrip('/')}/runs/{quote(run_id, safe='')}"


def api_server_base_path() -> str:
    """The path part of the API server's base URL (empty when Airflow is served at the root)."""
    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def report_path(dag_id: str, run_id: str, report_format: str) -> str:
    """Where the plugin serves a run's report, under the API server's base path."""
    base_path = api_server_base_path()
    run = f"dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f"{base_path}{REPORTS_URL_PREFIX}/{run}/report.{report_format}"


class StressDashboardLink(BaseOperatorLink):
    """The run's page in the stress-test dashboard, once the run has published its results."""

    name = "Stress dashboard"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        if ti_key.dag_id != STRESS_DAG_ID:
            return ""
        dashboard_url = current_adapters().settings.dashboard_url or api_server_base_path() + DASHBOARD_URL_PREFIX
        if task_output(ti_key.dag_id, ti_key.run_id, PUBLISH_TASK_ID) is None:
            return ""
        return dashboard_run_url(dashboard_url, ti_key.run_id)


class StressReportLink(BaseOperatorLink):
    """The run's report in one format, once its ``report`` task has written it."""

    def __init__(self, report_format: str) -> None:
        if report_format not in REPORT_FORMATS:
            raise ValueError(f"report format {report_format!r}: one of {', '.join(REPORT_FORMATS)}")
        self.report_format = report_format

    @property
    def name(self) -> str:
        return f"Report ({self.report_format.upper()})"

    @property
    def xcom_key(self) -> str:
        return f"_link_{type(self).__name__}_{self.report_format}"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        if ti_key.dag_id != STRESS_DAG_ID or task_output(ti_key.dag_id, ti_key.run_id, REPORT_TASK_ID) is None:
            return ""
        return report_path(ti_key.dag_id, ti_key.run_id, self.report_format)


def stress_run_links() -> list[BaseOperatorLink]:
    """The global links the plugin registers."""
    return [StressDashboardLink(), *(StressReportLink(report_format) for report_format in REPORT_FORMATS)]
