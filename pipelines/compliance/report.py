"""The stress test report of a run, as one self-contained HTML page and a multi-page PDF.

Both carry the same content, built once: first the change since the previous run (a waterfall by
data, model, scenario and parameters, :mod:`pipelines.compliance.attribution_report`), then the
summary of every scenario, the macro paths, losses by
segment and by quarter, the loss distribution with VaR and expected shortfall marked, the CET1
path against the minimum and the minimum plus the stress capital buffer, the segment loss rates beside
the Fed's published ranges (``compliance/fed_loss_rates.yaml``), the CET1 and Tier 1 leverage paths
as a table from jump-off, the compliance table, the
Monte Carlo self-check of every scenario (its EL against the analytic EL, so a reader sees how far
the simulation can be trusted), and the provenance (model version, data snapshot hash, run ids,
seeds) that makes every number traceable. Charts are matplotlib figures (object-oriented API on
the Agg canvas, no pyplot state); in the PDF the text stays text, so it is searchable and can be
checked by a test.
"""

from __future__ import annotations

import base64
import html
import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.table import Table
from matplotlib.text import Text

from pipelines.compliance import attribution_report
from pipelines.compliance.allocation_report import allocation_html, allocation_pages, frontier_figure
from pipelines.compliance.published_ranges import (
    COMPARISON_COLUMNS,
    PublishedRanges,
    compare_loss_rates,
    comparison_rows,
    load_published_ranges,
    ranges_note,
)
from pipelines.compliance.rules import ComplianceRecord, Rule, Status, format_measure
from pipelines.data.sources import redact_credentials
from pipelines.settings import StressSettings

PAGE_SIZE = (11.69, 8.27)  # A4 landscape, inches
COMPLIANCE_ROWS_PER_PAGE = 30
SUMMARY_BREACHES_SHOWN = 10
# Macro variables plotted, with their units (the Fed's: percent, or index levels).
MACRO_PANELS = (("unemployment_rate", "Unemployment rate (%)"), ("real_gdp_growth", "Real GDP growth (% ann.)"),
                ("house_price_index", "House price index"), ("cre_price_index", "CRE price index"),
                ("treasury_3m", "3-month Treasury (%)"), ("bbb_yield", "BBB corporate yield (%)"))
COMPLIANCE_COLUMNS = ("MetricId", "MetricName", "Scenario", "Segment / feature", "Threshold", "Actual", "Status")
STATUS_COLOURS = {Status.COMPLIANT: "#d9f2d9", Status.NON_COMPLIANT: "#f8d0d0", Status.NOT_EVALUATED: "#eeeeee"}
RANGE_COLOURS = {"in": "#d9f2d9", "below": "#f8e3c0", "above": "#f8e3c0", "n/a": "#ffffff"}


@dataclass(frozen=True)
class CapitalLine:
    """A horizontal line of a capital chart (a requirement); ``metric`` says which chart (the rule's metric)."""

    label: str
    ratio: float
    metric: str = "min_cet1_ratio"


