"""Asks Airflow's own API server app, with this repo's plugin loaded, what the UI would show of a run.

Run as a script by the DAG tests (``python tests/dags/api_server_probe.py DAG_ID RUN_ID``) in a process
of its own, because Airflow reads the plugins folder once per process. Prints one JSON object: the
plugin list, the extra links of every task instance of the run, the report endpoint's answers
with and without an Airflow token, the DAG's graph with its external dependencies (assets), and the
XCom return values of the report and reduce task instances.
"""

from __future__ import annotations

import json
import sys
from urllib.parse import quote


def main(dag_id: str, run_id: str) -> None:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    client = TestClient(create_app())
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    auth = {"Authorization": f"Bearer {token}"}
    run_path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
    task_instances = client.get(f"{run_path}/taskInstances", headers=auth, params={"limit": 100}).json()
    links = {}
    for ti in task_instances["task_instances"]:
        answer = client.get(f"{run_path}/taskInstances/{ti['task_id']}/links", headers=auth,
                            params={"map_index": ti["map_index"]})
        links[f"{ti['task_id']}[{ti['map_index']}]"] = answer.json()["extra_links"]
    reports = {}
    for name, url in links["report[-1]"].items():
        if name.startswith("Report"):
            anonymous = client.get(url)
            signed_in = client.get(url, headers=auth)
            reports[name] = {"url": url, "anonymous_status": anonymous.status_code, "status": signed_in.status_code,
                             "content_type": signed_in.headers.get("content-type"),
                             "body_start": signed_in.content[:64].decode("latin-1")}
    # The return values the UI's XCom tab shows for the report and each scenario's reduce.
    xcoms = {}
    for key in links:
        task_id, map_index = key.removesuffix("]").split("[")
        if task_id in {"report", "reduce"}:
            answer = client.get(f"{run_path}/taskInstances/{task_id}/xcomEntries/return_value", headers=auth,
                                params={"map_index": map_index})
            xcoms[key] = answer.json()["value"]
    plugins = client.get("/api/v2/plugins", headers=auth).json()
    graph = client.get("/ui/structure/structure_data", headers=auth,
                       params={"dag_id": dag_id, "external_dependencies": True}).json()
    print(json.dumps({"plugins": plugins, "links": links, "reports": reports, "graph": graph, "xcoms": xcoms}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
