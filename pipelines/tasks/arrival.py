"""Event-driven runs: a loan tape landing in the object store starts validation and the stress test.

The ``loan_tape_arrival`` DAG's asset is watched in the triggerer by :func:`arrival_watcher`, chosen by
``STRESS_TARGET``; the DAG is the same on both targets: ``claim_tapes`` turns the event into one
``loan_stress_test`` configuration per tape (:func:`claim_tapes`).

* **local**: the landing folder ``<data_home>/inputs/incoming/``. The sender writes one or more tapes
  (``*.csv``, ``*.parquet``), then an empty ``READY`` file; the watcher is a ``FileDeleteTrigger`` on
  ``READY`` (the file is deleted when it fires), so a half-written tape is never picked up and one batch
  of tapes makes one event. The claim moves the tapes to ``inputs/arrived/<run>/``, so a tape is
  stress-tested once and the next delivery cannot overwrite it.
* **aws**: S3 event notifications of the landing prefix go to the SQS queue
  ``STRESS_ARRIVAL_QUEUE_URL``, watched by the common-messaging provider's ``MessageQueueTrigger``
  (scheme ``sqs``, which runs the Amazon provider's ``SqsSensorTrigger`` on ``STRESS_AWS_CONN_ID``). An
  S3 object appears only once fully written, so no marker is needed; the trigger deletes the messages
  it received and hands them to the asset event, and the claim reads the tapes' ``s3://`` URIs out of
  them (:func:`tapes_in_s3_events`; ``docs/event_driven.md`` has the bucket and queue configuration).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from pipelines.composition import current_adapters
from pipelines.tasks.policy import task_entry
from pipelines.tasks.runs import log, run_key

TAPE_SUFFIXES = (".csv", ".parquet")
READY_MARKER = "READY"
S3_TEST_EVENT = "s3:TestEvent"  # what S3 sends once when a notification configuration is saved
QUEUE_POLL_SECONDS = 20  # SQS long poll (its maximum); the trigger then waits QUEUE_POLL_SECONDS more if empty


def landing_folder() -> Path:
    """Where tapes land (read by the DAG file at parse time, so the watcher watches the configured folder)."""
    return current_adapters().settings.data_home / "inputs" / "incoming"


def ready_marker() -> str:
    return str(landing_folder() / READY_MARKER)


def arrival_watcher() -> Any:
    """The asset watcher of the configured target (read when the DAG file is parsed, in the dag-processor
    and the triggerer, which must therefore see the same settings as the workers)."""
    from airflow.sdk import AssetWatcher

    from pipelines.settings import Target

    settings = current_adapters().settings
    if settings.target is Target.AWS:
        from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

        if not settings.arrival_queue_url:
            raise ValueError("STRESS_TARGET=aws needs STRESS_ARRIVAL_QUEUE_URL: the SQS queue of the landing "
                             "prefix's S3 event notifications (docs/event_driven.md)")
        return AssetWatcher(name="landing_queue", trigger=MessageQueueTrigger(
            scheme="sqs", sqs_queue=settings.arrival_queue_url, aws_conn_id=settings.aws_conn_id,
            region_name=settings.aws_region, max_messages=10, wait_time_seconds=QUEUE_POLL_SECONDS,
            waiter_delay=QUEUE_POLL_SECONDS))
    from airflow.providers.standard.triggers.file import FileDeleteTrigger

    return AssetWatcher(name="landing_folder_ready", trigger=FileDeleteTrigger(filepath=ready_marker(),
                                                                               poke_interval=10))


@task_entry
def claim_tapes(run_id: str, asset_event_extras: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One stress-test trigger configuration per arrived tape: from the S3 events the watcher received
    (aws), or the tapes moved out of the landing folder (local)."""
    from pipelines.settings import Target

    if current_adapters().settings.target is Target.AWS:
        messages = [message for extra in asset_event_extras
                    for message in (extra.get("payload") or {}).get("message_batch", [])]
        uris = tapes_in_s3_events(messages)
        log.info("%s tape(s) in %s queue message(s): %s", len(uris), len(messages), ", ".join(uris) or "none")
        return [{"source_uri": uri} for uri in uris]
    return claim_landed_files(run_id)


def claim_landed_files(run_id: str) -> list[dict[str, Any]]:
    """Move every landed tape out of the landing folder; one stress-test trigger configuration per tape."""
    landing = landing_folder()
    tapes = sorted(p for p in landing.glob("*") if p.is_file() and p.suffix.lower() in TAPE_SUFFIXES)
    if not tapes:
        raise FileNotFoundError(f"{READY_MARKER} arrived in {landing} without a tape (*.csv, *.parquet) beside it")
    claimed = landing.parent / "arrived" / run_key(run_id)
    claimed.mkdir(parents=True, exist_ok=True)
    configurations = []
    for tape in tapes:
        target = claimed / tape.name
        tape.replace(target)  # same file system: atomic, and the tape leaves the landing folder at once
        log.info("claimed %s as %s", tape.name, target)
        configurations.append({"source_uri": str(target)})
    return configurations


def tapes_in_s3_events(messages: list[dict[str, Any]]) -> list[str]:
    """The ``s3://bucket/key`` of every tape created in the S3 event notifications of SQS ``messages``.

    Each message ``Body`` is an S3 event notification (``{"Records": [...]}``, event structure 2.x): a
    record counts when its ``eventName`` starts with ``ObjectCreated:`` and its key ends with a tape
    suffix; keys arrive URL-encoded (a space as ``+``) and are decoded. S3's ``s3:TestEvent`` and other
    event types are skipped; a URI named twice (S3 delivers at least once) is kept once, in order. A body
    that is not an S3 event notification is an error naming the message, never silently dropped.
    """
    uris: list[str] = []
    for message in messages:
        try:
            body = json.loads(message["Body"])
        except (KeyError, TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"SQS message {message.get('MessageId')} has no JSON body: {error}") from error
        if isinstance(body, dict) and body.get("Event") == S3_TEST_EVENT:
            continue
        if not isinstance(body, dict) or not isinstance(body.get("Records"), list):
            raise ValueError(f"SQS message {message.get('MessageId')} is not an S3 event notification "
                             f"(no Records): {str(message.get('Body'))[:300]}")
        for record in body["Records"]:
            if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
                continue
            try:
                bucket, key = record["s3"]["bucket"]["name"], unquote_plus(record["s3"]["object"]["key"])
            except (KeyError, TypeError) as error:
                raise ValueError(f"S3 event record in SQS message {message.get('MessageId')} lacks "
                                 f"s3.bucket.name or s3.object.key: {record}") from error
            uri = f"s3://{bucket}/{key}"
            if Path(key).suffix.lower() in TAPE_SUFFIXES and uri not in uris:
                uris.append(uri)
    return uris
