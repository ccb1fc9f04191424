"""Loss given default by segment, driven by collateral prices for secured loans.

Why collateral-driven: in a downturn the loss on a mortgage, auto or commercial real-estate loan
is mostly decided by what the collateral fetches, and the scenario's house, commercial property and
used-car price paths are exactly what a stress test varies. Unsecured loans have no such driver, so
they carry a fixed downturn LGD.

Secured loans, for one quarter::

    LGD = clip(1 - max(collateral_value * price_ratio * (1 - haircut) - senior_liens, 0) / EAD, floor, 1)

* ``price_ratio`` is the collateral-price index at the quarter divided by its value at the date of
  the appraisal (the caller picks the index per loan: house prices by region, CRE prices, used cars);
* ``haircut`` is the share of the marked value that is not recovered: costs of foreclosure or
  repossession and sale, and the forced-sale discount;
* ``collateral_value`` is the value of the whole collateral (the tape's CollateralValue, one meaning for
  every loan: the property, not the equity behind a lien) and ``senior_liens`` the balance of the liens
  ranking ahead of the loan (the tape's SeniorLienBalance, 0 for first liens): a junior lien recovers only
  what the sale leaves after the senior lien is repaid, so a HELOC behind a large first mortgage loses
  most of its exposure once prices fall;
* ``floor`` keeps a minimum loss (legal costs, time value of the workout, model risk) however
  rich the collateral.

The secured segments are those of :data:`models.segments.SECURED_SEGMENTS`. A missing
collateral value counts as no collateral (LGD 1); a loan with no exposure gets its floor (its loss
``EAD x LGD`` is 0 either way).

Parameter choices (``UNSECURED_LGD`` and ``COLLATERAL_TERMS``; pass others to override them):

* unsecured: credit card 0.90 (US card downturn recoveries are around 10 %), personal loans 0.75,
  commercial & industrial 0.45 (the Basel II foundation-IRB LGD of senior unsecured corporate
  claims, CRE32.6 before the 2017 reforms cut it to 40 % for non-financial corporates; we keep the
  more conservative value for a stress test);
* first-lien mortgage: haircut 0.25 (foreclosure costs of about 10 % plus a distressed-sale
  discount), floor 0.10, the Basel II retail residential-mortgage LGD floor (Basel III lowered it to
  5 %; a downturn stress keeps the higher value);
* HELOC: the same property and sale as a first lien, so haircut 0.25 and floor 0.10 as for mortgages;
  its subordination enters through ``senior_liens``, not through a larger haircut;
* auto: haircut 0.35 (repossession, auction fees and the auction discount), floor 0.15, the Basel III
  LGD floor for exposures secured by other physical collateral;
* commercial real estate: haircut 0.25, floor 0.10, the Basel III LGD floor for corporate exposures
  secured by real estate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from models.segments import SEGMENT_ORDER, Segment


@dataclass(frozen=True)
class CollateralTerms:
    """How a secured segment's LGD follows its collateral: the haircut on value, and the LGD floor."""

    haircut: float
    floor: float

    def __post_init__(self) -> None:
        if not (0.0 <= self.haircut <= 1.0 and 0.0 <= self.floor <= 1.0):
            raise ValueError("haircut and LGD floor must lie in [0, 1]")


UNSECURED_LGD: Mapping[Segment, float] = {
    Segment.CREDIT_CARD: 0.90,
    Segment.PERSONAL: 0.75,
    Segment.COMMERCIAL_INDUSTRIAL: 0.45,
}
COLLATERAL_TERMS: Mapping[Segment, CollateralTerms] = {
    Segment.FIRST_LIEN_MORTGAGE: CollateralTerms(haircut=0.25, floor=0.10),
    Segment.HELOC: CollateralTerms(haircut=0.25, floor=0.10),
    Segment.AUTO: CollateralTerms(haircut=0.35, floor=0.15),
    Segment.COMMERCIAL_REAL_ESTATE: CollateralTerms(haircut=0.25, floor=0.10),
}


def _lookup_tables(
    unsecured_lgd: Mapping[Segment, float], collateral_terms: Mapping[Segment, CollateralTerms]
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64]]:
    """Per-segment-code arrays: secured flag, LGD floor (the fixed LGD if unsecured) and haircut."""
    unsecured, secured_terms = set(unsecured_lgd), set(collateral_terms)
    if unsecured & secured_terms or unsecured | secured_terms != set(Segment):
        raise ValueError("every segment needs exactly one of an unsecured LGD or collateral terms")
    secured = np.array([s in collateral_terms for s in SEGMENT_ORDER])
    floor = np.array([collateral_terms[s].floor if s in collateral_terms else unsecured_lgd[s]
                      for s in SEGMENT_ORDER])
    haircut = np.array([collateral_terms[s].haircut if s in collateral_terms else 1.0 for s in SEGMENT_ORDER])
    return secured, floor, haircut


def stressed_lgd(
    segment: ArrayLike,
    ead: ArrayLike,
    collateral_value: ArrayLike,
    price_ratio: ArrayLike,
    senior_liens: ArrayLike = 0.0,
    unsecured_lgd: Mapping[Segment, float] = UNSECURED_LGD,
    collateral_terms: Mapping[Segment, CollateralTerms] = COLLATERAL_TERMS,
) -> NDArray[np.float64]:
    """LGD of every loan for one quarter, in ``[floor, 1]`` (exactly the fixed LGD if unsecured).

    ``segment`` holds segment codes (:func:`segment_codes`); ``collateral_value`` is the latest
    appraisal of the whole collateral (ignored for unsecured segments, so NaN is fine there);
    ``price_ratio`` is the collateral-price index now over its value at the appraisal;
    ``senior_liens`` the balance ranking ahead of the loan (NaN counts as none). All arguments broadcast.
    """
    secured, floor, haircut = _lookup_tables(unsecured_lgd, collateral_terms)
    codes = np.asarray(segment)
    exposure = np.asarray(ead, dtype=np.float64)
    collateral = np.nan_to_num(np.asarray(collateral_value, dtype=np.float64), nan=0.0)
    ratio = np.asarray(price_ratio, dtype=np.float64)
    senior = np.nan_to_num(np.asarray(senior_liens, dtype=np.float64), nan=0.0)
    if np.any(collateral < 0.0) or np.any(ratio < 0.0) or np.any(exposure < 0.0) or np.any(senior < 0.0):
        raise ValueError("EAD, collateral values, senior liens and price ratios must be non-negative")

    recovery = np.maximum(collateral * ratio * (1.0 - haircut[codes]) - senior, 0.0)
    # Zero (or subnormal) EADs divide to inf or NaN here; np.where and the floor take care of them.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        secured_lgd = np.where(exposure > 0.0, 1.0 - recovery / exposure, 0.0)
    return np.where(secured[codes], np.clip(secured_lgd, floor[codes], 1.0), floor[codes])
