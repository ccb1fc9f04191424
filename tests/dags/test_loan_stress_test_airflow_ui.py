"""What a data engineer sees of a ``loan_stress_test`` run in the Airflow UI, checked on one dag.test() run.

XCom stays small (keys, URIs and headline figures; the loss distribution stays in the object store),
the asset events carry the snapshot's rows and hash and each scenario's loss figures, the tasks'
extra links lead to the run's dashboard page and report, and the report is served behind Airflow's
authentication. The links and the report are asked of Airflow's own API server app, with this
repo's plugin loaded, in a process of its own (``api_server_probe.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path
from urllib.parse import quote

AS_OF = date(2025, 12, 31)
DASHBOARD = "http://dashboard.example:8050/stress/"
# The budget of one task instance's XCom rows. A dict return value is stored twice by Airflow (whole
# and one row per key, the TaskFlow multiple-outputs split), so 8 KiB holds 4 KiB of output.
XCOM_BUDGET_BYTES = 8 * 1024


def _xcom_sizes(dag_id: str, run_id: str) -> dict[str, int]:
    """Bytes of XCom each task instance of the run stored, by ``task_id[map_index]``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    sizes: dict[str, int] = defaultdict(int)
    with create_session() as session:
        for task_id, map_index, value in session.execute(select(
                XComModel.task_id, XComModel.map_index, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run_id)).all():
            sizes[f"{task_id}[{map_index}]"] += len(value if isinstance(value, str) else json.dumps(value))
    return dict(sizes)


