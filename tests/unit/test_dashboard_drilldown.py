"""The drill-down pre-aggregate and the dashboard's URL contract."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipelines.engine.drilldown import top_loss_contributors


def _loans() -> pa.Table:
    return pa.table({
        "LoanId": ["a", "b", "c", "d", "e"], "ProductSegment": ["auto", "auto", "heloc", "auto", "heloc"],
        "ExpectedLoss": [5.0, 9.0, 1.0, 9.0, 3.0], "ProjectedDefaultRisk": [0.1, 0.2, 0.3, 0.4, 0.5],
        "ProjectedBalance": [10.0, 20.0, 30.0, 40.0, 50.0],
        "QuarterlyPD": pa.FixedSizeListArray.from_arrays(pa.array([0.5, 0.25] * 5, pa.float32()), 2),
        "QuarterlyBalance": pa.FixedSizeListArray.from_arrays(pa.array([8.0, 6.0] * 5), 2)})


def test_each_segment_keeps_its_largest_expected_losses_ties_by_loan_id():
    top = top_loss_contributors(_loans(), per_segment=2)
    assert {s: [loan["LoanId"] for loan in loans] for s, loans in top.items()} == {"auto": ["b", "d"],
                                                                                    "heloc": ["e", "c"]}
    assert top["auto"][0] == {"LoanId": "b", "ProductSegment": "auto", "ExpectedLoss": 9.0,
                              "ProjectedDefaultRisk": 0.2, "ProjectedBalance": 20.0, "QuarterlyPD": [0.5, 0.25],
                              "QuarterlyBalance": [8.0, 6.0]}


def test_a_segment_smaller_than_the_cut_keeps_every_loan():
    assert [loan["LoanId"] for loan in top_loss_contributors(_loans(), per_segment=10)["auto"]] == ["b", "d", "a"]


def test_the_services_offer_no_more_contributors_than_the_reduce_step_keeps():
    from pipelines.engine.drilldown import TOP_CONTRIBUTORS_PER_SEGMENT
    from pipelines.services.application import MAX_CONTRIBUTORS

    assert MAX_CONTRIBUTORS == TOP_CONTRIBUTORS_PER_SEGMENT


def test_the_cut_must_keep_a_loan():
    with pytest.raises(ValueError, match="per_segment"):
        top_loss_contributors(_loans(), per_segment=0)


@pytest.mark.parametrize("prefix", ["/", "/loanstress/dashboard/"])
def test_a_run_page_names_its_run_id_under_any_prefix(prefix):
    from pipelines.dashboard.app import run_id_of_path, run_path

    run_id = "manual__2026-01-01T00:00:00.123+00:00"
    path = run_path(prefix, run_id)
    assert path == f"{prefix.rstrip('/')}/runs/manual__2026-01-01T00%3A00%3A00.123%2B00%3A00"
    assert run_id_of_path(prefix, path) == run_id
    assert run_id_of_path(prefix, prefix) == ""  # the base path: the latest run
