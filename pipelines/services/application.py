"""The operations of the services, written once over the adapters; gRPC and REST only translate.

Every function takes the :class:`~pipelines.composition.Adapters` of the deployment, plain inputs
(decimals as text under :data:`pipelines.data.amendments.DECIMAL_TEXT`) and returns JSON-ready dicts
(decimals as text, dates ISO). Errors are those of :mod:`pipelines.services.errors`.

- Loans are read from the latest accepted snapshot in the loan store, with the pending amendments
  on top; an update is recorded as an amendment (audit: who, when, old and new values) that the next
  ingest applies, under optimistic concurrency: the caller sends the ``etag`` it read.
- A simulation request starts a real ``loan_stress_test`` run through the deployment's launcher and
  returns its id at once; its status and, once done, its Simulation Results Schema are read back.
- Compliance status, runs and results are hot reads served through the cache.
- The allocation a run's ``optimise`` step recommended under stress is read back from the run's
  objects (cached once it exists), with every strategy's outcome and the efficient frontier.
"""

from __future__ import annotations

import io
import json
import math
import uuid
from decimal import Decimal
from typing import Any

from pipelines.adapters.service_store import PENDING, VersionConflict
from pipelines.adapters.simulation_launcher import LaunchError
from pipelines.composition import Adapters
from pipelines.data.amendments import (
    UPDATABLE_FIELDS,
    AmendmentError,
    contract_breaches,
    parse_changes,
    parse_decimal,
    typed_value,
)
from pipelines.data.contract import FIELDS
from pipelines.services.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceError,
    StaleVersion,
    Unavailable,
)

DEFAULT_BASE_SCENARIO = "2026_baseline"
MAX_SHOCK_BP, MIN_SHOCK_BP = 1000, -500  # the trigger form's bounds of the rate shock
BASIS_POINTS = Decimal(10_000)
MAX_DESCRIPTION = 500
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000
MAX_RUNS = 100
TERMINAL = ("succeeded", "failed")


# Loans --------------------------------------------------------------------------------------------

def _text(value: Any) -> str | None:
    """A contract value on the wire: decimals as plain text (no exponent), dates ISO, integers as text."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value, "f")
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _etag(snapshot_id: str, version: int) -> str:
    return f"{snapshot_id}.{version}"


def _current_loan(adapters: Adapters, loan_id: str) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """(the loan with its pending amendments applied, its snapshot, its amendments), or NotFound."""
    if not loan_id or len(loan_id) > 64:
        raise InvalidArgument(["loan_id: required, at most 64 characters"])
    snapshot_id = adapters.loan_store.latest_snapshot_id()
    if snapshot_id is None:
        raise FailedPrecondition("no loan snapshot has been published yet: ingest a loan tape first")
    loan = adapters.loan_store.loan(snapshot_id, loan_id)
    if loan is None:
        raise NotFound(f"loan {loan_id!r} is not in the latest snapshot {snapshot_id}")
    amendments = adapters.service_store.amendments_of_loan(loan_id)
    for amendment in amendments:
        if amendment["status"] == PENDING:
            loan.update({name: typed_value(name, change["new"]) for name, change in amendment["changes"].items()})
    return loan, snapshot_id, amendments


def _loan_view(loan: dict[str, Any], snapshot_id: str, amendments: list[dict[str, Any]]) -> dict[str, Any]:
    version = max((a["version"] for a in amendments), default=0)
    return {"loan": {f.name: _text(loan[f.name]) for f in FIELDS}, "snapshot_id": snapshot_id, "version": version,
            "etag": _etag(snapshot_id, version), "updatable_fields": list(UPDATABLE_FIELDS),
            "pending_amendments": [a["amendment_id"] for a in amendments if a["status"] == PENDING]}


def get_loan(adapters: Adapters, loan_id: str) -> dict[str, Any]:
    """The loan as the latest snapshot has it, with pending amendments applied, and its etag."""
    return _loan_view(*_current_loan(adapters, loan_id))


def update_loan(adapters: Adapters, loan_id: str, etag: str, changes: dict[str, str | None], actor: str,
                reason: str = "") -> dict[str, Any]:
    """Record an amendment of ``loan_id`` made from ``etag``; returns the amendment and the loan after it.

    Raises InvalidArgument for an unknown field, a malformed decimal or a contract breach of the
    amended loan, StaleVersion when ``etag`` is not the current one (a concurrent update or a new
    snapshot came first).
    """
    loan, snapshot_id, amendments = _current_loan(adapters, loan_id)
    version = max((a["version"] for a in amendments), default=0)
    if etag != _etag(snapshot_id, version):
        raise StaleVersion(f"loan {loan_id} changed since etag {etag!r} was read; the current etag is "
                           f"{_etag(snapshot_id, version)!r}: read the loan again and repeat the update")
    try:
        typed = parse_changes(changes)
    except AmendmentError as error:
        raise InvalidArgument(error.reasons) from error
    breaches = contract_breaches({**loan, **typed}, adapters.settings.balance_over_amount_tolerance)
    if breaches:
        raise InvalidArgument([f"the amended loan would break the loan contract: {', '.join(breaches)}"])
    recorded = {name: {"old": _text(loan[name]), "new": _text(value)} for name, value in typed.items()
                if loan[name] != value}
    if not recorded:
        raise InvalidArgument(["the update changes nothing: every value equals the current one"])
    try:
        amendment = adapters.service_store.record_amendment(loan_id, version + 1, snapshot_id, recorded,
                                                            actor=actor, reason=reason[:1000])
    except VersionConflict as error:
        raise StaleVersion(f"loan {loan_id} was updated concurrently from etag {etag!r}; read it again") from error
    return {"amendment": _amendment_view(amendment), **get_loan(adapters, loan_id)}


def _amendment_view(amendment: dict[str, Any]) -> dict[str, Any]:
    return {"amendment_id": amendment["amendment_id"], "loan_id": amendment["loan_id"],
            "version": amendment["version"], "base_snapshot_id": amendment["base_snapshot_id"],
            "changes": amendment["changes"], "actor": amendment["actor"], "reason": amendment["reason"],
            "created_at": _text(amendment["created_at"]), "status": amendment["status"],
            "ingestion_id": amendment["ingestion_id"], "snapshot_id": amendment["snapshot_id"],
            "resolution_note": amendment["resolution_note"]}


def loan_history(adapters: Adapters, loan_id: str) -> list[dict[str, Any]]:
    """The audit trail of a loan's amendments, oldest first."""
    _current_loan(adapters, loan_id)
    return [_amendment_view(a) for a in adapters.service_store.amendments_of_loan(loan_id)]


