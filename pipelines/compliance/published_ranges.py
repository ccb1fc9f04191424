"""The Fed's published stress-test loss rates by loan type, and a run's segment loss rates beside them.

A reviewer judges a stress test's loss rates first against what the supervisor itself projects for large banks.
The ranges live in one data file, ``compliance/fed_loss_rates.yaml`` (its header says where they come from);
the demo and the stress report both read them through :func:`load_published_ranges` and
:func:`compare_loss_rates`, so no published figure is typed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.segments import SEGMENT_NAMES
from pipelines.settings import REPO_ROOT

PUBLISHED_RANGES_PATH = REPO_ROOT / "compliance" / "fed_loss_rates.yaml"


class PublishedRangesError(ValueError):
    """The published-ranges file is malformed."""


@dataclass(frozen=True)
class LossRateRange:
    """One Fed loan type: its nine-quarter loss-rate range (fractions) and the book's segments it covers."""

    loan_type: str
    segments: tuple[str, ...]
    low: float
    high: float


@dataclass(frozen=True)
class PublishedRanges:
    """The ranges of one file, the scenarios they apply to and where they come from."""

    scenario_kind: str
    source: str
    approximate: bool
    ranges: tuple[LossRateRange, ...]
    aggregate_capital: dict[str, float]

    def applies_to(self, scenario_id: str) -> bool:
        return self.scenario_kind in scenario_id

    def for_segment(self, segment: str) -> LossRateRange | None:
        return next((r for r in self.ranges if segment in r.segments), None)


@dataclass(frozen=True)
class SegmentComparison:
    """A segment's loss rate in one scenario beside its published range (``None`` when none applies)."""

    scenario_id: str
    segment: str
    loss_rate: float
    published: LossRateRange | None

    @property
    def status(self) -> str:
        """``in``, ``below`` or ``above`` the published range, or ``n/a`` when no range applies."""
        if self.published is None:
            return "n/a"
        if self.loss_rate < self.published.low:
            return "below"
        return "above" if self.loss_rate > self.published.high else "in"


def parse_published_ranges(document: Any, source: str) -> PublishedRanges:
    """Validate the parsed YAML: every range ``0 <= low <= high <= 1``, known segments, each segment once."""
    if not isinstance(document, dict) or not isinstance(document.get("loan_types"), list):
        raise PublishedRangesError(f"{source}: expected a mapping with a list of loan_types")
    ranges, seen = [], set()
    for number, entry in enumerate(document["loan_types"], start=1):
        try:
            item = LossRateRange(str(entry["loan_type"]), tuple(entry["segments"]), float(entry["low"]),
                                 float(entry["high"]))
        except (KeyError, TypeError, ValueError) as error:
            raise PublishedRangesError(f"{source}: loan type {number}: {error!r}") from None
        if not 0.0 <= item.low <= item.high <= 1.0:
            raise PublishedRangesError(f"{source}: {item.loan_type}: need 0 <= low <= high <= 1, got "
                                       f"{item.low} .. {item.high}")
        unknown = set(item.segments) - set(SEGMENT_NAMES)
        repeated = set(item.segments) & seen
        if unknown or repeated or not item.segments:
            raise PublishedRangesError(f"{source}: {item.loan_type}: segments unknown {sorted(unknown)}, "
                                       f"repeated {sorted(repeated)} or none")
        seen |= set(item.segments)
        ranges.append(item)
    capital = {str(k): float(v) for k, v in (document.get("aggregate_capital") or {}).items()}
    return PublishedRanges(str(document.get("scenario_kind", "")), str(document.get("source", "")).strip(),
                           bool(document.get("approximate", False)), tuple(ranges), capital)


def load_published_ranges(path: Path = PUBLISHED_RANGES_PATH) -> PublishedRanges:
    """Read and validate the published-ranges file."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise PublishedRangesError(f"{path}: not valid YAML: {error}") from None
    return parse_published_ranges(document, str(path))


def compare_loss_rates(results: list[dict[str, Any]], published: PublishedRanges) -> list[SegmentComparison]:
    """Every scenario's segment loss rates (``metrics.loss_rate_by_segment`` of a reduce result) beside the
    published range of their loan type, where the range applies to the scenario."""
    comparisons = []
    for result in results:
        scenario_id = result["metrics"]["scenario_id"]
        applies = published.applies_to(scenario_id)
        comparisons += [SegmentComparison(scenario_id, segment, float(rate),
                                          published.for_segment(segment) if applies else None)
                        for segment, rate in result["metrics"]["loss_rate_by_segment"].items()]
    return comparisons


COMPARISON_COLUMNS = ("Scenario", "Segment", "9q loss rate", "Fed loan type", "Published range", "Versus range")


def comparison_rows(comparisons: list[SegmentComparison]) -> list[list[str]]:
    """The comparison as text rows (the demo prints them, the report tabulates them)."""
    def pct(value: float) -> str:
        return f"{value * 100:.2f} %"

    return [[c.scenario_id, c.segment, pct(c.loss_rate), c.published.loan_type if c.published else "",
             f"{pct(c.published.low)} .. {pct(c.published.high)}" if c.published else "", c.status]
            for c in comparisons]


def ranges_note(published: PublishedRanges) -> str:
    """Where the ranges come from, and whether they are approximate (shown under every comparison)."""
    return (f"Published ranges ({'approximate; ' if published.approximate else ''}scenarios named "
            f"*{published.scenario_kind}*): {published.source}")
