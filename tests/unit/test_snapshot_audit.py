"""Nothing lost, nothing overwritten: every ingestion keeps its own audit record beside a shared snapshot.

Regression tests of issue 10: an all-bad tape, two tapes sharing their good rows, two command-line
ingests on one day, concurrent publishers, a crash between the object store and the loan store, and
LoanIds or cells carrying invisible, control or NUL characters.
"""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pipelines.data.ingestion import TableContractError, ingest

AS_OF = date(2025, 12, 31)


def adapters_of(settings):
    from pipelines.composition import build_adapters

    return build_adapters(settings)


def ingestion_ids(objects) -> set[str]:
    return {key.split("/")[1] for key in objects.list_keys("ingestions/")}


def bad(row: dict[str, str], loan_id: str) -> dict[str, str]:
    """A copy of ``row`` under ``loan_id`` that breaks one row rule (CreditScore out of range)."""
    return {**row, "LoanId": loan_id, "CreditScore": "9999"}


def test_all_bad_tape_stops_with_the_quarantine_summary_and_keeps_the_audit_record(
        settings, tmp_path: Path, valid_tape_rows, write_csv, publish_snapshot) -> None:
    rows = [bad(row, f"X-{i}") for i, row in enumerate(valid_tape_rows)]
    rows[0]["Region"] = "atlantis"
    tape = ingest(str(write_csv(rows, tmp_path / "all_bad.csv")))
    with pytest.raises(TableContractError, match=r"all 28 rows quarantined; top reasons: range:CreditScore \(28\), "
                                                 r"allowed:Region \(1\)"):
        publish_snapshot(tape, AS_OF, settings, airflow_run_id="manual__bad")
    adapters = adapters_of(settings)
    assert adapters.object_store.list_keys("snapshots/") == []
    (ingestion_id,) = ingestion_ids(adapters.object_store)
    record = adapters.loan_store.ingestion(ingestion_id)
    assert record["snapshot_id"] is None and record["airflow_run_id"] == "manual__bad"
    assert (record["input_rows"], record["accepted_rows"], record["quarantined_rows"]) == (28, 0, 28)
    assert adapters.loan_store.count_rows(ingestion_id) == (0, 28)
    assert adapters.object_store.get_parquet(f"ingestions/{ingestion_id}/quarantine.parquet").num_rows == 28
    manifest = json.loads(adapters.object_store.get_bytes(f"ingestions/{ingestion_id}/manifest.json"))
    assert manifest["snapshot_id"] is None and manifest["quarantine_reasons"]["range:CreditScore"] == 28
    assert (record["status"], record["failed_rule"]) == ("rejected", "no_acceptable_row")
    assert record["error"].startswith("no row of")


def test_a_second_tape_with_the_same_good_rows_keeps_the_first_tapes_record(
        settings, tmp_path: Path, valid_tape_rows, write_csv, publish_snapshot) -> None:
    first_path = write_csv([*valid_tape_rows, bad(valid_tape_rows[0], "BAD-1")], tmp_path / "first.csv")
    second_path = write_csv([*valid_tape_rows, *(bad(valid_tape_rows[1], f"BAD-{i}") for i in range(2, 5))],
                            tmp_path / "second.csv")
    first = publish_snapshot(ingest(str(first_path)), AS_OF, settings, airflow_run_id="manual__1")
    second = publish_snapshot(ingest(str(second_path)), AS_OF, settings, airflow_run_id="manual__2")

    assert first["snapshot_id"] == second["snapshot_id"]
    assert first["ingestion_id"] != second["ingestion_id"]
    assert first["input_sha256"] != second["input_sha256"]
    store = adapters_of(settings).loan_store
    objects = adapters_of(settings).object_store
    for manifest, path, quarantined in ((first, first_path, 1), (second, second_path, 3)):
        record = store.ingestion(manifest["ingestion_id"])
        assert (record["source"], record["input_rows"], record["quarantined_rows"]) == (
            str(path), 28 + quarantined, quarantined)
        assert store.count_rows(manifest["ingestion_id"]) == (28, quarantined)
        assert objects.get_parquet(f"ingestions/{manifest['ingestion_id']}/quarantine.parquet").num_rows == quarantined
        assert record["accepted_rows"] + record["quarantined_rows"] == record["input_rows"]
    assert store.snapshot_manifest(first["snapshot_id"])["first_ingestion_id"] == first["ingestion_id"]


