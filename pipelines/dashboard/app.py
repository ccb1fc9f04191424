"""The loanstress dashboard: a Plotly Dash app over a :class:`~pipelines.dashboard.source.DashboardSource`.

URL contract: ``<base>/`` shows the latest published run, ``<base>/runs/<run_id>`` the run whose id
``list_runs`` returns (URL-encoded: Airflow run ids carry ``:`` and ``+``). Downloads are plain links:
``<base>/download/report/<html|pdf>?run_id=`` and ``<base>/download/results/<csv|parquet>?run_id=&scenario_id=``.

Views, top to bottom: run picker; PD model and provenance; downloads; scenario comparison; the chosen
scenario's losses by segment and by quarter, loss distribution with VaR/ES, CET1 and leverage paths
against their requirements; macro paths; compliance status with a metric's trend; attribution
waterfall against the previous run; drill-down segment -> largest loss contributors -> one loan;
the recommended allocation. Every callback makes one read of the source.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from flask import Response, request

from pipelines.dashboard import figures
from pipelines.dashboard.figures import money, percent
from pipelines.dashboard.source import DashboardSource
from pipelines.services.errors import ServiceError

RUNS_IN_PICKER = 50
CONTRIBUTORS_SHOWN = 10
COMPLIANCE_HISTORY_RUNS = 20
MACRO_DEFAULTS = ("unemployment_rate", "real_gdp_growth", "treasury_3m")
SECTION = {"border": "1px solid #ddd", "borderRadius": "6px", "padding": "12px", "margin": "10px 0"}
TABLE = {"borderCollapse": "collapse", "width": "100%", "fontSize": "13px"}
CELL = {"border": "1px solid #ddd", "padding": "4px 8px", "textAlign": "right"}
STATUS_COLOURS = {"Compliant": "#1a7f37", "Non-Compliant": "#cf222e", "Not Evaluated": "#9a6700"}


def run_path(prefix: str, run_id: str) -> str:
    """The dashboard page of ``run_id`` under the dashboard's base path ``prefix``."""
    return f"{prefix.rstrip('/')}/runs/{quote(run_id, safe='')}"


def run_id_of_path(prefix: str, pathname: str | None) -> str:
    """The run id a page path names ('' for the base path: the latest run)."""
    rest = (pathname or "").removeprefix(prefix.rstrip("/")).strip("/")
    return unquote(rest.removeprefix("runs/")) if rest.startswith("runs/") else ""


def _table(header: list[str], rows: list[list[Any]], table_id: str) -> html.Table:
    return html.Table([html.Thead(html.Tr([html.Th(h, style=CELL) for h in header])),
                       html.Tbody([html.Tr([html.Td(cell, style=CELL) for cell in row]) for row in rows])],
                      id=table_id, style=TABLE)


def _section(title: str, section_id: str, *children: Any) -> html.Div:
    return html.Div([html.H3(title, style={"margin": "0 0 8px"}), *children], id=section_id, style=SECTION)


def _error(error: ServiceError) -> html.Div:
    return html.Div(f"{type(error).__name__}: {error}", className="dashboard-error", style={"color": "#cf222e"})


def _balance_path(loan: dict[str, Any]) -> list[Any]:
    """The loan's projected balance at each quarter's end (chart and table), or a note for results published
    before the engine kept the path."""
    if not loan["QuarterlyBalance"]:
        return [html.Div("This run's results hold no quarterly balance path (published before it was kept).")]
    rows = [[quarter, money(balance), percent(pd)]
            for quarter, balance, pd in zip(loan["quarters"], loan["QuarterlyBalance"], loan["QuarterlyPD"],
                                            strict=True)]
    return [dcc.Graph(figure=figures.loan_balance_path(loan), id="loan-balance-chart"),
            _table(["quarter end", "balance if it survives", "PD of the quarter"], rows, "loan-balance-table")]


