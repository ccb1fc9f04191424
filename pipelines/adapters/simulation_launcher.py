"""Where a requested ``loan_stress_test`` run executes: Airflow (its REST API) or a process of its own.

- :class:`AirflowApiLauncher` (``STRESS_AIRFLOW_API_URL`` set): triggers a DAG run through Airflow's
  REST API (``POST /api/v2/dags/loan_stress_test/dagRuns``) with the simulation id as its run id, and
  reads the run's state back (``GET .../dagRuns/{run id}``); Airflow is the task queue of long work. It
  authenticates with a fixed bearer token (``STRESS_AIRFLOW_API_TOKEN``) or, with a user name and
  password, with a token from Airflow's own token endpoint (``POST /auth/token`` of the simple auth
  manager and of the other auth managers that offer it), renewed once when Airflow refuses it.
- :class:`ProcessLauncher` (embedded default): starts ``python -m pipelines.cli run-simulation ID`` in
  a new session, which runs the DAG with ``dag.test()`` exactly as ``make demo`` does and records the
  request's status itself, so a service restart never loses a run's outcome. A thread of the service
  waits for the process and then calls ``on_finished`` (the cache invalidation).

Both return at once; the caller polls the request's status.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

DAG_ID = "loan_stress_test"
# Airflow's DAG run states -> the request statuses the services report.
AIRFLOW_STATES = {"queued": "queued", "running": "running", "success": "succeeded", "failed": "failed"}


class LaunchError(RuntimeError):
    """The run could not be started (Airflow refused it or is unreachable)."""


class SimulationLauncher(ABC):
    name: str

    @abstractmethod
    def launch(self, simulation_id: str, conf: dict[str, Any]) -> None:
        """Start the run of ``simulation_id`` with DAG run ``conf`` and return without waiting."""

    def refresh(self, request: dict[str, Any]) -> dict[str, str | None] | None:
        """The run's current ``{"status", "airflow_run_id", "error"}`` when the launcher must be asked, else None."""
        return None


class ProcessLauncher(SimulationLauncher):
    """One process per run, its output in ``log_dir/<simulation id>.log``."""

    name = "process"

    def __init__(self, log_dir: Path, on_finished: Callable[[str], None]) -> None:
        self.log_dir = log_dir
        self.on_finished = on_finished

    def launch(self, simulation_id: str, conf: dict[str, Any]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{simulation_id}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run-simulation", simulation_id],
                                       stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        threading.Thread(target=self._wait, args=(process, simulation_id), daemon=True,
                         name=f"simulation-{simulation_id}").start()

    def _wait(self, process: subprocess.Popen, simulation_id: str) -> None:
        process.wait()
        self.on_finished(simulation_id)


class AirflowApiLauncher(SimulationLauncher):
    """DAG runs through the Airflow 3 REST API (``/api/v2``) with a bearer token, fixed or obtained."""

    name = "airflow"

    def __init__(self, base_url: str, token: str = "", username: str = "", password: str = "") -> None:
        if token and username:
            raise ValueError("set either STRESS_AIRFLOW_API_TOKEN or STRESS_AIRFLOW_API_USERNAME/PASSWORD, not both")
        self.base_url = base_url.rstrip("/")
        self.username, self.password = username, password
        self._token = token
        self._lock = threading.Lock()

    def _send(self, method: str, url: str, **kwargs: Any):
        import httpx

        try:
            return httpx.request(method, url, timeout=30, **kwargs)
        except httpx.HTTPError as error:
            raise LaunchError(f"Airflow API at {self.base_url} unreachable: {error}") from error

    def _bearer(self, renew: bool = False) -> dict[str, str]:
        """The Authorization header: the fixed token, or one from ``/auth/token`` (fetched once, renewed on 401)."""
        with self._lock:
            if self.username and (renew or not self._token):
                response = self._send("POST", f"{self.base_url}/auth/token",
                                      json={"username": self.username, "password": self.password})
                if response.status_code != HTTPStatus.CREATED:
                    raise LaunchError(f"Airflow API refused a token for {self.username!r}: "
                                      f"{response.status_code} {response.text[:300]}")
                self._token = response.json()["access_token"]
            return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base_url}/api/v2/dags/{DAG_ID}/dagRuns{path}"
        response = self._send(method, url, headers=self._bearer(), **kwargs)
        # Airflow 3.3 answers an expired or unknown token with 403 "Invalid JWT token" (not 401): a new token, once.
        if response.status_code in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN) and self.username:
            response = self._send(method, url, headers=self._bearer(renew=True), **kwargs)
        if response.status_code >= 400:
            raise LaunchError(f"Airflow API answered {response.status_code} to {method} {path or '/'}: "
                              f"{response.text[:500]}")
        return response.json()

    def launch(self, simulation_id: str, conf: dict[str, Any]) -> None:
        self._request("POST", "", json={"dag_run_id": simulation_id, "logical_date": None, "conf": conf})

    def refresh(self, request: dict[str, Any]) -> dict[str, str | None] | None:
        run = self._request("GET", f"/{request['simulation_id']}")
        state = str(run.get("state"))
        return {"status": AIRFLOW_STATES.get(state, "running"), "airflow_run_id": run.get("dag_run_id"),
                "error": f"Airflow run ended {state}" if state == "failed" else None}
