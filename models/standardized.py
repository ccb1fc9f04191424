"""Credit RWA by the US standardized approach (12 CFR 217 subpart D), the rulebook of the Fed's stress test.

Why: the Federal Reserve projects the capital ratios of its supervisory stress test on the
standardized approach (12 CFR 252.42 and the capital plan rule use the standardized risk-based
ratios), whose risk weights depend on the kind of exposure, not on PD or LGD. A stressed scenario
therefore does not inflate RWA; only losses and income move the ratio. See ``docs/capital.md``.

Risk weights (one table, :data:`RISK_WEIGHTS`), by segment of the loan tape:

=========================  ======  ==================================================================
segment                    weight  rule
=========================  ======  ==================================================================
first-lien mortgage        50 %    12 CFR 217.32(g)(1): prudently underwritten first-lien 1-4 family
HELOC (junior lien)        100 %   12 CFR 217.32(g)(2): junior liens and the rest of residential
auto, cards, personal      100 %   12 CFR 217.32(l): consumer loans are "other assets" at 100 %
commercial real estate     100 %   12 CFR 217.32(f): corporate exposure; HVCRE 150 % (217.32(j))
C&I                        100 %   12 CFR 217.32(f): corporate exposure
=========================  ======  ==================================================================

A loan 90 days or more past due takes 150 % (12 CFR 217.32(k)), except a residential mortgage
exposure, first *or junior* lien on a 1-4 family property, which takes 100 % (217.32(k) excludes
residential mortgage exposures and 217.32(g)(2) weights every one not in (g)(1) at 100 %; a HELOC is
a residential mortgage exposure under the definition in 12 CFR 217.2).

Undrawn commitments enter through a credit conversion factor times the risk weight of the
borrower (12 CFR 217.33(a)). The CCFs are the Basel III standardized ones (CRE20, December 2017
reforms, also in the 2023 US capital proposal): 10 % for unconditionally cancellable commitments
(credit cards, which the issuer may cancel at any time) and 40 % for other commitments (HELOC and
C&I lines). The current US rule would give 0 % and 20 %/50 % (12 CFR 217.33(b)); the Basel III
figures are the more conservative for cards and the middle of the range for other lines.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from models.segments import Segment

RISK_WEIGHTS: dict[Segment, float] = {
    Segment.FIRST_LIEN_MORTGAGE: 0.50,
    Segment.HELOC: 1.00,
    Segment.AUTO: 1.00,
    Segment.CREDIT_CARD: 1.00,
    Segment.PERSONAL: 1.00,
    Segment.COMMERCIAL_REAL_ESTATE: 1.00,
    Segment.COMMERCIAL_INDUSTRIAL: 1.00,
}
HVCRE_RISK_WEIGHT = 1.50  # 12 CFR 217.32(j): high-volatility (acquisition, development, construction) CRE
PAST_DUE_RISK_WEIGHT = 1.50  # 12 CFR 217.32(k)
PAST_DUE_MORTGAGE_RISK_WEIGHT = 1.00  # 12 CFR 217.32(g)(2)
RESIDENTIAL_MORTGAGES = frozenset({Segment.FIRST_LIEN_MORTGAGE, Segment.HELOC})  # 1-4 family, first or junior lien
PAST_DUE_DAYS = 90
UNCONDITIONALLY_CANCELLABLE_CCF = 0.10
OTHER_COMMITMENT_CCF = 0.40
UNCONDITIONALLY_CANCELLABLE: frozenset[Segment] = frozenset({Segment.CREDIT_CARD})


class CreditRWA(NamedTuple):
    """RWA of each exposure split into the drawn (on-balance-sheet) and the undrawn (off-balance) part."""

    drawn: NDArray[np.float64]
    undrawn: NDArray[np.float64]


def _lookup(names: NDArray[np.object_], table: dict[Segment, float]) -> NDArray[np.float64]:
    values = np.full(names.shape, np.nan)
    for segment, value in table.items():
        values[names == segment.value] = value
    if np.isnan(values).any():
        raise ValueError(f"unknown segments: {sorted(set(names[np.isnan(values)].tolist()))}")
    return values


def risk_weights(segment_names: ArrayLike, days_past_due: ArrayLike,
                 hvcre: ArrayLike | None = None) -> NDArray[np.float64]:
    """Standardized risk weight of each loan (fraction, 0.5 = 50 %) from its segment and delinquency.

    ``hvcre`` flags high-volatility CRE loans (150 %); the loan contract carries no such flag, so the
    engine passes none and every CRE loan is weighted 100 %, which understates RWA for
    construction lending (docs/capital.md).
    """
    names = np.asarray(segment_names, dtype=object)
    weights = _lookup(names, RISK_WEIGHTS)
    if hvcre is not None:
        flagged = np.asarray(hvcre, dtype=bool)
        if np.any(flagged & (names != Segment.COMMERCIAL_REAL_ESTATE.value)):
            raise ValueError("only commercial real estate loans can be HVCRE")
        weights = np.where(flagged, HVCRE_RISK_WEIGHT, weights)
    past_due = np.asarray(days_past_due, dtype=np.float64) >= PAST_DUE_DAYS
    mortgage = np.isin(names, [segment.value for segment in RESIDENTIAL_MORTGAGES])
    return np.where(past_due, np.where(mortgage, PAST_DUE_MORTGAGE_RISK_WEIGHT, PAST_DUE_RISK_WEIGHT), weights)


def credit_conversion_factors(segment_names: ArrayLike) -> NDArray[np.float64]:
    """CCF of each loan's undrawn commitment: 10 % unconditionally cancellable (cards), 40 % otherwise."""
    names = np.asarray(segment_names, dtype=object)
    factors = {s: UNCONDITIONALLY_CANCELLABLE_CCF if s in UNCONDITIONALLY_CANCELLABLE else OTHER_COMMITMENT_CCF
               for s in Segment}
    return _lookup(names, factors)


def undrawn_commitments(balance: ArrayLike, limit: ArrayLike, revolving: ArrayLike) -> NDArray[np.float64]:
    """Undrawn amount of revolving lines, ``max(limit - balance, 0)``; term loans have none (fully drawn)."""
    undrawn = np.maximum(np.asarray(limit, dtype=np.float64) - np.asarray(balance, dtype=np.float64), 0.0)
    return np.where(np.asarray(revolving, dtype=bool), undrawn, 0.0)


def credit_rwa(balance: ArrayLike, undrawn: ArrayLike, segment_names: ArrayLike, days_past_due: ArrayLike,
               hvcre: ArrayLike | None = None) -> CreditRWA:
    """Standardized RWA: risk weight x drawn balance, and risk weight x CCF x undrawn commitment."""
    weight = risk_weights(segment_names, days_past_due, hvcre)
    drawn = weight * np.asarray(balance, dtype=np.float64)
    undrawn_rwa = weight * credit_conversion_factors(segment_names) * np.asarray(undrawn, dtype=np.float64)
    return CreditRWA(drawn, undrawn_rwa)
