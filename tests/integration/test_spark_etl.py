"""The Spark ETL gives the local path's snapshot, quarantine, ingestion record and features, bit for bit.

The same CSV tape goes through the three ``loan_tape`` task functions twice, each time in its own data
home: with ``STRESS_ETL_RUNNER=local`` and with ``spark`` on Spark ``local[2]``, cut into many chunks
(``STRESS_ETL_CHUNK_BYTES``) and features built in several tasks (``STRESS_ETL_PART_ROWS``). The dirty
tape breaks row rules GX finds (range, in-set, conditional, duplicates within tolerance), a cell that
does not parse (which sends the whole tape through the text pass, whichever chunk holds it), a
control character and a malformed line. The typed pass (a tape whose every cell parses) is the
https test's: its staged parts against the local path's staged tape, of which the snapshot follows.
"""

from __future__ import annotations

import io
import json
import os
import sys
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

AS_OF = date(2025, 12, 31)
LOANS = 1500
CHUNK_BYTES = 60_000  # five chunks of the 280 kB tape: five Spark tasks per pass
PART_ROWS = 600


def _tape(path: Path, dirty: bool) -> Path:
    """A synthetic book as CSV; ``dirty`` breaks rows in chunks far apart."""
    from pipelines.data.synthetic import generate_loan_book

    buffer = io.BytesIO()
    pacsv.write_csv(generate_loan_book(LOANS, seed=31, as_of=AS_OF), buffer)
    lines = buffer.getvalue().decode().splitlines()
    if dirty:
        header = lines[0].split(",")
        column = {name.strip('"'): index for index, name in enumerate(header)}

        def replace(row: int, name: str, value: str) -> None:
            cells = lines[row].split(",")
            cells[column[name]] = value
            lines[row] = ",".join(cells)

        replace(40, "LoanAmount", '"12,5"')  # a cell that does not parse: the whole tape goes through the text pass
        replace(300, "InterestRate", "0.9")  # out of range
        replace(650, "Region", '"atlantis"')  # not an allowed value
        replace(820, "LoanId", lines[12].split(",")[column["LoanId"]])  # a duplicate, within the 1 % tolerance
        replace(1010, "RateType", '"variable"')  # a variable rate without its index and margin ...
        replace(1010, "ReferenceIndex", "")
        replace(1010, "RateMargin", "")
        replace(1200, "LoanId", '"L-\x07-1"')  # a control character
        lines[1400] = lines[1400].rsplit(",", 3)[0]  # a malformed line: three fields short
    path.write_text("\n".join(lines) + "\n")
    return path


def _settings(monkeypatch: pytest.MonkeyPatch, data_home: Path, runner: str):
    from pipelines.settings import get_settings

    for name in list(os.environ):
        if name.startswith("STRESS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STRESS_DATA_HOME", str(data_home))
    monkeypatch.setenv("STRESS_ETL_RUNNER", runner)
    monkeypatch.setenv("STRESS_ETL_CHUNK_BYTES", str(CHUNK_BYTES))
    monkeypatch.setenv("STRESS_ETL_PART_ROWS", str(PART_ROWS))
    monkeypatch.setenv("STRESS_SPARK_MASTER", "local[2]")
    monkeypatch.setenv("STRESS_SPARK_SUBMIT", str(Path(sys.executable).parent / "spark-submit"))
    monkeypatch.setenv("STRESS_SPARK_CONF", json.dumps({"spark.ui.enabled": "false", "spark.driver.memory": "1g"}))
    get_settings.cache_clear()
    return get_settings()


def _run_loan_tape(tape: Path, run_id: str) -> tuple[dict, dict, dict]:
    from pipelines.tasks import loan_tape

    staged = loan_tape.ingest(str(tape), AS_OF.isoformat(), run_id)
    manifest = loan_tape.validate(staged, run_id)
    return staged, manifest, loan_tape.build_features(manifest, run_id)


