"""``make bench``: run the benchmarks, print their figures, merge them into ``.bench/results.json``.

Each benchmark runs in its own process so its ``peak_rss_mb`` is its own. ``make bench BENCH=name``
runs one. Inputs (synthetic books) are cached in ``.bench/inputs`` so re-runs time the work, not
the data generation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.common import BENCH_DIR, REGISTRY, RESULTS, peak_rss_mb


def _load_modules() -> None:
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        __import__(f"benchmarks.{path.stem}")


def run_one(name: str) -> dict[str, float]:
    _load_modules()
    figures = REGISTRY[name]()
    figures.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    return figures


def main(argv: list[str]) -> None:
    _load_modules()
    if argv[:1] == ["--child"]:
        print(json.dumps(run_one(argv[1])))
        return
    unknown = [name for name in argv if name not in REGISTRY]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {sorted(REGISTRY)}")
    BENCH_DIR.mkdir(exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in argv or list(REGISTRY):
        print(f"== {name}", flush=True)
        child = subprocess.run([sys.executable, "-m", "benchmarks.run", "--child", name],
                               capture_output=True, text=True)
        if child.returncode != 0:
            print(child.stdout[-2000:], child.stderr[-4000:], sep="\n")
            raise SystemExit(f"benchmark {name} failed")
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        results[name] = figures
        for key, value in figures.items():
            print(f"   {key:>28}: {value:,}" if isinstance(value, int | float) else f"   {key:>28}: {value}")
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"figures written to {RESULTS}")


if __name__ == "__main__":
    main(sys.argv[1:])
