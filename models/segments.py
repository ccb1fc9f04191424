"""The product segment vocabulary: one definition for the contract, the risk models and the reports.

Segments follow the loan portfolios of the Fed's FR Y-14 reporting. Arrays carry a segment as its
integer code, the position of the segment in :class:`Segment`'s definition order, so every model
can look up per-segment parameters with plain indexing.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray


class Segment(StrEnum):
    """Stress-test product segments (after the Fed's FR Y-14 loan portfolios)."""

    FIRST_LIEN_MORTGAGE = "first_lien_mortgage"
    HELOC = "heloc"
    AUTO = "auto"
    CREDIT_CARD = "credit_card"
    PERSONAL = "personal"
    COMMERCIAL_REAL_ESTATE = "commercial_real_estate"
    COMMERCIAL_INDUSTRIAL = "commercial_industrial"


# Segment codes used in arrays: the position of the segment in the enum's definition order.
SEGMENT_ORDER: tuple[Segment, ...] = tuple(Segment)
SEGMENT_NAMES: tuple[str, ...] = tuple(s.value for s in SEGMENT_ORDER)
SECURED_SEGMENTS = frozenset(
    {Segment.FIRST_LIEN_MORTGAGE, Segment.HELOC, Segment.AUTO, Segment.COMMERCIAL_REAL_ESTATE}
)


def segment_codes(segments: ArrayLike | pd.Series) -> NDArray[np.int8]:
    """Segment codes (positions in :data:`SEGMENT_ORDER`) of segment names; unknown names raise.

    The names go through a pandas categorical, which hashes each distinct label once instead of
    comparing every name with every segment (categorical input is used as it is).
    """
    categorical = pd.Series(segments, copy=False).astype(pd.CategoricalDtype(list(SEGMENT_NAMES)))
    codes = categorical.cat.codes.to_numpy()
    if np.any(codes < 0):
        original = np.asarray(segments, dtype=object)
        unknown = sorted({str(name) for name in original.reshape(-1)[codes < 0]})
        raise ValueError(f"unknown segments: {unknown}")
    return codes.astype(np.int8).reshape(np.shape(segments))