def capital_lines(rules: Sequence[Rule], settings: StressSettings) -> list[CapitalLine]:
    """The capital requirements of the rules: the CET1 minimum and, where a rule adds one, minimum plus
    buffer; the Tier 1 leverage minimum."""
    lines = []
    for rule in (r for r in rules if r.metric == "min_cet1_ratio"):
        lines.append(CapitalLine("CET1 minimum", rule.threshold))
        if rule.add_setting:
            lines.append(CapitalLine(f"minimum + {rule.add_setting.replace('_', ' ')}",
                                     rule.threshold_for(None, settings)))
    lines += [CapitalLine("Tier 1 leverage minimum", rule.threshold, rule.metric)
              for rule in rules if rule.metric == "min_tier1_leverage_ratio"]
    return lines


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, gathered by the report step."""

    run_id: str
    manifest: dict[str, Any]  # the validate step's snapshot manifest
    results: list[dict[str, Any]]  # simulation_result.json of every scenario
    records: list[ComplianceRecord]
    capital_lines: list[CapitalLine]
    generated_at: datetime
    attribution: dict[str, Any] | None = None  # the attribution step's outcome (None: not computed)
    optimisation: dict[str, Any] | None = None  # the optimise step's document; None: no allocation section
    published_ranges: PublishedRanges = field(default_factory=load_published_ranges)

    @property
    def model(self) -> dict[str, Any]:
        return self.results[0]["provenance"]["pd_model"]


@dataclass(frozen=True)
class Report:
    html: str
    pdf: bytes
    pages: int


def percent(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f} %"


def money(value: float) -> str:
    return f"{value:,.0f}"


def summary_rows(results: Sequence[dict[str, Any]]) -> list[list[str]]:
    """One row per scenario: losses, tail measures and the capital trough."""
    rows = []
    for result in results:
        metrics = result["metrics"]
        capital = metrics["capital"]
        rows.append([metrics["scenario_id"], money(metrics["exposure"]), money(metrics["expected_loss"]),
                     percent(metrics["loss_rate"]), money(metrics["var"]["0.999"]),
                     money(metrics["expected_shortfall"]["0.990"]), percent(capital["cet1_ratio"][0]),
                     f"{percent(capital['min_cet1_ratio'])} ({_quarter(capital['min_quarter'])})",
                     percent(capital["tier1_leverage_ratio"][0]),
                     f"{percent(capital['min_tier1_leverage_ratio'])} ({_quarter(capital['min_leverage_quarter'])})"])
    return rows


def _quarter(quarter: int) -> str:
    return "jump-off" if quarter == 0 else f"Q{quarter}"


SUMMARY_COLUMNS = ("Scenario", "Exposure", "Expected loss", "Loss rate", "VaR 99.9 %", "ES 99 %", "CET1 start",
                   "CET1 minimum", "Tier 1 leverage start", "Tier 1 leverage minimum")


SELF_CHECK_COLUMNS = ("Scenario", "Analytic EL", "Monte Carlo EL", "MC standard error", "z", "Passed")
SELF_CHECK_NOTE = ("Monte Carlo expected loss against the analytic sum of PD x LGD x EAD; z is the difference in "
                   "standard errors of the Monte Carlo mean, and the run fails beyond |z| = {max_z:g}.")


def self_check_rows(results: Sequence[dict[str, Any]]) -> list[list[str]]:
    """One row per scenario: the self-check recorded by the reduce step."""
    return [[r["metrics"]["scenario_id"], money(c["el_analytic"]), money(c["el_mc"]), money(c["mc_standard_error"]),
             f"{c['z']:+.2f}", "yes" if c["passed"] else "NO"]
            for r in results for c in [r["metrics"]["self_check"]]]


CAPITAL_PATH_MEASURES = (("cet1_ratio", "CET1"), ("tier1_leverage_ratio", "Tier 1 leverage"))


def capital_path_columns(results: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    horizon = len(results[0]["metrics"]["capital"]["cet1_ratio"]) - 1
    return ("Scenario", "Ratio", "Jump-off", *(f"Q{q}" for q in range(1, horizon + 1)))


def capital_path_rows(results: Sequence[dict[str, Any]]) -> list[list[str]]:
    """The CET1 and Tier 1 leverage ratio of every scenario at jump-off and each projected quarter."""
    return [[r["metrics"]["scenario_id"], name, *(percent(v) for v in r["metrics"]["capital"][key])]
            for r in results for key, name in CAPITAL_PATH_MEASURES]


def _self_check_note(results: Sequence[dict[str, Any]]) -> str:
    return SELF_CHECK_NOTE.format(max_z=results[0]["metrics"]["self_check"]["max_abs_z"])


def compliance_rows(records: Sequence[ComplianceRecord]) -> list[list[str]]:
    return [[r.metric_id, r.metric_name, r.scenario or "", r.segment or r.feature or "",
             format_measure(r.metric, r.threshold), format_measure(r.metric, r.actual), r.status.value]
            for r in records]


def provenance_rows(data: ReportData) -> list[list[str]]:
    """Where every number of the report comes from."""
    first = data.results[0]["provenance"]
    model = data.model
    rows = [
        ["Airflow run id", data.run_id],
        ["As-of date", str(data.manifest["as_of"])],
        ["Loan tape", redact_credentials(str(data.manifest["source"]))],  # manifests written before redaction
        ["Data snapshot id", data.manifest["snapshot_id"]],
        ["Snapshot SHA-256", data.manifest["content_sha256"]],
        ["Rows (input / accepted / quarantined)", " / ".join(
            f"{data.manifest[key]:,}" for key in ("input_rows", "accepted_rows", "quarantined_rows"))],
        ["PD model", f"{model['name']} version {model['version']} (alias {model['alias']}, "
                     f"flavour {model['flavour']})"],
        ["Monte Carlo", f"{first['n_paths']:,} paths, seed {first['seed']}, horizon {first['horizon']} quarters"],
    ]
    if model.get("note"):
        rows.append(["PD model note", model["note"]])
    rows += [[f"Simulation {r['metrics']['scenario_id']}", f"{r['SimulationId']} (scenario fingerprint "
              f"{r['scenario']['fingerprint']})"] for r in data.results]
    rows.append(["Report generated", data.generated_at.isoformat(timespec="seconds")])
    return rows


# --- charts -----------------------------------------------------------------------------------------


def _colour(index: int) -> str:
    return f"C{index % 10}"


def macro_figure(results: Sequence[dict[str, Any]]) -> Figure:
    figure = Figure(figsize=PAGE_SIZE, layout="constrained")
    figure.suptitle("Scenario macro paths")
    axes = figure.subplots(2, 3).ravel()
    for ax, (variable, label) in zip(axes, MACRO_PANELS, strict=True):
        for i, result in enumerate(results):
            scenario = result["scenario"]
            if variable in scenario["path"]:
                ax.plot(scenario["quarters"], scenario["path"][variable], marker="o", markersize=3,
                        color=_colour(i), label=result["metrics"]["scenario_id"])
        ax.set_title(label, fontsize=10)
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return figure


def losses_figure(results: Sequence[dict[str, Any]]) -> Figure:
    figure = Figure(figsize=PAGE_SIZE, layout="constrained")
    figure.suptitle("Expected credit losses by segment and by quarter")
    by_segment, by_quarter = figure.subplots(1, 2)
    segments = sorted({s for r in results for s in r["metrics"]["loss_by_segment"]})
    width = 0.8 / len(results)
    for i, result in enumerate(results):
        losses = result["metrics"]["loss_by_segment"]
        by_segment.barh([k + i * width for k in range(len(segments))], [losses.get(s, 0.0) for s in segments],
                        height=width, color=_colour(i), label=result["metrics"]["scenario_id"])
        quarters = result["scenario"]["quarters"]
        by_quarter.plot(quarters, result["metrics"]["loss_by_quarter"], marker="o", color=_colour(i),
                        label=result["metrics"]["scenario_id"])
    by_segment.set_yticks([k + 0.4 - width / 2 for k in range(len(segments))], segments, fontsize=8)
    by_segment.set_xlabel("Expected loss over the horizon")
    by_segment.set_title("By segment", fontsize=10)
    by_quarter.set_title("By quarter (all segments)", fontsize=10)
    by_quarter.set_ylabel("Expected loss in the quarter")
    by_quarter.tick_params(axis="x", labelrotation=60, labelsize=7)
    for ax in (by_segment, by_quarter):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return figure


def distribution_figure(results: Sequence[dict[str, Any]]) -> Figure:
    """Monte Carlo loss distribution of each scenario (201 quantiles, each 0.5 % of the mass)."""
    figure = Figure(figsize=PAGE_SIZE, layout="constrained")
    figure.suptitle("Loss distribution over the horizon, with VaR and expected shortfall")
    columns = min(len(results), 3)
    axes = figure.subplots(math.ceil(len(results) / columns), columns, squeeze=False).ravel()
    for ax, (i, result) in zip(axes, enumerate(results), strict=False):
        metrics = result["metrics"]
        quantiles = metrics["loss_distribution"]
        ax.hist(quantiles, bins=40, weights=[1 / len(quantiles)] * len(quantiles), color=_colour(i), alpha=0.6)
        marks = [("EL", metrics["expected_loss_mc"], "black", "-"),
                 ("VaR 99 %", metrics["var"]["0.990"], "tab:orange", "--"),
                 ("VaR 99.9 %", metrics["var"]["0.999"], "tab:red", "--"),
                 ("ES 97.5 %", metrics["expected_shortfall"]["0.975"], "tab:purple", ":"),
                 ("ES 99 %", metrics["expected_shortfall"]["0.990"], "tab:brown", ":")]
        for label, value, colour, style in marks:
            ax.axvline(value, color=colour, linestyle=style, label=f"{label} {money(value)}")
        ax.set_title(metrics["scenario_id"], fontsize=10)
        ax.set_xlabel("Cumulative loss")
        ax.set_ylabel("Probability")
        ax.legend(fontsize=7)
    for ax in axes[len(results):]:
        ax.set_visible(False)
    return figure


CAPITAL_PANELS = (("cet1_ratio", "min_cet1_ratio", "CET1 ratio (%)"),
                  ("tier1_leverage_ratio", "min_tier1_leverage_ratio", "Tier 1 leverage ratio (%)"))


def capital_figure(results: Sequence[dict[str, Any]], lines: Sequence[CapitalLine]) -> Figure:
    """CET1 and Tier 1 leverage paths from jump-off, each against the requirements of its rules."""
    figure = Figure(figsize=PAGE_SIZE, layout="constrained")
    figure.suptitle("CET1 and Tier 1 leverage ratio paths against the requirements")
    for ax, (path_key, metric, ylabel) in zip(figure.subplots(1, 2), CAPITAL_PANELS, strict=True):
        for i, result in enumerate(results):
            scenario = result["scenario"]
            quarters = [scenario["jump_off_quarter"], *scenario["quarters"]]
            ratios = [100 * r for r in result["metrics"]["capital"][path_key]]
            ax.plot(quarters, ratios, marker="o", color=_colour(i), label=result["metrics"]["scenario_id"])
        for n, line in enumerate(line for line in lines if line.metric == metric):
            ax.axhline(100 * line.ratio, color="tab:red", linestyle="--" if n % 2 == 0 else "-.",
                       label=f"{line.label} {percent(line.ratio, 1)}")
        ax.set_ylabel(ylabel)
        ax.tick_params(axis="x", labelrotation=60, labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return figure


def _table_figure(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], lines: Sequence[str] = (),
                  colours: Sequence[str] | None = None, widths: Sequence[float] | None = None) -> Figure:
    """A page with a title, optional text lines, and a table."""
    figure = Figure(figsize=PAGE_SIZE)
    figure.text(0.04, 0.95, title, fontsize=15, weight="bold", va="top")
    for n, line in enumerate(lines):
        figure.text(0.04, 0.90 - n * 0.032, line, fontsize=9.5, va="top")
    top = 0.88 - len(lines) * 0.032
    ax = figure.add_axes((0.03, 0.03, 0.94, max(top - 0.03, 0.1)))
    ax.axis("off")
    table = ax.table(cellText=[list(r) for r in rows] or [["" for _ in header]], colLabels=list(header),
                     loc="upper center", cellLoc="left", colWidths=list(widths) if widths else None)
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1, 1.35)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_facecolor("#dde5f0")
        elif colours:
            cell.set_facecolor(colours[row - 1])
    return figure


def _pages(data: ReportData) -> list[tuple[str, Figure]]:
    """(title, figure) of every PDF page, in order."""
    counts = {status: sum(r.status is status for r in data.records) for status in Status}
    model = data.model
    breaches = [r for r in data.records if r.status is Status.NON_COMPLIANT]
    lines = [f"Run {data.run_id}   |   as of {data.manifest['as_of']}   |   snapshot {data.manifest['snapshot_id']}",
             f"PD model: {model['name']} version {model['version']} ({model['flavour']})",
             "Compliance: " + ", ".join(f"{count} {status.value}" for status, count in counts.items())]
    lines += [f"    Non-Compliant: {' '.join(filter(None, (r.metric_name, r.scenario, r.segment, r.feature)))}: "
              f"{format_measure(r.metric, r.actual)} against {format_measure(r.metric, r.threshold)}"
              for r in breaches[:SUMMARY_BREACHES_SHOWN]]
    if len(breaches) > SUMMARY_BREACHES_SHOWN:
        lines.append(f"    ... and {len(breaches) - SUMMARY_BREACHES_SHOWN} more (see the compliance pages)")
    pages = [("Summary", _table_figure("Loan portfolio stress test report", SUMMARY_COLUMNS,
                                       summary_rows(data.results), lines)),
             ("Macro paths", macro_figure(data.results)),
             ("Losses", losses_figure(data.results)),
             ("Loss distribution", distribution_figure(data.results)),
             ("Capital", capital_figure(data.results, data.capital_lines))]
    comparison = comparison_rows(compare_loss_rates(data.results, data.published_ranges))
    pages.append(("Loss rates against the Fed's published ranges", _table_figure(
        "Loss rates against the Fed's published ranges", COMPARISON_COLUMNS, comparison,
        textwrap.wrap(ranges_note(data.published_ranges), 150),
        colours=[RANGE_COLOURS[row[-1]] for row in comparison], widths=(0.2, 0.17, 0.1, 0.25, 0.16, 0.1))))
    pages.append(("Capital paths", _table_figure("CET1 and Tier 1 leverage paths from jump-off",
                                                 capital_path_columns(data.results), capital_path_rows(data.results))))
    rows = compliance_rows(data.records)
    colours = [STATUS_COLOURS[r.status] for r in data.records]
    chunks = range(0, max(len(rows), 1), COMPLIANCE_ROWS_PER_PAGE)
    for n, start in enumerate(chunks, start=1):
        end = start + COMPLIANCE_ROWS_PER_PAGE
        unmeasured = dict.fromkeys(r.note for r in data.records[start:end] if r.status is Status.NOT_EVALUATED)
        pages.append((f"Compliance {n}/{len(chunks)}", _table_figure(
            f"Compliance ({n}/{len(chunks)})", COMPLIANCE_COLUMNS, rows[start:end],
            [f"Not Evaluated: {note}" for note in unmeasured], colours=colours[start:end],
            widths=(0.17, 0.29, 0.14, 0.15, 0.07, 0.07, 0.10))))
    pages.append(("Monte Carlo self-check", _table_figure("Monte Carlo self-check", SELF_CHECK_COLUMNS,
                                                          self_check_rows(data.results),
                                                          [_self_check_note(data.results)])))
    if data.optimisation is not None:
        pages += allocation_pages(data.optimisation, _table_figure)
    pages.append(("Provenance", _table_figure("Provenance", ("Item", "Value"), provenance_rows(data),
                                              widths=(0.25, 0.75))))
    return pages


def _without_ligatures(figure: Figure) -> Figure:
    """Turn off ligatures in every text of ``figure``.

    Matplotlib shapes text with libraqm, which draws "fi" or "ff" as one ligature glyph; in the PDF
    that glyph is not the letters, so "buffer" would no longer be found by a search or a text
    extractor. Tick labels exist only once the figure has been laid out, hence the draw first; table
    cells hold their text outside the artist tree.
    """
    figure.draw_without_rendering()
    cells = [cell.get_text() for table in figure.findobj(Table) for cell in table.get_celld().values()]
    for text in [*figure.findobj(Text), *cells]:
        text.set_fontfeatures(("-liga", "-clig"))
    return figure


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return base64.b64encode(buffer.getvalue()).decode()


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], table_id: str,
                row_classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        attribute = f' class="{row_classes[i]}"' if row_classes else ""
        cells = "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row)
        body.append(f"<tr{attribute}>{cells}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


_CSS = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px;text-align:left}th{background:#dde5f0}
tr.compliant td{background:#d9f2d9}tr.non-compliant td{background:#f8d0d0}tr.not-evaluated td{background:#eee}
tr.range-in td{background:#d9f2d9}tr.range-below td,tr.range-above td{background:#f8e3c0}
img{max-width:100%}"""


