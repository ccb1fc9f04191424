"""What every benchmark shares: the registry, a timer, peak memory and the cache folders."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

from pipelines.settings import REPO_ROOT

BENCH_DIR = REPO_ROOT / ".bench"
RESULTS = BENCH_DIR / "results.json"
INPUTS = BENCH_DIR / "inputs"
REGISTRY: dict[str, Callable[[], dict[str, float]]] = {}


def benchmark(function: Callable[[], dict[str, float]]) -> Callable[[], dict[str, float]]:
    """Register a benchmark under its function name; it returns its figures."""
    REGISTRY[function.__name__] = function
    return function


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    """Wall-clock seconds of a ``with`` block, and this process's CPU seconds in it.

    On a shared machine the wall time swings with other people's work; the CPU time much less.
    """

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start
