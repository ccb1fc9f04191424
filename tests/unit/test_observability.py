"""Run metrics in the Prometheus exposition format, and JSON logs carrying the run id."""

from __future__ import annotations

import io
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

RUN, DAG = "manual__2026-01-02T03:04:05+00:00", "loan_stress_test"
STEPS = {
    "validate": {"input_rows": 400, "accepted_rows": 396, "quarantined_rows": 4},
    "simulate_local_2026_baseline_batch-00000": {"runner": "local", "seconds": 1.25},
    "simulate_local_2026_baseline_batch-00001": {"runner": "local", "seconds": 0.5},
    "result_2026_baseline": {"metrics": {"exposure": 1.0e8, "expected_loss": 2.5e6, "expected_loss_mc": 2.49e6,
                                         "loss_rate": 0.025, "var": {"0.990": 4.0e6, "0.999": 5.5e6},
                                         "expected_shortfall": {"0.975": 3.9e6, "0.990": 4.6e6}}},
}


def _samples(exposition: bytes) -> dict[tuple[str, tuple], float]:
    """Every sample of a scraped exposition, keyed by name and labels (the run's labels left out)."""
    samples = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            labels = dict(sample.labels)
            assert labels.pop("run_id") == RUN and labels.pop("dag_id") == DAG
            samples[sample.name, tuple(sorted(labels.items()))] = sample.value
    return samples


def test_a_run_exposition_parses_to_the_recorded_figures() -> None:
    from pipelines.observability.metrics import run_metrics

    samples = _samples(run_metrics(STEPS, RUN, DAG, "succeeded"))
    assert samples["loanstress_run_info", (("status", "succeeded"),)] == 1
    assert samples["loanstress_loans", (("stage", "ingested"),)] == 400
    assert samples["loanstress_loans", (("stage", "quarantined"),)] == 4
    assert samples["loanstress_loans", (("stage", "accepted"),)] == 396
    assert samples["loanstress_simulation_seconds", (("runner", "local"),)] == 1.75
    baseline = ("scenario", "2026_baseline")
    assert samples["loanstress_scenario_amount", (("measure", "expected_loss"), baseline)] == 2.5e6
    assert samples["loanstress_scenario_tail_loss", (("level", "0.999"), ("measure", "var"), baseline)] == 5.5e6
    assert samples["loanstress_scenario_tail_loss",
                   (("level", "0.975"), ("measure", "expected_shortfall"), baseline)] == 3.9e6
    assert samples["loanstress_scenario_loss_rate", (baseline,)] == 0.025


def test_a_failed_run_exposes_only_what_it_recorded() -> None:
    from pipelines.observability.metrics import run_metrics

    samples = _samples(run_metrics({"validate": STEPS["validate"]}, RUN, DAG, "failed_nothing_published"))
    assert {name for name, _ in samples} == {"loanstress_run_info", "loanstress_loans"}


def test_the_textfile_is_replaced_whole(tmp_path) -> None:
    from pipelines.observability.metrics import run_metrics, write_textfile

    path = tmp_path / "textfile" / "loanstress.prom"
    write_textfile(path, b"old")
    write_textfile(path, run_metrics(STEPS, RUN, DAG, "succeeded"))
    assert _samples(path.read_bytes())["loanstress_loans", (("stage", "ingested"),)] == 400
    assert [p.name for p in path.parent.iterdir()] == ["loanstress.prom"]


@pytest.fixture
def json_log() -> io.StringIO:
    from pipelines.observability.logs import PROJECT_LOGGERS, configure_logging

    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate,
                    logging.getLogger(name).level) for name in PROJECT_LOGGERS}
    stream = io.StringIO()
    configure_logging("json", stream)
    yield stream
    for name, (handlers, propagate, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate, logger.level = handlers, propagate, level


def test_task_functions_log_json_lines_with_their_run_id(json_log: io.StringIO) -> None:
    from pipelines.tasks.policy import task_entry

    @task_entry
    def a_task(features: dict, run_id: str) -> int:
        logging.getLogger("loanstress").info("planning %d loans", features["rows"])
        logging.getLogger("pipelines.engine.simulation").warning("a warning from deeper down")
        return 1

    a_task({"rows": 12}, RUN)
    a_task({"rows": 3}, run_id="scheduled__other")
    logging.getLogger("loanstress").info("outside any task")
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert [(line["run_id"], line["message"]) for line in lines] == [
        (RUN, "planning 12 loans"), (RUN, "a warning from deeper down"),
        ("scheduled__other", "planning 3 loans"), ("scheduled__other", "a warning from deeper down"),
        (None, "outside any task")]
    assert lines[1]["level"] == "WARNING" and lines[1]["logger"] == "pipelines.engine.simulation"
    assert lines[0]["time"].endswith("+00:00")


def test_text_format_leaves_the_loggers_alone() -> None:
    from pipelines.observability.logs import configure_logging

    before = logging.getLogger("loanstress").handlers[:]
    configure_logging("text")
    assert logging.getLogger("loanstress").handlers == before
