"""The SQLite loan store keeps every row and every value when loads span many multi-row INSERTs."""

from __future__ import annotations

import gc
from datetime import date
from pathlib import Path

import pyarrow as pa

from pipelines.adapters.loan_store import SQLITE_ROWS_PER_STATEMENT, LoanStore
from pipelines.data.synthetic import generate_loan_book

# Several full multi-row statements plus a remainder of single-row ones.
N_LOANS = 3 * SQLITE_ROWS_PER_STATEMENT + 7


def test_sqlite_round_trip_is_exact_across_statement_boundaries(tmp_path: Path) -> None:
    loans = generate_loan_book(N_LOANS, 5, date(2025, 12, 31)).sort_by("LoanId")
    quarantine = pa.table({
        "row_number": pa.array(range(1, N_LOANS + 1), pa.int64()),
        "reasons": pa.array([f"range:LoanAmount; rule {i}" for i in range(N_LOANS)]),
        "raw_record": pa.array([f'{{"LoanId": "Q-{i}", "note": "it\'s, \\"quoted\\""}}' for i in range(N_LOANS)]),
    })
    record = {"snapshot_id": "snap-1", "content_sha256": "c" * 64, "source": "test", "input_sha256": "i" * 64,
              "as_of": "2025-12-31", "input_rows": 2 * N_LOANS, "accepted_rows": N_LOANS, "quarantined_rows": N_LOANS,
              "snapshot_uri": "u", "quarantine_uri": "q"}
    store = LoanStore(f"sqlite:///{tmp_path / 'store.db'}")
    assert store.record_ingestion({**record, "ingestion_id": "first"}, loans, quarantine)
    # A second ingestion of the same loans shares the snapshot: its loans are not stored twice.
    assert not store.record_ingestion({**record, "ingestion_id": "second"}, loans, quarantine)
    assert gc.isenabled()  # the collector paused for the inserts is running again
    assert store.count_rows("first") == store.count_rows("second") == (N_LOANS, N_LOANS)
    assert store.read_snapshot("snap-1").equals(loans)
    with store.engine.connect() as connection:
        stored = connection.exec_driver_sql(
            "SELECT row_number, reasons, raw_record FROM ingestion_quarantine WHERE ingestion_id = 'first' "
            "ORDER BY row_number").fetchall()
    assert stored == list(zip(*(quarantine.column(c).to_pylist() for c in quarantine.column_names), strict=True))
