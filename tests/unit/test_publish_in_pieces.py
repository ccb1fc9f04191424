"""A validation published from pieces in the object store is the validation published from one table.

The Spark ETL leaves the accepted loans as sorted pieces and the quarantine as one Parquet file
(:class:`StoredValidation`), and the ``validate`` task publishes them one piece at a time. Both tapes
here go through the local path's GX validation once; one copy of the outcome is published whole,
the other cut into pieces of a few loans, with amendments that fall in different pieces (one of
them rejected). The snapshot, its name, the quarantine, the manifest and the loan store must agree.
"""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from tests.conftest import make_settings

AS_OF = date(2025, 12, 31)
PIECE_LOANS = 7
_IGNORED = {"ingestion_id", "validated_at", "snapshot_uri", "quarantine_uri", "data_docs_uri"}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    """The local validation of a synthetic tape with some rows broken."""
    from pipelines.data.ingestion import ingest
    from pipelines.data.synthetic import generate_loan_book
    from pipelines.data.validation import validate

    book = generate_loan_book(60, seed=8, as_of=AS_OF)
    buffer = io.BytesIO()
    pacsv.write_csv(book, buffer)
    lines = buffer.getvalue().decode().splitlines()
    column = {name.strip('"'): index for index, name in enumerate(lines[0].split(","))}
    for row, name, value in ((5, "CreditScore", "9999"), (12, "InterestRate", "0.9")):  # out of range
        cells = lines[row].split(",")
        cells[column[name]] = value
        lines[row] = ",".join(cells)
    lines[30] = lines[30].rsplit(",", 2)[0]  # a malformed line
    path = tmp_path_factory.mktemp("tape") / "tape.csv"
    path.write_text("\n".join(lines) + "\n")
    return validate(ingest(str(path)), duplicate_tolerance=0.01, balance_tolerance=0.05)


def _amendments(accepted: pa.Table) -> list[dict]:
    ids = accepted.sort_by("LoanId").column("LoanId").to_pylist()
    return [
        {"amendment_id": "a-early", "loan_id": ids[1], "version": 1,
         "changes": {"InterestRate": {"old": None, "new": "0.0777"}}},
        {"amendment_id": "a-late", "loan_id": ids[-2], "version": 1,
         "changes": {"CreditScore": {"old": None, "new": "701"}}},
        {"amendment_id": "a-rejected", "loan_id": ids[3 * PIECE_LOANS], "version": 1,
         "changes": {"InterestRate": {"old": None, "new": "0.9"}}},
        {"amendment_id": "a-elsewhere", "loan_id": "NOT-ON-THIS-TAPE", "version": 1,
         "changes": {"CreditScore": {"old": None, "new": "650"}}},
    ]


def _stored(outcome, store):
    """The outcome as the Spark ETL leaves it: sorted pieces and a quarantine written part by part."""
    from pipelines.data.snapshots import StoredValidation

    ordered = outcome.accepted.sort_by("LoanId")
    keys = []
    for index, start in enumerate(range(0, ordered.num_rows, PIECE_LOANS)):
        keys.append(f"staging/validated/sorted/piece-{index:05d}.parquet")
        store.put_parquet(keys[-1], ordered.slice(start, PIECE_LOANS))
    quarantine = outcome.quarantine
    store.put_parquet_parts("staging/validated/quarantine.parquet", [quarantine.slice(0, 1), quarantine.slice(1)])
    return StoredValidation(keys, ordered.num_rows, "staging/validated/quarantine.parquet", quarantine.num_rows,
                            outcome.input_rows, outcome.failed_expectations, None)


def _publish(outcome, tmp_path: Path, in_pieces: bool, **overrides):
    from pipelines.composition import build_adapters
    from pipelines.data.snapshots import TapeFacts, publish_validated

    adapters = build_adapters(make_settings(tmp_path / ("pieces" if in_pieces else "whole")))
    validated = _stored(outcome, adapters.object_store) if in_pieces else outcome
    if overrides:
        validated = type(validated)(**{**validated.__dict__, **overrides})
    facts = TapeFacts("tape.csv", "i" * 64, outcome.input_rows, 1, 0, [])
    manifest = publish_validated(validated, facts, AS_OF, ingestion_id=f"ingestion-{in_pieces}",
                                 store=adapters.object_store, loan_store=adapters.loan_store, balance_tolerance=0.05,
                                 amendments=_amendments(outcome.accepted))
    return manifest, adapters


def test_pieces_publish_the_snapshot_quarantine_manifest_and_store_of_one_table(outcome, tmp_path: Path) -> None:
    assert outcome.accepted.num_rows > 4 * PIECE_LOANS and outcome.quarantine.num_rows >= 2
    whole, whole_adapters = _publish(outcome, tmp_path, in_pieces=False)
    pieces, piece_adapters = _publish(outcome, tmp_path, in_pieces=True)

    def compared(manifest: dict) -> dict:
        return {key: value for key, value in manifest.items() if key not in _IGNORED}

    assert compared(pieces) == compared(whole)
    assert whole["amendments"] == {"a-early": ["applied", "version 1 applied"],
                                   "a-late": ["applied", "version 1 applied"],
                                   "a-rejected": ["rejected",
                                                  "the loan on this tape would break range:InterestRate (0 .. 0.4)"]}
    snapshot_key = f"snapshots/{whole['snapshot_id']}/loans.parquet"
    assert piece_adapters.object_store.get_bytes(snapshot_key) == whole_adapters.object_store.get_bytes(snapshot_key)
    stored = piece_adapters.loan_store.read_snapshot(pieces["snapshot_id"])
    assert stored.equals(whole_adapters.loan_store.read_snapshot(whole["snapshot_id"]))
    amended = {row["LoanId"]: row for row in stored.to_pylist()}
    assert str(amended[_amendments(outcome.accepted)[0]["loan_id"]]["InterestRate"]) == "0.07770000"
    assert amended[_amendments(outcome.accepted)[1]["loan_id"]]["CreditScore"] == 701
    for adapters, manifest in ((whole_adapters, whole), (piece_adapters, pieces)):
        assert adapters.loan_store.count_rows(manifest["ingestion_id"]) == (manifest["accepted_rows"],
                                                                            manifest["quarantined_rows"])
    quarantine_key = "ingestions/{}/quarantine.parquet"
    assert (piece_adapters.object_store.get_parquet(quarantine_key.format(pieces["ingestion_id"]))
            .equals(whole_adapters.object_store.get_parquet(quarantine_key.format(whole["ingestion_id"]))))
    assert json.loads(piece_adapters.object_store.get_bytes(f"snapshots/{pieces['snapshot_id']}/manifest.json"))[
        "accepted_rows"] == outcome.accepted.num_rows


def test_pieces_that_disagree_with_their_count_record_nothing(outcome, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loans given, the record says"):
        _publish(outcome, tmp_path, in_pieces=True, accepted_rows=outcome.accepted.num_rows - 1,
                 input_rows=outcome.input_rows - 1)
    from pipelines.composition import build_adapters

    adapters = build_adapters(make_settings(tmp_path / "pieces"))
    assert adapters.loan_store.ingestion("ingestion-True") is None
    assert not adapters.object_store.exists("ingestions/ingestion-True/manifest.json")