# Simulations -------------------------------------------------------------------------------------

def run_simulation(adapters: Adapters, scenario_description: str, interest_rate_scenario: str, *,
                   requested_by: str, scenario_ids: list[str] | None = None, horizon_quarters: int = 0,
                   n_paths: int = 0, seed: int | None = None, as_of_date: str | None = None) -> dict[str, Any]:
    """Start a ``loan_stress_test`` run and return its simulation id at once (status ``queued``).

    ``interest_rate_scenario`` is the parallel shock on every interest rate as a decimal fraction
    (``0.03`` = +300 bp, whole basis points, -0.05 .. 0.10), added to the 2026 baseline (or to the first
    ``*_baseline`` of ``scenario_ids``); ``0`` with no ``scenario_ids`` runs the 2026 baseline itself.
    ``horizon_quarters`` and ``n_paths`` of 0 and a ``seed`` of None are passed on unset, as the DAG's
    trigger form does, so the run's ``plan`` takes the deployment's STRESS_HORIZON_QUARTERS,
    STRESS_N_PATHS and STRESS_SEED.
    """
    from pipelines.engine.scenarios import available_scenarios

    reasons = []
    if not scenario_description.strip() or len(scenario_description) > MAX_DESCRIPTION:
        reasons.append(f"scenario_description: required, at most {MAX_DESCRIPTION} characters")
    try:
        shock_bp = parse_decimal(interest_rate_scenario, "interest_rate_scenario") * BASIS_POINTS
        if shock_bp != shock_bp.to_integral_value() or not MIN_SHOCK_BP <= shock_bp <= MAX_SHOCK_BP:
            reasons.append(f"interest_rate_scenario: {interest_rate_scenario} must be whole basis points between "
                           f"{MIN_SHOCK_BP / 10_000:g} and {MAX_SHOCK_BP / 10_000:g}")
    except AmendmentError as error:
        reasons.extend(error.reasons)
        shock_bp = Decimal(0)
    known = set(available_scenarios())
    unknown = [s for s in scenario_ids or [] if s not in known]
    if unknown:
        reasons.append(f"scenario_ids: unknown {unknown}; available: {sorted(known)}")
    if not 0 <= horizon_quarters <= 13:
        reasons.append("horizon_quarters: between 1 and 13, or 0 for the deployment's setting")
    if n_paths != 0 and not 10 <= n_paths <= 100_000:
        reasons.append("n_paths: between 10 and 100000, or 0 for the deployment's setting")
    if as_of_date is not None:
        from datetime import date

        try:
            date.fromisoformat(as_of_date)
        except ValueError:
            reasons.append(f"as_of_date: {as_of_date!r} is not a date (YYYY-MM-DD)")
    if reasons:
        raise InvalidArgument(reasons)
    scenarios = list(scenario_ids or ([] if shock_bp else [DEFAULT_BASE_SCENARIO]))
    conf = {"scenarios": scenarios, "rate_shock_bp": int(shock_bp), "horizon_quarters": horizon_quarters,
            "n_paths": n_paths, "seed": seed, "source_uri": None, "as_of_date": as_of_date, "batch_size": 0}
    simulation_id = f"svc__{uuid.uuid4().hex}"
    launcher = adapters.simulation_launcher
    store = adapters.service_store
    store.record_simulation_request(simulation_id, scenario_description, interest_rate_scenario, conf,
                                    launcher.name, requested_by)
    try:
        launcher.launch(simulation_id, conf)
    except LaunchError as error:
        store.update_simulation_request(simulation_id, status="failed", error=str(error))
        raise Unavailable(str(error)) from error
    return {"simulation_id": simulation_id, "status": "queued"}


def _request_or_not_found(adapters: Adapters, simulation_id: str) -> dict[str, Any]:
    request = adapters.service_store.simulation_request(simulation_id) if simulation_id else None
    if request is None:
        raise NotFound(f"no simulation {simulation_id!r}")
    if request["status"] not in TERMINAL:
        try:
            current = adapters.simulation_launcher.refresh(request)
        except LaunchError as error:
            raise Unavailable(str(error)) from error
        if current is not None and current["status"] != request["status"]:
            adapters.service_store.update_simulation_request(simulation_id, **current)
            request = adapters.service_store.simulation_request(simulation_id)
    return request


