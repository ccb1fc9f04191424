"""The dashboard inside the Airflow UI: log in (SimpleAuthManager), open the seeded run, follow its tab.

A real ``airflow api-server`` on a loopback port serves the UI and this repo's plugin, on the seeded
run's Airflow metadata database and stores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.browser.conftest import SeededRun, free_port

USER, PASSWORD = "risk-analyst", "correct-horse-battery"
START_SECONDS = 180  # a guard against a server that never starts, not a measure of speed
STOP_SECONDS = 30


@pytest.fixture(scope="module")
def airflow_url(seeded_run: SeededRun) -> Iterator[str]:
    passwords = seeded_run.data_home / "airflow" / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    port = free_port()
    environment = seeded_run.environment | {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}
    log = (seeded_run.data_home / "api-server.log").open("w")
    # A session of its own: the API server's worker processes are stopped with it, as one process group.
    server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port",
                               str(port)], env=environment, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    else:
        _stop(server)
        pytest.fail(f"airflow api-server did not start; see {log.name}")
    yield url
    _stop(server)
    log.close()


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL if it has not stopped after a grace period."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_the_dashboard_needs_an_airflow_login(airflow_url):
    assert httpx.get(f"{airflow_url}/loanstress/dashboard/_dash-layout").status_code == 401
    page = httpx.get(f"{airflow_url}/loanstress/dashboard/", headers={"Accept": "text/html"})
    assert page.status_code == 307 and "/auth/login" in page.headers["location"]
    forged = httpx.get(f"{airflow_url}/loanstress/dashboard/_dash-layout", cookies={"_token": "not-a-jwt"})
    assert forged.status_code == 401


def test_log_in_and_follow_the_run_to_its_dashboard(page, airflow_url, seeded_run):
    page.goto(f"{airflow_url}/")
    page.wait_for_selector("input[name=username]")
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url)
    page.goto(f"{airflow_url}/dags/loan_stress_test/runs/{quote(seeded_run.run_id, safe='')}")
    page.get_by_role("link", name="Stress dashboard", exact=True).click()  # the run's external-view tab
    page.wait_for_url(lambda url: url.endswith("/plugin/loanstress-run-dashboard"))
    frame = page.frame_locator("iframe[title='Stress dashboard']")
    assert frame.locator("#shown-run-id").inner_text() == seeded_run.run_id
    frame.locator("#comparison").wait_for()
    page.screenshot(path=str(seeded_run.screenshots / "airflow_dag_run_dashboard.png"))
