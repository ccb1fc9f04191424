"""The composition root: the one place that turns the settings into adapters.

Task functions and the command line ask :func:`current_adapters` for what they need; nothing deeper
reads the settings or opens a store itself, so ``STRESS_TARGET`` and the store URLs decide every
adapter here, in one place:

================  ==============================  ============================================
adapter           local (embedded default)        aws
================  ==============================  ============================================
object store      ``file://`` folder in data_home ``s3://`` (``STRESS_OBJECT_STORE_URI``)
loan store        SQLite file in data_home        PostgreSQL/RDS (``STRESS_LOAN_STORE_URL``)
results store     the loan store's database       the loan store's database
service store     the loan store's database       the loan store's database (Alembic migrations)
cache             in-process                      Redis / ElastiCache (``STRESS_REDIS_URL``)
simulation runs   a process running dag.test()    Airflow REST API (``STRESS_AIRFLOW_API_URL``)
metrics sink      tables in the loan store        CloudWatch PutMetricData and alarms
model registry    MLflow over SQLite in data_home MLflow server (``STRESS_MLFLOW_TRACKING_URI``)
deployment        local ``mlflow models serve``   SageMaker endpoint, batch transform (provider)
simulation runner mapped tasks or ``spark-submit`` EMR Serverless (``STRESS_SIMULATION_RUNNER``)
ETL submitter     ``spark-submit`` (spark)         EMR Serverless job runs (``STRESS_ETL_RUNNER``)
HTTP sources      retried GETs, cache in the      the same, cache in the S3 object store
                  object store                    (``STRESS_HTTP_*``)
================  ==============================  ============================================

Encryption is decided here too: S3 writes ask for SSE-KMS or SSE-S3 (``STRESS_OBJECT_STORE_KMS_KEY_ID``)
and PostgreSQL connections carry the TLS settings (``STRESS_LOAN_STORE_SSLMODE``, ``..._SSLROOTCERT``).

Adapters are built lazily (a task that only reads the object store never imports MLflow or boto3's
CloudWatch client), and an inconsistent configuration fails at start with a message naming the
setting (:func:`check_configuration`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from pipelines.settings import (
    EtlRunner,
    ModelServing,
    MonitoringScorer,
    SimulationRunner,
    StressSettings,
    Target,
    get_settings,
)

if TYPE_CHECKING:
    from pipelines.adapters.cache import Cache
    from pipelines.adapters.compute import EmrServerlessJob, EmrServerlessSubmitter, SparkSubmitRunner
    from pipelines.adapters.http_source import ContentCache, HttpFetcher
    from pipelines.adapters.loan_store import LoanStore
    from pipelines.adapters.metrics_sink import MetricsSink
    from pipelines.adapters.model_registry import ModelRegistry
    from pipelines.adapters.object_store import ObjectStore, ServerSideEncryption
    from pipelines.adapters.results_store import ResultsStore
    from pipelines.adapters.service_store import ServiceStore
    from pipelines.adapters.simulation_launcher import SimulationLauncher


# KMS's answers that no retry changes: the key or alias does not exist, or the credentials may not describe it.
_KMS_REFUSALS = frozenset({"NotFoundException", "AccessDeniedException", "InvalidArnException",
                           "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException"})


class ConfigurationError(ValueError):
    """The settings contradict each other; the message names the setting to change."""


def check_configuration(settings: StressSettings) -> None:
    """Refuse configurations that would silently mix worlds (aws target writing to a laptop's SQLite)."""
    if settings.target is Target.AWS:
        if not settings.resolved_object_store_uri.startswith("s3://"):
            raise ConfigurationError("STRESS_TARGET=aws needs STRESS_OBJECT_STORE_URI=s3://bucket/prefix")
        if settings.resolved_loan_store_url.startswith("sqlite"):
            raise ConfigurationError("STRESS_TARGET=aws needs STRESS_LOAN_STORE_URL to name a PostgreSQL/RDS "
                                     "database (postgresql+psycopg://...), not the embedded SQLite file")
        if settings.resolved_mlflow_tracking_uri.startswith("sqlite"):
            raise ConfigurationError("STRESS_TARGET=aws needs STRESS_MLFLOW_TRACKING_URI to name an MLflow "
                                     "tracking server (http(s)://...), not the embedded SQLite store")
    if settings.object_store_require_bucket_encryption and not settings.resolved_object_store_uri.startswith("s3://"):
        raise ConfigurationError("STRESS_OBJECT_STORE_REQUIRE_BUCKET_ENCRYPTION applies to an s3:// object store; a "
                                 "local folder is as encrypted as its disk (docs/encryption.md): unset it")
    if settings.loan_store_sslmode or settings.loan_store_sslrootcert:
        from pipelines.adapters.sql import PostgresTls, TlsConfigurationError

        try:
            PostgresTls(settings.loan_store_sslmode, settings.loan_store_sslrootcert).apply(
                settings.resolved_loan_store_url)
        except TlsConfigurationError as error:
            raise ConfigurationError(str(error)) from error
    if settings.simulation_runner is SimulationRunner.EMR_SERVERLESS:
        if not settings.resolved_object_store_uri.startswith("s3://"):
            raise ConfigurationError("STRESS_SIMULATION_RUNNER=emr_serverless needs STRESS_OBJECT_STORE_URI="
                                     "s3://bucket/prefix: EMR Serverless reads and writes the batches there")
        for name in ("emr_execution_role_arn", "emr_code_uri"):
            if not getattr(settings, name):
                raise ConfigurationError(f"STRESS_SIMULATION_RUNNER=emr_serverless needs STRESS_{name.upper()}")
    if settings.etl_runner is EtlRunner.EMR_SERVERLESS:
        if not settings.resolved_object_store_uri.startswith("s3://"):
            raise ConfigurationError("STRESS_ETL_RUNNER=emr_serverless needs STRESS_OBJECT_STORE_URI=s3://bucket/"
                                     "prefix: the job runs read the job documents and stage the tape there")
        for name in ("emr_execution_role_arn", "emr_code_uri", "emr_etl_application_id"):
            if not getattr(settings, name):
                raise ConfigurationError(f"STRESS_ETL_RUNNER=emr_serverless needs STRESS_{name.upper()}")
    if settings.resolved_model_serving is ModelServing.SAGEMAKER:
        if not settings.resolved_object_store_uri.startswith("s3://"):
            raise ConfigurationError("model serving on SageMaker (STRESS_MODEL_SERVING=sagemaker, the aws default) "
                                     "needs STRESS_OBJECT_STORE_URI=s3://bucket/prefix: the model archive and the "
                                     "batch-transform files live there")
        for name in ("sagemaker_image_uri", "sagemaker_execution_role_arn"):
            if not getattr(settings, name):
                raise ConfigurationError(f"model serving on SageMaker needs STRESS_{name.upper()} "
                                         "(docs/deployment.md, the serving container)")
    elif settings.resolved_monitoring_scorer is MonitoringScorer.BATCH_TRANSFORM:
        raise ConfigurationError("STRESS_MONITORING_SCORER=batch_transform needs the model served on SageMaker "
                                 "(STRESS_MODEL_SERVING=sagemaker): the transform runs the deployed SageMaker model")


@dataclass
class Adapters:
    """Every adapter of one deployment, built on first use from one settings object."""

    settings: StressSettings

    @cached_property
    def object_store(self) -> ObjectStore:
        from pipelines.adapters.object_store import open_object_store

        return open_object_store(self.settings.resolved_object_store_uri, self.settings.aws_region,
                                 self.object_store_encryption)

    @cached_property
    def object_store_encryption(self) -> ServerSideEncryption:
        from pipelines.adapters.object_store import ServerSideEncryption

        return ServerSideEncryption(self.settings.object_store_kms_key_id,
                                    self.settings.object_store_require_bucket_encryption)

    @cached_property
    def loan_store_url(self) -> str:
        """The loan store's URL with the configured TLS parameters (what every store connects with)."""
        from pipelines.adapters.sql import PostgresTls

        url = self.settings.resolved_loan_store_url
        if not (self.settings.loan_store_sslmode or self.settings.loan_store_sslrootcert):
            return url
        return PostgresTls(self.settings.loan_store_sslmode, self.settings.loan_store_sslrootcert).apply(url)

    @cached_property
    def http_fetcher(self) -> HttpFetcher:
        from pipelines.adapters.http_source import HttpFetcher, HttpTimeouts, RetryPolicy

        settings = self.settings
        return HttpFetcher(
            timeouts=HttpTimeouts(settings.http_connect_timeout_seconds, settings.http_read_timeout_seconds,
                                  settings.http_attempt_timeout_seconds),
            retry=RetryPolicy(settings.http_max_attempts, settings.http_backoff_base_seconds,
                              settings.http_backoff_max_seconds, settings.http_max_retry_after_seconds),
            ca_bundle=settings.http_ca_bundle, max_bytes=settings.http_max_bytes)

    @cached_property
    def http_cache(self) -> ContentCache:
        from pipelines.adapters.http_source import ContentCache

        return ContentCache(self.object_store)

    @cached_property
    def loan_store(self) -> LoanStore:
        from pipelines.adapters.loan_store import LoanStore

        return LoanStore(self.loan_store_url)

    @cached_property
    def results_store(self) -> ResultsStore:
        from pipelines.adapters.results_store import ResultsStore

        return ResultsStore(self.loan_store_url)

    @cached_property
    def service_store(self) -> ServiceStore:
        from pipelines.adapters.service_store import ServiceStore

        return ServiceStore(self.loan_store_url)

    @cached_property
    def cache(self) -> Cache:
        from pipelines.adapters.cache import open_cache

        return open_cache(self.settings.redis_url, self.settings.cache_prefix, self.settings.cache_ttl_seconds)

    @cached_property
    def simulation_launcher(self) -> SimulationLauncher:
        from pipelines.adapters.simulation_launcher import AirflowApiLauncher, ProcessLauncher

        if self.settings.airflow_api_url:
            return AirflowApiLauncher(self.settings.airflow_api_url, self.settings.airflow_api_token,
                                      self.settings.airflow_api_username, self.settings.airflow_api_password)
        return ProcessLauncher(self.settings.data_home / "logs" / "simulations", lambda _: self.cache.invalidate())

    @cached_property
    def metrics_sink(self) -> MetricsSink:
        from pipelines.adapters.metrics_sink import open_metrics_sink

        return open_metrics_sink(self.settings, self.loan_store_url)

    @cached_property
    def model_registry(self) -> ModelRegistry:
        from pipelines.adapters.model_registry import ModelRegistry, local_artifact_root

        uri = self.settings.resolved_mlflow_tracking_uri
        return ModelRegistry(uri, self.settings.pd_registered_model_name, self.settings.mlflow_experiment_name,
                             self.settings.mlflow_artifact_root or local_artifact_root(uri, self.settings.data_home),
                             configured=bool(self.settings.mlflow_tracking_uri))


    @cached_property
    def spark_runner(self) -> SparkSubmitRunner:
        import sys

        from pipelines.adapters.compute import SparkSubmitRunner

        return SparkSubmitRunner(master=self.settings.spark_master, spark_submit=self.settings.spark_submit,
                                 python=self.settings.spark_python or sys.executable, conf=self.settings.spark_conf,
                                 kms_key_id=self.settings.object_store_kms_key_id)

    @cached_property
    def etl_submitter(self) -> SparkSubmitRunner | EmrServerlessSubmitter:
        """What runs the loan tape's Spark ETL stages: ``spark-submit``, or EMR Serverless job runs."""
        from pipelines.adapters.compute import EmrServerlessSubmitter

        if self.settings.etl_runner is not EtlRunner.EMR_SERVERLESS:
            return self.spark_runner
        return EmrServerlessSubmitter(self.emr_serverless_job, self.settings.emr_etl_application_id,
                                      self.settings.aws_conn_id, self.settings.emr_etl_timeout_seconds,
                                      self.settings.emr_etl_poll_seconds)

    @cached_property
    def emr_serverless_job(self) -> EmrServerlessJob:
        from pipelines.adapters.compute import EmrServerlessJob, kms_key_arn

        store_uri = self.settings.resolved_object_store_uri.rstrip("/")
        key_id = self.settings.object_store_kms_key_id
        return EmrServerlessJob(release_label=self.settings.emr_release_label,
                                execution_role_arn=self.settings.emr_execution_role_arn,
                                code_uri=self.settings.emr_code_uri,
                                log_uri=self.settings.emr_log_uri or f"{store_uri}/emr-logs/",
                                region=self.settings.aws_region, kms_key_id=key_id,
                                log_key_arn=kms_key_arn(key_id, self._describe_kms_key))

    def _describe_kms_key(self, key_id: str) -> dict:
        """KMS ``DescribeKey`` of ``key_id`` on the Airflow connection the EMR jobs use; a refusal names the setting."""
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
        from botocore.exceptions import ClientError, NoCredentialsError

        kms = AwsBaseHook(aws_conn_id=self.settings.aws_conn_id, client_type="kms",
                          region_name=self.settings.aws_region).conn
        try:
            return kms.describe_key(KeyId=key_id)
        except (ClientError, NoCredentialsError) as error:
            # Throttling, KMS's internal errors and timeouts pass unchanged: a task retry may heal them.
            if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") not in _KMS_REFUSALS:
                raise
            raise ConfigurationError(
                f"STRESS_OBJECT_STORE_KMS_KEY_ID={key_id}: EMR Serverless encrypts its logs only with a key ARN, "
                f"and KMS DescribeKey could not name the key behind it in {self.settings.aws_region} ({error}); "
                "set the key's ARN, or grant kms:DescribeKey on it") from error


def build_adapters(settings: StressSettings) -> Adapters:
    """The adapters of ``settings``, after checking that the settings agree with each other."""
    from pipelines.observability.logs import configure_logging

    check_configuration(settings)
    configure_logging(settings.log_format)
    return Adapters(settings)


SettingsResolver = Callable[[StressSettings], StressSettings]


@dataclass
class _Resolution:
    """One task call's resolver and what it made of the environment's settings (resolved once per call)."""

    resolver: SettingsResolver
    source: StressSettings | None = None
    settings: StressSettings | None = None

    def of(self, source: StressSettings) -> StressSettings:
        if self.settings is None or self.source is not source:
            self.settings, self.source = self.resolver(source), source
        return self.settings


_resolution: ContextVar[_Resolution | None] = ContextVar("settings_resolution", default=None)
_current: Adapters | None = None
_current_source: StressSettings | None = None  # the environment's settings _current was resolved from


@contextmanager
def settings_resolved_by(resolver: SettingsResolver) -> Iterator[None]:
    """Within the block, :func:`current_adapters` passes the environment's settings through ``resolver``.

    The task layer wraps each task function's call in this with the resolver of the Airflow deployment's
    Variables (:mod:`pipelines.tasks.airflow_config`); the command line and the services build from the
    environment alone. The resolver is scoped to the call, not installed for the process, because what it
    reads is read only inside a running task (outside one, Airflow's secrets chain has no metadata
    database: a DAG file's parse-time call would see no Variable) and changes while a worker process lives
    (a Variable set or deleted between two tasks). It runs once per call, on the call's first request.
    """
    token = _resolution.set(_Resolution(resolver))
    try:
        yield
    finally:
        _resolution.reset(token)


def current_adapters() -> Adapters:
    """The adapters of this process's settings, as resolved for the running task if one is running.

    Rebuilt when the environment's settings are re-read (as tests do) or resolve to other values (a
    Variable set, changed or deleted since the adapters were built); reused otherwise.
    """
    global _current, _current_source
    source = get_settings()
    resolution = _resolution.get()
    settings = resolution.of(source) if resolution else source
    if _current is None or _current_source is not source or _current.settings != settings:
        _current, _current_source = build_adapters(settings), source
    return _current