def get_simulation(adapters: Adapters, simulation_id: str, page_size: int = DEFAULT_PAGE_SIZE,
                   page_token: str = "") -> dict[str, Any]:
    """Status of a simulation request and, once it succeeded, the Simulation Results Schema of each scenario.

    ``AffectedLoans`` is paged (``page_size`` loans from ``page_token``; ``next_page_token`` is empty on
    the last page), so a book of a million loans never travels in one message.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument([f"page_size: between 1 and {MAX_PAGE_SIZE}"])
    if page_token and not page_token.isdigit():
        raise InvalidArgument([f"page_token: {page_token!r} is not a token this service issued"])
    request = _request_or_not_found(adapters, simulation_id)
    view = {"simulation_id": simulation_id, "status": request["status"],
            "scenario_description": request["scenario_description"],
            "interest_rate_scenario": request["interest_rate_scenario"], "airflow_run_id": request["airflow_run_id"],
            "error": request["error"], "requested_by": request["requested_by"],
            "created_at": _text(request["created_at"]), "updated_at": _text(request["updated_at"]),
            "results": [], "next_page_token": ""}
    if request["status"] != "succeeded":
        return view
    offset = int(page_token or 0)
    page = adapters.cache.get_or_compute(
        f"simulation:{simulation_id}:{offset}:{page_size}",
        lambda: _results_page(adapters, request["airflow_run_id"], offset, page_size))
    return {**view, **page}


def _results_page(adapters: Adapters, airflow_run_id: str, offset: int, page_size: int) -> dict[str, Any]:
    results, more = [], False
    for result in adapters.results_store.simulations_of_run(airflow_run_id):
        every_loan = _affected_loans(adapters, result["AffectedLoans"])
        loans = every_loan.slice(offset, page_size)
        more = more or offset + page_size < every_loan.num_rows
        results.append({**_result_summary(result), "AffectedLoans": [
            {"LoanId": loan_id, "ProjectedDefaultRisk": _decimal(pd, 10), "ProjectedBalance": _decimal(balance, 2)}
            for loan_id, pd, balance in zip(loans.column("LoanId").to_pylist(),
                                            loans.column("ProjectedDefaultRisk").to_pylist(),
                                            loans.column("ProjectedBalance").to_pylist(), strict=True)]})
    return {"results": results, "next_page_token": str(offset + page_size) if more else ""}


def _affected_loans(adapters: Adapters, uri: str):
    import pyarrow.parquet as pq

    from pipelines.adapters.object_store import read_uri_bytes

    return pq.read_table(io.BytesIO(read_uri_bytes(uri, adapters.settings.aws_region)))


def _decimal(value: float, places: int) -> str:
    """A float result as decimal text with ``places`` decimals (what the wire carries)."""
    return format(Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places)), "f")


def _result_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The Simulation Results Schema's scalar fields of a stored result, with the headline risk figures."""
    metrics = result["metrics"]
    capital = metrics["capital"]
    return {"SimulationId": result["SimulationId"], "ScenarioId": metrics["scenario_id"],
            "ScenarioDescription": result["ScenarioDescription"],
            "InterestRateScenario": _decimal(result["InterestRateScenario"], 6),
            "StartDate": result["StartDate"], "EndDate": result["EndDate"],
            "OverallImpact": _decimal(result["OverallImpact"], 2),
            "AirflowRunId": result["provenance"]["airflow_run_id"],
            "SnapshotId": result["provenance"]["snapshot_id"], "Loans": metrics["loans"],
            "Exposure": _decimal(metrics["exposure"], 2), "LossRate": _decimal(metrics["loss_rate"], 8),
            "VaR999": _decimal(metrics["var"]["0.999"], 2),
            "ExpectedShortfall99": _decimal(metrics["expected_shortfall"]["0.990"], 2),
            "MinCET1Ratio": _decimal(capital["min_cet1_ratio"], 8)}


# Runs and results --------------------------------------------------------------------------------

