"""The dashboard as a person uses it, in headless Chromium, on a seeded loan_stress_test run.

Numbers on the page are compared with the stored results twice: with the application layer's
documents (what the dashboard must show) and with the raw result documents and per-loan Parquet of
the results store (so a wrong application read cannot agree with itself).
"""

from __future__ import annotations

import io
import re
from urllib.parse import quote

import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.adapters.object_store import read_uri_bytes
from pipelines.services import application

VIEWS = ("view-run", "view-downloads", "view-comparison", "view-scenario", "view-losses", "view-distribution",
         "view-capital", "view-macro", "view-compliance", "view-attribution", "view-drilldown", "view-allocation")


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _percent(value: float) -> str:
    return f"{value * 100:.2f} %"


def _pick(page, dropdown_id: str, option: str) -> None:
    page.click(f"#{dropdown_id}")
    page.get_by_role("option", name=option, exact=True).click()


def _stored(seeded_adapters, run_id: str) -> dict[str, dict]:
    return {r["metrics"]["scenario_id"]: r for r in seeded_adapters.results_store.simulations_of_run(run_id)}


def test_latest_run_comparison_matches_the_stored_results(page, dashboard_url, seeded_run, seeded_adapters):
    page.goto(f"{dashboard_url}/")
    page.wait_for_selector("#comparison")
    assert page.inner_text("#shown-run-id") == seeded_run.run_id  # the latest run by default
    stored = _stored(seeded_adapters, seeded_run.run_id)
    overview = application.run_overview(seeded_adapters, seeded_run.run_id)
    rows = page.locator("#comparison tbody tr")
    assert rows.count() == len(stored) == len(overview["scenarios"])
    for index, figures in enumerate(overview["scenarios"]):
        cells = rows.nth(index).locator("td").all_inner_texts()
        metrics = stored[figures["ScenarioId"]]["metrics"]
        assert cells == [figures["ScenarioId"], f"{metrics['loans']:,}", _money(metrics["exposure"]),
                         _money(metrics["expected_loss"]), _percent(metrics["loss_rate"]),
                         _money(metrics["var"]["0.999"]), _money(metrics["expected_shortfall"]["0.990"]),
                         _percent(metrics["capital"]["min_cet1_ratio"]),
                         _percent(metrics["capital"]["min_tier1_leverage_ratio"])]
        assert cells[3] == _money(float(figures["ExpectedLoss"]))


