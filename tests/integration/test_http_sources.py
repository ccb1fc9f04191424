"""Macro and market data over HTTP against a loopback server: good, slow, trickling, failing-then-good,
failing, dropped and malformed responses; retries, backoff, Retry-After, the content-addressed cache and
validation before anything reaches a scenario. Nothing here leaves 127.0.0.1."""

from __future__ import annotations

import json
import os
import random
import socket
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pandas as pd
import pytest
from source_server import Reply, SourceServer

from pipelines.adapters.http_source import (
    ContentCache,
    HttpFetcher,
    HttpSourceNotFound,
    HttpSourceRefused,
    HttpSourceRejected,
    HttpSourceUnavailable,
    HttpTimeouts,
    RetryPolicy,
    retry_after_seconds,
)
from pipelines.adapters.object_store import LocalObjectStore
from pipelines.data.macro import FED_DIR, list_scenarios, load_fed_table, load_scenario
from pipelines.data.market_data import fetch_fed_table, fetch_series, parse_series, quarterly_average, save_fed_tables

SCENARIO_FILE = "2026_Proposed_Supervisory_Severely_Adverse_Domestic.csv"
SCENARIO_BYTES = (FED_DIR / SCENARIO_FILE).read_bytes()
TODAY = date(2026, 6, 30)


