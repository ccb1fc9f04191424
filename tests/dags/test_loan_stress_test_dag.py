"""End to end: the loan_stress_test DAG on a small synthetic tape with a few bad rows."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

AS_OF = date(2025, 12, 31)


def test_loan_stress_test_end_to_end(airflow_db, dagbag, stress_settings, tmp_path):
    from pipelines.cli import write_table
    from pipelines.loan_store import LoanStore
    from pipelines.object_store import open_object_store
    from pipelines.steps import read_run_steps
    from pipelines.synthetic import generate_loan_book

    book = generate_loan_book(400, seed=11, as_of=AS_OF)
    # Break three rows the way real tapes break: an inverted date, a negative amount, a duplicate id.
    loan_ids = book.column("LoanId").to_pylist()
    start = book.column("LoanStartDate").to_pylist()
    maturity = book.column("LoanMaturityDate").to_pylist()
    start[0], maturity[0] = maturity[0], start[0]
    book = book.set_column(book.schema.get_field_index("LoanStartDate"), "LoanStartDate", pa.array(start))
    book = book.set_column(book.schema.get_field_index("LoanMaturityDate"), "LoanMaturityDate", pa.array(maturity))
    amount = pc.cast(book.column("LoanAmount"), pa.float64()).to_pylist()
    amount[1] = -5.0
    loan_ids[2] = loan_ids[3]
    text = book.cast(pa.schema([pa.field(f.name, pa.string()) for f in book.schema]))
    amount_text = pa.array([f"{a:.2f}" for a in amount])
    text = text.set_column(text.schema.get_field_index("LoanAmount"), "LoanAmount", amount_text)
    text = text.set_column(0, "LoanId", pa.array(loan_ids))
    tape = str(tmp_path / "tape.csv")
    write_table(text, tape)

    run = dagbag.get_dag("loan_stress_test").test(run_conf={"source_uri": tape, "as_of_date": AS_OF.isoformat()})

    assert str(run.state) == "success"
    steps = read_run_steps(run.run_id)
    snapshot = steps["validate"]
    assert snapshot["input_rows"] == 400
    assert snapshot["accepted_rows"] + snapshot["quarantined_rows"] == 400
    assert snapshot["quarantine_reasons"]["start_before_maturity"] == 1
    assert snapshot["quarantine_reasons"]["range:LoanAmount"] == 1
    assert snapshot["quarantine_reasons"]["duplicate_LoanId"] == 2
    assert snapshot["accepted_rows"] == 396
    assert snapshot["airflow_run_id"] == run.run_id
    assert LoanStore(stress_settings.resolved_loan_store_url).count_rows(snapshot["snapshot_id"]) == (396, 4)
    store = open_object_store(stress_settings.resolved_object_store_uri)
    features = store.get_parquet(steps["features"]["features_key"])
    assert features.num_rows == 396
    assert steps["features"]["macro_quarter"] == "2025Q4"