def list_runs(adapters: Adapters, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs that published results, newest first: run id, final status, scenarios."""
    if not 1 <= limit <= MAX_RUNS:
        raise InvalidArgument([f"limit: between 1 and {MAX_RUNS}"])
    return adapters.cache.get_or_compute(f"runs:{limit}", lambda: [
        {**run, "published_at": _text(run["published_at"])} for run in adapters.results_store.published_runs(limit)])


def get_results(adapters: Adapters, *, run_id: str = "", scenario_id: str = "", segment: str = "",
                loan_id: str = "") -> dict[str, Any]:
    """Published results of a run (default: the latest), per scenario, narrowed to a segment or a loan.

    Each scenario gives its summary; with ``segment`` its exposure, expected loss and loss rate in that
    segment; with ``loan_id`` that loan's projected default risk, balance, expected loss, quarterly PDs and
    quarterly balances (read by row group, :func:`_stored_loan`).
    """
    key = "results:" + json.dumps([run_id, scenario_id, segment, loan_id])
    found = adapters.cache.get_or_compute(key, lambda: _results(adapters, run_id, scenario_id, segment, loan_id))
    if found is None:
        raise NotFound("no published results" + (f" of run {run_id!r}" if run_id else "")
                       + (f" for scenario {scenario_id!r}" if scenario_id else ""))
    if "missing" in found:
        raise NotFound(found["missing"])
    return found


def _results(adapters: Adapters, run_id: str, scenario_id: str, segment: str, loan_id: str) -> dict[str, Any] | None:
    store = adapters.results_store
    if not run_id:
        runs = store.published_runs(1)
        if not runs:
            return None
        run_id = runs[0]["airflow_run_id"]
    results = [r for r in store.simulations_of_run(run_id)
               if not scenario_id or r["metrics"]["scenario_id"] == scenario_id]
    if not results:
        return None
    rows = []
    for result in results:
        row = _result_summary(result)
        if segment:
            metrics = result["metrics"]
            if segment not in metrics["exposure_by_segment"]:
                return {"missing": f"segment {segment!r} is not in run {run_id}; segments: "
                                   f"{sorted(metrics['exposure_by_segment'])}"}
            row["Segment"] = {"Segment": segment, "Exposure": _decimal(metrics["exposure_by_segment"][segment], 2),
                              "ExpectedLoss": _decimal(metrics["loss_by_segment"][segment], 2),
                              "LossRate": _decimal(metrics["loss_rate_by_segment"][segment], 8)}
        if loan_id:
            loan = _stored_loan(adapters, result["AffectedLoans"], loan_id)
            if loan is None:
                return {"missing": f"loan {loan_id!r} is not in the results of run {run_id}"}
            row["Loan"] = _loan_figures(loan)
        rows.append(row)
    return {"run_id": run_id, "results": rows}


# Compliance --------------------------------------------------------------------------------------

def check_compliance(adapters: Adapters, metric_id: str) -> dict[str, Any]:
    """The latest status of a compliance metric: the worst of its latest run's records, and each record."""
    if not metric_id or len(metric_id) > 64:
        raise InvalidArgument(["metric_id: required, at most 64 characters"])
    status = adapters.cache.get_or_compute(f"compliance:{metric_id}", lambda: _compliance(adapters, metric_id))
    if status is None:
        raise NotFound(f"no compliance record of metric {metric_id!r}: no run has evaluated it yet")
    return status


def _compliance(adapters: Adapters, metric_id: str) -> dict[str, Any] | None:
    from pipelines.compliance.rules import Status, format_measure

    records = adapters.results_store.latest_compliance(metric_id)
    if not records:
        return None
    breaches = [r for r in records if r.status is Status.NON_COMPLIANT]
    unevaluated = [r for r in records if r.status is Status.NOT_EVALUATED]
    worst = (breaches or unevaluated or records)[0]
    overall = worst.status
    where = " / ".join(filter(None, (worst.scenario, worst.segment, worst.feature))) or "portfolio"
    measured = (f"actual {format_measure(worst.metric, worst.actual)} vs threshold "
                f"{format_measure(worst.metric, worst.threshold)} ({worst.direction.value}) at {where}")
    if overall is Status.NON_COMPLIANT:
        message = f"Non-Compliant in {len(breaches)} of {len(records)} checks of run {worst.run_id}; worst: {measured}"
    elif overall is Status.NOT_EVALUATED:
        message = f"Not Evaluated in {len(unevaluated)} of {len(records)} checks of run {worst.run_id}: {worst.note}"
    else:
        message = f"Compliant in all {len(records)} checks of run {worst.run_id}; first: {measured}"

    def number(value: float | None) -> str | None:
        return None if value is None else _decimal(value, 8)

    return {"MetricId": metric_id, "MetricName": worst.metric_name, "Status": overall.value,
            "ComplianceThreshold": number(worst.threshold), "ActualValue": number(worst.actual),
            "Scenario": worst.scenario, "RunId": worst.run_id, "DagId": worst.dag_id, "Message": message,
            "EvaluatedAt": worst.evaluated_at.isoformat(),
            "Records": [{"Status": r.status.value, "ComplianceThreshold": number(r.threshold),
                         "ActualValue": number(r.actual), "Scenario": r.scenario, "Segment": r.segment,
                         "Feature": r.feature, "Note": r.note} for r in records]}


# Allocation under stress ---------------------------------------------------------------------------

MEASURE_PLACES = {"exposure": 2, "expected_return": 2, "expected_loss": 2, "cvar": 2, "economic_capital": 2,
                  "raroc": 8, "min_cet1_ratio": 8}
SHADOW_PRICE_PLACES = 12


def get_allocation(adapters: Adapters, run_id: str = "", strategy: str = "") -> dict[str, Any]:
    """The allocation a run's ``optimise`` step recommends under its stress scenario, beside the current one.

    ``run_id`` defaults to the latest published run, ``strategy`` to the lending appetite's own
    (``recommended_strategy``). Gives each asset's current and recommended exposure, the measures of
    both books and their change (return, EL, CVaR, economic capital, RAROC, minimum stressed CET1), the
    binding constraints with their shadow prices and the efficient frontier; an infeasible strategy
    gives its conflicting constraints instead. Money in USD (2 decimals), ratios with 8, shadow prices
    with 12; a measure the run could not define (no capital path, no economic capital) is None.
    """
    if strategy:
        from models.optimisation import Strategy

        if strategy not in set(Strategy):
            raise InvalidArgument([f"strategy: {strategy!r} is not one of {[str(s) for s in Strategy]}"])
    if len(run_id) > 250:
        raise InvalidArgument(["run_id: at most 250 characters"])
    if not run_id:
        runs = adapters.results_store.published_runs(1)
        if not runs:
            raise NotFound("no published results: no run has been optimised yet")
        run_id = runs[0]["airflow_run_id"]
    document = adapters.cache.get_or_compute(f"allocation:{run_id}", lambda: _allocation_document(adapters, run_id))
    if document is None:
        raise _why_no_allocation(adapters, run_id)
    chosen = strategy or document["recommended_strategy"]
    outcome = document["strategies"][chosen]
    limits = document["limits"]
    view = {"run_id": run_id, "scenario_id": document["scenario_id"],
            "baseline_scenario": document["baseline_scenario"], "strategy": chosen,
            "recommended_strategy": document["recommended_strategy"], "status": outcome["status"],
            "message": outcome.get("message", ""), "conflicting": outcome.get("conflicting", []),
            "limits": {"budget": _finite(limits["budget"], 2), "cvar_level": _finite(limits["cvar_level"], 4),
                       "cvar_limit": _finite(limits["cvar_limit"], 2),
                       "economic_capital_level": _finite(limits["economic_capital_level"], 4),
                       "required_cet1_ratio": _finite(limits["required_cet1_ratio"], 8),
                       "concentration": {k: _finite(v, 8) for k, v in (limits["concentration"] or {}).items()}},
            "frontier": [{"cvar": _finite(p["cvar"], 2), "expected_return": _finite(p["expected_return"], 2)}
                         for p in document["frontier"]],
            "assets": [], "current": None, "recommended": None, "change": None, "binding": []}
    if outcome["status"] != "optimal":
        return view
    return {**view,
            "assets": [{"name": a["name"], "segment": a["segment"], "current": _finite(a["current"], 2),
                        "recommended": _finite(a["recommended"], 2),
                        "cvar_contribution": _finite(a["cvar_contribution"], 2)} for a in outcome["assets"]],
            "current": _measures(outcome["current"]), "recommended": _measures(outcome["recommended"]),
            "change": {name: _finite(outcome["change"][name], places) for name, places in MEASURE_PLACES.items()},
            "binding": [{"name": b["name"], "family": b["family"], "objective": b["objective"],
                         "shadow_price": _finite(b["shadow_price"], SHADOW_PRICE_PLACES)} for b in outcome["binding"]]}


def _allocation_document(adapters: Adapters, run_id: str) -> dict[str, Any] | None:
    from pipelines.tasks.runs import allocation_key

    key = allocation_key(run_id)
    store = adapters.object_store
    return json.loads(store.get_bytes(key)) if store.exists(key) else None


def _why_no_allocation(adapters: Adapters, run_id: str) -> ServiceError:
    """NotFound for an unknown run; FailedPrecondition saying why a known run has no allocation."""
    from pipelines.tasks.runs import step_key

    if not adapters.results_store.simulations_of_run(run_id):
        return NotFound(f"no published results of run {run_id!r}")
    key = step_key(run_id, "optimise")
    if adapters.object_store.exists(key):
        step = json.loads(adapters.object_store.get_bytes(key))
        if step.get("status") == "skipped":
            return FailedPrecondition(f"run {run_id} did not optimise its allocation: {step.get('reason')}")
    return FailedPrecondition(f"run {run_id} has no allocation yet: its optimise step has not finished")


def _finite(value: float | None, places: int) -> str | None:
    """A float as decimal text, or None for a value that is not a number (NaN, infinite) or absent."""
    if value is None or not math.isfinite(value):
        return None
    return _decimal(value, places)


def _measures(metrics: dict[str, float]) -> dict[str, Any]:
    measures: dict[str, Any] = {name: _finite(metrics[name], places) for name, places in MEASURE_PLACES.items()}
    quarter = metrics["min_cet1_quarter"]
    measures["min_cet1_quarter"] = int(quarter) if math.isfinite(quarter) and quarter >= 0 else None
    return measures


# Dashboard reads ---------------------------------------------------------------------------------
# What the dashboard's views show, each one read of a published run's pre-aggregated figures (the
# result documents, compliance records, attribution rows and the optimise step's document), cached
# like the other hot reads. Quoted figures are decimal text as everywhere on the wire; the series
# behind a chart (paths, quantiles, waterfall steps) are JSON numbers, which charts plot as they are.

MAX_HISTORY_RUNS = 50
MAX_CONTRIBUTORS = 25  # what reduce keeps per segment: pipelines.engine.drilldown.TOP_CONTRIBUTORS_PER_SEGMENT
# Format -> (file name, media type); the report step records {"report": {format: {"key", "uri"}}, ...}.
REPORT_FORMATS = {"html": ("stress_test_report.html", "text/html; charset=utf-8"),
                  "pdf": ("stress_test_report.pdf", "application/pdf")}
RESULTS_FORMATS = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv; charset=utf-8"}


def _run_id_or_latest(adapters: Adapters, run_id: str) -> str:
    if run_id:
        return run_id
    runs = adapters.results_store.published_runs(1)
    if not runs:
        raise NotFound("no run has published results yet")
    return runs[0]["airflow_run_id"]


def _published_results(adapters: Adapters, run_id: str) -> list[dict[str, Any]]:
    results = adapters.results_store.simulations_of_run(run_id)
    if not results:
        raise NotFound(f"run {run_id!r} has published no results")
    return results


def _scenario_result(adapters: Adapters, run_id: str, scenario_id: str) -> dict[str, Any]:
    results = _published_results(adapters, run_id)
    found = next((r for r in results if r["metrics"]["scenario_id"] == scenario_id), None)
    if found is None:
        raise NotFound(f"scenario {scenario_id!r} is not in run {run_id}; scenarios: "
                       f"{[r['metrics']['scenario_id'] for r in results]}")
    return found


def _run_step(adapters: Adapters, run_id: str, step: str) -> dict[str, Any] | None:
    """A step record of a run (``runs/<run>/steps/<step>.json``), or None when the run did not record it."""
    from pipelines.tasks.runs import run_prefix

    key = f"{run_prefix(run_id)}/steps/{step}.json"
    store = adapters.object_store
    return json.loads(store.get_bytes(key)) if store.exists(key) else None


def mlflow_model_url(adapters: Adapters, model: dict[str, Any]) -> str:
    """The MLflow UI page of a registered model version (every stress test runs one)."""
    base = adapters.settings.resolved_mlflow_ui_url.rstrip("/")
    return f"{base}/#/models/{model['name']}/versions/{model['version']}"


def _scenario_figures(result: dict[str, Any]) -> dict[str, Any]:
    metrics, capital = result["metrics"], result["metrics"]["capital"]
    return {"ScenarioId": metrics["scenario_id"], "ScenarioDescription": result["ScenarioDescription"],
            "SimulationId": result["SimulationId"], "Loans": metrics["loans"],
            "Exposure": _decimal(metrics["exposure"], 2), "ExpectedLoss": _decimal(metrics["expected_loss"], 2),
            "LossRate": _decimal(metrics["loss_rate"], 8),
            "VaR": {level: _decimal(value, 2) for level, value in metrics["var"].items()},
            "ExpectedShortfall": {level: _decimal(value, 2) for level, value in metrics["expected_shortfall"].items()},
            "StartCET1Ratio": _decimal(capital["cet1_ratio"][0], 8),
            "MinCET1Ratio": _decimal(capital["min_cet1_ratio"], 8),
            "StartTier1LeverageRatio": _decimal(capital["tier1_leverage_ratio"][0], 8),
            "MinTier1LeverageRatio": _decimal(capital["min_tier1_leverage_ratio"], 8)}


def run_overview(adapters: Adapters, run_id: str = "") -> dict[str, Any]:
    """A published run (default: the latest): its status, provenance, PD model with its MLflow page, and
    the comparison figures of every scenario (loss, loss rate, VaR, ES, minimum CET1 and leverage)."""
    run_id = _run_id_or_latest(adapters, run_id)
    return adapters.cache.get_or_compute(f"dashboard:overview:{run_id}", lambda: _run_overview(adapters, run_id))


def _run_overview(adapters: Adapters, run_id: str) -> dict[str, Any]:
    results = _published_results(adapters, run_id)
    provenance = results[0]["provenance"]
    model = provenance["pd_model"]
    status = adapters.results_store.run_status(run_id, "loan_stress_test")
    report = _run_step(adapters, run_id, "report")
    return {"run_id": run_id, "status": status["status"] if status else None,
            "snapshot_id": provenance["snapshot_id"], "as_of": provenance["as_of"], "seed": provenance["seed"],
            "n_paths": provenance["n_paths"], "horizon_quarters": provenance["horizon"],
            "pd_model": {"name": model["name"], "version": str(model["version"]), "alias": model.get("alias"),
                         "flavour": model.get("flavour"),
                         "note": model.get("note", ""), "mlflow_url": mlflow_model_url(adapters, model)},
            "report_formats": sorted(f for f in REPORT_FORMATS if _report_uri(report, f)),
            "scenarios": [_scenario_figures(r) for r in results]}


def scenario_view(adapters: Adapters, run_id: str, scenario_id: str) -> dict[str, Any]:
    """One scenario of a run as the dashboard draws it: losses by segment and by quarter, the loss
    distribution (201 quantiles of the horizon loss) with VaR/ES, the CET1 and Tier 1 leverage paths
    against their requirements, and the scenario's macro paths."""
    run_id = _run_id_or_latest(adapters, run_id)
    return adapters.cache.get_or_compute(f"dashboard:scenario:{run_id}:{scenario_id}",
                                         lambda: _scenario_view(adapters, run_id, scenario_id))


def capital_requirements(adapters: Adapters) -> list[dict[str, Any]]:
    """The capital lines the compliance rules set (CET1 minimum, minimum + buffer, Tier 1 leverage minimum)."""
    from pipelines.compliance.report import capital_lines
    from pipelines.compliance.rules import load_rules

    settings = adapters.settings
    return [{"label": line.label, "ratio": line.ratio, "metric": line.metric}
            for line in capital_lines(load_rules(settings.compliance_rules_path), settings)]


def _scenario_view(adapters: Adapters, run_id: str, scenario_id: str) -> dict[str, Any]:
    result = _scenario_result(adapters, run_id, scenario_id)
    metrics, capital, scenario = result["metrics"], result["metrics"]["capital"], result["scenario"]
    quarters = list(scenario["quarters"])
    return {"run_id": run_id, **_scenario_figures(result),
            "segments": [{"Segment": s, "Exposure": _decimal(metrics["exposure_by_segment"][s], 2),
                          "ExpectedLoss": _decimal(metrics["loss_by_segment"][s], 2),
                          "LossRate": _decimal(metrics["loss_rate_by_segment"][s], 8)}
                         for s in metrics["loss_by_segment"]],
            "quarters": quarters, "jump_off_quarter": scenario["jump_off_quarter"],
            "loss_by_quarter": metrics["loss_by_quarter"],
            "loss_distribution": {"probabilities": [i / (len(metrics["loss_distribution"]) - 1)
                                                    for i in range(len(metrics["loss_distribution"]))],
                                  "losses": metrics["loss_distribution"]},
            "capital": {"quarters": [scenario["jump_off_quarter"], *quarters], "cet1_ratio": capital["cet1_ratio"],
                        "tier1_leverage_ratio": capital["tier1_leverage_ratio"], "approach": capital["approach"],
                        "requirements": capital_requirements(adapters)},
            "macro": {"quarters": quarters, "paths": scenario["path"]}}


def compliance_of_run(adapters: Adapters, run_id: str = "") -> dict[str, Any]:
    """Every compliance record of a run (default: the latest published), in evaluation order."""
    run_id = _run_id_or_latest(adapters, run_id)

    def records() -> dict[str, Any]:
        records_of_run = adapters.results_store.compliance_of_run(run_id)
        return {"run_id": run_id, "records": [_record_view(r) for r in records_of_run]}

    return adapters.cache.get_or_compute(f"dashboard:compliance:{run_id}", records)


def _record_view(record: Any) -> dict[str, Any]:
    def number(value: float | None) -> str | None:
        return None if value is None else _decimal(value, 8)

    return {"MetricId": record.metric_id, "MetricName": record.metric_name, "Metric": record.metric,
            "Status": record.status.value, "ComplianceThreshold": number(record.threshold),
            "ActualValue": number(record.actual), "Direction": record.direction.value,
            "Severity": record.severity.value, "Scenario": record.scenario, "Segment": record.segment,
            "Feature": record.feature, "RunId": record.run_id, "EvaluatedAt": record.evaluated_at.isoformat(),
            "Note": record.note}


def compliance_history(adapters: Adapters, metric_id: str, runs: int = 20) -> dict[str, Any]:
    """The trend of a compliance metric over the latest ``runs`` runs that evaluated it, oldest first."""
    if not metric_id or len(metric_id) > 64:
        raise InvalidArgument(["metric_id: required, at most 64 characters"])
    if not 1 <= runs <= MAX_HISTORY_RUNS:
        raise InvalidArgument([f"runs: between 1 and {MAX_HISTORY_RUNS}"])
    history = adapters.cache.get_or_compute(f"dashboard:compliance-history:{metric_id}:{runs}", lambda: [
        _record_view(r) for r in adapters.results_store.compliance_history(metric_id, runs)] or None)
    if history is None:
        raise NotFound(f"no compliance record of metric {metric_id!r}: no run has evaluated it yet")
    return {"MetricId": metric_id, "records": history}


def run_attribution(adapters: Adapters, run_id: str = "") -> dict[str, Any]:
    """The run-to-run attribution waterfalls of a run: per scenario and measure, the steps in order."""
    run_id = _run_id_or_latest(adapters, run_id)

    def waterfalls() -> dict[str, Any]:
        rows = adapters.results_store.attribution_of_run(run_id, "loan_stress_test")
        previous = rows[0]["previous_run_id"] if rows else None
        grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for row in rows:
            grouped.setdefault(row["scenario_id"], {}).setdefault(row["metric"], []).append(
                {"step": row["step"], "value": row["value"]})
        return {"run_id": run_id, "previous_run_id": previous or None, "scenarios": grouped}

    return adapters.cache.get_or_compute(f"dashboard:attribution:{run_id}", waterfalls)


def top_loss_contributors(adapters: Adapters, run_id: str, scenario_id: str, segment: str,
                          limit: int = 10) -> dict[str, Any]:
    """A segment's largest expected-loss loans in a scenario, largest first, from the result's pre-aggregate
    (runs published before it existed are read from the per-loan results, every row of the segment)."""
    if not 1 <= limit <= MAX_CONTRIBUTORS:
        raise InvalidArgument([f"limit: between 1 and {MAX_CONTRIBUTORS}"])
    run_id = _run_id_or_latest(adapters, run_id)
    return adapters.cache.get_or_compute(f"dashboard:contributors:{run_id}:{scenario_id}:{segment}:{limit}",
                                         lambda: _top_loss_contributors(adapters, run_id, scenario_id, segment, limit))


def _top_loss_contributors(adapters: Adapters, run_id: str, scenario_id: str, segment: str,
                           limit: int) -> dict[str, Any]:
    from pipelines.engine.drilldown import top_loss_contributors as from_loans

    result = _scenario_result(adapters, run_id, scenario_id)
    if segment not in result["metrics"]["exposure_by_segment"]:
        raise NotFound(f"segment {segment!r} is not in run {run_id}; segments: "
                       f"{sorted(result['metrics']['exposure_by_segment'])}")
    kept = result.get("TopLossContributors")
    if kept is None:  # published before the pre-aggregate: every loan of the segment is read once, then cached
        import pyarrow.parquet as pq

        loans = pq.read_table(io.BytesIO(_object_bytes(adapters, result["AffectedLoans"])),
                              filters=[("ProductSegment", "=", segment)])
        kept = from_loans(loans, MAX_CONTRIBUTORS)
    return {"run_id": run_id, "ScenarioId": scenario_id, "Segment": segment,
            "Exposure": _decimal(result["metrics"]["exposure_by_segment"][segment], 2),
            "ExpectedLoss": _decimal(result["metrics"]["loss_by_segment"][segment], 2),
            "loans": [_loan_figures(loan) for loan in kept.get(segment, [])[:limit]]}


def _loan_figures(loan: dict[str, Any]) -> dict[str, Any]:
    """One loan's stored results as the services show them. ``QuarterlyBalance`` is the contractual balance at
    each quarter's end if the loan survives (the engine's amortisation, not net of defaults); empty for results
    published before the engine kept it."""
    return {"LoanId": loan["LoanId"], "ProductSegment": loan["ProductSegment"],
            "ExpectedLoss": _decimal(loan["ExpectedLoss"], 2),
            "ProjectedDefaultRisk": _decimal(loan["ProjectedDefaultRisk"], 10),
            "ProjectedBalance": _decimal(loan["ProjectedBalance"], 2),
            "QuarterlyPD": [_decimal(p, 8) for p in loan["QuarterlyPD"]],
            "QuarterlyBalance": [_decimal(b, 2) for b in loan.get("QuarterlyBalance") or []]}


def _stored_loan(adapters: Adapters, uri: str, loan_id: str) -> dict[str, Any] | None:
    """One loan's row of the per-loan results at ``uri``, or None; reads the file's footer and only the row
    groups whose LoanId range holds it (one, as the reduce step writes the file: engine.drilldown)."""
    from pipelines.adapters.object_store import open_uri_ranges
    from pipelines.adapters.parquet_rows import read_rows_with

    with open_uri_ranges(uri, adapters.settings.aws_region) as file:
        match, _ = read_rows_with(file, "LoanId", loan_id)
    return match.to_pylist()[0] if match.num_rows else None


def _object_bytes(adapters: Adapters, uri: str) -> bytes:
    from pipelines.adapters.object_store import read_uri_bytes

    return read_uri_bytes(uri, adapters.settings.aws_region)


def loan_projection(adapters: Adapters, run_id: str, scenario_id: str, loan_id: str) -> dict[str, Any]:
    """One loan of a scenario: its balance at jump-off (the run's snapshot) and at each quarter's end
    (``QuarterlyBalance``: contractual, if it survives), and its PD term structure (the PD of each quarter
    and the cumulative PD to each quarter's end).

    A loan among its segment's largest contributors is read from the pre-aggregate; any other from the
    per-loan results, reading only the footer and the row group that holds that loan id (:func:`_stored_loan`).
    """
    if not loan_id or len(loan_id) > 64:
        raise InvalidArgument(["loan_id: required, at most 64 characters"])
    run_id = _run_id_or_latest(adapters, run_id)
    return adapters.cache.get_or_compute(f"dashboard:loan:{run_id}:{scenario_id}:{loan_id}",
                                         lambda: _loan_projection(adapters, run_id, scenario_id, loan_id))


def _loan_projection(adapters: Adapters, run_id: str, scenario_id: str, loan_id: str) -> dict[str, Any]:
    result = _scenario_result(adapters, run_id, scenario_id)
    loan = next((kept for segment in (result.get("TopLossContributors") or {}).values() for kept in segment
                 if kept["LoanId"] == loan_id), None)
    if loan is None:
        loan = _stored_loan(adapters, result["AffectedLoans"], loan_id)
        if loan is None:
            raise NotFound(f"loan {loan_id!r} is not in the results of run {run_id}")
    quarterly = [float(p) for p in loan["QuarterlyPD"]]
    cumulative, alive = [], 1.0
    for pd in quarterly:
        alive *= 1.0 - pd
        cumulative.append(1.0 - alive)
    snapshot_loan = adapters.loan_store.loan(result["provenance"]["snapshot_id"], loan_id)
    jump_off = None if snapshot_loan is None else _text(snapshot_loan["CurrentBalance"])
    return {"run_id": run_id, "ScenarioId": scenario_id, **_loan_figures(loan),
            "quarters": list(result["scenario"]["quarters"]), "CumulativePD": [_decimal(p, 10) for p in cumulative],
            "JumpOffBalance": jump_off, "JumpOffQuarter": result["scenario"]["jump_off_quarter"]}


def run_report(adapters: Adapters, run_id: str, report_format: str) -> tuple[bytes, str, str]:
    """A run's report as (content, media type, file name); ``report_format`` is ``html`` or ``pdf``."""
    if report_format not in REPORT_FORMATS:
        raise InvalidArgument([f"format: one of {sorted(REPORT_FORMATS)}"])
    run_id = _run_id_or_latest(adapters, run_id)
    name, media_type = REPORT_FORMATS[report_format]
    uri = _report_uri(_run_step(adapters, run_id, "report"), report_format)
    if uri is None:
        raise NotFound(f"run {run_id!r} has no {report_format} report")
    return _object_bytes(adapters, uri), media_type, f"{_file_stem(run_id)}_{name}"


def _report_uri(report_step: dict[str, Any] | None, report_format: str) -> str | None:
    """Where the report step put the report in ``report_format``, or None when it wrote none."""
    written = ((report_step or {}).get("report") or {}).get(report_format) or {}
    return written.get("uri")


def _file_stem(run_id: str) -> str:
    """A run id made safe for a file name (Airflow run ids carry ':' and '+')."""
    from pipelines.tasks.runs import run_key

    return run_key(run_id)


def run_results_file(adapters: Adapters, run_id: str, scenario_id: str, file_format: str) -> tuple[bytes, str, str]:
    """A scenario's per-loan results (the Simulation Results Schema's AffectedLoans: loan id, segment,
    projected default risk and balance, expected loss, quarterly PDs and balances) as Parquet, or as CSV with
    the quarterly PDs in columns ``PD_Q1`` ... and balances in ``Balance_Q1`` ... (CSV has no lists)."""
    if file_format not in RESULTS_FORMATS:
        raise InvalidArgument([f"format: one of {sorted(RESULTS_FORMATS)}"])
    run_id = _run_id_or_latest(adapters, run_id)
    result = _scenario_result(adapters, run_id, scenario_id)
    content = _object_bytes(adapters, result["AffectedLoans"])
    name = f"{_file_stem(run_id)}_{scenario_id}_results.{file_format}"
    if file_format == "parquet":
        return content, RESULTS_FORMATS[file_format], name
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(content))
    for column, prefix in (("QuarterlyPD", "PD_Q"), ("QuarterlyBalance", "Balance_Q")):
        if column not in table.column_names:  # results published before the engine kept the balance path
            continue
        quarterly = table.column(column)
        table = table.drop_columns([column])
        for quarter in range(quarterly.type.list_size):
            table = table.append_column(f"{prefix}{quarter + 1}", pc.list_element(quarterly, quarter))
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    return buffer.getvalue(), RESULTS_FORMATS[file_format], name


def run_allocation(adapters: Adapters, run_id: str = "") -> dict[str, Any]:
    """The optimise step's allocation of a run: recommended beside current allocation, the change in return,
    EL, CVaR, stressed CET1 and RAROC, binding constraints with shadow prices, and the efficient frontier;
    or why there is none (``status`` ``skipped`` or ``not_run``)."""
    run_id = _run_id_or_latest(adapters, run_id)

    def allocation() -> dict[str, Any]:
        step = _run_step(adapters, run_id, "optimise")
        if step is None:
            return {"run_id": run_id, "status": "not_run", "reason": "the run recorded no optimise step"}
        if step.get("status") != "done":
            return {"run_id": run_id, **step}
        # The step record is a summary; the strategies, limits and frontier are in the optimise document.
        return {"run_id": run_id, **(_allocation_document(adapters, run_id) or step)}

    return adapters.cache.get_or_compute(f"dashboard:allocation:{run_id}", allocation)
