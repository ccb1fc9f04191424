"""`make airflow` shows this repo's plugin: Airflow finds and imports it with the environment the Makefile and the
demo give Airflow, and `airflow standalone` starts its components from the project's venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_airflow_lists_the_plugin_with_its_links_and_apps(tmp_path: Path) -> None:
    from pipelines.cli.demo import airflow_environment
    from pipelines.settings import REPO_ROOT, StressSettings

    environment = os.environ | airflow_environment(StressSettings(data_home=tmp_path / "data_home"))
    environment["PYTHONPATH"] = str(REPO_ROOT)
    airflow = Path(sys.executable).with_name("airflow")
    listed = subprocess.run([str(airflow), "plugins", "--output", "json"], env=environment, check=True,
                            capture_output=True, text=True, cwd=tmp_path)
    (plugin,) = json.loads(listed.stdout[listed.stdout.index("["):])
    assert plugin["name"] == "loanstress_services"
    assert plugin["source"] == "$PLUGINS_FOLDER/loanstress_services.py"
    assert len(plugin["global_operator_extra_links"]) == 3
    assert "ReportsApp" in str(plugin["fastapi_apps"])


def test_make_airflow_starts_standalone_with_the_venv_first_on_path() -> None:
    """``airflow standalone`` runs ``airflow scheduler``, ``airflow api-server``... looked up on PATH."""
    from pipelines.settings import REPO_ROOT

    dry_run = subprocess.run(["make", "--dry-run", "--always-make", "airflow", "AIRFLOW_PORT=18999"], cwd=REPO_ROOT,
                             check=True, capture_output=True, text=True).stdout.splitlines()
    (command,) = [line for line in dry_run if line.endswith("airflow standalone")]
    assert command.startswith(f'PATH="{REPO_ROOT / ".venv" / "bin"}:$PATH" AIRFLOW__API__PORT=18999 ')
