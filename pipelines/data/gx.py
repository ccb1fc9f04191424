"""The one way the platform runs Great Expectations: suites as plain JSON, one ephemeral checkpoint.

The loan tape, the performance history and the simulation results are all validated through
:func:`run_gx_suite`, so every check of record has the same result format (COMPLETE: every
unexpected row listed by its label in the frame's index) and the same optional Data Docs site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def expectation(kind: str, level: str | None = None, rule: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """One expectation of a suite; ``level`` (row or table) and ``rule`` name it in ``meta``."""
    entry: dict[str, Any] = {"type": kind, "kwargs": kwargs}
    if level is not None:
        entry["meta"] = {"level": level, "rule": rule}
    return entry


def run_gx_suite(frame, suite_dict: dict[str, Any], data_docs_dir: Path | None = None) -> list[dict[str, Any]]:
    """Validate a pandas frame with a suite through a GX checkpoint; optionally build Data Docs there.

    Each result lists every unexpected row by its label in the frame's index (COMPLETE format).
    Returns the per-expectation results as JSON dicts.
    """
    import great_expectations as gx

    name = suite_dict["name"]
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    actions = []
    if data_docs_dir is not None:
        data_docs_dir.mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(site_name="run", site_config={
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(data_docs_dir)},
        })
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["run"]))
    batch_definition = (context.data_sources.add_pandas(name).add_dataframe_asset(name)
                        .add_batch_definition_whole_dataframe("whole"))
    suite = context.suites.add(gx.ExpectationSuite(**suite_dict))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_definition,
                                                                            suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(name=name, validation_definitions=[definition],
                                                       actions=actions, result_format={"result_format": "COMPLETE"}))
    run = checkpoint.run(batch_parameters={"dataframe": frame})
    (result,) = run.run_results.values()
    return result.to_json_dict()["results"]
