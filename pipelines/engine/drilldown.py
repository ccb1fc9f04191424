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
    segments = pc.dictionary_encode(table.column("ProductSegment")).combine_chunks()
    order = [("ExpectedLoss", "descending"), ("LoanId", "ascending")]  # loan ids are unique: a total order
    contributors: dict[str, list[dict[str, Any]]] = {}
    for code, segment in sorted(enumerate(segments.dictionary.to_pylist()), key=lambda item: item[1]):
        positions = pc.indices_nonzero(pc.equal(segments.indices, code))
        keys = table.select(["ExpectedLoss", "LoanId"]).take(positions)  # sort on the two keys only
        top = positions.take(pc.select_k_unstable(keys, k=min(per_segment, len(positions)), sort_keys=order))
        contributors[segment] = [{**row, "QuarterlyPD": [float(p) for p in row["QuarterlyPD"]]}
                                 for row in table.take(top).to_pylist()]
    return contributors