def test_credentials_in_the_source_are_not_recorded(settings, tmp_path: Path, valid_tape_rows, write_csv,
                                                    publish_snapshot) -> None:
    from pipelines.data.sources import redact_credentials

    assert redact_credentials("postgresql://risk:s3cr%40t@db:5432/book?table=t") == \
        "postgresql://risk:***@db:5432/book?table=t"
    assert redact_credentials("s3://bucket/tape.csv") == "s3://bucket/tape.csv"
    tape = ingest(str(write_csv(valid_tape_rows, tmp_path / "tape.csv")))
    tape.source = "postgresql://risk:hunter2@db/book?table=t"
    manifest = publish_snapshot(tape, AS_OF, settings)
    assert manifest["source"] == "postgresql://risk:***@db/book?table=t"
    assert adapters_of(settings).loan_store.ingestion(manifest["ingestion_id"])["source"] == manifest["source"]


def test_two_cli_ingests_on_one_day_do_not_share_staging(settings, tmp_path: Path, monkeypatch, valid_tape_rows,
                                                         write_csv) -> None:
    from pipelines.cli.main import cli_run_id
    from pipelines.settings import get_settings
    from pipelines.tasks.loan_tape import ingest as ingest_task
    from pipelines.tasks.loan_tape import validate as validate_task

    monkeypatch.setenv("STRESS_DATA_HOME", str(settings.data_home))
    get_settings.cache_clear()
    first_tape = write_csv(valid_tape_rows[:10], tmp_path / "first.csv")
    second_tape = write_csv(valid_tape_rows[10:], tmp_path / "second.csv")
    first_run, second_run = cli_run_id(), cli_run_id()
    assert first_run != second_run and first_run.startswith(f"cli__{date.today().isoformat()}__")
    # Interleaved: both staged before either is validated.
    first_staged = ingest_task(str(first_tape), AS_OF.isoformat(), first_run)
    second_staged = ingest_task(str(second_tape), AS_OF.isoformat(), second_run)
    assert first_staged["staging_prefix"] != second_staged["staging_prefix"]
    first = validate_task(first_staged, first_run)
    second = validate_task(second_staged, second_run)
    store = adapters_of(get_settings()).loan_store  # the store the tasks wrote to
    assert sorted(store.read_snapshot(first["snapshot_id"]).column("LoanId").to_pylist()) == \
        sorted(r["LoanId"] for r in valid_tape_rows[:10])
    assert sorted(store.read_snapshot(second["snapshot_id"]).column("LoanId").to_pylist()) == \
        sorted(r["LoanId"] for r in valid_tape_rows[10:])
    assert (first["source"], second["source"]) == (str(first_tape), str(second_tape))


def test_concurrent_publishers_of_one_snapshot_both_succeed_on_sqlite(settings, tmp_path: Path, valid_tape_rows,
                                                                      write_csv, publish_snapshot) -> None:
    tape_path = write_csv(valid_tape_rows, tmp_path / "tape.csv")
    tapes = [ingest(str(tape_path)) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def publish(index: int) -> None:
        barrier.wait()
        try:
            results[index] = publish_snapshot(tapes[index], AS_OF, settings, airflow_run_id=f"manual__{index}")
        except Exception as error:  # kept: the test reports what each thread raised
            results[index] = error

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(result, dict) for result in results), results
    store = adapters_of(settings).loan_store
    assert results[0]["snapshot_id"] == results[1]["snapshot_id"]
    for result in results:
        assert store.count_rows(result["ingestion_id"]) == (28, 0)


def test_a_crash_before_the_store_commit_leaves_no_manifest_and_the_next_run_publishes(
        settings, tmp_path: Path, valid_tape_rows, write_csv, publish_snapshot, monkeypatch) -> None:
    from pipelines.adapters.loan_store import LoanStore

    tape = ingest(str(write_csv(valid_tape_rows, tmp_path / "tape.csv")))

    def killed(*_: Any) -> bool:
        raise KeyboardInterrupt("killed before the loan store committed")

    with monkeypatch.context() as patch:
        patch.setattr(LoanStore, "record_ingestion", killed)
        with pytest.raises(KeyboardInterrupt):
            publish_snapshot(tape, AS_OF, settings)
    objects = adapters_of(settings).object_store
    assert not [key for key in objects.list_keys() if key.endswith("manifest.json")]
    manifest = publish_snapshot(tape, AS_OF, settings)
    assert objects.exists(f"snapshots/{manifest['snapshot_id']}/manifest.json")
    assert adapters_of(settings).loan_store.count_rows(manifest["ingestion_id"]) == (28, 0)


