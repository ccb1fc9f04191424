# Quick start: `make demo` then `make test`. Everything runs from the project's own .venv.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
DATA_HOME ?= $(CURDIR)/data_home

export STRESS_DATA_HOME ?= $(DATA_HOME)
export AIRFLOW_HOME ?= $(DATA_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER ?= $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER ?= $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False
export PYTHONPATH := $(CURDIR)

.PHONY: install demo test fuzz bench airflow mlflow lint lock contract clean serve-model

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements.txt
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	@touch $@

demo: install  ## the quarterly stress test end to end on embedded defaults
	$(PY) -m pipelines.cli demo

test: install  ## the whole test suite
	$(PY) -m pytest -q -p no:cacheprovider

fuzz: install  ## the tape fuzz tests with twenty times the suite's examples (400 Parquet, 800 CSV)
	LOANSTRESS_FUZZ_EXAMPLES=400 $(PY) -m pytest -q -p no:cacheprovider tests/unit/test_tape_fuzz.py

bench: install  ## benchmarks: prints figures, writes .bench/results.json
	$(PY) -m benchmarks.run $(BENCH)

AIRFLOW_PORT ?= 8080
# `airflow standalone` starts its scheduler, DAG processor, triggerer and API server as `airflow ...` found on
# PATH: the venv's bin goes first, or they do not start (or another Airflow without this repo's plugin does).
airflow: install  ## Airflow UI on http://localhost:$(AIRFLOW_PORT) with this repo's DAGs and plugin (embedded SQLite metadata)
	PATH="$(abspath $(VENV))/bin:$$PATH" AIRFLOW__API__PORT=$(AIRFLOW_PORT) $(VENV)/bin/airflow standalone

mlflow: install  ## MLflow UI on http://localhost:5000 over the local tracking store
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(DATA_HOME)/mlflow.sqlite --port 5000

lint: install
	$(VENV)/bin/ruff check .

contract: install  ## regenerate expectations/loan_tape.json and docs/loan_contract.md from the contract
	$(PY) -m pipelines.cli contract

lock:  ## re-lock requirements.txt from requirements.in
	$(UV) pip compile requirements.in --python-version 3.11 -o requirements.txt

clean:
	rm -rf $(DATA_HOME) .bench

serve-model: install  ## the champion PD model over HTTP (POST /invocations; port STRESS_MODEL_SERVING_PORT, 5001)
	$(PY) -m pipelines.cli serve-model

.PHONY: monitor
monitor: install  ## one portfolio_monitoring run (score, back-test, drift, compliance) on the demo tape; after `make demo`
	$(PY) -c 'from pipelines.cli.demo import prepare_airflow, run_dag; from pipelines.settings import get_settings; \
	prepare_airflow(get_settings()); print("portfolio_monitoring run", run_dag("portfolio_monitoring", {}), "succeeded")'

.PHONY: spark-bundle
SPARK_BUNDLE ?= dist/spark
spark-bundle:  ## the Spark jobs' code for EMR Serverless: $(SPARK_BUNDLE)/{spark_job.py,spark_etl.py,loanstress-project.tar.gz} from the working tree
	rm -rf $(SPARK_BUNDLE) && mkdir -p $(SPARK_BUNDLE)
	cp pipelines/engine/spark_job.py $(SPARK_BUNDLE)/spark_job.py
	cp pipelines/data/spark_etl.py $(SPARK_BUNDLE)/spark_etl.py
	tar --create --gzip --file $(SPARK_BUNDLE)/loanstress-project.tar.gz --exclude=__pycache__ --exclude='*.pyc' \
		--sort=name --owner=0 --group=0 --mtime=2026-01-01 pipelines models scenarios compliance expectations pyproject.toml
	@echo "upload $(SPARK_BUNDLE)/* and loanstress-env.tar.gz (docs/scale_out.md) to STRESS_EMR_CODE_URI"

.PHONY: proto grpc api
proto: install  ## regenerate pipelines/services/grpc_gen from proto/ with the pinned grpcio-tools
	$(PY) -m pipelines.services.grpc_codegen

grpc: install  ## the gRPC services on STRESS_GRPC_ADDRESS (127.0.0.1:50051); needs STRESS_AUTH_ISSUER/AUDIENCE/JWKS_URL
	$(PY) -m pipelines.cli serve-grpc

api: install  ## the REST API on http://STRESS_API_HOST:STRESS_API_PORT/api/v1 (docs at /api/v1/docs); needs STRESS_AUTH_*
	$(PY) -m pipelines.cli serve-api

.PHONY: dashboard
dashboard: install  ## the dashboard on http://STRESS_DASHBOARD_HOST:STRESS_DASHBOARD_PORT (127.0.0.1:8050); after `make demo`
	$(PY) -m pipelines.cli serve-dashboard
