"""FeatureSpec: which columns of a loan performance panel a PD model reads, and what it predicts.

The XGBoost PD model and the training pipeline work on *any* quarterly loan performance table; the
spec is what ties them to one. It names the entity (loan id), the observation date, the per-quarter
default event, the target built from it (default within the next ``horizon_quarters``), the numeric
and categorical features, and the monotone constraints where the direction of risk is known
(+1: PD not lower when the feature rises, -1: not higher). Specs live in YAML or JSON files
(``models/specs/pd_12m.yaml`` is the default) so a model change is a reviewed config change.

Validation is strict and names the offending key: a typo in a column name or a constraint on a
categorical column must fail before hours of training, not after.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

SPEC_DIR = Path(__file__).resolve().parent / "specs"
DEFAULT_SPEC_PATH = SPEC_DIR / "pd_12m.yaml"


class FeatureSpecError(ValueError):
    """The spec file or dict does not describe a usable model input."""


@dataclass(frozen=True)
class FeatureSpec:
    """Columns and target of a PD model (see the module docstring)."""

    name: str
    id_column: str
    date_column: str
    event_column: str
    target: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    horizon_quarters: int = 4
    monotone: dict[str, int] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("name", "id_column", "date_column", "event_column", "target"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise FeatureSpecError(f"FeatureSpec.{name} must be a non-empty string")
        for name in ("numeric", "categorical"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(c, str) and c for c in value):
                raise FeatureSpecError(f"FeatureSpec.{name} must be a list of column names, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if not self.features:
            raise FeatureSpecError("FeatureSpec has no features: list numeric and/or categorical columns")
        repeated = sorted({c for c in self.features if self.features.count(c) > 1})
        if repeated:
            raise FeatureSpecError(f"columns listed more than once among the features: {repeated}")
        leaking = sorted(set(self.features) & {self.id_column, self.date_column, self.event_column, self.target})
        if leaking:
            raise FeatureSpecError(f"id, date, event or target columns used as features (leakage): {leaking}")
        if isinstance(self.horizon_quarters, bool) or not isinstance(self.horizon_quarters, int) \
                or self.horizon_quarters < 1:
            raise FeatureSpecError(f"horizon_quarters must be a positive integer, got {self.horizon_quarters!r}")
        if not isinstance(self.monotone, dict):
            raise FeatureSpecError(f"monotone must map column -> +1/-1, got {self.monotone!r}")
        not_numeric = sorted(set(self.monotone) - set(self.numeric))
        if not_numeric:
            raise FeatureSpecError(f"monotone constraints on columns that are not numeric features: {not_numeric}")
        bad = {c: d for c, d in self.monotone.items() if isinstance(d, bool) or d not in (-1, 1)}
        if bad:
            raise FeatureSpecError(f"monotone directions must be +1 or -1, got {bad}")

    @property
    def features(self) -> tuple[str, ...]:
        """Model input columns, numeric first."""
        return self.numeric + self.categorical

    def quarters(self, frame: pd.DataFrame) -> npt.NDArray[np.int64]:
        """Quarter number (``year * 4 + quarter - 1``) of every row's observation date: the panel's time
        axis, on which targets look ahead and time splits cut."""
        dates = pd.to_datetime(frame[self.date_column])
        return (dates.dt.year * 4 + dates.dt.quarter - 1).to_numpy(dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return data | {"numeric": list(self.numeric), "categorical": list(self.categorical)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        if not isinstance(data, dict):
            raise FeatureSpecError(f"a FeatureSpec is a mapping of keys, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FeatureSpecError(f"unknown FeatureSpec keys {unknown}; known keys: {sorted(known)}")
        required = {f.name for f in fields(cls) if f.default is f.default_factory is MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise FeatureSpecError(f"FeatureSpec is missing required keys {missing}")
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> FeatureSpec:
        """Load a spec from ``.yaml``/``.yml`` or ``.json``."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError as error:
            raise FeatureSpecError(f"FeatureSpec file {path} does not exist") from error
        if path.suffix in {".yaml", ".yml"}:
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise FeatureSpecError(f"{path} is not valid YAML: {error}") from error
        elif path.suffix == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as error:
                raise FeatureSpecError(f"{path} is not valid JSON: {error}") from error
        else:
            raise FeatureSpecError(f"cannot tell the format of {path}: use .yaml, .yml or .json")
        try:
            return cls.from_dict(data)
        except FeatureSpecError as error:
            raise FeatureSpecError(f"{path}: {error}") from error


def load_feature_spec(path: str | Path = "") -> FeatureSpec:
    """The spec at ``path``, or the default 12-month PD spec when ``path`` is empty."""
    return FeatureSpec.from_file(path or DEFAULT_SPEC_PATH)
