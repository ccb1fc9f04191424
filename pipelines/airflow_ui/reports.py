"""The run's report (HTML or PDF) served inside Airflow's API server, behind Airflow's own authentication.

The report task writes the report to the object store (a ``file://`` folder or ``s3://``), which a
browser cannot open from the Airflow UI. This app, mounted by the plugin at ``/loanstress-reports``,
streams it from the object store to anyone Airflow lets read the DAG's task instances: the same
``requires_access_dag`` check (bearer token or the UI's session cookie) as Airflow's own task pages.
It never takes a key or a URI from the request: it finds the report through the run's ``report``
task output, so it serves reports and nothing else of the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pipelines.airflow_ui.links import REPORT_TASK_ID, STRESS_DAG_ID, task_output
from pipelines.composition import current_adapters

if TYPE_CHECKING:
    from fastapi import FastAPI

MEDIA_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}


def create_reports_app() -> FastAPI:
    """The FastAPI app of the reports."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends, FastAPI, HTTPException, Response

    app = FastAPI(title="loanstress reports", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/dags/{dag_id}/runs/{run_id}/report.{report_format}",
             dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))])
    def run_report(dag_id: str, run_id: str, report_format: Literal["html", "pdf"]) -> Response:
        output = task_output(dag_id, run_id, REPORT_TASK_ID) if dag_id == STRESS_DAG_ID else None
        document = (output or {}).get("report", {}).get(report_format)
        if document is None:
            raise HTTPException(404, f"no {report_format} report of {dag_id} run {run_id!r} (its report task "
                                     "has not written one)")
        body = current_adapters().object_store.get_bytes(document["key"])
        filename = document["key"].rsplit("/", 1)[-1]
        return Response(body, media_type=MEDIA_TYPES[report_format],
                        headers={"Content-Disposition": f'inline; filename="{filename}"'})

    return app


class ReportsApp:
    """The reports app as an ASGI app built on its first request.

    Airflow imports plugins in every component (scheduler, DAG processor, triggerer, task runs), and
    the API server's security module the app depends on takes seconds to import: only the API
    server, the one component that serves requests, pays for it.
    """

    def __init__(self) -> None:
        self._app: FastAPI | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = create_reports_app()
        await self._app(scope, receive, send)
