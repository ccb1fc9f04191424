"""The Spark jobs' command line: what the submitters write is what the jobs read back."""

from __future__ import annotations

import pytest

from pipelines.adapters.compute import job_argument_parser, job_arguments


@pytest.mark.parametrize("kms_key_id", ["", "alias/loanstress"])
def test_the_jobs_read_back_what_the_submitters_write(kms_key_id: str) -> None:
    written = job_arguments("s3://bank/stress", "runs/r1/job.json", "eu-west-1", kms_key_id)
    read = job_argument_parser("job").parse_args(written)
    assert (read.object_store_uri, read.job_key, read.region, read.kms_key_id) == (
        "s3://bank/stress", "runs/r1/job.json", "eu-west-1", kms_key_id)
    assert ("--kms-key-id" in written) == bool(kms_key_id)  # SSE-S3 without a key: the flag is left out


def test_a_job_without_its_store_or_key_refuses_to_start() -> None:
    with pytest.raises(SystemExit):
        job_argument_parser("job").parse_args(["--job-key", "runs/r1/job.json"])