def test_a_snapshot_without_manifest_is_published_again(settings, tmp_path: Path, valid_tape_rows, write_csv,
                                                        publish_snapshot) -> None:
    tape = ingest(str(write_csv(valid_tape_rows, tmp_path / "tape.csv")))
    first = publish_snapshot(tape, AS_OF, settings)
    objects = adapters_of(settings).object_store
    prefix = f"snapshots/{first['snapshot_id']}"
    # A run killed after the loan store committed, before the manifest: the parquet may be torn too.
    objects.delete_prefix(f"{prefix}/")
    objects.put_bytes(f"{prefix}/loans.parquet", b"PAR1 torn")
    second = publish_snapshot(tape, AS_OF, settings)
    assert second["snapshot_id"] == first["snapshot_id"]
    assert objects.get_parquet(f"{prefix}/loans.parquet").num_rows == 28
    assert json.loads(objects.get_bytes(f"{prefix}/manifest.json"))["accepted_rows"] == 28
    assert adapters_of(settings).loan_store.read_snapshot(first["snapshot_id"]).num_rows == 28


LOOK_ALIKES = ["M-0001\u200b", "\ufeffM-0001", "M-000\uff11", "M-00\x0001"]


def test_look_alike_ids_are_duplicates_and_control_characters_are_quarantined(
        tmp_path: Path, valid_tape_rows, write_csv) -> None:
    from pipelines.data.validation import validate

    rows = [*valid_tape_rows, *({**valid_tape_rows[0], "LoanId": loan_id} for loan_id in LOOK_ALIKES),
            {**valid_tape_rows[1], "LoanId": "NUL-REGION", "LoanType": "MORTGAGE\x00_15Y"},
            {**valid_tape_rows[2], "LoanId": "TAB\tID"}]
    tape = ingest(str(write_csv(rows, tmp_path / "tape.csv")))
    outcome = validate(tape, duplicate_tolerance=0.5, balance_tolerance=0.05)
    reasons = {json.loads(q["raw_record"])["LoanId"]: q["reasons"].split("; ")
               for q in outcome.quarantine.to_pylist()}
    for loan_id in ["M-0001", *LOOK_ALIKES]:
        assert "duplicate_LoanId" in reasons[loan_id], loan_id
    assert "control_characters:LoanId" in reasons["M-00\x0001"]
    assert "control_characters:LoanId" in reasons["TAB\tID"]
    assert reasons["NUL-REGION"] == ["nul_character:LoanType"]
    assert outcome.accepted.num_rows + outcome.quarantine.num_rows == outcome.input_rows == len(rows)
    assert outcome.accepted.num_rows == len(valid_tape_rows) - 1


def test_suite_and_docs_match_the_contract() -> None:
    from pipelines.cli.main import main

    main(["contract", "--check"])


# Each pair reads the same; the second id of each is written with letters of another script.
HOMOGLYPHS = [("ABC-0001", "\u0410\u0412\u0421-0001"),  # Cyrillic А, В, С
              ("OPEX-0002", "\u039fPEX-0002"),  # Greek capital omicron
              ("ox-0003", "\u03bfx-0003"),  # Greek small omicron
              ("EPIC-0004", "\u0415\u0420\u0406\u0421-0004")]  # Cyrillic Е, Р, І, С


def test_cross_script_homoglyph_ids_are_duplicates_and_mixed_scripts_are_quarantined(
        tmp_path: Path, valid_tape_rows, write_csv) -> None:
    from pipelines.data.validation import validate

    homoglyph_rows = [{**valid_tape_rows[i], "LoanId": loan_id}
                      for i, pair in enumerate(HOMOGLYPHS) for loan_id in pair]
    one_script = [{**valid_tape_rows[8], "LoanId": "\u65e5\u672c-0009"},  # Han with digits
                  {**valid_tape_rows[9], "LoanId": "JP-\u65e5\u672c-\u30ab\u30ca"},  # Latin, Han, Katakana
                  {**valid_tape_rows[10], "LoanId": "\u0416\u0423\u041a-0011"}]  # Cyrillic only, no Latin twin
    rows = [*valid_tape_rows[12:], *homoglyph_rows, *one_script]
    tape = ingest(str(write_csv(rows, tmp_path / "tape.csv")))
    outcome = validate(tape, duplicate_tolerance=0.5, balance_tolerance=0.05)
    reasons = {json.loads(q["raw_record"])["LoanId"]: q["reasons"].split("; ")
               for q in outcome.quarantine.to_pylist()}
    for pair in HOMOGLYPHS:
        for loan_id in pair:
            assert "duplicate_LoanId" in reasons[loan_id], loan_id
    # Latin letters mixed with Greek or Cyrillic look-alikes in one id: quarantined by name.
    assert "mixed_script:LoanId" in reasons["\u039fPEX-0002"]
    assert "mixed_script:LoanId" not in reasons["ABC-0001"]
    assert not {"\u65e5\u672c-0009", "JP-\u65e5\u672c-\u30ab\u30ca", "\u0416\u0423\u041a-0011"} & set(reasons)
    assert outcome.accepted.num_rows == len(rows) - len(homoglyph_rows)
    assert outcome.accepted.num_rows + outcome.quarantine.num_rows == outcome.input_rows == len(rows)


