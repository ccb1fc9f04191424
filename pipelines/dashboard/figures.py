"""Plotly figures of the dashboard's views, each drawn from one document of the application layer.

Pure functions of the documents (no reads), so what a chart shows is what the operation returned.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

MARGIN = {"l": 60, "r": 20, "t": 50, "b": 50}


def _layout(figure: go.Figure, title: str, **axes: Any) -> go.Figure:
    figure.update_layout(title=title, margin=MARGIN, template="plotly_white", height=340,
                         legend={"orientation": "h", "y": -0.2}, **axes)
    return figure


def _marker_line(name: str, dash: str, x: list, y: list) -> go.Scatter:
    """A level (VaR, a capital minimum) as a dashed line named in the legend, so close levels stay legible."""
    return go.Scatter(x=x, y=y, mode="lines", name=name, line={"dash": dash, "width": 1.5})


def money(text: str | float) -> str:
    """Dollars as the dashboard shows them: thousands separated, two decimals."""
    return f"{float(text):,.2f}"


def percent(text: str | float) -> str:
    return f"{float(text) * 100:.2f} %"


def scenario_comparison(overview: dict[str, Any]) -> go.Figure:
    scenarios = overview["scenarios"]
    names = [s["ScenarioId"] for s in scenarios]
    figure = go.Figure([
        go.Bar(name="expected loss", x=names, y=[float(s["ExpectedLoss"]) for s in scenarios]),
        go.Bar(name="VaR 99.9 %", x=names, y=[float(s["VaR"]["0.999"]) for s in scenarios]),
        go.Bar(name="ES 99 %", x=names, y=[float(s["ExpectedShortfall"]["0.990"]) for s in scenarios])])
    return _layout(figure, "Horizon loss by scenario (USD)", barmode="group")


def losses_by_segment(view: dict[str, Any]) -> go.Figure:
    segments = view["segments"]
    figure = go.Figure(go.Bar(x=[s["Segment"] for s in segments], y=[float(s["ExpectedLoss"]) for s in segments],
                              customdata=[percent(s["LossRate"]) for s in segments],
                              hovertemplate="%{x}: %{y:,.0f} USD (loss rate %{customdata})<extra></extra>"))
    return _layout(figure, f"Expected loss by segment, {view['ScenarioId']} (click a bar to drill down)")


def losses_by_quarter(view: dict[str, Any]) -> go.Figure:
    figure = go.Figure(go.Bar(x=view["quarters"], y=view["loss_by_quarter"]))
    return _layout(figure, f"Expected loss by quarter, {view['ScenarioId']} (USD)")


def loss_distribution(view: dict[str, Any]) -> go.Figure:
    """The horizon loss's quantile function, with the VaR and ES levels marked."""
    distribution = view["loss_distribution"]
    figure = go.Figure(go.Scatter(x=distribution["losses"], y=distribution["probabilities"], mode="lines",
                                  name="P(loss <= x)"))
    for label, value, dash in ([(f"VaR {float(level) * 100:g} %", v, "dash") for level, v in view["VaR"].items()]
                               + [(f"ES {float(level) * 100:g} %", v, "dot")
                                  for level, v in view["ExpectedShortfall"].items()]):
        figure.add_trace(_marker_line(f"{label}: {money(value)}", dash, x=[float(value)] * 2, y=[0, 1]))
    return _layout(figure, f"Monte Carlo horizon loss distribution, {view['ScenarioId']}",
                   xaxis_title="horizon loss (USD)", yaxis_title="cumulative probability")


def capital_paths(view: dict[str, Any]) -> go.Figure:
    capital = view["capital"]
    quarters = capital["quarters"]
    figure = go.Figure([go.Scatter(x=quarters, y=capital["cet1_ratio"], name="CET1 ratio", mode="lines+markers"),
                        go.Scatter(x=quarters, y=capital["tier1_leverage_ratio"], name="Tier 1 leverage ratio",
                                   mode="lines+markers")])
    for line, dash in zip(capital["requirements"], ("dot", "dash", "dashdot", "longdash"), strict=False):
        figure.add_trace(_marker_line(f"{line['label']} {line['ratio']:.2%}", dash, x=[quarters[0], quarters[-1]],
                                      y=[line["ratio"]] * 2))
    return _layout(figure, f"Capital paths, {view['ScenarioId']} ({capital['approach']})",
                   yaxis_tickformat=".1%")


