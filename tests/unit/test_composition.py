"""The composition root refuses settings that would mix the aws and local worlds, naming the setting."""

from __future__ import annotations

import pytest

from pipelines.composition import ConfigurationError, build_adapters
from pipelines.settings import ModelServing, MonitoringScorer, Target


def test_local_defaults_build_every_adapter_under_the_data_home(settings):
    adapters = build_adapters(settings)
    assert adapters.object_store.root_uri == (settings.data_home / "objects").resolve().as_uri()
    assert adapters.loan_store.engine.url.database == str(settings.data_home / "loanstore.sqlite")
    assert adapters.model_registry.tracking_uri == f"sqlite:///{settings.data_home / 'mlflow.sqlite'}"
    assert type(adapters.metrics_sink).__name__ == "LocalMetricsSink"


@pytest.mark.parametrize(("overrides", "setting"), [
    ({}, "STRESS_OBJECT_STORE_URI"),
    ({"object_store_uri": "s3://bank/stress"}, "STRESS_LOAN_STORE_URL"),
    ({"object_store_uri": "s3://bank/stress", "loan_store_url": "postgresql+psycopg://u@db/stress"},
     "STRESS_MLFLOW_TRACKING_URI"),
])
def test_aws_target_with_an_embedded_store_fails_naming_the_setting(settings, overrides, setting):
    with pytest.raises(ConfigurationError, match=setting):
        build_adapters(settings.model_copy(update={"target": Target.AWS, **overrides}))


AWS = {"target": Target.AWS, "object_store_uri": "s3://bank/stress", "loan_store_url": "postgresql+psycopg://u@db/stress",
       "mlflow_tracking_uri": "https://mlflow.bank.example",
       "sagemaker_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:3.17.2",
       "sagemaker_execution_role_arn": "arn:aws:iam::123456789012:role/sagemaker"}


def test_a_consistent_aws_configuration_is_accepted(settings):
    aws = settings.model_copy(update=AWS)
    assert build_adapters(aws).settings is aws
    assert aws.resolved_model_serving is ModelServing.SAGEMAKER
    assert aws.resolved_monitoring_scorer is MonitoringScorer.BATCH_TRANSFORM


def test_local_defaults_serve_and_score_locally(settings):
    assert settings.resolved_model_serving is ModelServing.LOCAL
    assert settings.resolved_monitoring_scorer is MonitoringScorer.IN_PROCESS
    in_process = settings.model_copy(update={**AWS, "monitoring_scorer": MonitoringScorer.IN_PROCESS})
    assert build_adapters(in_process).settings.resolved_monitoring_scorer is MonitoringScorer.IN_PROCESS


@pytest.mark.parametrize(("overrides", "setting"), [
    ({"sagemaker_image_uri": ""}, "STRESS_SAGEMAKER_IMAGE_URI"),
    ({"sagemaker_execution_role_arn": ""}, "STRESS_SAGEMAKER_EXECUTION_ROLE_ARN"),
    ({"target": Target.LOCAL, "object_store_uri": "", "model_serving": ModelServing.SAGEMAKER},
     "STRESS_OBJECT_STORE_URI"),
    ({"model_serving": ModelServing.LOCAL, "monitoring_scorer": MonitoringScorer.BATCH_TRANSFORM},
     "STRESS_MODEL_SERVING=sagemaker"),
])
def test_sagemaker_serving_needs_its_settings(settings, overrides, setting):
    with pytest.raises(ConfigurationError, match=setting):
        build_adapters(settings.model_copy(update={**AWS, **overrides}))


def test_the_http_settings_build_the_fetcher_and_its_cache_in_the_object_store(settings):
    adapters = build_adapters(settings.model_copy(update={
        "http_connect_timeout_seconds": 3, "http_read_timeout_seconds": 7, "http_attempt_timeout_seconds": 90,
        "http_max_attempts": 4, "http_backoff_base_seconds": 0.25, "http_backoff_max_seconds": 9,
        "http_max_retry_after_seconds": 45, "http_max_bytes": 1234}))
    fetcher = adapters.http_fetcher
    assert (fetcher.timeouts.connect, fetcher.timeouts.read, fetcher.timeouts.attempt) == (3, 7, 90)
    assert (fetcher.retry.max_attempts, fetcher.retry.base_seconds, fetcher.retry.max_seconds,
            fetcher.retry.max_retry_after_seconds) == (4, 0.25, 9, 45)
    assert fetcher.max_bytes == 1234
    assert adapters.http_cache.store is adapters.object_store


def test_encryption_settings_reach_the_object_store(settings):
    adapters = build_adapters(settings.model_copy(update={"object_store_kms_key_id": "alias/loanstress"}))
    assert adapters.object_store_encryption.put_arguments() == {"ServerSideEncryption": "aws:kms",
                                                                 "SSEKMSKeyId": "alias/loanstress"}
    assert build_adapters(settings).object_store_encryption.put_arguments() == {"ServerSideEncryption": "AES256"}
