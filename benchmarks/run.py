"""``make bench``: run the benchmarks, print their figures, merge them into ``.bench/results.json``.

Each benchmark runs in its own process so its ``peak_rss_mb`` is its own. ``make bench BENCH=name``
runs one; the few that take tens of minutes (``ON_REQUEST``) run only when named. Inputs
(synthetic books) are cached in ``.bench/inputs`` so re-runs time the work, not the data generation.
Each benchmark's entry is ``{"figures": ..., "measured": ...}``, the latter saying on which commit
(dirty or not), CPU, cores and date (UTC) it ran, because entries of different runs are merged.
``.bench/results.md`` renders all entries as a markdown table for the README.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BENCH_DIR,
    ON_REQUEST,
    REGISTRY,
    RESULTS,
    RESULTS_MARKDOWN,
    measurement_record,
    peak_rss_mb,
)


def _load_modules() -> None:
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        __import__(f"benchmarks.{path.stem}")


def run_one(name: str) -> dict[str, float]:
    _load_modules()
    figures = REGISTRY[name]()
    figures.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    return figures


def _format(value: object) -> str:
    return f"{value:,}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per benchmark: its figures, and the commit, CPU and date they were measured on."""
    lines = ["| benchmark | figures | measured on |", "| --- | --- | --- |"]
    for name, entry in results.items():
        figures = "; ".join(f"{key} {_format(value)}" for key, value in entry["figures"].items())
        measured = entry["measured"]
        where = (f"`{measured['commit'][:10]}`{' (dirty)' if measured['dirty'] else ''}, {measured['cpu_model']}, "
                 f"{measured['cores']} cores, {measured['date_utc']}")
        lines.append(f"| `{name}` | {figures} | {where} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    _load_modules()
    if argv[:1] == ["--child"]:
        print(json.dumps(run_one(argv[1])))
        return
    unknown = [name for name in argv if name not in REGISTRY]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {sorted(REGISTRY)}")
    BENCH_DIR.mkdir(exist_ok=True)
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    # Entries of an older format have no measurement record: nobody can say what they measured.
    results = {name: entry for name, entry in saved.items() if "measured" in entry}
    for name in argv or [name for name in REGISTRY if name not in ON_REQUEST]:
        print(f"== {name}", flush=True)
        measured = measurement_record()  # before the run: the tree as the benchmark ran it
        child = subprocess.run([sys.executable, "-m", "benchmarks.run", "--child", name],
                               capture_output=True, text=True)
        if child.returncode != 0:
            print(child.stdout[-2000:], child.stderr[-4000:], sep="\n")
            raise SystemExit(f"benchmark {name} failed")
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        results[name] = {"figures": figures, "measured": measured}
        for key, value in figures.items():
            print(f"   {key:>28}: {_format(value)}")
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        RESULTS_MARKDOWN.write_text(markdown_table(results))
    print(f"figures written to {RESULTS} and {RESULTS_MARKDOWN}")


if __name__ == "__main__":
    main(sys.argv[1:])
