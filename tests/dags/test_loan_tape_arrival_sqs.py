"""The AWS event-driven path: S3 event notification -> SQS -> the arrival asset's watcher -> the claimed tapes.

Against a moto server on a local port: the bucket's notification configuration sends its
``s3:TestEvent`` and, for a tape put under the landing prefix, an ``ObjectCreated:Put`` record to the
queue (moto does not evaluate the queue policy, so the permission S3 needs is not checked here). The
watcher is the one of the parsed DAG file (``MessageQueueTrigger``, scheme ``sqs``, which builds the
Amazon provider's ``SqsSensorTrigger``); its ``run()`` polls the queue once, deletes what it received
and fires, and its event payload, as Airflow stores it on the asset event, is what ``claim_tapes``
turns into the stress-test configurations.

The trigger reaches SQS as the triggerer would, through aiobotocore (``SqsHook.get_async_conn``) on
the ``aws_default`` connection, whose ``endpoint_url`` points at the moto server. Not run: the
triggerer process and the scheduler's asset-event handling, which are Airflow's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

REGION = "us-east-1"
BUCKET = "loanstress-landing"
QUEUE = "loanstress-tape-arrivals"
MOTO_PORT = 18122


@pytest.fixture
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=MOTO_PORT, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{MOTO_PORT}"
    finally:
        server.stop()


@pytest.fixture
def aws_arrival(stress_settings, moto_server, monkeypatch: pytest.MonkeyPatch):
    """An aws-target configuration whose arrival queue lives on the moto server (nothing else is contacted)."""
    import boto3

    from pipelines.settings import get_settings

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    connection = {"conn_type": "aws", "extra": {"region_name": REGION, "endpoint_url": moto_server}}
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection)}.items():
        monkeypatch.setenv(name, value)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=moto_server)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_server)
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(_queue_policy(queue_arn))})
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [
        {"Id": f"loan-tape{suffix}", "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "incoming/"},
                                            {"Name": "suffix", "Value": suffix}]}}}
        for suffix in (".csv", ".parquet")]})
    for name, value in {
        "STRESS_TARGET": "aws", "STRESS_ARRIVAL_QUEUE_URL": queue_url,
        "STRESS_OBJECT_STORE_URI": f"s3://{BUCKET}/stress",
        "STRESS_LOAN_STORE_URL": "postgresql+psycopg://loanstress@db.invalid/loanstress",
        "STRESS_MLFLOW_TRACKING_URI": "https://mlflow.invalid",
        "STRESS_SAGEMAKER_IMAGE_URI": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-pyfunc:3.17.2",
        "STRESS_SAGEMAKER_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/loanstress-sagemaker",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield {"sqs": sqs, "s3": s3, "queue_url": queue_url}
    get_settings.cache_clear()


def _queue_policy(queue_arn: str) -> dict:
    """The policy docs/event_driven.md gives the queue: S3, for this bucket only, may send."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "S3LandingNotifications", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": queue_arn,
        "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{BUCKET}"},
                      "StringEquals": {"aws:SourceAccount": "123456789012"}}}]}


def _watcher_trigger():
    from airflow.dag_processing.dagbag import DagBag

    from pipelines.settings import REPO_ROOT

    bag = DagBag(str(REPO_ROOT / "dags" / "loan_tape_arrival.py"))
    assert bag.import_errors == {}
    [asset] = bag.dags["loan_tape_arrival"].timetable.asset_condition.objects
    [watcher] = asset.watchers
    return bag.dags["loan_tape_arrival"], asset, watcher.name, watcher.trigger


async def _first_event(trigger):
    async for event in trigger.run():
        return event
    return None


def test_a_tape_put_in_s3_reaches_the_stress_test_configuration(aws_arrival) -> None:
    from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    from pipelines.tasks.arrival import claim_tapes

    dag, asset, name, trigger = _watcher_trigger()
    assert name == "landing_queue" and isinstance(trigger, MessageQueueTrigger)
    sqs_trigger = trigger.trigger
    assert isinstance(sqs_trigger, SqsSensorTrigger)
    assert (sqs_trigger.sqs_queue, sqs_trigger.aws_conn_id, sqs_trigger.region_name) == (
        aws_arrival["queue_url"], "aws_default", REGION)
    classpath, kwargs = trigger.serialize()  # what the triggerer stores and re-creates
    assert classpath == "airflow.providers.amazon.aws.triggers.sqs.SqsSensorTrigger"
    assert kwargs["sqs_queue"] == aws_arrival["queue_url"] and kwargs["delete_message_on_reception"] is True

    aws_arrival["s3"].put_object(Bucket=BUCKET, Key="incoming/branch book 2025Q4.csv", Body=b"LoanId\n1\n")
    aws_arrival["s3"].put_object(Bucket=BUCKET, Key="elsewhere/not-a-landing.csv", Body=b"x")  # no rule matches

    sqs_trigger.wait_time_seconds = 0  # one short poll; the messages are already there
    event = asyncio.run(asyncio.wait_for(_first_event(trigger), timeout=60))
    assert event is not None and event.payload["status"] == "success"
    bodies = [json.loads(m["Body"]) for m in event.payload["message_batch"]]
    assert [b.get("Event") for b in bodies].count("s3:TestEvent") == 1  # sent when the configuration was saved
    assert len(bodies) == 2
    remaining = aws_arrival["sqs"].receive_message(QueueUrl=aws_arrival["queue_url"], MaxNumberOfMessages=10)
    assert remaining.get("Messages", []) == []  # the trigger deleted what it received

    extra = {"from_trigger": True, "payload": event.payload}  # Airflow's asset event extra for a watcher event
    expected = [{"source_uri": f"s3://{BUCKET}/incoming/branch book 2025Q4.csv"}]
    assert claim_tapes("asset_triggered__1", [extra]) == expected
    # The DAG's task hands claim_tapes the extras of its triggering asset events (asset -> events with .extra).
    claim_task = dag.get_task("claim_tapes")
    assert claim_task.python_callable(run_id="asset_triggered__2",
                                      triggering_asset_events={asset: [SimpleNamespace(extra=extra)]}) == expected
