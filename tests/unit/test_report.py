"""The stress test report: the PDF's pages and text, and the HTML's tables and charts.

There is no pdftotext on the machines and no PDF library in the venv, so :func:`pdf_text` reads
the PDF directly: matplotlib writes each page's content as a Flate-compressed stream in which text
is shown by ``TJ``/``Tj`` operators on literal strings (Type 3 fonts, one byte per character).
"""

from __future__ import annotations

import math
import re
import zlib
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from models.segments import SEGMENT_NAMES
from pipelines.compliance.report import (
    COMPLIANCE_ROWS_PER_PAGE,
    CapitalLine,
    Report,
    ReportData,
    capital_lines,
    render,
)
from pipelines.compliance.rules import Status, judge, load_rules, model_observations, scenario_observations

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
MANIFEST = {"snapshot_id": "snap0123456789abcdef0123", "content_sha256": "ab" * 32, "source": "/data/tape.csv",
            "as_of": "2025-12-31", "input_rows": 400, "accepted_rows": 396, "quarantined_rows": 4}
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|.)", re.S)


def _unescape(literal: bytes) -> bytes:
    def replace(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code.isdigit():
            return bytes([int(code, 8)])
        return {b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(code, code)

    return _ESCAPE.sub(replace, literal)


def pdf_text(data: bytes) -> str:
    """The strings shown on every page, one text object per line."""
    shown = []
    for raw in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            content = zlib.decompress(raw)
        except zlib.error:  # fonts and images are streams too
            continue
        for array, single in re.findall(rb"\[((?:[^\]\\]|\\.)*)\]\s*TJ|(\((?:[^)\\]|\\.)*\))\s*Tj", content, re.S):
            parts = re.findall(rb"\(((?:[^)\\]|\\.)*)\)", array or single)
            shown.append(b"".join(_unescape(p) for p in parts).decode("latin-1"))
    return "\n".join(shown)


def pdf_page_count(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", data))


class _Tables(HTMLParser):
    """Rows of every ``<table id=...>``, and the ``src`` of every image."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table":
            self._table = attributes["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in {"td", "th"}:
            self._cell = []
        elif tag == "img":
            self.images.append(attributes["src"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in {"td", "th"} and self._table:
            self.tables[self._table][-1].append("".join(self._cell or []))
            self._cell = None
        elif tag == "table":
            self._table = None


NO_MONITORING = "no portfolio_monitoring evaluation of PD model version v-test-1"


@pytest.fixture(scope="module")
def report_data(make_settings, tmp_path_factory, stress_result) -> ReportData:
    settings = make_settings(tmp_path_factory.mktemp("report"))
    book = dict.fromkeys(SEGMENT_NAMES, 100.0)
    adverse_losses = dict.fromkeys(SEGMENT_NAMES, 0.05) | {"credit_card": 0.31}
    results = [stress_result("2026_baseline", [0.125, 0.12, 0.118, 0.117, 0.118, 0.12, 0.121, 0.122, 0.123, 0.124],
                             exposure_by_segment=book),
               stress_result("2026_severely_adverse", [0.125, 0.11, 0.09, 0.07, 0.06, 0.051, 0.055, 0.06, 0.065, 0.07],
                             exposure_by_segment=book, loss_rate_by_segment=adverse_losses)]
    rules = load_rules(settings.compliance_rules_path)
    observations = [*scenario_observations(results),
                    *model_observations({"note": NO_MONITORING}, {"feature_psi": {}, "note": NO_MONITORING})]
    records = judge(rules, observations, settings, run_id="manual__2026-01-05T12:00:00+00:00",
                    dag_id="loan_stress_test", model_version="v-test-1", now=NOW)
    return ReportData(run_id="manual__2026-01-05T12:00:00+00:00", manifest=MANIFEST, results=results,
                      records=records, capital_lines=capital_lines(rules, settings), generated_at=NOW)


def test_capital_lines_are_the_minimum_and_the_minimum_plus_buffer(report_data):
    assert report_data.capital_lines == [CapitalLine("CET1 minimum", 0.045),
                                         CapitalLine("minimum + stress capital buffer", pytest.approx(0.07)),
                                         CapitalLine("Tier 1 leverage minimum", 0.04, "min_tier1_leverage_ratio")]


@pytest.fixture(scope="module")
def report(report_data) -> Report:
    return render(report_data)


def test_pdf_pages_and_text(report_data, report):
    records = report_data.records
    assert len(records) > COMPLIANCE_ROWS_PER_PAGE  # the compliance table runs over two pages
    # The attribution page first (no previous run here), then summary, charts, the published ranges and
    # capital paths, compliance, self-check, provenance.
    expected_pages = 1 + 5 + 2 + math.ceil(len(records) / COMPLIANCE_ROWS_PER_PAGE) + 2
    assert report.pdf.startswith(b"%PDF-")
    assert pdf_page_count(report.pdf) == report.pages == expected_pages

    text = pdf_text(report.pdf)
    for expected in ("Change since the previous run", "No previous run: this is the first published run",
                     "Loan portfolio stress test report", "manual__2026-01-05T12:00:00+00:00",
                     "snapshot snap0123456789abcdef0123", "ab" * 32, "version v-test-1",
                     "Scenario macro paths", "Unemployment rate (%)",
                     "Expected credit losses by segment and by quarter",
                     "Loss distribution over the horizon, with VaR and expected shortfall", "VaR 99.9 %",
                     "ES 97.5 %", "CET1 and Tier 1 leverage ratio paths against the requirements", "CET1 minimum 4.5 %",
                     "Tier 1 leverage minimum 4.0 %",
                     "minimum + stress capital buffer 7.0 %", "Compliance (1/2)", "Compliance (2/2)", "Provenance",
                     "Monte Carlo self-check", "standard errors of the Monte Carlo mean",
                     "Loss rates against the Fed's published ranges", "Junior liens and HELOCs, domestic",
                     "CET1 and Tier 1 leverage paths from jump-off",
                     "first_lien_mortgage", "fingerprint fp-2026_baseline",
                     f"Not Evaluated: {NO_MONITORING}"):
        assert expected in text, expected
    # The severely adverse CET1 trough, 5.1 %, against 7 %: in the summary and the compliance table.
    assert "Non-Compliant: Minimum CET1 ratio over the horizon 2026_severely_adverse: 5.10 % against 7.00 %" in text
    assert text.count("Non-Compliant") == 1 + sum(r.status is Status.NON_COMPLIANT for r in records) * 2
    for record in records:
        assert record.metric_id in text


def test_html_has_the_tables_and_charts(report_data, report):
    parser = _Tables()
    parser.feed(report.html)
    summary = parser.tables["summary"]
    assert [row[0] for row in summary[1:]] == ["2026_baseline", "2026_severely_adverse"]
    assert summary[2][7] == "5.10 % (Q5)"
    # Tier 1 leverage: conftest's default path is 0.6 x the CET1 ratio, start 7.5 %, trough 3.06 % in Q5.
    assert summary[2][8:] == ["7.50 %", "3.06 % (Q5)"]
    compliance = parser.tables["compliance"]
    assert compliance[0] == ["MetricId", "MetricName", "Scenario", "Segment / feature", "Threshold", "Actual",
                             "Status", "Note"]
    assert len(compliance) - 1 == len(report_data.records)
    cet1 = [row for row in compliance if row[0] == "CET1_MIN_RATIO"]
    assert cet1 == [
        ["CET1_MIN_RATIO", "Minimum CET1 ratio over the horizon", "2026_baseline", "", "7.00 %", "11.70 %",
         "Compliant", "trough at projected quarter 3"],
        ["CET1_MIN_RATIO", "Minimum CET1 ratio over the horizon", "2026_severely_adverse", "", "7.00 %", "5.10 %",
         "Non-Compliant", "trough at projected quarter 5"]]
    auc = next(row for row in compliance if row[0] == "PD_MODEL_AUC")
    assert auc[4:7] == ["0.700", "n/a", "Not Evaluated"]
    # Each scenario's self-check: conftest's results have MC EL = 1.01 x analytic EL, SE = 2 % of it: z = +0.50.
    assert parser.tables["self_check"] == [
        ["Scenario", "Analytic EL", "Monte Carlo EL", "MC standard error", "z", "Passed"],
        ["2026_baseline", "7", "7", "0", "+0.50", "yes"],
        ["2026_severely_adverse", "61", "62", "1", "+0.50", "yes"]]
    # Severely adverse: 5 % everywhere but cards (31 %), against the shipped ranges (compliance/fed_loss_rates.yaml);
    # the baseline has no published range.
    ranges = {(row[0], row[1]): row for row in parser.tables["published_ranges"][1:]}
    adverse = "2026_severely_adverse"
    assert ranges[(adverse, "credit_card")][2:] == ["31.00 %", "Credit cards", "15.00 % .. 20.00 %", "above"]
    assert ranges[(adverse, "commercial_industrial")][-1] == "below"  # 5 % < 6 %
    assert ranges[(adverse, "commercial_real_estate")][-1] == "in"  # 5 % is the low end, inclusive
    assert ranges[(adverse, "auto")][3:] == ["Other consumer", "4.00 % .. 8.00 %", "in"]
    assert {row[-1] for key, row in ranges.items() if key[0] == "2026_baseline"} == {"n/a"}
    paths = {(row[0], row[1]): row[2:] for row in parser.tables["capital_paths"][1:]}
    assert parser.tables["capital_paths"][0][2:4] == ["Jump-off", "Q1"]
    assert paths[(adverse, "CET1")][:3] == ["12.50 %", "11.00 %", "9.00 %"]
    assert paths[(adverse, "Tier 1 leverage")][0] == "7.50 %"  # conftest: 0.6 x the CET1 ratio
    provenance = dict(parser.tables["provenance"][1:])
    assert provenance["Snapshot SHA-256"] == "ab" * 32
    assert provenance["Simulation 2026_severely_adverse"].startswith("SIM-2026_severel")
    assert len(parser.images) == 4
    assert all(src.startswith("data:image/png;base64,iVBORw0KGgo") for src in parser.images)


def test_a_run_without_results_has_no_report(report_data):
    from dataclasses import replace

    with pytest.raises(ValueError, match="no scenario results"):
        render(replace(report_data, results=[]))


def test_the_allocation_section_shows_the_recommendation_binding_constraints_and_frontier(report_data):
    from dataclasses import replace

    import numpy as np

    from models.optimisation import Assets, Limits
    from pipelines.engine.allocation import recommend
    from pipelines.engine.optimisation_inputs import OptimisationInputs, load_appetite
    from pipelines.settings import StressSettings

    # Safe mortgages and risky cards (50 % loss on one path in ten): the CVaR limit of 20 binds at 60 / 40.
    losses = np.zeros((10, 2))
    losses[3, 1] = 0.5
    assets = Assets(("first_lien_mortgage", "credit_card"), ("first_lien_mortgage", "credit_card"), losses,
                    np.array([0.0, 0.05]), np.array([0.01, 0.10]), 0.0, 0.0, np.array([0.5, 1.0]),
                    np.array([50.0, 50.0]), np.zeros((4, 2)), 0.0)
    limits = Limits(budget=100.0, max_growth=1.0, max_runoff=1.0, cvar_level=0.9, cvar_limit=20.0)
    appetite = load_appetite(StressSettings().optimisation_appetite_path)
    document = {"status": "done", **recommend(OptimisationInputs("2026_severely_adverse", assets, limits, 0.0),
                                              replace(appetite, frontier_points=4))}
    report = render(replace(report_data, optimisation=document))
    parser = _Tables()
    parser.feed(report.html)
    assert parser.tables["allocation"][1:] == [["first_lien_mortgage", "50", "60", "+10", "+20.0 %", "0"],
                                               ["credit_card", "50", "40", "-10", "-20.0 %", "20"]]
    binding = {row[0]: row[2] for row in parser.tables["binding"][1:]}
    assert binding["CVaR 90.0% limit"] == "0.08"
    assert [row[0] for row in parser.tables["allocation_strategies"][1:]] == ["min_cvar", "max_return", "max_raroc",
                                                                             "risk_parity"]
    assert len(parser.images) == 5  # the four charts of the report and the efficient frontier
    text = pdf_text(report.pdf)
    assert "Binding constraints and shadow prices" in text and "Efficient frontier" in text
    assert report.pages == render(report_data).pages + 4  # strategies, allocation, binding constraints, frontier


def test_the_attribution_comes_first_as_a_waterfall_and_a_table(report_data):
    from dataclasses import replace

    from models.attribution import FACTORS, RESIDUAL

    def waterfall(previous, bars):
        steps = dict(zip((*FACTORS, RESIDUAL), bars, strict=True))
        return {"previous": previous, "current": previous + sum(bars), "change": sum(bars), "bars": steps}

    attribution = {"previous_run_id": "scheduled__2025-10-01T06:00:00+00:00", "only_in_this_run": ["rate_hike_300bp"],
                   "scenarios": {"2026_severely_adverse": {
                       "changed": ["data", "model"],
                       "expected_loss": waterfall(1_000_000.0, (250_000.0, -50_000.0, 0.0, 0.0, 0.0)),
                       "var_999": waterfall(3_000_000.0, (400_000.0, -100_000.0, 0.0, 0.0, 1_000.0)),
                       "min_cet1_ratio": waterfall(0.10, (-0.004, 0.001, 0.0, 0.0, 0.0))}}}
    rendered = render(replace(report_data, attribution=attribution))
    assert rendered.pages == render(report_data).pages + 1  # the waterfall chart's page
    text = pdf_text(rendered.pdf)
    assert text.index("Change since the previous run") < text.index("Loan portfolio stress test report")
    for expected in ("scheduled__2025-10-01T06:00:00+00:00", "1,000,000", "+250,000", "-50,000", "1,200,000",
                     "+200,000", "10.00 %", "-0.40 pp", "+0.10 pp", "9.70 %", "-0.30 pp", "rate_hike_300bp"):
        assert expected in text, expected
    html = rendered.html
    assert html.index('id="attribution"') < html.index('id="summary"')
    assert "<td>+250,000</td>" in html and "<td>-0.40 pp</td>" in html and 'alt="Change since the previous run"' in html
