"""The ``optimise`` task of ``loan_stress_test``: the recommended allocation of the book under stress.

Runs after ``publish`` on the published results (so it never sees unchecked numbers) and writes
``runs/<run>/optimisation/allocation.json``, which the report shows. A run without a scenario of
the appetite's stress suffix (default ``_severely_adverse``) records that it was skipped.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from pipelines.adapters.object_store import ObjectStore
from pipelines.composition import current_adapters
from pipelines.settings import StressSettings
from pipelines.tasks.policy import task_entry
from pipelines.tasks.runs import allocation_key, log, record_step


def _cet1_requirement(rules_path: Path, settings: StressSettings) -> tuple[float, float]:
    """(minimum, buffer) of the CET1 rule: the same requirement the compliance checks apply."""
    from pipelines.compliance.rules import load_rules

    rule = next((r for r in load_rules(rules_path) if r.metric == "min_cet1_ratio"), None)
    if rule is None:
        raise ValueError(f"{rules_path} has no min_cet1_ratio rule: the stressed CET1 requirement is undefined")
    return rule.threshold, rule.threshold_for(None, settings) - rule.threshold


@task_entry
def optimise(published: dict[str, Any], enabled: bool, run_id: str) -> dict[str, Any]:
    """Optimise the book's allocation under the stress scenario's paths and capital path (if ``enabled``)."""
    import numpy as np

    from pipelines.engine.allocation import recommend
    from pipelines.engine.optimisation_inputs import build_inputs, load_appetite

    adapters = current_adapters()
    settings, store = adapters.settings, adapters.object_store
    if not enabled:
        return record_step(store, run_id, "optimise", {"status": "skipped", "reason": "the optimise parameter is off"})
    appetite = load_appetite(settings.optimisation_appetite_path)
    reduced = {r["scenario_id"]: r for r in published["reduced"]}
    stress_id = next((s for s in sorted(reduced) if s.endswith(appetite.stress_scenario_suffix)), None)
    if stress_id is None:
        return record_step(store, run_id, "optimise", {
            "status": "skipped", "reason": f"no scenario ending in {appetite.stress_scenario_suffix} in this run"})
    baseline_id = stress_id.removesuffix(appetite.stress_scenario_suffix) + "_baseline"
    stress = json.loads(store.get_bytes(reduced[stress_id]["result_key"]))
    baseline = json.loads(store.get_bytes(reduced[baseline_id]["result_key"])) if baseline_id in reduced else None
    with np.load(io.BytesIO(store.get_bytes(reduced[stress_id]["segment_losses_key"]))) as saved:
        segment_losses = {name: saved[name] for name in saved.files}
    minimum, buffer = _cet1_requirement(settings.compliance_rules_path, settings)
    inputs = build_inputs(stress, segment_losses, appetite, minimum, buffer, settings.tax_rate, baseline)
    log.info("optimising the allocation of %d segments over %d paths of %s", inputs.assets.n_assets,
             inputs.assets.path_losses.shape[0], stress_id)
    document = {"status": "done", "baseline_scenario": baseline_id if baseline else None,
                **recommend(inputs, appetite)}
    key = allocation_key(run_id)
    uri = store.put_bytes(key, json.dumps(document, indent=2).encode())
    recommendation = document["recommendation"]
    log.info("recommended allocation (%s): %s", document["recommended_strategy"], recommendation["status"])
    # The document (strategies, frontier, per-segment allocation: tens of KB) stays in the object store.
    return record_step(store, run_id, "optimise", {
        "status": "done", "scenario_id": document["scenario_id"], "baseline_scenario": document["baseline_scenario"],
        "recommended_strategy": document["recommended_strategy"], "recommendation_status": recommendation["status"],
        "allocation_key": key, "allocation_uri": uri})


def load_allocation(store: ObjectStore, optimisation: dict[str, Any]) -> dict[str, Any]:
    """The optimise step's full document from its output (a skipped step's output is its own document)."""
    if optimisation.get("status") != "done":
        return optimisation
    return json.loads(store.get_bytes(optimisation["allocation_key"]))