def _layout() -> html.Div:
    graph = {"config": {"displaylogo": False}}
    return html.Div([
        dcc.Location(id="url", refresh=False),
        dcc.Store(id="run-id"),
        html.H2("loanstress: stress test results"),
        _section("Run", "view-run",
                 dcc.Dropdown(id="run-picker", clearable=False, placeholder="latest published run"),
                 html.Div(id="run-info", style={"marginTop": "8px"})),
        _section("Downloads", "view-downloads", html.Div(id="downloads")),
        _section("Scenario comparison", "view-comparison", html.Div(id="comparison-table"),
                 dcc.Graph(id="comparison-chart", **graph)),
        _section("Scenario", "view-scenario",
                 dcc.Dropdown(id="scenario-picker", clearable=False),
                 html.Div(id="scenario-figures"),
                 html.Div([dcc.Graph(id="segment-chart", **graph), dcc.Graph(id="quarter-chart", **graph)],
                          id="view-losses"),
                 html.Div(dcc.Graph(id="distribution-chart", **graph), id="view-distribution"),
                 html.Div(dcc.Graph(id="capital-chart", **graph), id="view-capital")),
        _section("Macro paths", "view-macro", dcc.Dropdown(id="macro-variables", multi=True,
                                                           value=list(MACRO_DEFAULTS)),
                 dcc.Graph(id="macro-chart", **graph)),
        _section("Compliance", "view-compliance", html.Div(id="compliance-table"),
                 dcc.Dropdown(id="compliance-metric", clearable=False),
                 dcc.Graph(id="compliance-trend", **graph)),
        _section("Attribution against the previous run", "view-attribution", html.Div(id="attribution")),
        _section("Drill-down: segment, largest loss contributors, loan", "view-drilldown",
                 dcc.Dropdown(id="segment-picker", clearable=False, placeholder="segment (or click a bar above)"),
                 html.Div(id="contributors"),
                 html.Div([dcc.Input(id="loan-search", type="text", placeholder="any loan id", debounce=True),
                           html.Button("Show loan", id="loan-search-button", n_clicks=0)]),
                 html.Div(id="loan-detail")),
        _section("Allocation under stress", "view-allocation", html.Div(id="allocation")),
    ], style={"fontFamily": "sans-serif", "maxWidth": "1200px", "margin": "0 auto"})


def create_dashboard_app(source: DashboardSource, *, requests_pathname_prefix: str = "/",
                         title: str = "loanstress dashboard") -> Dash:
    """The dashboard over ``source``, serving its pages under ``requests_pathname_prefix``.

    Mounted behind a prefix (the Airflow plugin: ``/loanstress/dashboard/``), the WSGI server strips it
    (SCRIPT_NAME) so the Flask routes stay at ``/`` while the browser requests carry the prefix.
    """
    prefix = requests_pathname_prefix if requests_pathname_prefix.endswith("/") else requests_pathname_prefix + "/"
    app = Dash(__name__, title=title, requests_pathname_prefix=prefix, routes_pathname_prefix="/",
               suppress_callback_exceptions=True)
    app.layout = _layout()
    _register_downloads(app, source)
    _register_callbacks(app, source, prefix)
    return app