def test_spark_etl_gives_the_local_snapshot_quarantine_and_features(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.composition import current_adapters
    from pipelines.settings import get_settings

    tape = _tape(tmp_path / "tape.csv", dirty=True)
    runs = {}
    for runner in ("local", "spark"):
        _settings(monkeypatch, tmp_path / runner, runner)
        staged, manifest, features = _run_loan_tape(tape, f"manual__{runner}")
        store = current_adapters().object_store
        runs[runner] = {
            "staged": staged, "manifest": manifest, "features_bytes": store.get_bytes(features["features_key"]),
            "snapshot": store.get_bytes(f"snapshots/{manifest['snapshot_id']}/loans.parquet"),
            "quarantine": store.get_parquet(f"ingestions/{manifest['ingestion_id']}/quarantine.parquet"),
            "docs": store.exists(f"ingestions/{manifest['ingestion_id']}/data_docs/index.html"),
            "recorded": current_adapters().loan_store.ingestion(manifest["ingestion_id"]),
            "sorted_pieces": store.list_keys(f"{staged['staging_prefix']}/validated/sorted/"),
        }
    get_settings.cache_clear()
    local, spark = runs["local"], runs["spark"]

    # The Spark run did cut the tape: its executors parsed many chunks (a driver-side read would prove nothing).
    assert spark["staged"]["read_by"] == "executors" and spark["staged"]["parts"] >= 4
    # ... and its snapshot was published from several sorted pieces, one at a time, not from one table.
    assert len(spark["sorted_pieces"]) >= 2, spark["sorted_pieces"]
    for key in ("input_rows", "malformed_rows", "rows_with_type_errors", "extra_columns", "source"):
        assert spark["staged"][key] == local["staged"][key], key
    for key in ("snapshot_id", "content_sha256", "input_sha256", "input_rows", "accepted_rows", "quarantined_rows",
                "pass_rate", "quarantine_reasons", "failed_expectations", "extra_columns_ignored", "status"):
        assert spark["manifest"][key] == local["manifest"][key], key
    assert spark["snapshot"] == local["snapshot"]
    assert spark["quarantine"].equals(local["quarantine"]) and spark["quarantine"].schema == local["quarantine"].schema
    # The same Parquet bytes (Table.equals would not do: NaN, an unsecured loan's LTV, is unequal to itself).
    assert spark["features_bytes"] == local["features_bytes"]
    features = pq.read_table(io.BytesIO(spark["features_bytes"]))
    assert features.num_rows == local["manifest"]["accepted_rows"]
    assert features.schema.metadata[b"as_of"] == b"2025-12-31"
    assert local["docs"] and spark["docs"]
    for key in ("snapshot_id", "input_sha256", "input_rows"):
        assert spark["recorded"][key] == local["recorded"][key] == local["manifest"][key], key

    reasons = local["manifest"]["quarantine_reasons"]
    assert {"type:LoanAmount", "range:InterestRate", "allowed:Region", "duplicate_LoanId",
            "variable_rate_terms", "control_characters:LoanId"} <= set(reasons), reasons
    assert any(reason.startswith("malformed_line") for reason in reasons)
    assert local["quarantine"].num_rows == 8  # the two rows of the duplicated id among them
    assert spark["staged"]["rows_with_type_errors"] == 1 and spark["staged"]["malformed_rows"] == 1


def test_a_table_rule_broken_on_spark_is_a_rejected_ingestion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from pipelines.composition import current_adapters
    from pipelines.settings import get_settings

    tape = _tape(tmp_path / "tape.csv", dirty=False)
    text = tape.read_text().splitlines()
    tape.write_text("\n".join([text[0].replace("LoanAmount", "LoanAmt"), *text[1:]]) + "\n")
    _settings(monkeypatch, tmp_path / "spark", "spark")
    from pipelines.tasks import loan_tape

    # The task fails at once (a retry cannot fix it) with the local path's message.
    with pytest.raises(AirflowFailException, match=r"missing column\(s\) LoanAmount \(found 'LoanAmt'\?\)"):
        loan_tape.ingest(str(tape), AS_OF.isoformat(), "manual__rejected")
    (manifest_key,) = [key for key in current_adapters().object_store.list_keys("ingestions/")
                       if key.endswith("manifest.json")]
    manifest = json.loads(current_adapters().object_store.get_bytes(manifest_key))
    assert manifest["status"] == "rejected" and manifest["failed_rule"] == "required_columns"
    get_settings.cache_clear()


def test_the_etl_job_round_trips_and_refuses_an_unknown_stage() -> None:
    from pipelines.data.spark_etl import EtlJob

    job = EtlJob("validate", "staging/run", source="s3://bucket/tape.csv", parts=12, duplicate_tolerance=0.02)
    assert EtlJob.from_json(job.to_json()) == job
    with pytest.raises(ValueError, match="unknown ETL stage 'transform'"):
        EtlJob("transform", "staging/run")


def test_a_chunked_csv_numbers_its_rows_as_the_whole_tape(tmp_path: Path) -> None:
    """The per-chunk functions the executors run give the whole tape's rows, numbers and faults."""
    from pipelines.data.ingestion import (
        cast_to_contract,
        csv_header_names,
        ingest,
        parse_csv_chunk,
        shift_row_numbers,
    )
    from pipelines.data.spark_etl import _chunk_ranges

    tape = _tape(tmp_path / "tape.csv", dirty=True)
    header_line, chunks = _chunk_ranges(str(tape), CHUNK_BYTES)
    names = csv_header_names(header_line, str(tape))
    data = tape.read_bytes()
    assert len(chunks) >= 4 and chunks[0][0] == len(header_line) + 1 and chunks[-1][1] == len(data)
    assert all(data[stop - 1:stop] == b"\n" for _, stop in chunks)
    tables, malformed, offset = [], [], 0
    for chunk in chunks:
        table, bad = parse_csv_chunk(header_line, names, data[chunk[0]:chunk[1]], as_text=True)
        table, bad = shift_row_numbers(table, bad, offset)
        offset += table.num_rows + len(bad)
        tables.append(table)
        malformed += bad
    whole = ingest(str(tape))
    pieces = cast_to_contract(pa.concat_tables(tables), malformed, str(tape))
    assert pieces.table.equals(whole.table) and pieces.raw_text.equals(whole.raw_text)
    assert pieces.malformed == whole.malformed and pieces.type_errors == whole.type_errors


def test_a_chunk_whose_records_span_lines_is_left_to_the_driver(tmp_path: Path) -> None:
    """A quoted line break cut by a chunk boundary would split a record: that tape is read whole instead."""
    from pipelines.data.ingestion import csv_header_names
    from pipelines.data.spark_etl import _chunk_pass

    tape = _tape(tmp_path / "tape.csv", dirty=False)
    lines = tape.read_bytes().split(b"\n")
    segment = lines[3].split(b",")[-2]  # the ProductSegment cell, quoted: b'"credit_card"'
    lines[3] = lines[3].replace(segment, segment[:3] + b"\n" + segment[3:])  # one record on two lines
    tape.write_bytes(b"\n".join(lines))
    header_line = lines[0]
    names = csv_header_names(header_line, str(tape))
    body_start = len(header_line) + 1
    two_loans = (body_start, body_start + len(lines[1]) + len(lines[2]) + 2)
    assert _chunk_pass(str(tape), header_line, names, two_loans) == ("typed", 2)
    assert _chunk_pass(str(tape), header_line, names, (body_start, tape.stat().st_size)) == ("whole", 0)


def test_a_signed_https_tape_on_spark_goes_through_the_http_fetcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    certificate_authority) -> None:
    """An https:// tape on Spark: fetched with the fetcher's settings (the CA, retries), then cut by the executors.

    Each runner's first request gets a 503, which only the fetcher's retry gets past. The Spark parts
    hold the local path's staged tape of the same URL row for row (its rows, raw text, type errors and
    malformed lines), which the validate stage turns into the same snapshot (the test above); the
    signature is in no job document, result, step record or message. Only ``ingest`` runs on Spark
    here: one spark-submit rather than three keeps the test short.
    """
    from source_server import Reply, SourceServer

    from pipelines.composition import current_adapters
    from pipelines.data.snapshots import load_staged_tape
    from pipelines.data.spark_etl import part_prefix
    from pipelines.settings import get_settings
    from pipelines.tasks import loan_tape

    signature = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7"
    # Every cell parses (the typed pass), and one line is three fields short (a malformed line).
    lines = _tape(tmp_path / "tape.csv", dirty=False).read_bytes().split(b"\n")
    lines[700] = lines[700].rsplit(b",", 3)[0]
    body = b"\n".join(lines)
    runs = {}
    with SourceServer(certificate_authority.issue("tape-server").server_context()) as server:
        busy, tape = Reply(503, b"busy"), Reply(body=body)
        url = server.route("/tapes/book.csv", busy, tape, busy, tape) + (
            f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=900&X-Amz-Signature={signature}")
        for runner in ("local", "spark"):
            _settings(monkeypatch, tmp_path / runner, runner)
            monkeypatch.setenv("STRESS_HTTP_CA_BUNDLE", str(certificate_authority.ca_path))
            monkeypatch.setenv("STRESS_HTTP_BACKOFF_BASE_SECONDS", "0")
            get_settings.cache_clear()
            staged = loan_tape.ingest(url, AS_OF.isoformat(), f"manual__{runner}")
            runs[runner] = {"staged": staged, "store": current_adapters().object_store}
        assert server.hits("/tapes/book.csv") == 4
        assert all(request.path.endswith(signature) for request in server.requests["/tapes/book.csv"])
    get_settings.cache_clear()
    local, spark = runs["local"], runs["spark"]
    assert spark["staged"]["read_by"] == "executors" and spark["staged"]["parts"] >= 4  # the copy, cut in chunks
    for key in ("source", "input_rows", "malformed_rows", "rows_with_type_errors", "extra_columns"):
        assert spark["staged"][key] == local["staged"][key], key
    assert "X-Amz-Signature=***" in spark["staged"]["source"]

    whole = load_staged_tape(local["staged"], local["store"])
    staging = spark["staged"]["staging_prefix"]
    parts = [load_staged_tape({**spark["staged"], "staging_prefix": part_prefix(staging, part)}, spark["store"])
             for part in range(spark["staged"]["parts"])]
    assert pa.concat_tables([part.table for part in parts]).equals(whole.table)
    assert pa.concat_tables([part.raw_text for part in parts]).equals(whole.raw_text)
    assert [m for part in parts for m in part.malformed] == whole.malformed and whole.malformed
    assert {row: e for part in parts for row, e in part.type_errors.items()} == whole.type_errors

    store = spark["store"]
    assert json.loads(store.get_bytes(f"{staging}/etl/ingest/result.json"))["csv_pass"] == "typed"
    assert local["staged"]["rows_with_type_errors"] == 0 and local["staged"]["malformed_rows"] == 1
    job = json.loads(store.get_bytes(f"{staging}/etl/ingest/job.json"))
    assert job["source"] == spark["staged"]["source"]
    assert job["read_from"] == store.uri(f"{staging}/source/tape.csv")
    assert store.get_bytes(f"{staging}/source/tape.csv") == body
    for key in store.list_keys(""):
        assert signature.encode() not in store.get_bytes(key), key
