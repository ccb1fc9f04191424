"""Macro and market data by URL: the Fed's scenario tables and FRED-style series, validated before use.

Both go through :func:`pipelines.adapters.http_source.fetch_validated` (timeouts, retries with
backoff, the content-addressed cache) with a parser that accepts only what a scenario can use:

* a **Fed table** (history or supervisory scenario) is parsed by the same
  :func:`pipelines.data.macro.parse_fed_table` as the shipped files: exact columns, consecutive unique
  quarters, numbers within :data:`~pipelines.data.macro.PLAUSIBLE_RANGES`;
* a **series** (FRED's ``series/observations`` JSON, or a two-column CSV as FRED's graph download
  gives: ``observation_date,UNRATE``) is read as dated observations: ISO dates strictly increasing,
  none after today, numbers (FRED's ``.`` is a missing value) within the plausible range of the macro
  variable it stands for, at least one value.

A download that fails a check raises :class:`~pipelines.adapters.http_source.HttpSourceRejected`
(a ValueError) naming the URL, the body's hash and the first offending value; nothing of it is cached.
:func:`save_fed_tables` writes accepted tables where the scenarios read them, under the Fed's own
file names, so a table published at a URL becomes a scenario id only after it passed.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from pipelines.adapters.http_source import ContentCache, FetchRecord, HttpFetcher, fetch_validated
from pipelines.data.macro import PLAUSIBLE_RANGES, check_plausible, is_fed_table_name, parse_fed_table

FRED_MISSING = "."


@dataclass(frozen=True)
class FedTableDownload:
    """A validated Fed table and where its bytes came from."""

    file_name: str
    frame: pd.DataFrame
    content: bytes  # the bytes that were validated, as published
    record: FetchRecord


def url_file_name(url: str) -> str:
    """The last path segment of ``url`` (the Fed's file name), without query or fragment."""
    name = unquote(urlparse(url).path.rsplit("/", 1)[-1])
    if not name:
        raise ValueError(f"{url}: the URL's path names no file")
    return name


def fetch_fed_table(url: str, *, fetcher: HttpFetcher, cache: ContentCache,
                    expected_sha256: str | None = None) -> FedTableDownload:
    """The Fed CSV table at ``url`` as the canonical quarterly frame, validated, cached by content hash."""
    name = url_file_name(url)
    (frame, content), record = fetch_validated(url, lambda data: (parse_fed_table(data, name), data),
                                               fetcher=fetcher, cache=cache, expected_sha256=expected_sha256)
    return FedTableDownload(name, frame, content, record)


def save_fed_tables(downloads: list[FedTableDownload], directory: Path) -> list[Path]:
    """Write accepted tables into ``directory`` (e.g. ``scenarios/fed``) under their file names, atomically.

    A name the scenarios would not recognise (``*_Historic_Domestic.csv``,
    ``*Supervisory_<Baseline|Severely_Adverse>_Domestic.csv``) is refused, so nothing lands unused.
    The bytes written are the cached bytes that were validated, unchanged.
    """
    written = []
    for download in downloads:
        if not is_fed_table_name(download.file_name):
            raise ValueError(f"{download.record.url}: {download.file_name!r} is not named as the Fed names its "
                             "tables (YYYY..._Historic_Domestic.csv or YYYY..._Supervisory_Baseline_Domestic.csv "
                             "/ _Supervisory_Severely_Adverse_Domestic.csv), so no scenario would read it")
    directory.mkdir(parents=True, exist_ok=True)
    for download in downloads:
        target = directory / download.file_name
        temporary = target.with_name(f".{target.name}.part")
        temporary.write_bytes(download.content)
        temporary.replace(target)
        written.append(target)
    return written


def parse_series(data: bytes, name: str, variable: str, today: date | None = None) -> pd.Series:
    """Dated observations of one series (FRED JSON or two-column CSV), checked as the module docstring says.

    ``variable`` is the canonical macro variable the series stands for (``unemployment_rate`` for
    FRED's UNRATE); its plausible range applies. Returns a float Series on a DatetimeIndex named
    ``date``, NaN where the source says the value is missing.
    """
    if variable not in PLAUSIBLE_RANGES:
        raise ValueError(f"unknown macro variable {variable!r}; known: {', '.join(PLAUSIBLE_RANGES)}")
    text = data.decode("utf-8-sig", errors="strict") if data else ""
    if not text.strip():
        raise ValueError(f"{name}: empty body")
    pairs = _json_observations(text, name) if text.lstrip().startswith("{") else _csv_observations(text, name)
    if not pairs:
        raise ValueError(f"{name}: no observations")
    dates, values = [], []
    for number, (raw_date, raw_value) in enumerate(pairs, start=1):
        try:
            dates.append(date.fromisoformat(raw_date.strip()))
        except ValueError:
            raise ValueError(f"{name}: observation {number} has date {raw_date!r}, expected YYYY-MM-DD") from None
        raw_value = raw_value.strip()
        try:
            values.append(np.nan if raw_value in (FRED_MISSING, "") else float(raw_value))
        except ValueError:
            raise ValueError(f"{name}: observation {number} ({raw_date}) has value {raw_value!r}, not a number") \
                from None
    for number in range(1, len(dates)):
        if dates[number] <= dates[number - 1]:
            raise ValueError(f"{name}: dates must be strictly increasing, {dates[number]} follows "
                             f"{dates[number - 1]} (observation {number + 1})")
    if dates[-1] > (today or date.today()):
        raise ValueError(f"{name}: observation dated {dates[-1]}, after today: not an observed series")
    series = pd.Series(values, index=pd.DatetimeIndex(dates, name="date"), name=variable, dtype=float)
    if series.isna().all():
        raise ValueError(f"{name}: every value is missing")
    check_plausible(series.to_frame(), name)
    return series


def _json_observations(text: str, name: str) -> list[tuple[str, str]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{name}: not valid JSON ({error})") from None
    observations = document.get("observations") if isinstance(document, dict) else None
    if not isinstance(observations, list):
        raise ValueError(f"{name}: a JSON series needs an 'observations' list (FRED series/observations)")
    pairs = []
    for number, item in enumerate(observations, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("date"), str) or "value" not in item:
            raise ValueError(f"{name}: observation {number} is not an object with 'date' and 'value'")
        pairs.append((item["date"], str(item["value"])))
    return pairs


def _csv_observations(text: str, name: str) -> list[tuple[str, str]]:
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    header = rows[0] if rows else []
    if len(header) != 2 or header[0].strip().lower() not in {"date", "observation_date"}:
        raise ValueError(f"{name}: a CSV series has two columns, a date (DATE or observation_date) and the "
                         f"value; the header is {header}")
    bad = next((number for number, row in enumerate(rows[1:], start=2) if len(row) != 2), None)
    if bad is not None:
        raise ValueError(f"{name}: line {bad} has {len(rows[bad - 1])} fields, expected 2")
    return [(row[0], row[1]) for row in rows[1:]]


def fetch_series(url: str, variable: str, *, fetcher: HttpFetcher, cache: ContentCache,
                 expected_sha256: str | None = None, today: date | None = None) -> tuple[pd.Series, FetchRecord]:
    """The series at ``url`` standing for macro ``variable``, validated, cached by content hash."""
    name = url_file_name(url)
    return fetch_validated(url, lambda data: parse_series(data, name, variable, today), fetcher=fetcher,
                           cache=cache, expected_sha256=expected_sha256)


def quarterly_average(series: pd.Series) -> pd.Series:
    """Mean of the observations in each calendar quarter, on a quarterly PeriodIndex (the Fed's tables
    average monthly rates and unemployment over the quarter the same way); quarters with no value are NaN."""
    quarters = series.index.to_period("Q")
    averaged = series.groupby(quarters).mean()
    averaged.index = pd.PeriodIndex(averaged.index, freq="Q", name="quarter")
    return averaged