def _register_downloads(app: Dash, source: DashboardSource) -> None:
    server = app.server

    def send(download: tuple[bytes, str, str]) -> Response:
        content, media_type, filename = download
        return Response(content, mimetype=media_type.split(";")[0], content_type=media_type,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    def refused(error: ServiceError) -> Response:
        return Response(f"{type(error).__name__}: {error}", status=404, mimetype="text/plain")

    @server.route("/download/report/<report_format>")
    def download_report(report_format: str) -> Response:
        try:
            return send(source.report(request.args.get("run_id", ""), report_format))
        except ServiceError as error:
            return refused(error)

    @server.route("/download/results/<file_format>")
    def download_results(file_format: str) -> Response:
        try:
            return send(source.results_file(request.args.get("run_id", ""), request.args.get("scenario_id", ""),
                                            file_format))
        except ServiceError as error:
            return refused(error)


def _register_callbacks(app: Dash, source: DashboardSource, prefix: str) -> None:
    @app.callback(Output("run-picker", "options"), Output("run-picker", "value"), Output("url", "pathname"),
                  Output("run-id", "data"), Input("url", "pathname"), Input("run-picker", "value"))
    def pick_run(pathname: str | None, picked: str | None) -> tuple:
        runs = source.list_runs(RUNS_IN_PICKER)
        options = [{"label": f"{r['airflow_run_id']} ({r['status'] or 'running'}, published {r['published_at']})",
                    "value": r["airflow_run_id"]} for r in runs]
        if ctx.triggered_id == "run-picker" and picked:
            return options, picked, run_path(prefix, picked), picked
        run_id = run_id_of_path(prefix, pathname) or (runs[0]["airflow_run_id"] if runs else None)
        return options, run_id, no_update, run_id

    @app.callback(Output("run-info", "children"), Output("downloads", "children"),
                  Output("comparison-table", "children"), Output("comparison-chart", "figure"),
                  Output("scenario-picker", "options"), Output("scenario-picker", "value"),
                  Input("run-id", "data"), State("scenario-picker", "value"))
    def show_run(run_id: str | None, chosen: str | None) -> tuple:
        if not run_id:
            message = html.Div("No run has published results yet: run loan_stress_test (make demo).")
            return message, None, None, {}, [], None
        try:
            overview = source.overview(run_id)
        except ServiceError as error:
            return _error(error), None, None, {}, [], None
        model = overview["pd_model"]
        link = html.A(f"MLflow: {model['name']} version {model['version']} (alias {model['alias']}, "
                      f"{model['flavour']})", href=model["mlflow_url"], target="_blank", id="mlflow-link")
        info = html.Div([
            html.Div(["Run ", html.Code(overview["run_id"], id="shown-run-id"), f" ({overview['status']}), snapshot ",
                      html.Code(overview["snapshot_id"]), f" as of {overview['as_of']}, {overview['n_paths']:,} paths, "
                      f"{overview['horizon_quarters']} quarters, seed {overview['seed']}"]),
            html.Div(["PD model: ", link, html.Div(model["note"], style={"color": "#555", "fontSize": "12px"})],
                     id="view-model")])
        scenario_ids = [s["ScenarioId"] for s in overview["scenarios"]]
        downloads = [html.A(f"report ({f.upper()})", id=f"download-report-{f}",
                            href=f"{prefix}download/report/{f}?run_id={quote(run_id, safe='')}",
                            style={"marginRight": "16px"}) for f in overview["report_formats"]]
        downloads += [html.Div([f"results of {s}: ", *[
            html.A(f.upper(), id=f"download-results-{s}-{f}", style={"marginRight": "8px"},
                   href=f"{prefix}download/results/{f}?run_id={quote(run_id, safe='')}&scenario_id={quote(s)}")
            for f in ("csv", "parquet")]]) for s in scenario_ids]
        rows = [[s["ScenarioId"], f"{s['Loans']:,}", money(s["Exposure"]), money(s["ExpectedLoss"]),
                 percent(s["LossRate"]), money(s["VaR"]["0.999"]), money(s["ExpectedShortfall"]["0.990"]),
                 percent(s["MinCET1Ratio"]), percent(s["MinTier1LeverageRatio"])] for s in overview["scenarios"]]
        table = _table(["scenario", "loans", "exposure", "expected loss", "loss rate", "VaR 99.9 %", "ES 99 %",
                        "min CET1", "min Tier 1 leverage"], rows, "comparison")
        scenario = chosen if chosen in scenario_ids else next(
            (s for s in scenario_ids if s.endswith("_severely_adverse")), scenario_ids[0])
        return (info, downloads, table, figures.scenario_comparison(overview),
                [{"label": s, "value": s} for s in scenario_ids], scenario)

    @app.callback(Output("scenario-figures", "children"), Output("segment-chart", "figure"),
                  Output("quarter-chart", "figure"), Output("distribution-chart", "figure"),
                  Output("capital-chart", "figure"), Output("segment-picker", "options"),
                  Input("run-id", "data"), Input("scenario-picker", "value"))
    def show_scenario(run_id: str | None, scenario_id: str | None) -> tuple:
        if not run_id or not scenario_id:
            return None, {}, {}, {}, {}, []
        try:
            view = source.scenario(run_id, scenario_id)
        except ServiceError as error:
            return _error(error), {}, {}, {}, {}, []
        rows = [[s["Segment"], money(s["Exposure"]), money(s["ExpectedLoss"]), percent(s["LossRate"])]
                for s in view["segments"]]
        summary = html.Div([
            html.Div([f"{view['ScenarioDescription']}: expected loss ", html.B(money(view["ExpectedLoss"]),
                                                                              id="scenario-expected-loss"),
                      ", loss rate ", html.B(percent(view["LossRate"]), id="scenario-loss-rate"),
                      ", VaR 99.9 % ", html.B(money(view["VaR"]["0.999"]), id="scenario-var"),
                      ", ES 99 % ", html.B(money(view["ExpectedShortfall"]["0.990"]), id="scenario-es"),
                      ", min CET1 ", html.B(percent(view["MinCET1Ratio"]), id="scenario-min-cet1")]),
            _table(["segment", "exposure", "expected loss", "loss rate"], rows, "segment-table")])
        return (summary, figures.losses_by_segment(view), figures.losses_by_quarter(view),
                figures.loss_distribution(view), figures.capital_paths(view),
                [{"label": s["Segment"], "value": s["Segment"]} for s in view["segments"]])

    @app.callback(Output("macro-variables", "options"), Output("macro-variables", "value"),
                  Output("macro-chart", "figure"), Input("run-id", "data"), Input("macro-variables", "value"))
    def show_macro(run_id: str | None, variables: list[str] | None) -> tuple:
        if not run_id:
            return [], no_update, {}
        try:
            views = [source.scenario(run_id, s["ScenarioId"]) for s in source.overview(run_id)["scenarios"]]
        except ServiceError:
            return [], no_update, {}
        available = sorted(views[0]["macro"]["paths"])
        chosen = [v for v in variables or [] if v in available] or [v for v in MACRO_DEFAULTS if v in available]
        return [{"label": v, "value": v} for v in available], chosen, figures.macro_paths(views, chosen)

    @app.callback(Output("compliance-table", "children"), Output("compliance-metric", "options"),
                  Output("compliance-metric", "value"), Input("run-id", "data"))
    def show_compliance(run_id: str | None) -> tuple:
        if not run_id:
            return None, [], None
        try:
            records = source.compliance(run_id)["records"]
        except ServiceError as error:
            return _error(error), [], None
        rows = [[r["MetricId"], " / ".join(filter(None, (r["Scenario"], r["Segment"], r["Feature"]))) or "portfolio",
                 r["ComplianceThreshold"] or "n/a", r["ActualValue"] or "n/a",
                 html.Span(r["Status"], style={"color": STATUS_COLOURS[r["Status"]], "fontWeight": "bold"})]
                for r in records]
        counts = {status: sum(r["Status"] == status for r in records) for status in STATUS_COLOURS}
        metrics = list(dict.fromkeys(r["MetricId"] for r in records))
        summary = html.Div(", ".join(f"{n} {status}" for status, n in counts.items()), id="compliance-summary")
        table = html.Details([html.Summary("every record"),
                              _table(["metric", "applies to", "threshold", "actual", "status"], rows,
                                     "compliance-records")])
        return [summary, table], [{"label": m, "value": m} for m in metrics], metrics[0] if metrics else None

    @app.callback(Output("compliance-trend", "figure"), Input("compliance-metric", "value"))
    def show_compliance_trend(metric_id: str | None) -> Any:
        if not metric_id:
            return {}
        try:
            return figures.compliance_trend(source.compliance_history(metric_id, COMPLIANCE_HISTORY_RUNS))
        except ServiceError:
            return {}

    @app.callback(Output("attribution", "children"), Input("run-id", "data"), Input("scenario-picker", "value"))
    def show_attribution(run_id: str | None, scenario_id: str | None) -> Any:
        if not run_id:
            return None
        try:
            attribution = source.attribution(run_id)
        except ServiceError as error:
            return _error(error)
        if not attribution["previous_run_id"]:
            return html.Div("No previous published run: this is the first run, nothing to compare.")
        waterfalls = attribution["scenarios"].get(scenario_id or "", {})
        if not waterfalls:
            return html.Div(f"Scenario {scenario_id} is not in the previous run {attribution['previous_run_id']}.")
        return [dcc.Graph(figure=figures.attribution_waterfall(steps, f"{metric} of {scenario_id} since run "
                                                                      f"{attribution['previous_run_id']}"))
                for metric, steps in waterfalls.items()]

    @app.callback(Output("segment-picker", "value"), Input("segment-chart", "clickData"),
                  prevent_initial_call=True)
    def segment_clicked(click: dict[str, Any] | None) -> Any:
        return click["points"][0]["x"] if click else no_update

    @app.callback(Output("contributors", "children"), Input("run-id", "data"), Input("scenario-picker", "value"),
                  Input("segment-picker", "value"))
    def show_contributors(run_id: str | None, scenario_id: str | None, segment: str | None) -> Any:
        if not run_id or not scenario_id or not segment:
            return html.Div("Pick a segment to see its largest loss contributors.")
        try:
            top = source.contributors(run_id, scenario_id, segment, CONTRIBUTORS_SHOWN)
        except ServiceError as error:
            return _error(error)
        rows = [[html.Button(loan["LoanId"], id={"type": "loan-button", "index": loan["LoanId"]}, n_clicks=0),
                 money(loan["ExpectedLoss"]), percent(loan["ProjectedDefaultRisk"]), money(loan["ProjectedBalance"])]
                for loan in top["loans"]]
        return [html.Div(f"{segment} in {scenario_id}: exposure {money(top['Exposure'])}, expected loss "
                         f"{money(top['ExpectedLoss'])}; its {len(rows)} largest contributors:"),
                _table(["loan", "expected loss", "horizon PD", "balance at horizon end"], rows, "contributors-table")]

    @app.callback(Output("loan-detail", "children"), Input({"type": "loan-button", "index": ALL}, "n_clicks"),
                  Input("loan-search-button", "n_clicks"), State("loan-search", "value"),
                  State("run-id", "data"), State("scenario-picker", "value"), prevent_initial_call=True)
    def show_loan(clicks: list[int], searches: int, searched: str | None, run_id: str | None,
                  scenario_id: str | None) -> Any:
        # A contributor's button, or any loan id typed in (read from the per-loan results by row group).
        if isinstance(ctx.triggered_id, dict) and any(clicks):
            loan_id = ctx.triggered_id["index"]
        elif ctx.triggered_id == "loan-search-button" and searches and (searched or "").strip():
            loan_id = searched.strip()
        else:
            return no_update
        try:
            loan = source.loan(run_id or "", scenario_id or "", loan_id)
        except ServiceError as error:
            return _error(error)
        return html.Div([
            html.Div(["Loan ", html.B(loan["LoanId"], id="loan-id"), f" ({loan['ProductSegment']}): balance ",
                      html.B(money(loan["JumpOffBalance"]) if loan["JumpOffBalance"] else "n/a",
                             id="loan-jump-off-balance"),
                      f" at {loan['JumpOffQuarter']} -> ", html.B(money(loan["ProjectedBalance"]),
                                                                 id="loan-projected-balance"),
                      f" at the end of {loan['quarters'][-1]} if it survives; expected loss ",
                      html.B(money(loan["ExpectedLoss"]), id="loan-expected-loss"), ", horizon PD ",
                      html.B(percent(loan["ProjectedDefaultRisk"]), id="loan-pd")]),
            dcc.Graph(figure=figures.loan_term_structure(loan), id="loan-chart"),
            *_balance_path(loan)], id="view-loan")

    @app.callback(Output("allocation", "children"), Input("run-id", "data"))
    def show_allocation(run_id: str | None) -> Any:
        if not run_id:
            return None
        try:
            allocation = source.allocation(run_id)
        except ServiceError as error:
            return _error(error)
        if allocation["status"] != "done":
            return html.Div(f"Not optimised: {allocation.get('reason')}")
        recommendation = allocation["recommendation"]
        limits = allocation["limits"]
        heading = html.Div(f"{allocation['recommended_strategy']} under {allocation['scenario_id']}: CVaR "
                           f"{limits['cvar_level']:.0%} limit {money(limits['cvar_limit'])}, stressed CET1 >= "
                           f"{percent(limits['required_cet1_ratio'] or 0)}, budget {money(limits['budget'])}")
        if recommendation["status"] != "optimal":
            return [heading, html.Div(f"Infeasible: {recommendation['message']}", id="allocation-infeasible",
                                      style={"color": "#cf222e"})]
        current, new = recommendation["current"], recommendation["recommended"]
        change = _table(["measure", "current", "recommended"], [
            ["expected return", money(current["expected_return"]), money(new["expected_return"])],
            ["expected loss", money(current["expected_loss"]), money(new["expected_loss"])],
            ["CVaR", money(current["cvar"]), money(new["cvar"])],
            ["min stressed CET1", percent(current["min_cet1_ratio"]), percent(new["min_cet1_ratio"])],
            ["RAROC", percent(current["raroc"]), percent(new["raroc"])]], "allocation-change")
        binding = _table(["binding constraint", "shadow price per dollar"],
                         [[b["name"], f"{b['shadow_price']:.4g}"] for b in
                          sorted(recommendation["binding"], key=lambda b: -b["shadow_price"])], "allocation-binding")
        return [heading, dcc.Graph(figure=figures.allocation_bars(recommendation)), change, binding,
                dcc.Graph(figure=figures.efficient_frontier(allocation["frontier"], recommendation))]
