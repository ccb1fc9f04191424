"""The one way the platform runs Great Expectations: suites as plain JSON, one ephemeral checkpoint.

The loan tape, the performance history and the simulation results are all validated through
:func:`run_gx_suite`, so every check of record has the same result format (COMPLETE: every
unexpected row listed by its label in the frame's index) and the same optional Data Docs site.
"""

from __future__ import annotations

import copy
import html
from pathlib import Path
from typing import Any


def expectation(kind: str, level: str | None = None, rule: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """One expectation of a suite; ``level`` (row or table) and ``rule`` name it in ``meta``."""
    entry: dict[str, Any] = {"type": kind, "kwargs": kwargs}
    if level is not None:
        entry["meta"] = {"level": level, "rule": rule}
    return entry


def run_gx_suite(frame, suite_dict: dict[str, Any], data_docs_dir: Path | None = None, *,
                 spark_row_label: str | None = None) -> list[dict[str, Any]]:
    """Validate a pandas frame with a suite through a GX checkpoint; optionally build Data Docs there.

    Each result lists every unexpected row by its label in the frame's index (COMPLETE format, as
    ``unexpected_index_list``; the full list of unexpected values is not returned, the partial list
    and counts are). Returns the per-expectation results as JSON dicts.
    The Data Docs are rendered from an HTML-escaped copy (see :func:`_build_data_docs`).

    With ``spark_row_label`` the frame is a Spark dataframe, validated through GX's Spark datasource.
    A Spark dataframe has no index, so GX is asked for the values of that column of each unexpected
    row (``unexpected_index_column_names``); they come back as ``{column: value}`` records and are
    returned as the same plain list of labels a pandas frame gives.
    """
    import great_expectations as gx

    name = suite_dict["name"]
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    _store_without_row_lists(context.validation_results_store)
    source = context.data_sources.add_spark(name) if spark_row_label else context.data_sources.add_pandas(name)
    batch_definition = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add(gx.ExpectationSuite(**suite_dict))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_definition,
                                                                            suite=suite))
    # No pandas query string listing every unexpected index: nobody reads it, and on a tape whose every
    # row is bad it is a string of millions of numbers that GX then copies and serialises.
    result_format: dict[str, Any] = {"result_format": "COMPLETE", "return_unexpected_index_query": False}
    if spark_row_label:
        result_format["unexpected_index_column_names"] = [spark_row_label]
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=name, validation_definitions=[definition], result_format=result_format))
    run = checkpoint.run(batch_parameters={"dataframe": frame})
    ((identifier, result),) = run.run_results.items()
    if data_docs_dir is not None:
        _build_data_docs(context, identifier, result, data_docs_dir)
    return [_as_json(r, spark_row_label) for r in result.results]


# Per-row lists of a COMPLETE result: as long as the unexpected rows, read by the platform only for the
# row numbers, and shown in the Data Docs only through their partial (first 20) counterparts.
_ROW_LISTS = ("unexpected_list", "unexpected_index_list", "unexpected_index_query")


def _without_row_lists(result):
    """A shallow copy of one expectation's result without its per-row lists."""
    light = copy.copy(result)
    light.result = {key: value for key, value in result.result.items() if key not in _ROW_LISTS}
    return light


def _store_without_row_lists(store) -> None:
    """Make this (ephemeral, in-memory) results store keep each run's results without the per-row lists.

    A validation definition stores its results by serialising them to JSON, per value, in Python: 4 s
    per 100,000 unexpected rows, the dominant cost of a tape whose every row is bad. What the store
    keeps is read back only by the Data Docs builder, which shows the partial lists. Only this
    context's store is changed, and should GX stop calling ``serialize`` the results are stored whole,
    slower but the same.
    """
    serialize_whole = store.serialize

    def serialize(suite_result):
        light = copy.copy(suite_result)
        light.results = [_without_row_lists(r) for r in suite_result.results]
        return serialize_whole(light)

    store.serialize = serialize


def _as_json(result, row_label: str | None = None) -> dict[str, Any]:
    """One expectation's result as a JSON dict, its unexpected row labels as a plain list.

    GX's ``to_json_dict`` deep-copies and converts every value of the result one by one, which for a
    million unexpected rows takes longer than the check itself: it is applied to the result without
    its per-row lists, and the row labels are converted once, in numpy. ``row_label``: the column
    whose values label the rows of a Spark result (records ``{row_label: value}``).
    """
    import numpy as np

    rows = result.result.get("unexpected_index_list")
    entry = _without_row_lists(result).to_json_dict()
    if rows is not None:
        labels = [row[row_label] for row in rows] if row_label else rows
        entry["result"]["unexpected_index_list"] = np.asarray(labels, dtype=np.int64 if row_label else None).tolist()
    return entry


def _build_data_docs(context, identifier, result, data_docs_dir: Path) -> None:
    """Build the Data Docs of ``result`` in ``data_docs_dir`` from a copy whose data values are HTML-escaped.

    GX writes the values it reports (unexpected values and their counts, observed values, exception
    messages) into the pages as raw HTML, so a LoanId ``<script>...</script>`` in a tape would run in
    the browser of whoever opens the docs. The pages' own scripts are GX's templates and stay as they
    are; only what came from the data is escaped, and so shows as text. The stored copy replaces the
    result GX kept in its (in-memory) validation results store, which is what the site builder renders.
    """
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    data_docs_dir.mkdir(parents=True, exist_ok=True)
    context.add_data_docs_site(site_name="run", site_config={
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(data_docs_dir)},
    })
    shown = copy.copy(result)
    shown.results = [_escaped_result(r) for r in result.results]
    context.validation_results_store.set(identifier, shown)
    context.build_data_docs(site_names=["run"],
                            resource_identifiers=[identifier, ExpectationSuiteIdentifier(name=result.suite_name)])


def _escaped_result(result):
    """A shallow copy of one expectation's result with every string of its findings HTML-escaped.

    The per-row lists are left out: the pages show the partial lists and counts, and escaping and
    storing a million values would cost more than validating them.
    """
    shown = _without_row_lists(result)
    shown.result = _escaped(shown.result)
    shown.exception_info = _escaped(result.exception_info)
    return shown


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return html.escape(value)
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_escaped(v) for v in value)
    return value
