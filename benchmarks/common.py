"""What every benchmark shares: the registry, a timer, peak memory, the machine record and the cache folders."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pipelines.settings import REPO_ROOT

BENCH_DIR = REPO_ROOT / ".bench"
RESULTS = BENCH_DIR / "results.json"
RESULTS_MARKDOWN = BENCH_DIR / "results.md"
INPUTS = BENCH_DIR / "inputs"
REGISTRY: dict[str, Callable[[], dict[str, float]]] = {}


ON_REQUEST: set[str] = set()  # benchmarks a plain `make bench` leaves out (they run for tens of minutes)


def benchmark(function: Callable[[], dict[str, float]]) -> Callable[[], dict[str, float]]:
    """Register a benchmark under its function name; it returns its figures."""
    REGISTRY[function.__name__] = function
    return function


def on_request(function: Callable[[], dict[str, float]]) -> Callable[[], dict[str, float]]:
    """Register a benchmark that runs only when named (``make bench BENCH=name``)."""
    ON_REQUEST.add(function.__name__)
    return benchmark(function)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Make the kernel's peak-RSS mark (VmHWM) of this process its current RSS (Linux ``clear_refs`` 5).

    Lets one process measure the peak of a step on its own, after the steps that prepared its input.
    """
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def step_peak_rss_mb() -> float:
    """VmHWM of this process: its peak RSS since the last :func:`reset_peak_rss` (or its start)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class ResidentSampler:
    """The peak of this process's anonymous resident memory (``RssAnon``) over a ``with`` block.

    VmHWM counts file-backed pages too: memory-mapped files and the pages of files being read, which
    the kernel drops under pressure. A step that spills to disk is bounded by what it keeps in
    anonymous memory, which the kernel reports only as a current value; a thread samples it.
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.peak_anonymous_mb = 0.0

    def _sample(self) -> None:
        while not self._stop.is_set():
            with open("/proc/self/status") as handle:
                for line in handle:
                    if line.startswith("RssAnon:"):
                        self.peak_anonymous_mb = max(self.peak_anonymous_mb, int(line.split()[1]) / 1024)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> ResidentSampler:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def in_fresh_process(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``function(*args)`` in a newly spawned interpreter, so that its memory peak is its own alone.

    ``function`` must be importable at module level; its figures come back through a pipe.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, args)


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


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), or ``unknown``."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def measurement_record() -> dict[str, Any]:
    """What a figure was measured on: commit (and whether the tree had changes), CPU, cores, UTC time.

    Why: a figure without the code and the machine it came from cannot be reproduced or compared.
    ``cores`` are those this process may run on (``sched_getaffinity``), which is what the timings saw.
    """
    return {"commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain")),
            "cpu_model": cpu_model(), "cores": len(os.sched_getaffinity(0)),
            "date_utc": datetime.now(UTC).isoformat(timespec="seconds")}
