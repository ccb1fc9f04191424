"""Browser tests: one seeded loan_stress_test run shared by every test, headless Debian Chromium.

The run is made once per session in a process of its own (``run_dag`` as ``make demo`` does, on a
300-loan tape, 200 paths and a 3,000-loan performance history), so its Airflow and stores live in
a data home of their own and nothing here touches the environment other tests see. Under
``CI=true`` a missing Chromium or a failed run fails the tests; nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.settings import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
AS_OF = "2025-12-31"
SEED_SCRIPT = """
import sys
from datetime import date
from pipelines.cli.demo import prepare_airflow, run_dag
from pipelines.data.export import write_table
from pipelines.data.synthetic import generate_loan_book, generate_performance_history
from pipelines.settings import get_settings

settings = get_settings()
generate_performance_history(3000, seed=5).to_parquet(settings.performance_history_uri)
tape = str(settings.data_home / "inputs" / "tape.csv")
write_table(generate_loan_book(300, seed=11, as_of=date(2025, 12, 31)), tape)
prepare_airflow(settings)
# A registered PD model through the promotion gate first, as make demo does: the stress test runs no other.
run_dag("pd_model_training", {"history_source_uri": str(settings.performance_history_uri), "holdout_quarters": 8,
                              "search_budget": 1})
print("RUN_ID=" + run_dag("loan_stress_test", {"source_uri": tape, "as_of_date": sys.argv[1]}))
"""


@dataclass(frozen=True)
class SeededRun:
    run_id: str
    data_home: Path
    environment: dict[str, str]  # the run's STRESS_* and Airflow settings, for servers started on it

    @property
    def screenshots(self) -> Path:
        path = self.data_home / "screenshots"
        path.mkdir(parents=True, exist_ok=True)
        return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def seeded_run() -> SeededRun:
    """A finished loan_stress_test run in a data home of its own (kept for its screenshots)."""
    data_home = Path(tempfile.mkdtemp(prefix="loanstress-browser-"))
    (data_home / "inputs").mkdir(parents=True)
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("STRESS_", "AIRFLOW_", "AIRFLOW__"))}
    airflow_home = data_home / "airflow"
    environment |= {
        "PYTHONPATH": str(REPO_ROOT), "STRESS_DATA_HOME": str(data_home), "STRESS_SEED": "7",
        "STRESS_N_PATHS": "200", "STRESS_PERFORMANCE_HISTORY_URI": str(data_home / "inputs" / "history.parquet"),
        "AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}
    # A script file, not ``python -c``: pyspark takes a __main__ without a file for a doctest run and exits.
    script = data_home / "seed_run.py"
    script.write_text(SEED_SCRIPT)
    seeded = subprocess.run([sys.executable, str(script), AS_OF], env=environment, capture_output=True, text=True,
                            cwd=REPO_ROOT)
    run_ids = [line.removeprefix("RUN_ID=") for line in seeded.stdout.splitlines() if line.startswith("RUN_ID=")]
    assert seeded.returncode == 0 and run_ids, (f"the seeded run failed:\n{seeded.stdout[-3000:]}\n"
                                                f"{seeded.stderr[-5000:]}")
    return SeededRun(run_ids[0], data_home, environment)


@pytest.fixture(scope="session")
def seeded_adapters(seeded_run: SeededRun, make_settings):
    """The composition root's adapters on the seeded run's stores (what the test reads to compare)."""
    from pipelines.composition import build_adapters

    return build_adapters(make_settings(seeded_run.data_home, n_paths=200, seed=7))


@pytest.fixture(scope="session")
def dashboard_url(seeded_adapters) -> Iterator[str]:
    """The standalone dashboard on the seeded stores, in a thread of this process, reading the application layer."""
    from werkzeug.serving import make_server

    from pipelines.dashboard.app import create_dashboard_app
    from pipelines.dashboard.source import ApplicationSource

    server = make_server("127.0.0.1", free_port(), create_dashboard_app(ApplicationSource(seeded_adapters)).server,
                         threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Headless Debian Chromium through Playwright (Playwright's own browser download is not used).

    One per module, not per session: Playwright's sync API keeps an asyncio loop in the main thread while
    it runs, and the later tests of the session (``asyncio.run``, Airflow's ``dag.test``) need it gone."""
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(60_000)
    yield opened
    context.close()
