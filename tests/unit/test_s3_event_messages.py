"""The tapes announced by S3 event notifications in SQS messages, on the message shapes of AWS's docs.

Shapes: the event notification structure (version 2.1; 2.2 and 2.3 add fields only) of
https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html and the
``s3:TestEvent`` S3 sends when a notification configuration is saved
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-how-to-event-types-and-destinations.html).
"""

from __future__ import annotations

import json

import pytest

from pipelines.tasks.arrival import tapes_in_s3_events


def _record(key: str, event: str = "ObjectCreated:Put", bucket: str = "amzn-s3-demo-bucket",
            version: str = "2.1") -> dict:
    return {
        "eventVersion": version, "eventSource": "aws:s3", "awsRegion": "us-west-2",
        "eventTime": "1970-01-01T00:00:00.000Z", "eventName": event,
        "userIdentity": {"principalId": "AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810",
                             "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "loan-tape-csv",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                          "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": key, "size": 1024, "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                          "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko", "sequencer": "0055AED6DCD90281E5"}},
    }


def _message(body: dict | str, message_id: str = "m-1") -> dict:
    """An SQS message as ReceiveMessage returns it (and SqsSensorTrigger passes on)."""
    return {"MessageId": message_id, "ReceiptHandle": "AQEB...", "MD5OfBody": "x",
            "Body": body if isinstance(body, str) else json.dumps(body)}


TEST_EVENT = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2014-10-13T15:57:02.089Z",
              "Bucket": "amzn-s3-demo-bucket", "RequestId": "5582815E1AEA5ADF",
              "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}


def test_a_created_tape_becomes_its_s3_uri():
    assert tapes_in_s3_events([_message({"Records": [_record("incoming/book_2025Q4.csv")]})]) == [
        "s3://amzn-s3-demo-bucket/incoming/book_2025Q4.csv"]


def test_keys_are_url_decoded():
    """S3 URL-encodes the key in the event (a space as +, others as %XX)."""
    records = [_record("incoming/branch+book+%282025%29.parquet"), _record("incoming/%C3%A9t%C3%A9.csv")]
    assert tapes_in_s3_events([_message({"Records": records})]) == [
        "s3://amzn-s3-demo-bucket/incoming/branch book (2025).parquet",
        "s3://amzn-s3-demo-bucket/incoming/été.csv"]


def test_the_test_event_other_events_and_other_files_are_skipped():
    messages = [
        _message(TEST_EVENT, "m-test"),
        _message({"Records": [_record("incoming/old.csv", event="ObjectRemoved:Delete"),
                              _record("incoming/notes.txt"),
                              _record("incoming/big.CSV", event="ObjectCreated:CompleteMultipartUpload",
                                      version="2.3")]}, "m-2"),
    ]
    assert tapes_in_s3_events(messages) == ["s3://amzn-s3-demo-bucket/incoming/big.CSV"]
    assert tapes_in_s3_events([_message(TEST_EVENT)]) == []


def test_a_tape_delivered_twice_is_started_once_and_order_is_kept():
    """S3 delivers notifications at least once."""
    first, second = _record("incoming/a.csv"), _record("incoming/b.parquet", bucket="other-bucket")
    messages = [_message({"Records": [first, second]}, "m-1"), _message({"Records": [first]}, "m-2")]
    assert tapes_in_s3_events(messages) == ["s3://amzn-s3-demo-bucket/incoming/a.csv",
                                            "s3://other-bucket/incoming/b.parquet"]


@pytest.mark.parametrize(("body", "match"), [
    ("not json", "no JSON body"),
    (json.dumps({"Type": "Notification", "Message": "{}"}), "not an S3 event notification"),
    (json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}]}),
     "lacks s3.bucket.name or s3.object.key"),
])
def test_a_message_that_is_not_an_s3_event_is_an_error_naming_it(body, match):
    with pytest.raises(ValueError, match=match) as raised:
        tapes_in_s3_events([_message(body, "m-odd")])
    assert "m-odd" in str(raised.value)
