"""The Airflow REST launcher against a real Airflow 3 API server on loopback.

The fixture runs ``airflow db migrate`` on a SQLite metadata database in a temporary AIRFLOW_HOME,
``airflow dags reserialize`` of this repo's DAGs (the API server reads DAGs from the database, not
from files), and ``airflow api-server`` with the simple auth manager and one user whose password
file the fixture writes. No scheduler runs, so a triggered run stays ``queued``; the test then
writes the run's state into the metadata database as the scheduler would (Airflow 3.3's
``PATCH .../dagRuns/{id}`` leaves a run without task instances ``queued``, which is what a run no
scheduler has picked up is), and the launcher reads it back through the API.
Under CI=true a server that does not come up fails the tests; elsewhere they are skipped.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pipelines.settings import REPO_ROOT

USER, PASSWORD = "launcher", "s3cret-launcher"
START_SECONDS = 300  # a guard against a server that never comes up, not a measure of speed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _fail_or_skip(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("airflow-api")


@pytest.fixture(scope="module")
def airflow_api(airflow_home: Path) -> str:
    """The base URL of a running Airflow API server with this repo's DAGs serialized."""
    home = airflow_home
    (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    port = _free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STRESS_"))},
        "AIRFLOW_HOME": str(home), "PYTHONPATH": str(REPO_ROOT), "STRESS_DATA_HOME": str(home / "data_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager."
                                       "SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
    }
    log = (home / "airflow.log").open("w")
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        done = subprocess.run([sys.executable, "-m", "airflow", *command], env=environment, stdout=log,
                              stderr=subprocess.STDOUT, timeout=START_SECONDS, check=False)
        if done.returncode != 0:
            _fail_or_skip(f"airflow {' '.join(command)} failed; see {home / 'airflow.log'}")
    server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port",
                               str(port)], env=environment, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if httpx.get(f"{base_url}/api/v2/monitor/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            _fail_or_skip(f"the Airflow API server did not start; see {home / 'airflow.log'}")
        time.sleep(0.5)
    yield base_url
    server.terminate()
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def _admin(base_url: str) -> httpx.Client:
    token = httpx.post(f"{base_url}/auth/token", json={"username": USER, "password": PASSWORD}).json()["access_token"]
    return httpx.Client(base_url=f"{base_url}/api/v2/dags/loan_stress_test/dagRuns",
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _end(airflow_home: Path, run_id: str, state: str) -> None:
    """Write a run's final state as the scheduler does when its last task ends."""
    with sqlite3.connect(airflow_home / "airflow.db") as database:
        changed = database.execute("UPDATE dag_run SET state = ?, end_date = CURRENT_TIMESTAMP WHERE run_id = ?",
                                   (state, run_id)).rowcount
    assert changed == 1


def test_a_requested_simulation_is_a_dag_run_of_the_airflow_api(airflow_api, airflow_home, tmp_path, monkeypatch):
    """Through the composition root: the service's request becomes a real DAG run with its conf."""
    from pipelines.composition import current_adapters
    from pipelines.services.application import get_simulation, run_simulation
    from pipelines.settings import get_settings

    for name in list(os.environ):
        if name.startswith("STRESS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STRESS_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STRESS_AIRFLOW_API_URL", airflow_api)
    monkeypatch.setenv("STRESS_AIRFLOW_API_USERNAME", USER)
    monkeypatch.setenv("STRESS_AIRFLOW_API_PASSWORD", PASSWORD)
    get_settings.cache_clear()
    try:
        adapters = current_adapters()
        assert adapters.simulation_launcher.name == "airflow"
        started = run_simulation(adapters, "Rates +100 bp", "0.01", requested_by="analyst")
        simulation_id = started["simulation_id"]
        with _admin(airflow_api) as admin:
            run = admin.get(f"/{simulation_id}").json()
        assert run["dag_run_id"] == simulation_id and run["state"] == "queued"
        assert run["triggering_user_name"] == USER and run["run_type"] == "manual"
        assert run["conf"] == {"scenarios": [], "rate_shock_bp": 100, "horizon_quarters": 0, "n_paths": 0,
                               "seed": None, "source_uri": None, "as_of_date": None, "batch_size": 0}
        view = get_simulation(adapters, simulation_id)
        assert (view["status"], view["airflow_run_id"], view["error"]) == ("queued", None, None)
        _end(airflow_home, simulation_id, "failed")
        view = get_simulation(adapters, simulation_id)
        assert (view["status"], view["airflow_run_id"]) == ("failed", simulation_id)
        assert view["error"] == "Airflow run ended failed"
        # A terminal status is recorded: Airflow is not asked again.
        assert adapters.service_store.simulation_request(simulation_id)["status"] == "failed"
    finally:
        get_settings.cache_clear()


def test_states_tokens_and_refusals(airflow_api, airflow_home):
    from pipelines.adapters.simulation_launcher import AirflowApiLauncher, LaunchError

    launcher = AirflowApiLauncher(airflow_api, username=USER, password=PASSWORD)
    conf = {"scenarios": ["2026_baseline"], "rate_shock_bp": 0, "horizon_quarters": 0, "n_paths": 0, "seed": None,
            "source_uri": None, "as_of_date": None, "batch_size": 0}
    launcher.launch("svc__states", conf)
    assert launcher.refresh({"simulation_id": "svc__states"})["status"] == "queued"
    _end(airflow_home, "svc__states", "success")
    assert launcher.refresh({"simulation_id": "svc__states"}) == {
        "status": "succeeded", "airflow_run_id": "svc__states", "error": None}
    with pytest.raises(LaunchError, match="409"):  # the simulation id is the run id: never two runs of one request
        launcher.launch("svc__states", conf)
    with pytest.raises(LaunchError, match="400"):  # Airflow checks the conf against the DAG's Params
        launcher.launch("svc__bad_conf", {**conf, "n_paths": -5})
    with pytest.raises(LaunchError, match="404"):
        launcher.refresh({"simulation_id": "svc__never_started"})
    # A token Airflow no longer accepts is renewed once from /auth/token.
    launcher._token = "expired"
    assert launcher.refresh({"simulation_id": "svc__states"})["status"] == "succeeded"
    with pytest.raises(LaunchError, match="refused a token"):
        AirflowApiLauncher(airflow_api, username=USER, password="wrong").launch("svc__x", conf)
    with pytest.raises(LaunchError, match=r"403.*Invalid JWT token"):  # a fixed token is not renewed
        AirflowApiLauncher(airflow_api, token="not-a-token").launch("svc__y", conf)
    with pytest.raises(LaunchError, match="unreachable"):
        AirflowApiLauncher(f"http://127.0.0.1:{_free_port()}", username=USER, password=PASSWORD).launch("svc__z", conf)
    with pytest.raises(ValueError, match="not both"):
        AirflowApiLauncher(airflow_api, token="t", username=USER, password=PASSWORD)
