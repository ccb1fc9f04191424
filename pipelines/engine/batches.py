"""One simulation batch from the object store to the object store: what every runner executes.

The local runner (one Airflow mapped task per batch) and the Spark runner (one Spark task per batch,
:mod:`pipelines.engine.spark_job`) both call :func:`simulate_work_item` with the same
:class:`WorkItem`, so they read the same inputs and write the same keyed partial results (per-loan
Parquet, exposure histogram, aggregates) under the same keys; the reduce step then cannot tell which
runner produced them. A :class:`SimulationJob` is plain JSON so that it can be written to the object
store and read by a Spark driver on another machine (EMR Serverless) without pickles.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import typing
from dataclasses import dataclass
from typing import Any

from pipelines.adapters.object_store import ObjectStore
from pipelines.adapters.parquet_rows import read_parquet_rows
from pipelines.engine.scenarios import Scenario
from pipelines.engine.simulation import SimulationConfig


@dataclass(frozen=True)
class WorkItem:
    """One (scenario, batch): where its scenario is, which rows it covers and where its partials go."""

    scenario_id: str
    scenario_key: str
    batch: dict[str, int]
    output_prefix: str


@dataclass(frozen=True)
class SimulationJob:
    """Everything a runner needs to simulate every batch of a run (JSON in the object store)."""

    features_key: str
    pd_model: dict[str, Any]
    config: SimulationConfig
    items: list[WorkItem]

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), indent=2, default=_plain).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SimulationJob:
        saved = json.loads(data)
        return cls(features_key=saved["features_key"], pd_model=saved["pd_model"],
                   config=_dataclass_from_dict(SimulationConfig, saved["config"]),
                   items=[WorkItem(**item) for item in saved["items"]])


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dataclass_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a (nested) frozen dataclass of enums and numbers from :func:`dataclasses.asdict` output.

    Driven by the type hints, so a field added to :class:`SimulationConfig` or its capital assumptions
    travels to the Spark executors without a change here (an unknown kind of field raises).
    """
    hints = typing.get_type_hints(cls)
    built = {}
    for field in dataclasses.fields(cls):
        kind, value = hints[field.name], values[field.name]
        if dataclasses.is_dataclass(kind):
            built[field.name] = _dataclass_from_dict(kind, value)
        elif kind in (int, float, str, bool) or (isinstance(kind, type) and issubclass(kind, enum.Enum)):
            built[field.name] = kind(value)
        else:
            raise TypeError(f"cannot rebuild field {cls.__name__}.{field.name} of type {kind}")
    return cls(**built)


def save_scenario(store: ObjectStore, key: str, scenario: Scenario) -> str:
    """Keep the exact scenario path the plan resolved, so every batch of every runner uses the same numbers."""
    return store.put_bytes(key, json.dumps({**scenario.to_dict(), "rate_shock_bp": scenario.rate_shock_bp}).encode())


def load_scenario(store: ObjectStore, key: str):
    """The scenario :func:`save_scenario` kept, and the macro history it is joined to."""
    import pandas as pd

    from pipelines.data.macro import load_history

    saved = json.loads(store.get_bytes(key))
    index = pd.PeriodIndex([pd.Period(q, freq="Q") for q in saved["quarters"]], name="quarter")
    path = pd.DataFrame(saved["path"], index=index)
    history = load_history()
    jump_off = history.loc[pd.Period(saved["jump_off_quarter"], freq="Q")].fillna(path.iloc[0])
    return Scenario(saved["scenario_id"], saved["description"], path, jump_off, saved["rate_shock_bp"]), history


def simulate_work_item(store: ObjectStore, features_key: str, pd_model: dict[str, Any], config: SimulationConfig,
                       item: WorkItem) -> dict[str, Any]:
    """Simulate one (scenario, batch) and write its partial results under ``item.output_prefix``."""
    from pipelines.adapters.model_registry import load_quarterly_pd_function
    from pipelines.engine.simulation import simulate_batch

    batch = item.batch
    # Only the batch's rows: from a folder store, only the row groups that hold them are read.
    features = read_parquet_rows(store, features_key, batch["start"], batch["stop"])
    scenario, history = load_scenario(store, item.scenario_key)
    result = simulate_batch(features, scenario, history, load_quarterly_pd_function(pd_model), config)
    store.put_parquet(f"{item.output_prefix}/loans.parquet", result.loans)
    store.put_bytes(f"{item.output_prefix}/histogram.npz", result.histogram.to_bytes())
    store.put_bytes(f"{item.output_prefix}/segment_histogram.npz", result.segment_histogram.to_bytes())
    store.put_bytes(f"{item.output_prefix}/aggregates.json", json.dumps(result.aggregates).encode())
    return {"scenario_id": item.scenario_id, "batch": batch["batch"], "loans": result.aggregates["loans"]}


def read_partials(store: ObjectStore, prefixes: list[str]):
    """The exposure histograms, aggregates and per-loan tables of the batches at ``prefixes``, in that order."""
    import pyarrow as pa

    from models.portfolio_loss import ExposureHistogram

    histograms = [ExposureHistogram.from_bytes(store.get_bytes(f"{p}/histogram.npz")) for p in prefixes]
    aggregates = [json.loads(store.get_bytes(f"{p}/aggregates.json")) for p in prefixes]
    loans = pa.concat_tables([store.get_parquet(f"{p}/loans.parquet") for p in prefixes])
    return histograms, aggregates, loans


def check_job_outputs(job: SimulationJob, outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outputs in the job's item order, after checking that every item ran exactly once."""
    expected = [(item.scenario_id, item.batch["batch"]) for item in job.items]
    by_item = {(o["scenario_id"], o["batch"]): o for o in outputs}
    if len(outputs) != len(expected) or set(by_item) != set(expected):
        missing = sorted(set(expected) - set(by_item))
        raise RuntimeError(f"the simulation job returned {len(outputs)} outputs for {len(expected)} batches "
                           f"(missing {missing[:5]})")
    return [by_item[key] for key in expected]
