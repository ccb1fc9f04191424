"""The application layer of the services over real stores: embedded (SQLite, in-process cache) and
PostgreSQL with Redis (a database and a key prefix of its own per test; failed under CI=true when
either is unreachable).

Results and compliance records are published through the results store from hand-built documents
whose figures are known, so every number the services return is checked against its source.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from services_support import RUN_ID, ingest_tape, publish_known_results, record

from pipelines.compliance.rules import Status

# Loans ------------------------------------------------------------------------------------------

def test_get_loan_reads_the_latest_snapshot(adapters, valid_tape_rows, tmp_path, write_csv):
    from pipelines.services.application import get_loan
    from pipelines.services.errors import FailedPrecondition, InvalidArgument, NotFound

    with pytest.raises(FailedPrecondition, match="no loan snapshot"):
        get_loan(adapters, "M-0001")
    ingest_tape(valid_tape_rows[:10], tmp_path, write_csv, "first")
    moved = [dict(r) for r in valid_tape_rows]
    moved[0]["InterestRate"] = "0.0700"
    manifest = ingest_tape(moved, tmp_path, write_csv, "second")
    view = get_loan(adapters, "M-0001")
    assert view["snapshot_id"] == manifest["snapshot_id"]
    assert view["loan"]["InterestRate"] == "0.07000000"  # decimal(12, 8) exactly, as text
    assert view["loan"]["CurrentBalance"] == "318250.12"
    assert view["loan"]["LoanStartDate"] == "2019-03-15"
    assert view["version"] == 0 and view["etag"] == f"{manifest['snapshot_id']}.0"
    assert get_loan(adapters, "R-0004")["loan"]["RateMargin"] == "0.03000000"
    with pytest.raises(NotFound, match="NOPE"):
        get_loan(adapters, "NOPE")
    with pytest.raises(InvalidArgument):
        get_loan(adapters, "")


def test_update_is_an_amendment_the_next_ingest_applies(adapters, valid_tape_rows, tmp_path, write_csv):
    from pipelines.services.application import get_loan, loan_history, update_loan

    first = ingest_tape(valid_tape_rows, tmp_path, write_csv, "first")
    before = get_loan(adapters, "M-0001")
    updated = update_loan(adapters, "M-0001", before["etag"], {"InterestRate": "0.0725", "DaysPastDue": "30"},
                          actor="risk-analyst@bank", reason="repriced")
    amendment = updated["amendment"]
    assert amendment["changes"] == {"InterestRate": {"old": "0.06500000", "new": "0.0725"},
                                    "DaysPastDue": {"old": "0", "new": "30"}}
    assert amendment["actor"] == "risk-analyst@bank" and amendment["status"] == "pending"
    assert updated["version"] == 1 and updated["etag"] == f"{first['snapshot_id']}.1"
    assert updated["loan"]["InterestRate"] == "0.0725" and updated["loan"]["DaysPastDue"] == "30"
    # The published snapshot is untouched: the stored loan still has the tape's rate.
    stored = adapters.loan_store.loan(first["snapshot_id"], "M-0001")
    assert stored["InterestRate"] == Decimal("0.06500000")

    second = ingest_tape(valid_tape_rows, tmp_path, write_csv, "second")
    assert second["amendments"] == {amendment["amendment_id"]: ["applied", "version 1 applied"]}
    assert second["snapshot_id"] != first["snapshot_id"]
    assert adapters.loan_store.loan(second["snapshot_id"], "M-0001")["InterestRate"] == Decimal("0.07250000")
    assert adapters.loan_store.loan(second["snapshot_id"], "M-0001")["DaysPastDue"] == 30
    after = get_loan(adapters, "M-0001")
    assert after["pending_amendments"] == [] and after["etag"] == f"{second['snapshot_id']}.1"
    history = loan_history(adapters, "M-0001")
    assert [(h["status"], h["ingestion_id"], h["snapshot_id"]) for h in history] == [
        ("applied", second["ingestion_id"], second["snapshot_id"])]
    # A third ingest has nothing left to apply.
    assert ingest_tape(valid_tape_rows, tmp_path, write_csv, "third")["amendments"] == {}


def test_an_amendment_the_new_tape_contradicts_is_rejected(adapters, valid_tape_rows, tmp_path, write_csv):
    from pipelines.services.application import get_loan, loan_history, update_loan

    ingest_tape(valid_tape_rows, tmp_path, write_csv, "first")
    # A-0001: amount 32000.00; balance 33000.00 is within the 5 % tolerance of today's tape...
    update_loan(adapters, "A-0001", get_loan(adapters, "A-0001")["etag"], {"CurrentBalance": "33000.00"},
                actor="ops")
    shrunk = [dict(r) for r in valid_tape_rows]
    shrunk[8]["LoanAmount"] = "30000.00"  # ...but not of the next tape's amount
    second = ingest_tape(shrunk, tmp_path, write_csv, "second")
    (outcome,) = second["amendments"].values()
    assert outcome[0] == "rejected" and "balance_within_amount" in outcome[1]
    assert adapters.loan_store.loan(second["snapshot_id"], "A-0001")["CurrentBalance"] == Decimal("21450.33")
    assert loan_history(adapters, "A-0001")[0]["status"] == "rejected"


def test_update_validation(adapters, valid_tape_rows, tmp_path, write_csv):
    from pipelines.services.application import get_loan, update_loan
    from pipelines.services.errors import InvalidArgument, StaleVersion

    ingest_tape(valid_tape_rows, tmp_path, write_csv, "first")
    etag = get_loan(adapters, "M-0001")["etag"]
    for changes, reason in [
        ({"InterestRate": "NaN"}, "not a decimal"), ({"InterestRate": "Infinity"}, "not a decimal"),
        ({"InterestRate": ""}, "not a decimal"), ({"InterestRate": "1e-2"}, "not a decimal"),
        ({"InterestRate": "0.123456789"}, "more than 8 decimal places"),
        ({"InterestRate": "0.41"}, "range:InterestRate"), ({"CurrentBalance": "10.001"}, "2 decimal places"),
        ({"CurrentBalance": "400000.00"}, "balance_within_amount"),
        ({"RateMargin": "0.01"}, "variable_rate_terms"),  # a fixed-rate loan has no margin
        ({"CollateralValue": None}, "secured_has_collateral"), ({"LoanAmount": "1.00"}, "not an updatable field"),
        ({"InterestRate": None}, "cannot be cleared"), ({"DaysPastDue": "-1"}, "whole number"),
        ({}, "no field to change"), ({"InterestRate": "0.0650"}, "changes nothing"),
    ]:
        with pytest.raises(InvalidArgument, match=reason):
            update_loan(adapters, "M-0001", etag, changes, actor="t")
    with pytest.raises(StaleVersion, match="current etag"):
        update_loan(adapters, "M-0001", etag + "0", {"InterestRate": "0.07"}, actor="t")
    assert adapters.service_store.amendments_of_loan("M-0001") == []  # nothing half-written


def test_concurrent_updates_from_one_etag_commit_once(adapters, valid_tape_rows, tmp_path, write_csv):
    from pipelines.services.application import get_loan, update_loan
    from pipelines.services.errors import StaleVersion

    ingest_tape(valid_tape_rows, tmp_path, write_csv, "first")
    etag = get_loan(adapters, "M-0001")["etag"]
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def update(rate: str) -> None:
        start.wait()
        try:
            update_loan(adapters, "M-0001", etag, {"InterestRate": rate}, actor=f"writer-{rate}")
            outcomes.append("committed")
        except StaleVersion:
            outcomes.append("stale")

    threads = [threading.Thread(target=update, args=(f"0.07{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["committed", "stale", "stale", "stale"]
    assert [a["version"] for a in adapters.service_store.amendments_of_loan("M-0001")] == [1]


# Results, runs and compliance -----------------------------------------------------------------------

def test_results_by_run_scenario_segment_and_loan(adapters):
    from pipelines.services.application import get_results, list_runs
    from pipelines.services.errors import NotFound

    with pytest.raises(NotFound):
        get_results(adapters)
    result = publish_known_results(adapters)
    (run,) = list_runs(adapters)
    assert run["airflow_run_id"] == RUN_ID and run["simulations"] == {"2026_severely_adverse": result["SimulationId"]}
    latest = get_results(adapters)
    assert latest["run_id"] == RUN_ID
    (summary,) = latest["results"]
    assert summary["OverallImpact"] == "135.00" and summary["InterestRateScenario"] == "-0.027500"
    assert summary["VaR999"] == "900.50" and summary["MinCET1Ratio"] == "0.10100000"
    segment = get_results(adapters, run_id=RUN_ID, scenario_id="2026_severely_adverse", segment="heloc")
    assert segment["results"][0]["Segment"] == {"Segment": "heloc", "Exposure": "300.25", "ExpectedLoss": "60.00",
                                                "LossRate": "0.20000000"}
    loan = get_results(adapters, loan_id="B-2")["results"][0]["Loan"]
    assert loan["ProjectedDefaultRisk"] == "0.0625000000" and loan["ProjectedBalance"] == "2000.50"
    assert loan["QuarterlyPD"] == ["0.03000000", "0.04000000"]
    assert loan["QuarterlyBalance"] == ["2500.25", "2000.50"]
    for kwargs, message in [({"segment": "boats"}, "segment 'boats'"), ({"loan_id": "Z-9"}, "loan 'Z-9'"),
                            ({"run_id": "other"}, "run 'other'"), ({"scenario_id": "nope"}, "scenario 'nope'")]:
        with pytest.raises(NotFound, match=message):
            get_results(adapters, **kwargs)


def test_check_compliance_is_the_latest_run_and_the_cache_follows_publication(adapters):
    from pipelines.services.application import check_compliance
    from pipelines.services.errors import NotFound
    from pipelines.tasks.compliance import compliance_outcome

    with pytest.raises(NotFound, match="CET1_MIN"):
        check_compliance(adapters, "CET1_MIN")
    old_run = "manual__old"
    adapters.results_store.save_compliance(old_run, "loan_stress_test", [
        record(old_run, Status.COMPLIANT, 0.09, "2026_baseline", 1)])
    status = check_compliance(adapters, "CET1_MIN")
    assert status["Status"] == "Compliant" and status["RunId"] == old_run
    assert status["ActualValue"] == "0.09000000" and status["ComplianceThreshold"] == "0.07000000"
    # A later run breaches in one scenario; storing it the way the DAG does invalidates the cached status.
    compliance_outcome(adapters, [record(RUN_ID, Status.COMPLIANT, 0.08, "2026_baseline", 2),
                                  record(RUN_ID, Status.NON_COMPLIANT, 0.05, "2026_severely_adverse", 2)],
                       RUN_ID, "loan_stress_test")
    status = check_compliance(adapters, "CET1_MIN")
    assert status["Status"] == "Non-Compliant" and status["RunId"] == RUN_ID
    assert status["Scenario"] == "2026_severely_adverse" and status["ActualValue"] == "0.05000000"
    assert "Non-Compliant in 1 of 2 checks" in status["Message"] and "5.00 %" in status["Message"]
    assert len(status["Records"]) == 2


def test_cache_serves_until_invalidated(adapters):
    calls = []

    def compute():
        calls.append(1)
        return {"n": len(calls)}

    assert adapters.cache.get_or_compute("probe", compute) == {"n": 1}
    assert adapters.cache.get_or_compute("probe", compute) == {"n": 1}
    adapters.cache.invalidate()
    assert adapters.cache.get_or_compute("probe", compute) == {"n": 2}


def test_run_simulation_validates_before_starting(adapters):
    from pipelines.services.application import get_simulation, run_simulation
    from pipelines.services.errors import InvalidArgument, NotFound

    for kwargs, message in [({"interest_rate_scenario": "NaN"}, "not a decimal"),
                            ({"interest_rate_scenario": "0.00015"}, "whole basis points"),
                            ({"interest_rate_scenario": "0.2"}, "whole basis points"),
                            ({"scenario_description": " "}, "scenario_description"),
                            ({"scenario_ids": ["../etc"]}, "unknown"), ({"n_paths": 5}, "n_paths"),
                            ({"as_of_date": "2025-13-01"}, "as_of_date")]:
        arguments = {"scenario_description": "rates up", "interest_rate_scenario": "0.03", **kwargs}
        with pytest.raises(InvalidArgument, match=message):
            run_simulation(adapters, requested_by="t", **arguments)
    with pytest.raises(NotFound):
        get_simulation(adapters, "svc__unknown")


# Allocation --------------------------------------------------------------------------------------

def test_allocation_of_a_run_beside_the_current_book(adapters):
    from services_support import publish_known_allocation

    from pipelines.services.application import get_allocation
    from pipelines.services.errors import FailedPrecondition, InvalidArgument, NotFound
    from pipelines.tasks.runs import record_step

    with pytest.raises(NotFound, match="no published results"):
        get_allocation(adapters)
    publish_known_results(adapters)
    with pytest.raises(FailedPrecondition, match="has not finished"):
        get_allocation(adapters)
    record_step(adapters.object_store, RUN_ID, "optimise", {"status": "skipped",
                                                           "reason": "the optimise parameter is off"})
    with pytest.raises(FailedPrecondition, match="the optimise parameter is off"):
        get_allocation(adapters, RUN_ID)
    document = publish_known_allocation(adapters)
    assert document["strategies"]["max_return"]["status"] == "optimal"
    allocation = get_allocation(adapters)  # the latest run, the appetite's strategy
    assert (allocation["run_id"], allocation["strategy"], allocation["status"]) == (RUN_ID, "max_return", "optimal")
    assert allocation["scenario_id"] == "2026_severely_adverse" and allocation["baseline_scenario"] == "2026_baseline"
    assert [(a["name"], a["current"], a["recommended"]) for a in allocation["assets"]] == [
        ("auto", "100.00", "130.00"), ("heloc", "100.00", "120.00")]
    # The whole budget is lent (its use is at least 100 % and at most the budget) and auto is at its bound.
    assert {b["name"] for b in allocation["binding"]} == {"total budget", "minimum budget use", "growth bound auto"}
    shadow = {b["name"]: Decimal(b["shadow_price"]) for b in allocation["binding"]}
    assert shadow["growth bound auto"] == shadow["minimum budget use"] == Decimal("0.015000000000")
    assert shadow["total budget"] == 0
    assert all(b["objective"] == "expected return (dollars)" for b in allocation["binding"])
    current, recommended, change = allocation["current"], allocation["recommended"], allocation["change"]
    assert (current["exposure"], recommended["exposure"]) == ("200.00", "250.00")
    assert (current["expected_return"], recommended["expected_return"], change["expected_return"]) == (
        "-1.50", "-1.80", "-0.30")
    assert (current["expected_loss"], recommended["expected_loss"], current["cvar"]) == ("8.00", "10.00", "20.00")
    # Each change is the recommended minus the current measure.
    for name in ("expected_return", "expected_loss", "cvar", "raroc"):
        assert float(change[name]) == pytest.approx(float(Decimal(recommended[name]) - Decimal(current[name])),
                                                    abs=1e-6 if name == "raroc" else 0.011)
    # No capital path in this run: the stressed CET1 measures are undefined, not NaN.
    assert current["min_cet1_ratio"] is None and current["min_cet1_quarter"] is None
    assert allocation["limits"]["budget"] == "250.00" and allocation["frontier"]
    other = get_allocation(adapters, RUN_ID, "min_cvar")
    assert other["strategy"] == "min_cvar" and other["status"] == document["strategies"]["min_cvar"]["status"]
    with pytest.raises(InvalidArgument, match="strategy"):
        get_allocation(adapters, RUN_ID, "max_luck")
    with pytest.raises(NotFound, match="nope"):
        get_allocation(adapters, "nope")
