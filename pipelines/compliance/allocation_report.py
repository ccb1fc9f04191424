"""The report's allocation section: the recommended book beside the current one, what binds, the frontier.

Built from the ``optimise`` step's document (:mod:`pipelines.engine.allocation`), as PDF pages and
an HTML section with the same content, like the rest of the report (:mod:`pipelines.compliance.report`).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.figure import Figure

ALLOCATION_COLUMNS = ("Segment", "Current", "Recommended", "Change", "Change %", "CVaR contribution")
MEASURE_COLUMNS = ("Measure", "Current", "Recommended", "Change")
BINDING_COLUMNS = ("Binding constraint", "Family", "Shadow price", "Per dollar of relaxation, in")
STRATEGY_COLUMNS = ("Strategy", "Status", "Expected return", "CVaR", "RAROC", "Min stressed CET1")
BINDING_SHOWN = 25
PAGE_SIZE = (11.69, 8.27)


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _percent(value: float) -> str:
    return "n/a" if value != value else f"{value * 100:.2f} %"  # NaN: not measured (no capital base)


MEASURES: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("exposure", "Exposure", _money), ("expected_return", "Expected return (NII + fees - cost - EL)", _money),
    ("expected_loss", "Expected loss", _money), ("cvar", "CVaR", _money),
    ("economic_capital", "Economic capital (VaR - EL)", _money), ("raroc", "RAROC", _percent),
    ("min_cet1_ratio", "Minimum stressed CET1 ratio", _percent))


def headline(optimisation: dict[str, Any]) -> str:
    """One line saying what was optimised, or why nothing was."""
    if optimisation.get("status") != "done":
        return f"Allocation not optimised: {optimisation.get('reason', optimisation.get('status'))}."
    limits = optimisation["limits"]
    recommendation = optimisation["recommendation"]
    terms = [f"budget {_money(limits['budget'])}"]
    if limits["cvar_limit"] is not None:
        terms.append(f"CVaR {limits['cvar_level']:.0%} limit {_money(limits['cvar_limit'])}")
    if limits["required_cet1_ratio"] is not None:
        terms.append(f"stressed CET1 at least {_percent(limits['required_cet1_ratio'])}")
    text = f"Strategy {optimisation['recommended_strategy']} under {optimisation['scenario_id']}: {', '.join(terms)}."
    if recommendation["status"] != "optimal":
        text += f" Infeasible: {', '.join(recommendation['conflicting'])} cannot hold together."
    return text


def allocation_rows(recommendation: dict[str, Any]) -> list[list[str]]:
    rows = []
    for asset in recommendation["assets"]:
        change = asset["recommended"] - asset["current"]
        share = change / asset["current"] if asset["current"] else float("nan")
        rows.append([asset["name"], _money(asset["current"]), _money(asset["recommended"]), f"{change:+,.0f}",
                     f"{share * 100:+.1f} %", _money(asset["cvar_contribution"])])
    return rows


def measure_rows(recommendation: dict[str, Any]) -> list[list[str]]:
    current, new, change = recommendation["current"], recommendation["recommended"], recommendation["change"]
    return [[label, form(current[key]), form(new[key]), form(change[key])] for key, label, form in MEASURES]


def binding_rows(recommendation: dict[str, Any]) -> list[list[str]]:
    ranked = sorted(recommendation["binding"], key=lambda b: -b["shadow_price"])
    return [[b["name"], b["family"], f"{b['shadow_price']:.4g}", b["objective"]] for b in ranked[:BINDING_SHOWN]]


def strategy_rows(optimisation: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, entry in optimisation["strategies"].items():
        if entry.get("status") == "optimal":
            new = entry["recommended"]
            rows.append([name, "optimal", _money(new["expected_return"]), _money(new["cvar"]), _percent(new["raroc"]),
                         _percent(new["min_cet1_ratio"])])
        else:
            detail = ", ".join(entry["conflicting"]) or entry.get("message", "")
            rows.append([name, f"{entry['status']}: {detail}"[:90], "", "", "", ""])
    return rows


def frontier_figure(optimisation: dict[str, Any]) -> Figure:
    """Expected return against CVaR along the frontier, with the current and the recommended book."""
    figure = Figure(figsize=PAGE_SIZE, layout="constrained")
    figure.suptitle(f"Efficient frontier under {optimisation['scenario_id']} (return against CVaR "
                    f"{optimisation['limits']['cvar_level']:.0%})")
    ax = figure.subplots()
    frontier = optimisation["frontier"]
    ax.plot([p["cvar"] for p in frontier], [p["expected_return"] for p in frontier], marker="o", color="C0",
            label="largest return at each CVaR (every other limit applies)")
    recommendation = optimisation["recommendation"]
    if recommendation["status"] == "optimal":
        for key, colour, label in (("current", "C3", "current book"), ("recommended", "C2", "recommended")):
            point = recommendation[key]
            ax.scatter([point["cvar"]], [point["expected_return"]], color=colour, s=60, zorder=3, label=label)
    if optimisation["limits"]["cvar_limit"] is not None:
        ax.axvline(optimisation["limits"]["cvar_limit"], color="tab:red", linestyle="--", label="CVaR limit")
    ax.set_xlabel("CVaR of the horizon loss")
    ax.set_ylabel("Expected return over the horizon")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def allocation_pages(optimisation: dict[str, Any],
                     table_page: Callable[..., Figure]) -> list[tuple[str, Figure]]:
    """PDF pages of the section; ``table_page`` is the report's own table page maker."""
    lines = [headline(optimisation)]
    if optimisation.get("status") != "done":
        return [("Allocation", table_page("Recommended allocation", ("Item",), [], lines))]
    recommendation = optimisation["recommendation"]
    pages = [("Strategies", table_page("Allocation strategies", STRATEGY_COLUMNS, strategy_rows(optimisation),
                                       lines))]
    if recommendation["status"] == "optimal":
        pages += [("Allocation", table_page("Recommended allocation", ALLOCATION_COLUMNS,
                                            allocation_rows(recommendation) + [[""] * 6]
                                            + [[*row, "", ""] for row in measure_rows(recommendation)], lines)),
                  ("Binding constraints", table_page("Binding constraints and shadow prices", BINDING_COLUMNS,
                                                     binding_rows(recommendation), lines,
                                                     widths=(0.3, 0.15, 0.1, 0.45)))]
    if optimisation["frontier"]:
        pages.append(("Efficient frontier", frontier_figure(optimisation)))
    return pages


def allocation_html(optimisation: dict[str, Any], table: Callable[[Sequence[str], Sequence[Sequence[str]], str], str],
                    frontier_png: str | None) -> str:
    """The HTML section; ``table`` is the report's own table maker."""
    parts = ["<h2>Recommended allocation</h2>", f"<p>{html.escape(headline(optimisation))}</p>"]
    if optimisation.get("status") != "done":
        return "".join(parts)
    recommendation = optimisation["recommendation"]
    parts.append(table(STRATEGY_COLUMNS, strategy_rows(optimisation), "allocation_strategies"))
    if recommendation["status"] == "optimal":
        parts += [table(ALLOCATION_COLUMNS, allocation_rows(recommendation), "allocation"),
                  table(MEASURE_COLUMNS, measure_rows(recommendation), "allocation_measures"),
                  "<h3>Binding constraints</h3>", table(BINDING_COLUMNS, binding_rows(recommendation), "binding")]
    if frontier_png:
        parts.append(f'<img alt="Efficient frontier" src="data:image/png;base64,{frontier_png}">')
    return "".join(parts)
