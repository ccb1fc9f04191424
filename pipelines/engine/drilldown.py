"""The drill-down pre-aggregate of a scenario's result: each segment's largest loss contributors.

A dashboard drills from a segment to its largest expected-loss contributors and on to one loan's
PD term structure. On a book of a million loans, finding them in the per-loan Parquet file at every
click means reading and sorting every row; the reduce step already holds the scenario's loans in
memory, so it keeps the top ``per_segment`` loans of every segment (with their quarterly PDs) in the
result document, and a drill-down reads only those.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

TOP_CONTRIBUTORS_PER_SEGMENT = 25
CONTRIBUTOR_COLUMNS = ("LoanId", "ProductSegment", "ExpectedLoss", "ProjectedDefaultRisk", "ProjectedBalance",
                       "QuarterlyPD")


def top_loss_contributors(loans: pa.Table, per_segment: int = TOP_CONTRIBUTORS_PER_SEGMENT) -> dict[str, list]:
    """Segment -> its ``per_segment`` loans of largest expected loss, largest first (ties by loan id).

    Each loan is a dict of :data:`CONTRIBUTOR_COLUMNS` (``QuarterlyPD`` a list, one PD per quarter).
    """
    if per_segment < 1:
        raise ValueError(f"per_segment must be at least 1 (got {per_segment})")
    table = loans.select(list(CONTRIBUTOR_COLUMNS))
    contributors: dict[str, list[dict[str, Any]]] = {}
    for segment in sorted(pc.unique(table.column("ProductSegment")).to_pylist()):
        rows = table.filter(pc.equal(table.column("ProductSegment"), segment))
        top = rows.take(pc.sort_indices(rows, [("ExpectedLoss", "descending"), ("LoanId", "ascending")])
                        [:per_segment])
        contributors[segment] = [{**row, "QuarterlyPD": [float(p) for p in row["QuarterlyPD"]]}
                                 for row in top.to_pylist()]
    return contributors