def _attribution_pages(data: ReportData) -> list[tuple[str, Figure]]:
    """The first PDF pages: the attribution table, and its waterfall chart when there was a previous run."""
    pages = [(attribution_report.TITLE, _table_figure(
        attribution_report.TITLE, attribution_report.COLUMNS, attribution_report.rows(data.attribution),
        textwrap.wrap(attribution_report.summary_line(data.attribution), 160)))]
    if data.attribution and data.attribution.get("scenarios"):
        pages.insert(0, (f"{attribution_report.TITLE}: waterfall",
                         attribution_report.waterfall_figure(data.attribution, PAGE_SIZE)))
    return pages


def render_html(data: ReportData, charts: dict[str, str], attribution_chart: str | None = None) -> str:
    title = f"Loan portfolio stress test report: {data.run_id}"
    classes = [r.status.value.lower().replace(" ", "-") for r in data.records]
    comparison = comparison_rows(compare_loss_rates(data.results, data.published_ranges))
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        attribution_report.html_section(data.attribution, attribution_chart, [_html_table(
            attribution_report.COLUMNS, attribution_report.rows(data.attribution), "attribution")]),
        "<h2>Summary</h2>", _html_table(SUMMARY_COLUMNS, summary_rows(data.results), "summary"),
        *(f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="data:image/png;base64,{png}">'
          for name, png in charts.items()),
        "<h2>Loss rates against the Fed's published ranges</h2>",
        f"<p>{html.escape(ranges_note(data.published_ranges))}</p>",
        _html_table(COMPARISON_COLUMNS, comparison, "published_ranges", [f"range-{row[-1]}" for row in comparison]),
        "<h2>CET1 and Tier 1 leverage paths from jump-off</h2>",
        _html_table(capital_path_columns(data.results), capital_path_rows(data.results), "capital_paths"),
        "<h2>Compliance</h2>", _html_table((*COMPLIANCE_COLUMNS, "Note"), [
            [*row, r.note] for row, r in zip(compliance_rows(data.records), data.records, strict=True)],
            "compliance", classes),
        "<h2>Monte Carlo self-check</h2>", f"<p>{html.escape(_self_check_note(data.results))}</p>",
        _html_table(SELF_CHECK_COLUMNS, self_check_rows(data.results), "self_check"),
        *([_allocation_section(data.optimisation)] if data.optimisation is not None else []),
        "<h2>Provenance</h2>", _html_table(("Item", "Value"), provenance_rows(data), "provenance"),
    ]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head><body>{''.join(sections)}</body></html>")


def _allocation_section(optimisation: dict[str, Any]) -> str:
    frontier = optimisation.get("frontier")
    return allocation_html(optimisation, _html_table, _png(frontier_figure(optimisation)) if frontier else None)


def render(data: ReportData) -> Report:
    """The HTML and PDF of a run's report."""
    if not data.results:
        raise ValueError(f"run {data.run_id} has no scenario results to report")
    attribution_pages = _attribution_pages(data)
    pages = _pages(data)
    buffer = io.BytesIO()
    with PdfPages(buffer, metadata={"Title": f"Loan portfolio stress test report {data.run_id}",
                                    "Subject": "Stress test results, capital and compliance"}) as pdf:
        for _, figure in [*attribution_pages, *pages]:
            pdf.savefig(_without_ligatures(figure))
    charts = {title: _png(figure) for title, figure in pages[1:5]}
    waterfall = _png(attribution_pages[0][1]) if len(attribution_pages) > 1 else None
    return Report(html=render_html(data, charts, waterfall), pdf=buffer.getvalue(),
                  pages=len(attribution_pages) + len(pages))
