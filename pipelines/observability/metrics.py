"""A run's figures in the Prometheus text exposition format (prometheus-client).

Built from what the run recorded (``runs/<run>/steps/``), so the figures are the run's own: loans
ingested, accepted and quarantined, simulate seconds, and each scenario's expected loss, VaR and
expected shortfall. The teardown writes the exposition beside the run (``runs/<run>/metrics.prom``)
and, with ``STRESS_METRICS_TEXTFILE``, to a file that node_exporter's textfile collector serves to
Prometheus (no Pushgateway).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest

SIMULATE_STEP_PREFIX = "simulate"


def run_metrics(steps: dict[str, dict[str, Any]], run_id: str, dag_id: str, status: str) -> bytes:
    """The exposition of one run's recorded steps (steps a failed run never reached are left out)."""
    registry = CollectorRegistry()
    labels = {"dag_id": dag_id, "run_id": run_id}
    names = list(labels)

    def gauge(name: str, documentation: str, extra: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, documentation, [*names, *extra], registry=registry)

    gauge("loanstress_run_info", "1 for the run; its final status as a label.", ("status",)).labels(
        **labels, status=status).set(1)
    validated = steps.get("validate")
    if validated:
        rows = gauge("loanstress_loans", "Loans of the run's tape by stage.", ("stage",))
        for stage, key in (("ingested", "input_rows"), ("accepted", "accepted_rows"),
                           ("quarantined", "quarantined_rows")):
            rows.labels(**labels, stage=stage).set(validated[key])
    simulated = [s for name, s in steps.items() if name.startswith(SIMULATE_STEP_PREFIX)]
    if simulated:
        seconds = gauge("loanstress_simulation_seconds", "Wall seconds of the simulate work: summed over the "
                        "mapped batch tasks (local runner) or of the whole Spark job.", ("runner",))
        for runner in sorted({s["runner"] for s in simulated}):
            seconds.labels(**labels, runner=runner).set(sum(s["seconds"] for s in simulated if s["runner"] == runner))
    results = {name.removeprefix("result_"): s["metrics"] for name, s in steps.items() if name.startswith("result_")}
    if results:
        amounts = gauge("loanstress_scenario_amount", "A scenario's exposure and expected loss over the horizon "
                        "(analytic and Monte Carlo), in the tape's currency.", ("scenario", "measure"))
        tail = gauge("loanstress_scenario_tail_loss", "A scenario's value at risk and expected shortfall of the "
                     "cumulative loss over the horizon at a confidence level.", ("scenario", "measure", "level"))
        rate = gauge("loanstress_scenario_loss_rate", "A scenario's expected loss / exposure.", ("scenario",))
        for scenario, metrics in sorted(results.items()):
            for measure in ("exposure", "expected_loss", "expected_loss_mc"):
                amounts.labels(**labels, scenario=scenario, measure=measure).set(metrics[measure])
            for measure, key in (("var", "var"), ("expected_shortfall", "expected_shortfall")):
                for level, value in sorted(metrics[key].items()):
                    tail.labels(**labels, scenario=scenario, measure=measure, level=level).set(value)
            rate.labels(**labels, scenario=scenario).set(metrics["loss_rate"])
    return generate_latest(registry)


def write_textfile(path: Path, exposition: bytes) -> None:
    """Replace ``path`` atomically (node_exporter must never read half a file): the local store's write."""
    from pipelines.adapters.object_store import LocalObjectStore

    LocalObjectStore(path.parent).put_bytes(path.name, exposition)
