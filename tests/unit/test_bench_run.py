"""``make bench`` records what each figure was measured on and renders a README table."""

from __future__ import annotations

import re

from benchmarks.common import measurement_record
from benchmarks.run import markdown_table


def test_measurement_record_names_the_commit_machine_and_date():
    record = measurement_record()
    assert re.fullmatch(r"[0-9a-f]{40}", record["commit"])
    assert isinstance(record["dirty"], bool)
    assert record["cpu_model"] and record["cores"] >= 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["date_utc"])


def test_markdown_table_has_a_row_per_benchmark_with_its_record():
    measured = {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": True, "cpu_model": "Some CPU @ 2.20GHz",
                "cores": 2, "date_utc": "2026-01-05T12:00:00+00:00"}
    table = markdown_table({"ingest_csv_1m": {"figures": {"rows": 1000000, "wall_s": 2.64}, "measured": measured},
                            "other": {"figures": {"ok": True}, "measured": measured | {"dirty": False}}})
    assert table.splitlines() == [
        "| benchmark | figures | measured on |", "| --- | --- | --- |",
        "| `ingest_csv_1m` | rows 1,000,000; wall_s 2.64 | `0123456789` (dirty), Some CPU @ 2.20GHz, 2 cores, "
        "2026-01-05T12:00:00+00:00 |",
        "| `other` | ok True | `0123456789`, Some CPU @ 2.20GHz, 2 cores, 2026-01-05T12:00:00+00:00 |"]
