"""The one settings object of the platform.

The composition root (:mod:`pipelines.composition`) and the command line read the configuration from
:func:`get_settings`, which is
driven by environment variables with the ``STRESS_`` prefix (for example ``STRESS_TARGET=aws``).
Secrets (database passwords, AWS keys) are never defaults here: they come from the environment,
the AWS credential chain or Airflow connections.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Target(StrEnum):
    """Which world the adapters talk to: embedded files on a laptop, or AWS services."""

    LOCAL = "local"
    AWS = "aws"


class EtlRunner(StrEnum):
    """Where the loan tape is ingested, validated and its features engineered: the task's process or Spark."""

    LOCAL = "local"
    SPARK = "spark"
    EMR_SERVERLESS = "emr_serverless"


class SimulationRunner(StrEnum):
    """Where the simulation batches run: Airflow mapped tasks, a spark-submit, or EMR Serverless."""

    LOCAL = "local"
    SPARK = "spark"
    EMR_SERVERLESS = "emr_serverless"


class ModelServing(StrEnum):
    """Where the champion PD model is served: in process / ``mlflow models serve``, or a SageMaker endpoint."""

    LOCAL = "local"
    SAGEMAKER = "sagemaker"


class MonitoringScorer(StrEnum):
    """How ``portfolio_monitoring`` scores the book: in the worker, or a SageMaker batch transform."""

    IN_PROCESS = "in_process"
    BATCH_TRANSFORM = "batch_transform"


class CapitalApproach(StrEnum):
    """Rulebook of credit RWA: the US standardized approach (the Fed's stress test) or Basel IRB."""

    STANDARDIZED = "standardized"
    IRB = "irb"


class RWAPath(StrEnum):
    """RWA over the horizon: held at jump-off (the Fed's convention) or following the projected book."""

    CONSTANT = "constant"
    PROJECTED = "projected"


