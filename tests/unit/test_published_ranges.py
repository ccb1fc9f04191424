"""The Fed's published loss-rate ranges: the shipped file parses, and a run's loss rates are judged against it."""

from __future__ import annotations

import pytest

from models.segments import SEGMENT_NAMES
from pipelines.compliance.published_ranges import (
    PublishedRangesError,
    compare_loss_rates,
    load_published_ranges,
    parse_published_ranges,
)


def test_the_shipped_ranges_parse_and_cover_every_segment_once() -> None:
    published = load_published_ranges()
    assert published.source and published.scenario_kind == "severely_adverse"
    covered = [segment for r in published.ranges for segment in r.segments]
    assert sorted(covered) == sorted(SEGMENT_NAMES)
    assert all(0.0 <= r.low <= r.high <= 1.0 for r in published.ranges)
    assert published.aggregate_capital["cet1_start"] > published.aggregate_capital["cet1_minimum"]


def _document(low: float, high: float, segments: list[str] | None = None) -> dict:
    return {"scenario_kind": "severely_adverse",
            "loan_types": [{"loan_type": "Credit cards", "segments": segments or ["credit_card"], "low": low,
                            "high": high}]}


@pytest.mark.parametrize(("document", "message"), [
    (_document(0.2, 0.15), "low <= high"),
    (_document(-0.1, 0.15), "low <= high"),
    (_document(0.1, 0.2, ["yacht"]), "unknown"),
    ({"loan_types": [{"loan_type": "x", "segments": ["auto"]}]}, "loan type 1"),
    ({"ranges": []}, "list of loan_types"),
])
def test_malformed_ranges_are_rejected(document: dict, message: str) -> None:
    with pytest.raises(PublishedRangesError, match=message):
        parse_published_ranges(document, "test.yaml")


def test_a_segment_named_twice_is_rejected() -> None:
    document = _document(0.1, 0.2)
    document["loan_types"].append(dict(document["loan_types"][0]))
    with pytest.raises(PublishedRangesError, match="repeated"):
        parse_published_ranges(document, "test.yaml")


def test_loss_rates_are_in_below_or_above_and_only_where_the_range_applies() -> None:
    published = parse_published_ranges(_document(0.15, 0.20), "test.yaml")
    results = [{"metrics": {"scenario_id": scenario, "loss_rate_by_segment": {"credit_card": rate, "auto": 0.01}}}
               for scenario, rate in (("2026_severely_adverse", 0.149), ("2025_severely_adverse", 0.20),
                                      ("x_severely_adverse", 0.2001), ("2026_baseline", 0.17))]
    status = {(c.scenario_id, c.segment): c.status for c in compare_loss_rates(results, published)}
    assert status == {
        ("2026_severely_adverse", "credit_card"): "below", ("2026_severely_adverse", "auto"): "n/a",
        ("2025_severely_adverse", "credit_card"): "in", ("2025_severely_adverse", "auto"): "n/a",
        ("x_severely_adverse", "credit_card"): "above", ("x_severely_adverse", "auto"): "n/a",
        ("2026_baseline", "credit_card"): "n/a", ("2026_baseline", "auto"): "n/a",
    }
