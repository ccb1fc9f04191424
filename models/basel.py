"""Basel II/III IRB risk weights (BCBS CRE31 for the formulas, CRE32 for the inputs).

Why: the stress test reports capital ratios, and the denominator of a ratio is risk-weighted
assets. Stressed PDs and LGDs feed the same supervisory formula a bank would use, so the RWA path
moves with the scenario rather than being frozen at the starting point.

The formula is the Vasicek 99.9 % loss quantile less the expected loss, times a maturity factor
(see :mod:`models.vasicek` for the convention: ``rho`` is the **asset correlation**, the systematic
factor loading is ``sqrt(rho)``, and a negative factor is a bad state)::

    K   = LGD * [N((N^-1(PD) + sqrt(R) N^-1(0.999)) / sqrt(1 - R)) - PD] * MA
    RW  = 12.5 * K          (12.5 = 1 / 8 %, so that 8 % of RWA equals K per unit of EAD)
    RWA = RW * EAD

``MA = (1 + (M - 2.5) b) / (1 - 1.5 b)`` with ``b = (0.11852 - 0.05478 ln PD)^2`` for corporate
exposures (CRE31.5) and ``MA = 1`` for retail (CRE31.14). The Basel II scaling factor of 1.06 was
removed by the 2017 reforms; :func:`risk_weighted_assets` accepts it as an argument for the jurisdictions
(e.g. the US advanced approaches) that still apply it. The SME firm-size adjustment is not modelled.

A loan in default (PD = 1) gets K = 0 from the formula: its capital is the LGD in excess of the
best-estimate loss, which is a provisioning question handled outside this module.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from models.segments import Segment
from models.vasicek import lhp_loss_quantile

CONFIDENCE_LEVEL = 0.999
RISK_WEIGHT_MULTIPLIER = 12.5
# Basel II's PD floor (CRE32 before the 2017 reforms raised it to 0.05 % for most classes).
DEFAULT_PD_FLOOR = 0.0003
# Basel III (December 2017 reforms) PD input floors, CRE32: 0.05 % for corporate and retail exposures,
# 0.10 % for qualifying revolving retail (cards); the capital option "irb" applies these.
BASEL3_PD_FLOOR = 0.0005
BASEL3_QRRE_PD_FLOOR = 0.0010

RESIDENTIAL_MORTGAGE_CORRELATION = 0.15  # CRE31.11
QUALIFYING_REVOLVING_CORRELATION = 0.04  # CRE31.12
OTHER_RETAIL_CORRELATION_RANGE = (0.03, 0.16)  # CRE31.13: high PD -> 3 %, low PD -> 16 %
OTHER_RETAIL_DECAY = 35.0
CORPORATE_CORRELATION_RANGE = (0.12, 0.24)  # CRE31.5: high PD -> 12 %, low PD -> 24 %
CORPORATE_DECAY = 50.0

# Effective maturity M of corporate exposures, in years: CRE32.47 floors it at one and caps it at five.
DEFAULT_MATURITY_YEARS = 2.5
MATURITY_BOUNDS_YEARS = (1.0, 5.0)
MATURITY_COEFFICIENTS = (0.11852, 0.05478)


class AssetClass(IntEnum):
    """The IRB asset classes our segments fall into; the integer values are array codes."""

    RESIDENTIAL_MORTGAGE = 0
    QUALIFYING_REVOLVING = 1
    OTHER_RETAIL = 2
    CORPORATE = 3


SEGMENT_ASSET_CLASS: dict[Segment, AssetClass] = {
    Segment.FIRST_LIEN_MORTGAGE: AssetClass.RESIDENTIAL_MORTGAGE,
    # A HELOC is a retail exposure secured by residential property (CRE30.23), hence a mortgage too.
    Segment.HELOC: AssetClass.RESIDENTIAL_MORTGAGE,
    Segment.CREDIT_CARD: AssetClass.QUALIFYING_REVOLVING,
    Segment.AUTO: AssetClass.OTHER_RETAIL,
    Segment.PERSONAL: AssetClass.OTHER_RETAIL,
    # Income-producing real estate is corporate (specialised lending) under the IRB approach.
    Segment.COMMERCIAL_REAL_ESTATE: AssetClass.CORPORATE,
    Segment.COMMERCIAL_INDUSTRIAL: AssetClass.CORPORATE,
}


def asset_class_codes(segments: ArrayLike) -> NDArray[np.int8]:
    """Asset-class codes (``AssetClass`` values) for an array of segment names."""
    names = np.asarray(segments)
    codes = np.full(names.shape, -1, dtype=np.int8)
    for segment, asset_class in SEGMENT_ASSET_CLASS.items():
        codes[names == segment.value] = asset_class
    if np.any(codes < 0):
        unknown = sorted(set(np.unique(names[codes < 0]).tolist()))
        raise ValueError(f"unknown segments: {unknown}")
    return codes


def basel3_pd_floors(asset_class: ArrayLike) -> NDArray[np.float64]:
    """Basel III PD floor of each exposure (CRE32): 0.10 % for qualifying revolving, 0.05 % otherwise.

    Why: the 2017 reforms raised the input floors from Basel II's 0.03 % to limit how far modelled
    PDs of the best grades can lower capital, with a higher floor for QRRE revolvers (CRE32).
    """
    codes = np.asarray(asset_class)
    return np.where(codes == AssetClass.QUALIFYING_REVOLVING, BASEL3_QRRE_PD_FLOOR, BASEL3_PD_FLOOR)


def _interpolated_correlation(
    pd: NDArray[np.float64], bounds: tuple[float, float], decay: float
) -> NDArray[np.float64]:
    """Correlation that falls from ``bounds[1]`` at PD = 0 to ``bounds[0]`` as PD grows."""
    low, high = bounds
    weight = -np.expm1(-decay * pd) / -np.expm1(-decay)
    return low * weight + high * (1.0 - weight)


def other_retail_correlation(pd: ArrayLike) -> NDArray[np.float64]:
    """CRE31.13: 3 % .. 16 % with decay 35 (riskier retail borrowers are more idiosyncratic)."""
    return _interpolated_correlation(np.asarray(pd, dtype=np.float64), OTHER_RETAIL_CORRELATION_RANGE,
                                     OTHER_RETAIL_DECAY)


def corporate_correlation(pd: ArrayLike) -> NDArray[np.float64]:
    """CRE31.5: 12 % .. 24 % with decay 50 (without the SME firm-size adjustment)."""
    return _interpolated_correlation(np.asarray(pd, dtype=np.float64), CORPORATE_CORRELATION_RANGE,
                                     CORPORATE_DECAY)


def asset_correlation(pd: ArrayLike, asset_class: ArrayLike) -> NDArray[np.float64]:
    """The supervisory asset correlation ``R`` for each exposure (``asset_class`` holds codes)."""
    pd_arr = np.asarray(pd, dtype=np.float64)
    codes = np.asarray(asset_class)
    pd_arr, codes = np.broadcast_arrays(pd_arr, codes)
    if not np.all(np.isin(codes, list(AssetClass))):
        raise ValueError("asset_class must hold AssetClass codes")
    return np.select(
        [
            codes == AssetClass.RESIDENTIAL_MORTGAGE,
            codes == AssetClass.QUALIFYING_REVOLVING,
            codes == AssetClass.OTHER_RETAIL,
            codes == AssetClass.CORPORATE,
        ],
        [
            np.full(pd_arr.shape, RESIDENTIAL_MORTGAGE_CORRELATION),
            np.full(pd_arr.shape, QUALIFYING_REVOLVING_CORRELATION),
            other_retail_correlation(pd_arr),
            corporate_correlation(pd_arr),
        ],
    )


def maturity_adjustment(
    pd: ArrayLike, maturity_years: ArrayLike = DEFAULT_MATURITY_YEARS
) -> NDArray[np.float64]:
    """CRE31.5 corporate maturity factor ``(1 + (M - 2.5) b) / (1 - 1.5 b)``.

    ``b = (0.11852 - 0.05478 ln PD)^2``.

    Why: the Vasicek quantile covers default within one year; a longer loan also loses value when
    the borrower is downgraded, which matters more for good borrowers (``b`` falls as PD rises).
    The factor is 1 at ``M = 1`` and is calibrated around ``M = 2.5``; ``M`` is clipped to [1, 5]
    years (CRE32.47).
    """
    intercept, slope = MATURITY_COEFFICIENTS
    b = (intercept - slope * np.log(np.asarray(pd, dtype=np.float64))) ** 2
    maturity = np.clip(np.asarray(maturity_years, dtype=np.float64), *MATURITY_BOUNDS_YEARS)
    return (1.0 + (maturity - DEFAULT_MATURITY_YEARS) * b) / (1.0 - 1.5 * b)


def capital_requirement(
    pd: ArrayLike,
    lgd: ArrayLike,
    asset_class: ArrayLike,
    maturity_years: ArrayLike = DEFAULT_MATURITY_YEARS,
    pd_floor: ArrayLike = DEFAULT_PD_FLOOR,
) -> NDArray[np.float64]:
    """Capital ``K`` per unit of EAD: the unexpected loss at 99.9 % times the maturity factor.

    PDs are floored at ``pd_floor`` (a number or one floor per exposure, e.g. :func:`basel3_pd_floors`)
    and capped at 1; the maturity factor applies to corporate exposures only.
    """
    codes = np.asarray(asset_class)
    pd_arr = np.clip(np.asarray(pd, dtype=np.float64), pd_floor, 1.0)
    lgd_arr = np.asarray(lgd, dtype=np.float64)
    correlation = asset_correlation(pd_arr, codes)
    unexpected = lgd_arr * (lhp_loss_quantile(CONFIDENCE_LEVEL, pd_arr, correlation) - pd_arr)
    factor = np.where(codes == AssetClass.CORPORATE, maturity_adjustment(pd_arr, maturity_years), 1.0)
    return unexpected * factor


def risk_weight(
    pd: ArrayLike,
    lgd: ArrayLike,
    asset_class: ArrayLike,
    maturity_years: ArrayLike = DEFAULT_MATURITY_YEARS,
    pd_floor: ArrayLike = DEFAULT_PD_FLOOR,
) -> NDArray[np.float64]:
    """Risk weight as a fraction of EAD (0.9232 = 92.32 %): ``12.5 * K``."""
    return RISK_WEIGHT_MULTIPLIER * capital_requirement(pd, lgd, asset_class, maturity_years, pd_floor)


def risk_weighted_assets(
    ead: ArrayLike,
    pd: ArrayLike,
    lgd: ArrayLike,
    asset_class: ArrayLike,
    maturity_years: ArrayLike = DEFAULT_MATURITY_YEARS,
    pd_floor: ArrayLike = DEFAULT_PD_FLOOR,
    scaling_factor: float = 1.0,
) -> NDArray[np.float64]:
    """RWA per exposure: ``scaling_factor * RW * EAD`` (``scaling_factor`` 1.06 for Basel II rules)."""
    weight = risk_weight(pd, lgd, asset_class, maturity_years, pd_floor)
    return scaling_factor * weight * np.asarray(ead, dtype=np.float64)