class StressSettings(BaseSettings):
    """Configuration of a deployment. Defaults run everything embedded under ``data_home``."""

    model_config = SettingsConfigDict(env_prefix="STRESS_", extra="ignore")

    target: Target = Target.LOCAL
    data_home: Path = Field(default=REPO_ROOT / "data_home", description="Root of every embedded store.")

    # Stores. Empty means "embedded default under data_home".
    loan_store_url: str = Field(
        default="", description="SQLAlchemy URL of the loan/results store; default SQLite in data_home."
    )
    object_store_uri: str = Field(
        default="", description="file:// folder or s3://bucket/prefix for snapshots, quarantine and outputs."
    )
    mlflow_tracking_uri: str = Field(default="", description="MLflow tracking URI; default SQLite in data_home.")
    performance_history_uri: str = Field(default="", description="Loan performance history (Parquet) the PD models "
                                         "are estimated on; default a seeded synthetic history in data_home/inputs.")
    loan_tape_uri: str = Field(default="", description="Loan tape ingested when a run names no source; default "
                               "the demo tape in data_home/inputs.")
    aws_region: str = "us-east-1"
    arrival_queue_url: str = Field(default="", description="SQS queue URL (https://sqs.<region>.amazonaws.com/"
                                   "<account>/<name>) that the S3 event notifications of the landing prefix go to; "
                                   "the loan_tape_arrival watcher of STRESS_TARGET=aws (docs/event_driven.md).")

    # Encryption at rest and in transit (pipelines/adapters/object_store.py, sql.py, services/tls.py;
    # docs/encryption.md).
    object_store_kms_key_id: str = Field(default="", description="KMS key (id, ARN or alias) the S3 object "
                                         "store encrypts every object with (SSE-KMS); empty: SSE-S3 (AES256).")
    object_store_require_bucket_encryption: bool = Field(default=False, description="Refuse to start against an "
                                                         "S3 bucket without default encryption (with a KMS key "
                                                         "configured: without an aws:kms default).")
    loan_store_sslmode: str = Field(default="", pattern="^(|disable|allow|prefer|require|verify-ca|verify-full)$",
                                    description="libpq sslmode of a PostgreSQL loan store; empty: what the URL "
                                    "says (libpq's default, prefer). verify-full needs loan_store_sslrootcert.")
    loan_store_sslrootcert: str = Field(default="", description="PEM CA bundle the PostgreSQL server certificate "
                                        "must chain to (e.g. the RDS global bundle).")
    tls_cert_path: str = Field(default="", description="PEM certificate chain the project's HTTP services (REST "
                               "API, dashboard) serve; with tls_key_path they speak HTTPS only. Also gRPC's when "
                               "grpc_tls_* are empty.")
    tls_key_path: str = Field(default="", description="PEM private key of tls_cert_path.")
    tls_ca_path: str = Field(default="", description="PEM CA bundle the project's own clients (health probes, "
                             "a dashboard reading the REST API) trust for the services' certificates; empty: the "
                             "system's trust store.")

    # HTTP sources: macro and market data by URL, loan tapes by (signed) https:// URL
    # (pipelines/adapters/http_source.py, pipelines/data/market_data.py; docs/http_sources.md).
    http_connect_timeout_seconds: float = Field(default=10.0, gt=0, description="Seconds to open a connection.")
    http_read_timeout_seconds: float = Field(default=30.0, gt=0, description="Longest wait for the next bytes.")
    http_attempt_timeout_seconds: float = Field(default=600.0, gt=0, description="Longest one attempt may take "
                                                "from request to last byte (a server that trickles is cut off).")
    http_max_attempts: int = Field(default=5, ge=1, le=20, description="Attempts on transient errors (connect "
                                   "errors, timeouts, 408, 429, 5xx) before the fetch fails.")
    http_backoff_base_seconds: float = Field(default=0.5, ge=0, description="First retry waits up to this; the "
                                             "cap doubles each attempt (full jitter).")
    http_backoff_max_seconds: float = Field(default=30.0, ge=0, description="Largest wait between two attempts.")
    http_max_retry_after_seconds: float = Field(default=120.0, ge=0, description="Longest Retry-After a 429/503 "
                                                "is honoured for; a server asking for more fails the fetch.")
    http_max_bytes: int = Field(default=8 * 2**30, ge=1, description="Largest response body accepted.")
    http_ca_bundle: str = Field(default="", description="PEM CA bundle HTTPS sources must chain to; empty: the "
                                "system's trust store (certifi).")
    aws_conn_id: str = Field(default="aws_default", description="Airflow connection the Amazon provider's hooks "
                             "and operators (SageMaker, SQS) use; without it, the standard AWS credential chain.")

    # Validation.
    duplicate_id_tolerance: float = Field(
        default=0.01, ge=0, le=1, description="Largest share of rows with a duplicated LoanId that is quarantined "
        "rather than stopping the run.",
    )
    balance_over_amount_tolerance: float = Field(
        default=0.05, ge=0, description="CurrentBalance may exceed LoanAmount by this share (capitalised interest, "
        "revolving over-limit) before the row is quarantined.",
    )

    # Simulation.
    horizon_quarters: int = Field(default=9, ge=1, le=40)
    n_paths: int = Field(default=1000, ge=10)
    seed: int = 20260101
    factor_model: Literal["horizon", "quarterly_ar1"] = Field(
        default="horizon", description="How defaults are correlated over the horizon (docs/simulation.md). horizon: "
        "one latent variable per loan and one systematic factor per path, the loan defaulting when it crosses its "
        "cumulative-PD threshold (over one year exactly the Basel/Vasicek one-factor model on the annual PD). "
        "quarterly_ar1: a Vasicek draw on each quarter's PD with an AR(1) factor of persistence factor_persistence.",
    )
    factor_persistence: float = Field(default=0.65, ge=0, le=1, description="quarterly_ar1 only: AR(1) "
                                      "persistence phi of the systematic factor from quarter to quarter (1: one "
                                      "factor for the horizon, 0: independent quarters); 0.65 comes closest to the "
                                      "annual Basel Vasicek tail over one year (models/portfolio_loss.py).")
    batch_size: int = Field(default=250_000, ge=100, description="Loans per simulation batch (mapped task).")

    # Simulation runner (pipelines/adapters/compute.py; docs/scale_out.md). Every runner writes the same
    # partial results, so the choice changes where batches run, never the numbers.
    simulation_runner: SimulationRunner = Field(default=SimulationRunner.LOCAL, description="local: one Airflow "
                                                "mapped task per batch; spark: one spark-submit of the batches; "
                                                "emr_serverless: the same Spark job on EMR Serverless.")
    etl_runner: EtlRunner = Field(default=EtlRunner.LOCAL, description="local: the loan_tape tasks ingest, "
                                  "validate and engineer features in their own process; spark: each runs its "
                                  "step as a spark-submit of pipelines/data/spark_etl.py (same snapshot, "
                                  "quarantine and features; docs/scale_out.md); emr_serverless: the same "
                                  "job as a job run on STRESS_EMR_ETL_APPLICATION_ID.")
    etl_chunk_bytes: int = Field(default=64 << 20, ge=1024, description="Spark ETL: bytes of CSV tape per Spark "
                                 "task (cut at line ends); a tape no larger is read whole by the driver.")
    etl_part_rows: int = Field(default=1_000_000, ge=1, description="Spark ETL: rows per part of a tape the "
                               "driver reads whole, and of the snapshot per features task.")
    spark_master: str = Field(default="local[2]", description="spark-submit --master of the spark runner.")
    spark_submit: str = Field(default="spark-submit", description="The spark-submit executable (PATH lookup).")
    spark_python: str = Field(default="", description="Python of the Spark driver and workers (PYSPARK_PYTHON); "
                              "default the interpreter running the task.")
    spark_conf: dict[str, str] = Field(default_factory=dict, description="Extra --conf of the spark runner; JSON "
                                       "object in STRESS_SPARK_CONF (e.g. {\"spark.executor.memory\": \"4g\"}).")
    emr_release_label: str = Field(default="emr-7.5.0", description="EMR Serverless release of the application.")
    emr_execution_role_arn: str = Field(default="", description="IAM role the EMR Serverless job runs as; "
                                        "required for STRESS_SIMULATION_RUNNER=emr_serverless.")
    emr_code_uri: str = Field(default="", description="s3:// folder holding `make spark-bundle`'s output "
                              "(spark_job.py, loanstress.zip, loanstress-env.tar.gz); required for "
                              "emr_serverless.")
    emr_etl_application_id: str = Field(default="", description="EMR Serverless application (SPARK, auto-start "
                                        "and auto-stop) the ETL stages run on; required for "
                                        "STRESS_ETL_RUNNER=emr_serverless.")
    emr_etl_timeout_seconds: float = Field(default=4 * 3600.0, gt=0, description="Longest an ETL job run may "
                                           "take on EMR Serverless before it is cancelled and the task fails.")
    emr_etl_poll_seconds: float = Field(default=30.0, gt=0, description="Seconds between two looks at an ETL "
                                        "job run's state.")
    # Observability (pipelines/observability/; docs/observability.md).
    log_format: str = Field(default="text", pattern="^(text|json)$", description="json: the project's loggers "
                            "write one JSON object per line with the run id; text: Airflow's own format.")
    metrics_textfile: Path | None = Field(default=None, description="File the teardown writes each run's "
                                          "Prometheus exposition to (node_exporter textfile collector); "
                                          "empty: only runs/<run>/metrics.prom in the object store.")
    emr_log_uri: str = Field(default="", description="s3:// folder of the EMR Serverless job logs; default "
                             "<object store>/emr-logs.")

    # Capital projection (models/capital.py, models/standardized.py; docs/capital.md). Defaults resemble the
    # aggregate of the large US banks in the Fed's 2025 stress test.
    capital_approach: CapitalApproach = Field(default=CapitalApproach.STANDARDIZED, description="Rulebook of "
                                              "credit RWA: US standardized (12 CFR 217 subpart D, as the Fed) or "
                                              "Basel IRB with Basel III PD floors.")
    rwa_path: RWAPath = Field(default=RWAPath.CONSTANT, description="constant: RWA held at jump-off (the Fed's "
                              "balance-sheet assumption); projected: the loan book's RWA density follows the "
                              "surviving loans (stressed PD and LGD under IRB).")
    bank_total_assets: float = Field(default=0.0, ge=0, description="Total assets in USD; 0: the loan tape is the "
                                     "loan book and total assets are its balance / bank_loan_share. Otherwise the "
                                     "tape is scaled to bank_loan_share x total assets.")
    bank_loan_share: float = Field(default=0.40, gt=0, le=1, description="Loans / total assets.")
    bank_securities_share: float = Field(default=0.25, ge=0, lt=1, description="Securities / total assets.")
    bank_securities_risk_weight: float = Field(default=0.15, ge=0, le=12.5, description="Average risk weight of "
                                               "the securities (Treasuries 0 %, agency MBS 20 %, others 100 %).")
    bank_other_assets_risk_weight: float = Field(default=0.40, ge=0, le=12.5, description="Average risk weight of "
                                                 "cash, reserves, trading and other assets (incl. market risk).")
    starting_cet1_ratio: float = Field(default=0.134, gt=0, lt=1, description="CET1 / RWA at jump-off (used when "
                                       "starting_cet1 is 0).")
    starting_cet1: float = Field(default=0.0, ge=0, description="CET1 at jump-off in USD; 0: starting_cet1_ratio "
                                 "x jump-off RWA.")
    starting_tier1_ratio: float = Field(default=0.148, gt=0, lt=1, description="Tier 1 / RWA at jump-off (used "
                                        "when starting_tier1 is 0); the excess over CET1 is additional Tier 1.")
    starting_tier1: float = Field(default=0.0, ge=0, description="Tier 1 capital at jump-off in USD; 0: "
                                  "starting_tier1_ratio x jump-off RWA.")
    ppnr_net_interest_margin: float = Field(default=0.027, description="Annual net interest income / earning "
                                            "assets (loans and securities) at jump-off rates.")
    ppnr_rate_sensitivity: float = Field(default=0.10, description="Change of the margin per unit change of the "
                                         "3-month Treasury yield (0.1: 10 bp per 100 bp).")
    ppnr_noninterest_income_ratio: float = Field(default=0.018, ge=0, description="Annual noninterest income / "
                                                 "total assets.")
    ppnr_expense_ratio: float = Field(default=0.022, ge=0, description="Annual noninterest expense / total assets.")
    ppnr_expense_unemployment_sensitivity: float = Field(default=0.0005, ge=0, description="Added annual expense "
                                                         "/ total assets per point of unemployment above jump-off.")
    tax_rate: float = Field(default=0.21, ge=0, lt=1, description="Applied to pre-tax income, losses included "
                            "(the Fed's 21 %).")

    # PD model training, MLflow registry governance and deployment (pipelines/model/training.py, model_registry.py,
    # deployment.py; docs/pd_model.md).
    pd_feature_spec_path: str = Field(default="", description="YAML/JSON FeatureSpec of the PD model; default "
                                      "models/specs/pd_12m.yaml.")
    pd_holdout_quarters: int = Field(default=8, ge=1, le=40, description="Latest observation quarters held out "
                                     "as the out-of-time test set.")
    pd_search_candidates: int = Field(default=8, ge=1, le=16, description="Hyper-parameter candidates tried by "
                                      "time-aware cross-validation (the search budget).")
    pd_training_seed: int = 20260101
    pd_training_threads: int = Field(default=2, ge=1, description="XGBoost threads (nthread) for training and "
                                     "scoring; match the worker's cores.")
    history_max_rejected_share: float = Field(default=0.01, ge=0, le=1, description="Largest share of history "
                                              "rows failing a row-level expectation that is dropped rather than "
                                              "stopping the training run.")
    mlflow_experiment_name: str = "loan-pd-model"
    mlflow_artifact_root: str = Field(default="", description="Artifact location of a new experiment; default "
                                      "data_home/mlartifacts with the embedded SQLite store, the server's own "
                                      "with a remote tracking server.")
    pd_registered_model_name: str = Field(default="loan_pd_model", description="MLflow registered model of the "
                                          "PD model: the benchmark logistic and the XGBoost versions of every "
                                          "training run.")
    require_champion: bool | None = Field(default=None, description="Whether a stress test (and monitoring) "
                                          "fails when the registry has no champion instead of using the "
                                          "benchmark logistic model; empty: on for STRESS_TARGET=aws, off for "
                                          "local.")
    promotion_auc_margin: float = Field(default=0.005, ge=0, description="AUC points the challenger must gain "
                                        "over the incumbent on the same out-of-time data.")
    promotion_calibration_alpha: float = Field(default=0.01, gt=0, lt=1, description="Level of the per-band "
                                               "binomial calibration tests.")
    promotion_min_calibrated_band_share: float = Field(default=0.6, ge=0, le=1, description="Share of score bands "
                                                       "whose binomial test must not reject.")
    promotion_brier_tolerance: float = Field(default=0.0, ge=0, description="How much worse than the incumbent's "
                                             "the challenger's Brier score may be.")
    promotion_max_mean_pd_ratio: float = Field(default=2.0, gt=1, description="Largest mean PD over the observed "
                                               "out-of-time default rate a promoted model may have (the band "
                                               "tests are one-sided, for underestimation; this bounds "
                                               "conservatism).")
    sagemaker_image_uri: str = Field(default="", description="ECR image serving MLflow pyfunc models (built by "
                                     "`mlflow sagemaker build-and-push-container`, docs/deployment.md); required for "
                                     "model_serving sagemaker.")
    sagemaker_execution_role_arn: str = Field(default="", description="IAM role SageMaker assumes; required for "
                                              "model_serving sagemaker.")
    model_serving: ModelServing | None = Field(default=None, description="Where pd_model_training deploys the "
                                               "champion: sagemaker (endpoint through the Amazon provider's "
                                               "operators) or local (make serve-model); empty: sagemaker for "
                                               "STRESS_TARGET=aws, local otherwise.")
    monitoring_scorer: MonitoringScorer | None = Field(default=None, description="How portfolio_monitoring "
                                                       "scores the book: batch_transform (SageMaker, needs "
                                                       "model_serving sagemaker and a champion) or in_process; "
                                                       "empty: batch_transform when the model is served on "
                                                       "SageMaker.")
    sagemaker_instance_type: str = "ml.m5.large"
    sagemaker_instance_count: int = Field(default=1, ge=1)
    sagemaker_endpoint_name: str = "loan-pd-champion"
    model_serving_port: int = Field(default=5001, ge=1, le=65535, description="Port of `make serve-model`.")

    # Compliance, metrics and alarms (pipelines/compliance/rules.py, metrics_sink.py; docs/compliance.md).
    compliance_rules_path: Path = Field(default=REPO_ROOT / "compliance" / "rules.yaml",
                                        description="YAML file of the compliance rules.")
    stress_capital_buffer: float = Field(default=0.025, ge=0, lt=1, description="Stress capital buffer added to "
                                         "the 4.5 % CET1 minimum by rules with add_setting: stress_capital_buffer.")
    model_evidence_max_age_days: int = Field(default=31, ge=1, description="Oldest portfolio_monitoring "
                                             "evaluation of the PD model a stress test's compliance check uses.")
    monitoring_backtest_quarters: int = Field(default=4, ge=1, le=40, description="Latest performance-history "
                                              "quarters the daily monitoring back-tests the PD model on.")
    fail_on_compliance_breach: bool = Field(default=False, description="Whether a Non-Compliant record fails the "
                                            "run (its compliance_gate task) after the report is written; "
                                            "otherwise the run succeeds with a warning summary in the log.")
    optimisation_appetite_path: Path = Field(default=REPO_ROOT / "risk_appetite" / "lending.yaml",
                                             description="YAML lending appetite of the allocation optimiser "
                                             "(docs/optimisation.md).")
    cloudwatch_namespace: str = Field(default="LoanStress", min_length=1, max_length=255)
    cloudwatch_alarm_actions: list[str] = Field(default_factory=list, description="ARNs (e.g. SNS topics) an alarm "
                                                "notifies; JSON list in STRESS_CLOUDWATCH_ALARM_ACTIONS.")

    # Services: the gRPC and REST APIs, their cache and the runs they start (pipelines/services/; docs/services.md).
    redis_url: str = Field(default="", description="Redis URL of the hot-read cache (redis://host:6379/0); empty: "
                           "a cache in each process, entries kept cache_ttl_seconds.")
    cache_prefix: str = Field(default="loanstress:", description="Prefix of every cache key (one per deployment).")
    cache_ttl_seconds: float = Field(default=30.0, gt=0, description="Longest life of a cached read; a run that "
                                     "publishes also invalidates the cache at once.")
    airflow_api_url: str = Field(default="", description="Base URL of the Airflow API server "
                                 "(http://airflow:8080); empty: a simulation runs in a process of its own next "
                                 "to the service, through dag.test() as the demo does.")
    airflow_api_token: str = Field(default="", repr=False, description="Fixed bearer token for the Airflow REST "
                                   "API (kept out of the settings' repr, as the password is).")
    airflow_api_username: str = Field(default="", description="User the services obtain Airflow API tokens for "
                                      "(POST /auth/token); instead of a fixed airflow_api_token.")
    airflow_api_password: str = Field(default="", repr=False, description="Password of airflow_api_username.")
    auth_issuer: str = Field(default="", description="Issuer (iss) the bearer tokens of the services must carry.")
    auth_audience: str = Field(default="", description="Audience (aud) the bearer tokens must name.")
    auth_jwks_url: str = Field(default="", description="JWKS URL of the identity provider (RS256 signing keys).")
    auth_jwks_cache_seconds: int = Field(default=300, ge=1, description="How long fetched signing keys are kept; "
                                         "an unknown key id refetches at most once per this period.")
    dashboard_url: str = Field(default="", description="Base URL of the stress-test dashboard; the Airflow UI "
                               "links each loan_stress_test run to <dashboard_url>/runs/<run id>. Empty: the "
                               "dashboard the Airflow plugin mounts at /loanstress/dashboard.")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535, description="Port of `make api` (REST).")
    api_access_log: bool = Field(default=False, description="Whether `make api` writes uvicorn's access line per "
                                 "request; off by default, as the gRPC server writes none: a line costs about a "
                                 "tenth of a cached read (docs/services.md).")
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8050, ge=1, le=65535, description="Port of `make dashboard`.")
    dashboard_api_url: str = Field(default="", description="Base URL of the REST API the standalone dashboard "
                                   "reads (http://host:8000); empty: the dashboard calls the application layer "
                                   "in its own process.")
    dashboard_token_url: str = Field(default="", description="OAuth 2.0 token endpoint the dashboard gets its "
                                     "client-credentials bearer token from (with dashboard_api_url).")
    dashboard_client_id: str = Field(default="", description="OAuth 2.0 client id of the dashboard.")
    dashboard_client_secret: str = Field(default="", description="OAuth 2.0 client secret of the dashboard.")
    mlflow_ui_url: str = Field(default="", description="Base URL of the MLflow UI the dashboard links model "
                               "versions to; default the tracking URI when it is a server, else "
                               "http://127.0.0.1:5000 (`make mlflow`).")
    grpc_address: str = Field(default="127.0.0.1:50051", description="host:port the gRPC server listens on.")
    grpc_tls_cert_path: str = Field(default="", description="PEM certificate chain of the gRPC server; with "
                                    "grpc_tls_key_path the server speaks TLS only.")
    grpc_tls_key_path: str = Field(default="", description="PEM private key of the gRPC server certificate.")

    @property
    def resolved_loan_store_url(self) -> str:
        return self.loan_store_url or f"sqlite:///{self.data_home / 'loanstore.sqlite'}"

    @property
    def resolved_performance_history_uri(self) -> str:
        return self.performance_history_uri or str(self.data_home / "inputs" / "performance_history.parquet")

    @property
    def resolved_loan_tape_uri(self) -> str:
        return self.loan_tape_uri or str(self.data_home / "inputs" / "loan_tape.csv")

    @property
    def resolved_object_store_uri(self) -> str:
        return self.object_store_uri or (self.data_home / "objects").resolve().as_uri()

    @property
    def resolved_require_champion(self) -> bool:
        return self.target is Target.AWS if self.require_champion is None else self.require_champion

    @property
    def resolved_model_serving(self) -> ModelServing:
        if self.model_serving is not None:
            return self.model_serving
        return ModelServing.SAGEMAKER if self.target is Target.AWS else ModelServing.LOCAL

    @property
    def resolved_monitoring_scorer(self) -> MonitoringScorer:
        if self.monitoring_scorer is not None:
            return self.monitoring_scorer
        return (MonitoringScorer.BATCH_TRANSFORM if self.resolved_model_serving is ModelServing.SAGEMAKER
                else MonitoringScorer.IN_PROCESS)

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.data_home / 'mlflow.sqlite'}"

    @property
    def resolved_mlflow_ui_url(self) -> str:
        if self.mlflow_ui_url:
            return self.mlflow_ui_url
        tracking = self.resolved_mlflow_tracking_uri
        return tracking if tracking.startswith(("http://", "https://")) else "http://127.0.0.1:5000"


@lru_cache(maxsize=1)
def get_settings() -> StressSettings:
    """The process-wide settings, read once from the environment."""
    return StressSettings()