def test_skeleton_maps_look_alikes_and_keeps_ascii() -> None:
    from pipelines.data.confusables import is_mixed_script, skeleton

    assert skeleton("\u0410\u0412\u0421-\u039f\u03bf") == "ABC-Oo"
    assert skeleton("LOAN-10") == "LOAN-10" and skeleton("LOAN-1O") == "LOAN-1O"  # ASCII ids stay distinct
    assert is_mixed_script("\u039fPEX") and not is_mixed_script("\u0416\u0423\u041a-1")
    assert not is_mixed_script("JP-\u65e5\u672c-\u30ab\u30ca") and not is_mixed_script("Ren\u00e9e-2")


def test_a_tape_over_the_duplicate_tolerance_is_rejected_with_its_audit_record(
        settings, tmp_path: Path, valid_tape_rows, write_csv, publish_snapshot) -> None:
    rows = [*valid_tape_rows, *({**valid_tape_rows[0]} for _ in range(5))]
    tape = ingest(str(write_csv(rows, tmp_path / "duplicates.csv")))
    with pytest.raises(TableContractError, match="share a LoanId, above the tolerance") as raised:
        publish_snapshot(tape, AS_OF, settings, airflow_run_id="manual__dup")
    assert raised.value.rule == "duplicate_LoanId"
    adapters = adapters_of(settings)
    assert adapters.object_store.list_keys("snapshots/") == []
    (ingestion_id,) = ingestion_ids(adapters.object_store)
    record = adapters.loan_store.ingestion(ingestion_id)
    assert (record["status"], record["failed_rule"], record["snapshot_id"]) == ("rejected", "duplicate_LoanId", None)
    assert record["input_rows"] == len(rows) and record["airflow_run_id"] == "manual__dup"
    from pipelines.data.snapshots import input_hash

    assert record["input_sha256"] == input_hash(tape) and "above the tolerance" in record["error"]
    manifest = json.loads(adapters.object_store.get_bytes(f"ingestions/{ingestion_id}/manifest.json"))
    assert manifest["failed_rule"] == "duplicate_LoanId" and manifest["input_rows"] == len(rows)


def test_a_tape_that_breaks_a_rule_while_read_is_rejected_with_its_redacted_audit_record(
        settings, tmp_path: Path, valid_tape_rows, write_csv) -> None:
    from pipelines.data.snapshots import stage_tape

    path = write_csv(valid_tape_rows, tmp_path / "tape.csv")
    path.write_text(path.read_text().replace("CreditScore", "FicoScore", 1))
    adapters = adapters_of(settings)
    for source, rule in ((str(path), "required_columns"),
                         ("postgresql://risk:s3cret@127.0.0.1:1/loans?table=bad-name", "sql_table_name")):
        with pytest.raises(TableContractError) as raised:
            stage_tape(source, "manual__read", adapters.object_store, settings.aws_region,
                       loan_store=adapters.loan_store, as_of=AS_OF, airflow_run_id="manual__read")
        assert raised.value.rule == rule
    records = [adapters.loan_store.ingestion(i) for i in ingestion_ids(adapters.object_store)]
    assert sorted(r["failed_rule"] for r in records) == ["required_columns", "sql_table_name"]
    assert {r["status"] for r in records} == {"rejected"}
    assert all(r["input_sha256"] is None and r["snapshot_id"] is None for r in records)
    stored = json.dumps([{k: str(v) for k, v in r.items()} for r in records])
    assert "s3cret" not in stored and "risk:***@" in stored
    assert adapters.object_store.list_keys("snapshots/") == []


def test_a_published_ingestion_says_so(settings, tmp_path: Path, valid_tape_rows, write_csv,
                                       publish_snapshot) -> None:
    manifest = publish_snapshot(ingest(str(write_csv(valid_tape_rows, tmp_path / "tape.csv"))), AS_OF, settings)
    record = adapters_of(settings).loan_store.ingestion(manifest["ingestion_id"])
    assert (record["status"], record["failed_rule"], record["error"]) == ("published", None, None)