def _asset_events(run_id: str) -> dict[str, dict]:
    """The extra of each asset event the run emitted, by asset name."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(AssetModel.name, AssetEvent.extra).join(
            AssetModel, AssetModel.id == AssetEvent.asset_id).where(AssetEvent.source_run_id == run_id)).all()
    assert len(rows) == len({name for name, _ in rows}), f"one event per asset expected: {rows}"
    return {name: extra for name, extra in rows}


def test_a_run_as_the_airflow_ui_shows_it(airflow_db, dagbag, small_performance_history, stress_settings, tmp_path,
                                          monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.variable import Variable

    from pipelines.adapters.model_registry import CHAMPION, ModelRegistry
    from pipelines.adapters.object_store import open_object_store
    from pipelines.data.export import write_table
    from pipelines.data.synthetic import generate_loan_book
    from pipelines.engine.headline import headline_figures
    from pipelines.settings import REPO_ROOT, get_settings
    from pipelines.tasks.airflow_config import TRACKING_URI_VARIABLE
    from pipelines.tasks.loan_tape import snapshot_event_extra
    from pipelines.tasks.runs import read_run_steps, run_key

    monkeypatch.setenv("STRESS_DASHBOARD_URL", DASHBOARD)
    # The deployment's Airflow Variable names the tracking store (the session's trained registry, with a champion)
    # and wins over STRESS_MLFLOW_TRACKING_URI, which names a store that does not exist: a plan that read it would
    # fail the run (a configured store that is missing is an error, never an empty registry).
    tracking_uri = os.environ["STRESS_MLFLOW_TRACKING_URI"]
    lost_store = tmp_path / "lost-mlflow.sqlite"
    monkeypatch.setenv("STRESS_MLFLOW_TRACKING_URI", f"sqlite:///{lost_store}")
    get_settings.cache_clear()
    tape = str(tmp_path / "tape.csv")
    write_table(generate_loan_book(250, seed=21, as_of=AS_OF), tape)
    Variable.set(TRACKING_URI_VARIABLE, tracking_uri)
    try:
        # A DAG parsed for this test: dag.test(run_conf=...) leaves the conf in the params of the DAG object it
        # ran, which would become the defaults of later tests using the session's DagBag.
        dag = DagBag(str(REPO_ROOT / "dags" / "loan_stress_test.py")).get_dag("loan_stress_test")
        run = dag.test(run_conf={
            "source_uri": tape, "as_of_date": AS_OF.isoformat(), "n_paths": 100,
            "scenarios": ["2026_baseline", "2026_severely_adverse"]})
    finally:
        Variable.delete(TRACKING_URI_VARIABLE)
    assert str(run.state) == "success"
    assert not lost_store.exists()
    store = open_object_store(stress_settings.resolved_object_store_uri)
    steps = read_run_steps(store, run.run_id)
    champion = ModelRegistry(tracking_uri, stress_settings.pd_registered_model_name,
                             stress_settings.mlflow_experiment_name).alias_version(CHAMPION)
    assert (steps["plan"]["pd_model"]["tracking_uri"], steps["plan"]["pd_model"]["version"]) == (tracking_uri, champion)
    scenarios = steps["plan"]["scenarios"]
    results = {s: json.loads(store.get_bytes(f"runs/{run_key(run.run_id)}/results/{s}/simulation_result.json"))
               for s in scenarios}

    # XCom: every task instance that ran pushed something, none more than the budget; reduce pushed keys and
    # the headline figures of the stored result, not its loss distribution.
    sizes = _xcom_sizes("loan_stress_test", run.run_id)
    succeeded = {f"{ti.task_id}[{ti.map_index}]" for ti in run.get_task_instances() if str(ti.state) == "success"}
    assert {"reduce[0]", "reduce[1]", "report[-1]", "compliance[-1]", "optimise[-1]"} <= set(sizes) <= succeeded
    assert {name: size for name, size in sizes.items() if size > XCOM_BUDGET_BYTES} == {}
    assert len(json.dumps(results["2026_severely_adverse"])) > XCOM_BUDGET_BYTES  # a whole result would not fit
    for reduced in steps["publish"]["reduced"]:
        assert reduced["figures"] == headline_figures(results[reduced["scenario_id"]])
    report = steps["report"]
    assert set(report) == {"report", "scenarios", "compliance"}
    for report_format in ("html", "pdf"):
        document = report["report"][report_format]
        assert document["uri"] == store.uri(document["key"]) and store.get_bytes(document["key"])
    assert report["scenarios"] == {s: headline_figures(results[s]) for s in scenarios}

    # Asset events: the snapshot's rows and hash, each scenario's loss and capital figures.
    events = _asset_events(run.run_id)
    assert set(events) == {"validated_loan_snapshot", "stress_test_results"}
    snapshot = events["validated_loan_snapshot"]
    assert snapshot == snapshot_event_extra(steps["validate"])
    assert (snapshot["input_rows"], snapshot["content_sha256"]) == (250, steps["validate"]["content_sha256"])
    published = events["stress_test_results"]
    assert published["airflow_run_id"] == run.run_id and published["snapshot_id"] == steps["plan"]["snapshot_id"]
    assert published["simulation_ids"] == steps["publish"]["simulation_ids"]
    assert published["pd_model_version"] == steps["plan"]["pd_model"]["version"]
    for scenario_id, figures in published["scenarios"].items():
        metrics = results[scenario_id]["metrics"]
        assert figures["expected_loss"] == round(metrics["expected_loss"], 2) > 0
        assert figures["var_999"] == round(metrics["var"]["0.999"], 2) >= figures["expected_loss"]
        assert figures["min_cet1_ratio"] == round(metrics["capital"]["min_cet1_ratio"], 8)
    assert sorted(published["scenarios"]) == sorted(scenarios)

    # The API server with the plugin: the links of every task instance and the report behind Airflow's auth.
    plugins = {"AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins")}
    probe = subprocess.run([sys.executable, str(Path(__file__).with_name("api_server_probe.py")), "loan_stress_test",
                            run.run_id], check=True, capture_output=True, text=True, env=os.environ | plugins)
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    (plugin,) = seen["plugins"]["plugins"]
    assert plugin["name"] == "loanstress_services" and len(plugin["global_operator_extra_links"]) == 3
    report_base = f"/loanstress-reports/dags/loan_stress_test/runs/{quote(run.run_id, safe='')}/report"
    expected = {"Stress dashboard": f"http://dashboard.example:8050/stress/runs/{quote(run.run_id, safe='')}",
                "Report (HTML)": f"{report_base}.html", "Report (PDF)": f"{report_base}.pdf"}
    assert seen["links"] and set(seen["links"]) == {f"{ti.task_id}[{ti.map_index}]" for ti in run.get_task_instances()}
    for task, links in seen["links"].items():  # the EMR operators' own links come beside ours
        assert {name: links.get(name) for name in expected} == expected, task
    # Global links are asked for every DAG's tasks: they answer for loan_stress_test only.
    from airflow.models.taskinstancekey import TaskInstanceKey

    from pipelines.airflow_ui.links import stress_run_links

    elsewhere = TaskInstanceKey("portfolio_monitoring", "publish", run.run_id, 1, -1)
    assert [link.get_link(None, ti_key=elsewhere) for link in stress_run_links()] == ["", "", ""]
    # The graph with its external dependencies: each asset drawn downstream of the task that emits it.
    graph = seen["graph"]
    assets = {node["id"]: node["label"] for node in graph["nodes"] if node["type"] == "asset"}
    drawn = {(edge["source_id"], assets[edge["target_id"]]) for edge in graph["edges"] if edge["target_id"] in assets}
    assert drawn == {("loan_tape.validate", "validated_loan_snapshot"), ("publish", "stress_test_results")}
    # The XCom tab: the report task's return value is where the report is and what it says, not two URI strings;
    # each reduce's is the keys of its stored result and the headline figures, not the loss distribution.
    xcoms = {task: value if isinstance(value, dict) else json.loads(value) for task, value in seen["xcoms"].items()}
    assert xcoms.pop("report[-1]") == report
    assert {task for task in xcoms} == {"reduce[0]", "reduce[1]"}
    by_scenario = {value["scenario_id"]: value for value in xcoms.values()}
    assert sorted(by_scenario) == sorted(scenarios)
    for scenario_id, value in by_scenario.items():
        assert set(value) == {"scenario_id", "SimulationId", "result_key", "loans_key", "segment_losses_key", "figures"}
        assert value["figures"] == headline_figures(results[scenario_id])
        assert value["result_key"] == f"runs/{run_key(run.run_id)}/results/{scenario_id}/simulation_result.json"
    html, pdf = seen["reports"]["Report (HTML)"], seen["reports"]["Report (PDF)"]
    assert html["anonymous_status"] == pdf["anonymous_status"] == 401
    assert (html["status"], html["content_type"]) == (200, "text/html; charset=utf-8")
    assert (pdf["status"], pdf["content_type"], pdf["body_start"][:5]) == (200, "application/pdf", "%PDF-")
    assert html["body_start"].lstrip().lower().startswith("<!doctype html")