class RecordedSleep:
    """Stands in for time.sleep: keeps the waits the fetcher asked for instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def server():
    with SourceServer() as running:
        yield running


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
def fetcher(sleep):
    built = HttpFetcher(timeouts=HttpTimeouts(connect=2, read=0.5, attempt=2), retry=RetryPolicy(
        max_attempts=3, base_seconds=0.5, max_seconds=4, max_retry_after_seconds=60), max_bytes=1_000_000,
        sleep=sleep, rng=random.Random(7))
    yield built
    built.close()


@pytest.fixture
def cache(tmp_path: Path) -> ContentCache:
    return ContentCache(LocalObjectStore(tmp_path / "objects"))


def cached_blobs(cache: ContentCache) -> list[str]:
    return cache.store.list_keys(f"{cache.prefix}/sha256/")


def test_a_good_fed_table_arrives_as_the_shipped_file_reads(server, fetcher, cache, sleep) -> None:
    url = server.route(f"/fed/{SCENARIO_FILE}", Reply(body=SCENARIO_BYTES, headers={"Content-Type": "text/csv"}))
    download = fetch_fed_table(url, fetcher=fetcher, cache=cache)
    pd.testing.assert_frame_equal(download.frame, load_fed_table(FED_DIR / SCENARIO_FILE))
    assert download.frame.attrs["scenario_name"] == load_fed_table(FED_DIR / SCENARIO_FILE).attrs["scenario_name"]
    assert download.record.attempts == 1 and not download.record.from_cache and sleep.waits == []
    assert cache.get(download.record.sha256) == SCENARIO_BYTES


def test_a_second_fetch_is_conditional_and_a_recorded_hash_needs_no_network(server, fetcher, cache) -> None:
    path = f"/fed/{SCENARIO_FILE}"
    url = server.route(path, Reply(body=SCENARIO_BYTES, headers={"ETag": '"v1"'}))
    first = fetch_fed_table(url, fetcher=fetcher, cache=cache)
    second = fetch_fed_table(url, fetcher=fetcher, cache=cache)
    assert server.requests[path][1].headers.get("if-none-match") == '"v1"'
    assert second.record.from_cache and second.record.sha256 == first.record.sha256
    pd.testing.assert_frame_equal(second.frame, first.frame)

    pinned = fetch_fed_table(url, fetcher=fetcher, cache=cache, expected_sha256=first.record.sha256)
    assert server.hits(path) == 2 and pinned.record.from_cache and pinned.record.attempts == 0
    pd.testing.assert_frame_equal(pinned.frame, first.frame)


def test_a_source_that_changed_since_the_recorded_hash_is_refused(server, fetcher, cache) -> None:
    url = server.route(f"/fed/{SCENARIO_FILE}", Reply(body=SCENARIO_BYTES))
    with pytest.raises(HttpSourceRejected, match=r"not the expected 0{64}: the source changed"):
        fetch_fed_table(url, fetcher=fetcher, cache=cache, expected_sha256="0" * 64)
    assert cached_blobs(cache) == []


def test_failing_then_good_is_retried_with_backoff_and_retry_after(server, fetcher, cache, sleep) -> None:
    path = f"/flaky/{SCENARIO_FILE}"
    url = server.route(path, Reply(503, b"busy", {"Retry-After": "0"}), Reply(500, b"oops"),
                       Reply(body=SCENARIO_BYTES))
    download = fetch_fed_table(url, fetcher=fetcher, cache=cache)
    assert server.hits(path) == 3 and download.record.attempts == 3
    # The 503 asked for no wait; the 500 got a full-jitter backoff drawn from [0, base * 2**1].
    assert sleep.waits[0] == 0.0 and 0.0 <= sleep.waits[1] <= 1.0 and len(sleep.waits) == 2


def test_a_429_is_retried_after_the_wait_it_asks_for(server, fetcher, cache, sleep) -> None:
    path = f"/limited/{SCENARIO_FILE}"
    url = server.route(path, Reply(429, b"slow down", {"Retry-After": "7"}), Reply(body=SCENARIO_BYTES))
    fetch_fed_table(url, fetcher=fetcher, cache=cache)
    assert sleep.waits == [7.0] and server.hits(path) == 2


def test_a_retry_after_longer_than_allowed_fails_at_once(server, fetcher, cache, sleep) -> None:
    path = f"/limited/{SCENARIO_FILE}"
    url = server.route(path, Reply(429, b"", {"Retry-After": "3600"}))
    with pytest.raises(HttpSourceUnavailable, match="retry after 3600 s, longer than STRESS_HTTP_MAX_RETRY_AFTER"):
        fetch_fed_table(url, fetcher=fetcher, cache=cache)
    assert server.hits(path) == 1 and sleep.waits == []


def test_a_failing_source_gives_up_after_the_attempts_and_says_what_happened(server, fetcher, cache, sleep) -> None:
    path = f"/down/{SCENARIO_FILE}"
    url = server.route(path, Reply(502, b"bad gateway"))
    with pytest.raises(HttpSourceUnavailable, match=r"gave up after 3 attempts .*HTTP 502; HTTP 502; HTTP 502"):
        fetch_fed_table(url, fetcher=fetcher, cache=cache)
    assert server.hits(path) == 3 and len(sleep.waits) == 2 and cached_blobs(cache) == []


def test_a_slow_server_times_out_on_every_attempt(server, fetcher, cache) -> None:
    path = f"/slow/{SCENARIO_FILE}"
    url = server.route(path, Reply(body=SCENARIO_BYTES, delay_seconds=1.5))
    with pytest.raises(HttpSourceUnavailable, match="ReadTimeout"):
        fetch_fed_table(url, fetcher=fetcher, cache=cache)
    assert server.hits(path) == 3


def test_a_trickling_body_is_cut_off_by_the_attempt_timeout(server, sleep, cache) -> None:
    trickle_fetcher = HttpFetcher(timeouts=HttpTimeouts(connect=2, read=2, attempt=0.4),
                                  retry=RetryPolicy(max_attempts=2), sleep=sleep)
    path = f"/trickle/{SCENARIO_FILE}"
    url = server.route(path, Reply(body=SCENARIO_BYTES, trickle_seconds=0.05))
    with pytest.raises(HttpSourceUnavailable, match=r"body not complete after 0\.4 s"):
        fetch_fed_table(url, fetcher=trickle_fetcher, cache=cache)
    assert server.hits(path) == 2


def test_a_dropped_connection_then_good_is_retried(server, fetcher, cache) -> None:
    path = f"/dropping/{SCENARIO_FILE}"
    url = server.route(path, Reply(drop=True), Reply(body=SCENARIO_BYTES))
    assert fetch_fed_table(url, fetcher=fetcher, cache=cache).record.attempts == 2


def test_nothing_listening_is_a_connect_error_on_every_attempt(fetcher, cache) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HttpSourceUnavailable, match="ConnectError"):
        fetch_fed_table(f"http://127.0.0.1:{port}/fed/{SCENARIO_FILE}", fetcher=fetcher, cache=cache)


@pytest.mark.parametrize(("status", "error", "message"), [
    (404, HttpSourceNotFound, "HTTP 404 Not Found: gone; check the URL"),
    (403, HttpSourceRefused, "HTTP 403 Forbidden: gone; check the credentials .* signed URL has expired"),
    (400, HttpSourceRejected, "HTTP 400 Bad Request: gone"),
])
def test_refusals_are_not_retried(server, fetcher, cache, sleep, status, error, message) -> None:
    path = f"/refused/{SCENARIO_FILE}"
    url = server.route(path, Reply(status, b"gone"))
    with pytest.raises(error, match=message):
        fetch_fed_table(url, fetcher=fetcher, cache=cache)
    assert server.hits(path) == 1 and sleep.waits == []


def test_a_body_over_the_size_limit_is_refused(server, sleep, cache) -> None:
    small = HttpFetcher(max_bytes=1000, sleep=sleep)
    url = server.route(f"/big/{SCENARIO_FILE}", Reply(body=SCENARIO_BYTES))
    with pytest.raises(HttpSourceRejected, match="more than STRESS_HTTP_MAX_BYTES=1,000"):
        fetch_fed_table(url, fetcher=small, cache=cache)


def _lines() -> list[str]:
    return SCENARIO_BYTES.decode().splitlines()


def _replace_cell(line_number: int, column: int, value: str) -> bytes:
    lines = _lines()
    cells = lines[line_number].split(",")
    cells[column] = value
    lines[line_number] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


MALFORMED = {
    "html_error_page": (b"<html><body>Service temporarily unavailable</body></html>", "unknown columns"),
    "empty": (b"", "empty file"),
    "missing_column": ("\n".join(",".join(line.split(",")[:-1]) for line in _lines()).encode(),
                       r"missing columns \['Market Volatility Index \(Level\)'\]"),
    "truncated": (SCENARIO_BYTES[: len(SCENARIO_BYTES) // 2], "is missing in 2027Q1 after earlier quarters"),
    "unemployment_in_basis_points": (_replace_cell(1, 6, "670"), r"unemployment_rate = 670 in 2026Q1 is outside"),
    "infinite_yield": (_replace_cell(3, 11, "inf"), "bbb_yield = inf in 2026Q3 is outside"),
    "quarter_gap": (("\n".join(line for n, line in enumerate(_lines()) if n != 4) + "\n").encode(),
                    "quarters must be consecutive and unique, broken at 2027Q1"),
    "bad_date": (_replace_cell(2, 1, "2026-06-30"), "bad quarter '2026-06-30'"),
    "text_in_a_number": (_replace_cell(2, 2, "n/a"), "non-numeric 'Real GDP growth' value 'n/a' in 2026Q2"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_table_is_refused_and_not_cached(server, fetcher, cache, case) -> None:
    body, message = MALFORMED[case]
    url = server.route(f"/malformed/{SCENARIO_FILE}", Reply(body=body))
    with pytest.raises(HttpSourceRejected, match=message) as refused:
        fetch_fed_table(url, fetcher=fetcher, cache=cache)
    assert "(sha256 " in str(refused.value)
    assert cached_blobs(cache) == [] and cache.recall(url) is None


def test_accepted_tables_become_scenarios_and_others_are_not_saved(server, fetcher, cache, tmp_path: Path) -> None:
    url = server.route(f"/fed/{SCENARIO_FILE}", Reply(body=SCENARIO_BYTES))
    download = fetch_fed_table(url, fetcher=fetcher, cache=cache)
    folder = tmp_path / "fed"
    assert save_fed_tables([download], folder) == [folder / SCENARIO_FILE]
    assert list(list_scenarios(folder)) == ["2026_severely_adverse"]
    pd.testing.assert_frame_equal(load_scenario("2026_severely_adverse", folder), download.frame)

    odd = fetch_fed_table(server.route("/fed/latest.csv", Reply(body=SCENARIO_BYTES)), fetcher=fetcher, cache=cache)
    with pytest.raises(ValueError, match=r"'latest\.csv' is not named as the Fed names its tables"):
        save_fed_tables([odd], tmp_path / "other")
    assert not (tmp_path / "other").exists()


FRED_JSON = json.dumps({"observations": [
    {"realtime_start": "2026-06-01", "date": "2026-01-01", "value": "4.0"},
    {"realtime_start": "2026-06-01", "date": "2026-02-01", "value": "4.2"},
    {"realtime_start": "2026-06-01", "date": "2026-03-01", "value": "4.4"},
    {"realtime_start": "2026-06-01", "date": "2026-04-01", "value": "."},
    {"realtime_start": "2026-06-01", "date": "2026-05-01", "value": "4.6"},
]}).encode()
FRED_CSV = b"observation_date,UNRATE\n2026-01-01,4.0\n2026-02-01,4.2\n2026-03-01,4.4\n2026-04-01,.\n2026-05-01,4.6\n"


@pytest.mark.parametrize("body", [FRED_JSON, FRED_CSV], ids=["json", "csv"])
def test_a_fred_series_by_url_with_its_api_key_redacted(server, fetcher, cache, body) -> None:
    url = server.route("/fred/series/observations", Reply(body=body))
    series, record = fetch_series(f"{url}?series_id=UNRATE&api_key=0123secret&file_type=json", "unemployment_rate",
                                  fetcher=fetcher, cache=cache, today=TODAY)
    assert series.name == "unemployment_rate"
    assert series.index.tolist() == [pd.Timestamp(f"2026-0{m}-01") for m in range(1, 6)]
    assert series.iloc[:3].tolist() == [4.0, 4.2, 4.4] and pd.isna(series.iloc[3])
    assert "0123secret" not in record.url and "api_key=***" in record.url
    quarterly = quarterly_average(series)
    assert quarterly.index.astype(str).tolist() == ["2026Q1", "2026Q2"]
    assert quarterly.tolist() == pytest.approx([4.2, 4.6])


@pytest.mark.parametrize(("body", "message"), [
    (b'{"error_code": 400, "error_message": "Bad Request. The value for variable api_key is not registered."}',
     "needs an 'observations' list"),
    (b"observation_date,UNRATE\n2026-01-01,4.0\n01/02/2026,4.1\n", "observation 2 has date '01/02/2026'"),
    (b"observation_date,UNRATE\n2026-02-01,4.0\n2026-01-01,4.1\n", "strictly increasing, 2026-01-01 follows"),
    (b"observation_date,UNRATE\n2026-01-01,4.0\n2026-01-01,4.1\n", "strictly increasing"),
    (b"observation_date,UNRATE\n2026-01-01,4.0\n2031-01-01,4.1\n", "dated 2031-01-01, after today"),
    (b"observation_date,UNRATE\n2026-01-01,0.04\n2026-02-01,420\n", "unemployment_rate = 420 .* outside"),
    (b"observation_date,UNRATE\n2026-01-01,four\n", "value 'four', not a number"),
    (b"observation_date,UNRATE\n2026-01-01,.\n", "every value is missing"),
    (b"when,what,why\n2026-01-01,4.0,x\n", "a CSV series has two columns"),
    (b"observation_date,UNRATE\n", "no observations"),
])
def test_a_malformed_series_is_refused_naming_the_fault(body, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_series(body, "observations", "unemployment_rate", today=TODAY)


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    policy, rng = RetryPolicy(base_seconds=1.0, max_seconds=8.0), random.Random(11)
    for retry, cap in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (9, 8.0)):
        draws = [policy.backoff_seconds(retry, rng) for _ in range(400)]
        assert min(draws) >= 0.0 and max(draws) <= cap
        assert max(draws) > 0.9 * cap and min(draws) < 0.1 * cap  # spread over the whole interval


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None


def test_fetch_macro_saves_validated_tables_where_the_scenarios_read_them(server, tmp_path, monkeypatch, capsys):
    from pipelines.cli.main import main
    from pipelines.settings import get_settings

    for name in [n for n in os.environ if n.startswith("STRESS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("STRESS_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STRESS_HTTP_MAX_ATTEMPTS", "1")
    get_settings.cache_clear()
    try:
        good = server.route(f"/fed/{SCENARIO_FILE}", Reply(body=SCENARIO_BYTES))
        main(["fetch-macro", good, "--into", str(tmp_path / "fed")])
        assert f"13 quarters 2026Q1..2029Q1 from {good}, sha256 " in capsys.readouterr().out
        assert (tmp_path / "fed" / SCENARIO_FILE).read_bytes() == SCENARIO_BYTES
        assert list(list_scenarios(tmp_path / "fed")) == ["2026_severely_adverse"]
        assert cached_blobs(ContentCache(LocalObjectStore(tmp_path / "home" / "objects")))  # cached in the store

        bad = server.route("/bad/2026_Proposed_Supervisory_Baseline_Domestic.csv",
                           Reply(body=MALFORMED["unemployment_in_basis_points"][0]))
        with pytest.raises(SystemExit) as stop:
            main(["fetch-macro", bad, "--into", str(tmp_path / "fed")])
        assert stop.value.code == 2 and "outside the plausible range" in capsys.readouterr().err
        assert sorted(p.name for p in (tmp_path / "fed").iterdir()) == [SCENARIO_FILE]
    finally:
        get_settings.cache_clear()


def test_a_download_writes_the_body_to_a_file_with_the_same_retries_and_limits(server, fetcher, sleep,
                                                                               tmp_path: Path) -> None:
    path = f"/tapes/{SCENARIO_FILE}"
    url = server.route(path, Reply(503, b"busy", {"Retry-After": "0"}), Reply(body=SCENARIO_BYTES))
    target = tmp_path / "tape.csv"
    result = fetcher.download(url, target)
    assert target.read_bytes() == SCENARIO_BYTES and result.content == b"" and result.attempts == 2
    assert server.hits(path) == 2 and sleep.waits == [0.0]

    small = HttpFetcher(max_bytes=1000, sleep=sleep)
    with pytest.raises(HttpSourceRejected, match="STRESS_HTTP_MAX_BYTES=1,000"):
        small.download(server.route("/big.csv", Reply(body=SCENARIO_BYTES)), tmp_path / "big.csv")
    expired = server.route("/expired.csv", Reply(403, b"Request has expired"))
    with pytest.raises(HttpSourceRefused, match="HTTP 403 Forbidden: Request has expired") as refused:
        fetcher.download(expired, tmp_path / "expired.csv")
    assert not (tmp_path / "expired.csv").exists() and "sign a new one" in str(refused.value)


def test_a_re_signed_url_of_the_same_table_is_the_same_cached_source(server, fetcher, cache) -> None:
    path = f"/fed/{SCENARIO_FILE}"
    url = server.route(path, Reply(body=SCENARIO_BYTES, headers={"ETag": '"v1"'}))

    def signed(at: str, signature: str) -> str:
        return (f"{url}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F{at[:8]}%2Fus-east-1%2Fs3"
                f"%2Faws4_request&X-Amz-Date={at}&X-Amz-Expires=900&X-Amz-SignedHeaders=host"
                f"&X-Amz-Signature={signature}")

    first = fetch_fed_table(signed("20260630T120000Z", "a" * 64), fetcher=fetcher, cache=cache)
    second = fetch_fed_table(signed("20260701T080000Z", "b" * 64), fetcher=fetcher, cache=cache)
    assert server.requests[path][1].headers.get("if-none-match") == '"v1"'
    assert second.record.from_cache and second.record.sha256 == first.record.sha256
    other = server.route("/fed/other.csv", Reply(body=SCENARIO_BYTES))
    fetch_fed_table(other + "?X-Amz-Date=20260701T080000Z", fetcher=fetcher, cache=cache)
    assert "if-none-match" not in server.requests["/fed/other.csv"][0].headers  # another object, another source