def test_pick_a_scenario_drill_down_to_a_loan_and_download_the_report(page, dashboard_url, seeded_run,
                                                                       seeded_adapters):
    run_id = seeded_run.run_id
    page.goto(f"{dashboard_url}/runs/{quote(run_id, safe='')}")
    page.wait_for_selector("#scenario-expected-loss")
    stored = _stored(seeded_adapters, run_id)
    _pick(page, "scenario-picker", "2026_baseline")
    baseline = stored["2026_baseline"]["metrics"]
    page.wait_for_function("([id, text]) => document.getElementById(id)?.innerText === text",
                           arg=["scenario-expected-loss", _money(baseline["expected_loss"])])
    assert page.inner_text("#scenario-loss-rate") == _percent(baseline["loss_rate"])
    assert page.inner_text("#scenario-var") == _money(baseline["var"]["0.999"])
    assert page.inner_text("#scenario-min-cet1") == _percent(baseline["capital"]["min_cet1_ratio"])
    segment_rows = page.locator("#segment-table tbody tr")
    assert segment_rows.count() == len(baseline["loss_by_segment"])
    shown = {cells[0]: cells[2] for cells in (segment_rows.nth(i).locator("td").all_inner_texts()
                                              for i in range(segment_rows.count()))}
    assert shown == {s: _money(v) for s, v in baseline["loss_by_segment"].items()}

    # Drill down: the segment of largest expected loss, its largest contributor, that loan.
    segment = max(baseline["loss_by_segment"], key=baseline["loss_by_segment"].get)
    _pick(page, "segment-picker", segment)
    page.wait_for_selector("#contributors-table")
    loans = pq.read_table(io.BytesIO(read_uri_bytes(stored["2026_baseline"]["AffectedLoans"])))
    in_segment = loans.filter(pc.equal(loans.column("ProductSegment"), segment))
    largest = in_segment.take(pc.sort_indices(in_segment, [("ExpectedLoss", "descending")])[:1]).to_pylist()[0]
    first = page.locator("#contributors-table tbody tr").first
    assert first.locator("td").all_inner_texts()[:2] == [largest["LoanId"], _money(largest["ExpectedLoss"])]
    first.locator("button").click()
    page.wait_for_selector("#loan-id")
    assert page.inner_text("#loan-id") == largest["LoanId"]
    assert page.inner_text("#loan-expected-loss") == _money(largest["ExpectedLoss"])
    assert page.inner_text("#loan-projected-balance") == _money(largest["ProjectedBalance"])
    assert page.inner_text("#loan-pd") == _percent(largest["ProjectedDefaultRisk"])
    snapshot_loan = seeded_adapters.loan_store.loan(stored["2026_baseline"]["provenance"]["snapshot_id"],
                                                    largest["LoanId"])
    assert page.inner_text("#loan-jump-off-balance") == _money(float(snapshot_loan["CurrentBalance"]))
    page.wait_for_selector("#loan-chart .main-svg")

    # The report, as the download link gives it, is the run's report byte for byte.
    with page.expect_download() as download:
        page.click("#download-report-html")
    content = download.value.path().read_bytes()
    assert content == application.run_report(seeded_adapters, run_id, "html")[0]
    assert run_id.encode() in content
    assert re.fullmatch(r".*_stress_test_report\.html", download.value.suggested_filename)
    with page.expect_download() as results:
        page.click("#download-results-2026_baseline-parquet")
    downloaded = pq.read_table(results.value.path())
    assert downloaded.equals(loans)

    # Every view at the end, kept under the data home.
    page.wait_for_selector("#macro-chart .main-svg")
    page.wait_for_selector("#compliance-summary")
    for view in VIEWS:
        page.locator(f"#{view}").screenshot(path=str(seeded_run.screenshots / f"{view}.png"))
    page.screenshot(path=str(seeded_run.screenshots / "dashboard.png"), full_page=True)
    assert all((seeded_run.screenshots / f"{view}.png").stat().st_size > 0 for view in VIEWS)


def test_an_unknown_run_says_so(page, dashboard_url):
    page.goto(f"{dashboard_url}/runs/{quote('manual__no-such-run', safe='')}")
    page.wait_for_selector(".dashboard-error")
    assert "NotFound" in page.inner_text(".dashboard-error")


def test_any_loan_shows_its_stored_balance_path_and_pd_term_structure(page, dashboard_url, seeded_run,
                                                                      seeded_adapters):
    """A loan outside every segment's top contributors, typed in: the balance at each quarter's end and the PD
    of each quarter on the page are the per-loan Parquet file's (read here in full, not by the lookup)."""
    import json

    run_id = seeded_run.run_id
    result = _stored(seeded_adapters, run_id)["2026_severely_adverse"]
    document = json.loads(read_uri_bytes(result["AffectedLoans"].rsplit("/", 1)[0] + "/simulation_result.json"))
    kept = {loan["LoanId"] for loans in document["TopLossContributors"].values() for loan in loans}
    loans = pq.read_table(io.BytesIO(read_uri_bytes(result["AffectedLoans"]))).to_pylist()
    loan = next(row for row in reversed(loans) if row["LoanId"] not in kept and row["QuarterlyBalance"][0] > 0)
    page.goto(f"{dashboard_url}/runs/{quote(run_id, safe='')}")
    page.wait_for_selector("#scenario-expected-loss")
    _pick(page, "scenario-picker", "2026_severely_adverse")
    page.fill("#loan-search", loan["LoanId"])
    page.click("#loan-search-button")
    page.wait_for_function("([id, text]) => document.getElementById(id)?.innerText === text",
                           arg=["loan-id", loan["LoanId"]])
    rows = page.locator("#loan-balance-table tbody tr")
    shown = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
    quarters = document["scenario"]["quarters"]
    assert shown == [[quarter, _money(balance), _percent(pd)] for quarter, balance, pd in
                     zip(quarters, loan["QuarterlyBalance"], loan["QuarterlyPD"], strict=True)]
    assert shown[-1][1] == page.inner_text("#loan-projected-balance") == _money(loan["ProjectedBalance"])
    page.wait_for_selector("#loan-balance-chart .main-svg")
