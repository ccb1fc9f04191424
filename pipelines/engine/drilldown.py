"""The drill-down's two fast paths of a scenario's result: each segment's largest loss contributors, and
a per-loan file laid out for lookups by loan id.

A dashboard drills from a segment to its largest expected-loss contributors and on to one loan's
balance path and PD term structure. On a book of a million loans, finding them in the per-loan Parquet
file at every click means reading and sorting every row; the reduce step already holds the scenario's
loans in memory, so it keeps the top ``per_segment`` loans of every segment (with their quarterly PDs
and balances) in the result document, and a drill-down reads only those.

Any other loan is looked up in the per-loan file, which :func:`write_loan_results` writes sorted by
``LoanId`` in row groups of :data:`LOOKUP_ROW_GROUP_ROWS` rows. Parquet keeps each row group's min and
max ``LoanId`` in the footer, so on a sorted file the row groups' id ranges do not overlap and a lookup
reads the footer and the one row group whose range holds the id, by ranged reads of the object
(a local file's seeks, S3 ranged GETs). Why this and not a (run, scenario, loan) index in the results
store: the file is the index. It needs no second write that could disagree with the file, no index of
a million rows per scenario in PostgreSQL, and it works wherever the file is (the Spark runner's S3
output, a results file downloaded and opened elsewhere). The cost is small: the engine already
simulates the book in ``LoanId`` order (the snapshot is sorted), so the sort (0.3 s on a million loans)
finds it sorted; 8,192 rows per row group (123 on a million loans) put about 110 KB of statistics in the
footer, write as fast as pyarrow's one large row group, and a lookup reads the footer and about 1.2 MB
instead of the whole 64 MB file.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.adapters.object_store import ObjectStore

TOP_CONTRIBUTORS_PER_SEGMENT = 25
# The per-loan columns that hold one value per quarter of the horizon.
LOAN_PATH_COLUMNS = ("QuarterlyPD", "QuarterlyBalance")
CONTRIBUTOR_COLUMNS = ("LoanId", "ProductSegment", "ExpectedLoss", "ProjectedDefaultRisk", "ProjectedBalance",
                       *LOAN_PATH_COLUMNS)
LOOKUP_ROW_GROUP_ROWS = 8192


def write_loan_results(store: ObjectStore, key: str, loans: pa.Table,
                       rows_per_group: int = LOOKUP_ROW_GROUP_ROWS) -> str:
    """Write a scenario's per-loan results at ``key`` for lookups by loan id (module docstring); its URI.

    Only the segment is dictionary-encoded: in row groups of a few thousand loans the ids, figures and paths
    are all distinct, and a dictionary of them would make a million-loan file 90 MB instead of 64 MB.
    """
    return store.put_parquet(key, loans.sort_by("LoanId"), row_group_size=rows_per_group,
                             use_dictionary=["ProductSegment"])


def top_loss_contributors(loans: pa.Table, per_segment: int = TOP_CONTRIBUTORS_PER_SEGMENT) -> dict[str, list]:
    """Segment -> its ``per_segment`` loans of largest expected loss, largest first (ties by loan id).

    Each loan is a dict of :data:`CONTRIBUTOR_COLUMNS` (each of :data:`LOAN_PATH_COLUMNS` a list of floats,
    one per quarter).
    """
    if per_segment < 1:
        raise ValueError(f"per_segment must be at least 1 (got {per_segment})")
    table = loans.select([c for c in CONTRIBUTOR_COLUMNS if c in loans.column_names])  # older files: no balances
    paths = [c for c in LOAN_PATH_COLUMNS if c in table.column_names]
    segments = pc.dictionary_encode(table.column("ProductSegment")).combine_chunks()
    order = [("ExpectedLoss", "descending"), ("LoanId", "ascending")]  # loan ids are unique: a total order
    contributors: dict[str, list[dict[str, Any]]] = {}
    for code, segment in sorted(enumerate(segments.dictionary.to_pylist()), key=lambda item: item[1]):
        positions = pc.indices_nonzero(pc.equal(segments.indices, code))
        keys = table.select(["ExpectedLoss", "LoanId"]).take(positions)  # sort on the two keys only
        top = positions.take(pc.select_k_unstable(keys, k=min(per_segment, len(positions)), sort_keys=order))
        contributors[segment] = [{**row, **{path: [float(v) for v in row[path]] for path in paths}}
                                 for row in table.take(top).to_pylist()]
    return contributors
