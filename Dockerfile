# The loanstress image: every Airflow component, the MLflow tracking server, the Spark job's driver and the
# project's own servers (gRPC, REST, dashboard).
#   docker build -t loanstress:latest .
# Dependencies come from the pinned lock (requirements.txt, the Celery provider of the CeleryExecutor
# included), installed with uv exactly as `make install` does. Entry points: `airflow` (the default, for
# every Airflow component) and `python -m pipelines.cli` (the compose file's and the manifests' own
# services set it as their entrypoint: serve-grpc, serve-api, serve-dashboard, probe).
FROM python:3.11-slim-bookworm

ARG UV_VERSION=0.8.22
ENV AIRFLOW_HOME=/opt/airflow \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/loanstress/.venv/bin:$PATH \
    PYSPARK_PYTHON=/opt/loanstress/.venv/bin/python \
    STRESS_DATA_HOME=/opt/loanstress/data_home

# Java 17 for the spark runner; curl for the health checks; tini as PID 1.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/loanstress
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
COPY requirements.txt pyproject.toml ./
RUN uv venv --python python3.11 .venv \
    && uv pip sync --python .venv/bin/python --compile-bytecode requirements.txt

COPY models/ models/
COPY pipelines/ pipelines/
COPY dags/ dags/
COPY plugins/ plugins/
COPY compliance/ compliance/
COPY risk_appetite/ risk_appetite/
COPY expectations/ expectations/
COPY scenarios/ scenarios/
RUN uv pip install --python .venv/bin/python --no-deps -e . \
    && useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home airflow \
    && mkdir -p /opt/loanstress/data_home /opt/airflow/logs /opt/mlflow/artifacts \
    && chown -R 50000:0 /opt/loanstress/data_home /opt/airflow /opt/mlflow

USER 50000
ENTRYPOINT ["/usr/bin/tini", "--", "airflow"]
CMD ["version"]
