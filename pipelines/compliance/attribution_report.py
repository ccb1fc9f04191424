"""The "change since the previous run" section of the stress report: a waterfall chart and its table.

What a reviewer reads first: for each scenario, how expected loss, VaR 99.9 % and the minimum CET1
ratio moved since the previous published run, bar by bar (data, model, scenario, parameters, and
the residual that closes the waterfall on the measured change; ``docs/attribution.md``). Kept apart
from the rest of the report so the section can be read, tested and changed on its own.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from models.attribution import FACTORS, RESIDUAL

STEPS = (*FACTORS, RESIDUAL)
MEASURE_LABELS = {"expected_loss": "Expected loss", "var_999": "VaR 99.9 %", "min_cet1_ratio": "Minimum CET1 ratio"}
CHARTED = ("expected_loss", "min_cet1_ratio")
COLUMNS = ("Scenario", "Measure", "Previous run", "Data", "Model", "Scenario def.", "Parameters",
           "MC / residual", "This run", "Change")
TITLE = "Change since the previous run"


def format_value(metric: str, value: float, signed: bool = False) -> str:
    """Money in USD, a ratio in percent (its changes in percentage points)."""
    if metric.endswith("ratio"):
        return f"{value * 100:+.2f} pp" if signed else f"{value * 100:.2f} %"
    return f"{value:+,.0f}" if signed else f"{value:,.0f}"


def summary_line(attribution: dict[str, Any] | None) -> str:
    """One sentence: against which run, or why there is nothing to compare."""
    if not attribution or not attribution.get("previous_run_id"):
        return ("No previous run: this is the first published run of the stress test, so there is nothing "
                "to attribute.")
    text = (f"Against the previous published run {attribution['previous_run_id']}, by sequential substitution in "
            f"the order data (snapshot), model (PD model version), scenario (definition), parameters (paths, "
            f"seed, persistence, capital settings); the residual closes each waterfall on the measured change.")
    if attribution.get("only_in_this_run"):
        text += f" New scenarios (not attributed): {', '.join(attribution['only_in_this_run'])}."
    for scenario_id, reason in attribution.get("unavailable", {}).items():
        text += f" {scenario_id} not attributed: {reason}."
    return text


def rows(attribution: dict[str, Any] | None) -> list[list[str]]:
    """One row per (scenario, measure): previous, the bars, current, change."""
    table = []
    for scenario_id, waterfalls in (attribution or {}).get("scenarios", {}).items():
        for metric, label in MEASURE_LABELS.items():
            w = waterfalls[metric]
            table.append([scenario_id, label, format_value(metric, w["previous"]),
                          *(format_value(metric, w["bars"][step], signed=True) for step in STEPS),
                          format_value(metric, w["current"]), format_value(metric, w["change"], signed=True)])
    return table


def waterfall_figure(attribution: dict[str, Any], size: tuple[float, float]) -> Figure:
    """Waterfalls of expected loss and minimum CET1, one row of panels per attributed scenario."""
    scenarios = attribution["scenarios"]
    figure = Figure(figsize=size, layout="constrained")
    figure.suptitle(f"{TITLE} ({attribution['previous_run_id']})")
    axes = figure.subplots(len(scenarios), len(CHARTED), squeeze=False)
    labels = ["previous", *STEPS, "this run"]
    for row, (scenario_id, waterfalls) in enumerate(scenarios.items()):
        for column, metric in enumerate(CHARTED):
            w = waterfalls[metric]
            scale = 100.0 if metric.endswith("ratio") else 1.0
            bottoms, heights, colours = [0.0], [w["previous"] * scale], ["#7f8c9d"]
            level = w["previous"] * scale
            for step in STEPS:
                change = w["bars"][step] * scale
                bottoms.append(min(level, level + change))
                heights.append(abs(change))
                colours.append("#c0392b" if (change > 0) != metric.endswith("ratio") and change else "#27ae60")
                level += change
            bottoms.append(0.0)
            heights.append(w["current"] * scale)
            colours.append("#34495e")
            ax = axes[row][column]
            ax.bar(range(len(labels)), heights, bottom=bottoms, color=colours)
            ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=30)
            ax.set_title(f"{scenario_id}: {MEASURE_LABELS[metric]}" + (" (%)" if scale != 1.0 else " (USD)"),
                         fontsize=9)
            ax.grid(alpha=0.3, axis="y")
    return figure


def html_section(attribution: dict[str, Any] | None, chart_png: str | None,
                 table_html: Sequence[str]) -> str:
    """The section's HTML: heading, the sentence, the chart (when there is one) and the table."""
    parts = [f"<h2>{TITLE}</h2>", f'<p id="attribution_note">{html.escape(summary_line(attribution))}</p>']
    if chart_png:
        parts.append(f'<img alt="{TITLE}" src="data:image/png;base64,{chart_png}">')
    parts.extend(table_html)
    return "".join(parts)