def macro_paths(views: list[dict[str, Any]], variables: list[str]) -> go.Figure:
    figure = go.Figure()
    for view in views:
        for variable in variables:
            figure.add_trace(go.Scatter(x=view["macro"]["quarters"], y=view["macro"]["paths"][variable],
                                        name=f"{view['ScenarioId']}: {variable}", mode="lines+markers"))
    return _layout(figure, "Macro paths by scenario")


def compliance_trend(history: dict[str, Any]) -> go.Figure:
    """A metric's actual value in every run that evaluated it, one line per scenario/segment/feature."""
    series: dict[str, tuple[list[str], list[float | None]]] = {}
    for record in history["records"]:
        where = " / ".join(filter(None, (record["Scenario"], record["Segment"], record["Feature"]))) or "portfolio"
        xs, ys = series.setdefault(where, ([], []))
        xs.append(record["EvaluatedAt"])
        ys.append(None if record["ActualValue"] is None else float(record["ActualValue"]))
    figure = go.Figure([go.Scatter(x=xs, y=ys, name=where, mode="lines+markers") for where, (xs, ys) in series.items()])
    thresholds = {r["ComplianceThreshold"] for r in history["records"]}
    for threshold in thresholds:
        figure.add_hline(y=float(threshold), line_dash="dash", annotation_text=f"threshold {threshold}")
    return _layout(figure, f"{history['MetricId']} across runs", xaxis_title="evaluated at")


def attribution_waterfall(steps: list[dict[str, Any]], title: str) -> go.Figure:
    """The change of a measure since the previous run, step by step (data, model, scenario, parameters,
    residual) between the previous and the current value."""
    measures = [{"previous": "absolute", "current": "total"}.get(step["step"], "relative") for step in steps]
    figure = go.Figure(go.Waterfall(x=[s["step"] for s in steps], y=[s["value"] for s in steps], measure=measures))
    return _layout(figure, title)


def loan_term_structure(loan: dict[str, Any]) -> go.Figure:
    figure = go.Figure([go.Bar(x=loan["quarters"], y=[float(p) for p in loan["QuarterlyPD"]], name="PD of the quarter"),
                        go.Scatter(x=loan["quarters"], y=[float(p) for p in loan["CumulativePD"]],
                                   name="cumulative PD", mode="lines+markers")])
    return _layout(figure, f"PD term structure of loan {loan['LoanId']}, {loan['ScenarioId']}",
                   yaxis_tickformat=".1%")


def loan_balance_path(loan: dict[str, Any]) -> go.Figure:
    """The loan's contractual balance at jump-off and at each quarter's end if it survives (the engine's
    amortisation, not net of defaults), beside the expected balance (times the survival to that quarter)."""
    balances = [float(b) for b in loan["QuarterlyBalance"]]
    alive = [1.0 - float(p) for p in loan["CumulativePD"]]
    quarters = list(loan["quarters"])
    jump_off = [loan["JumpOffQuarter"]] if loan["JumpOffBalance"] else []
    start = [float(loan["JumpOffBalance"])] if loan["JumpOffBalance"] else []
    figure = go.Figure([
        go.Scatter(x=jump_off + quarters, y=start + balances, name="balance if it survives", mode="lines+markers"),
        go.Scatter(x=jump_off + quarters, y=start + [b * s for b, s in zip(balances, alive, strict=True)],
                   name="expected balance (x survival)", mode="lines", line={"dash": "dot"})])
    return _layout(figure, f"Projected balance of loan {loan['LoanId']}, {loan['ScenarioId']} (USD)")


def allocation_bars(recommendation: dict[str, Any]) -> go.Figure:
    assets = recommendation["assets"]
    names = [a["name"] for a in assets]
    figure = go.Figure([go.Bar(name="current", x=names, y=[a["current"] for a in assets]),
                        go.Bar(name="recommended", x=names, y=[a["recommended"] for a in assets])])
    return _layout(figure, "Allocation by segment (USD)", barmode="group")


def efficient_frontier(frontier: list[dict[str, Any]], recommendation: dict[str, Any]) -> go.Figure:
    figure = go.Figure(go.Scatter(x=[p["cvar"] for p in frontier], y=[p["expected_return"] for p in frontier],
                                  mode="lines+markers", name="efficient frontier"))
    for label in ("current", "recommended"):
        point = recommendation.get(label)
        if point:
            figure.add_trace(go.Scatter(x=[point["cvar"]], y=[point["expected_return"]], mode="markers",
                                        marker={"size": 12}, name=label))
    return _layout(figure, "Efficient frontier: expected return against CVaR (USD)", xaxis_title="CVaR",
                   yaxis_title="expected return")
