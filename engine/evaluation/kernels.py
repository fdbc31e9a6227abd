"""Numba kernels over dense per-customer columns: contiguous typed arrays and scalars in,
arrays out. No lmdb, no pyroaring. Line tables have theirs in line_kernels.py (versions)
and delta_kernels.py (appended lines).
"""
from __future__ import annotations

import warnings

from numba import njit, prange
from numba.core.errors import NumbaTypeSafetyWarning

from ..storage.layout import LAYBY_OPEN, NO_DAY, VISIT_BOOKED, VISIT_COMPLETED  # noqa: F401

# prange indices are unsigned; indexing int64 arrays with them is safe here (sizes < 2**63)
warnings.filterwarnings("ignore", category=NumbaTypeSafetyWarning)

MODE_BOUGHT = 0       # any matching non-refund line
MODE_SPEND = 1        # net sum of matching amounts
MODE_COUNT = 2        # number of matching non-refund lines
MODE_LAST_DAY = 3     # latest local day of a matching non-refund line (NO_DAY if none)
MODE_FIRST_DAY = 4    # earliest local day of a matching non-refund line (NO_DAY if none)


def outside(lo: int, hi: int):
    """An int64 outside [lo, hi], to pass range_mask as its null (None: [lo, hi] is every int64)."""
    if lo > -(2**63):
        return lo - 1
    return hi + 1 if hi < 2**63 - 1 else None


@njit(cache=True, nogil=True, parallel=True)
def range_mask(values, null, lo, hi, out):
    """out[i] = 1 when values[i] is not the null sentinel and lies in [lo, hi]."""
    for i in prange(values.size):
        v = values[i]
        out[i] = 1 if (v != null and v >= lo and v <= hi) else 0


@njit(cache=True, nogil=True, parallel=True)
def replaced(values, old, new, out):
    """out[i] = new where values[i] == old, else values[i] (out may be values)."""
    for i in prange(values.size):
        v = values[i]
        out[i] = new if v == old else v


@njit(cache=True, nogil=True, parallel=True)
def lut_mask(codes, lut, out):
    """out[i] = lut[codes[i]]."""
    for i in prange(codes.size):
        out[i] = lut[codes[i]]


@njit(cache=True, nogil=True, parallel=True)
def age_mask(birth_year, birth_md, today_year, today_md, leap, lo, hi, out):
    """out[i] = 1 when the completed age on today lies in [lo, hi]; 29 Feb birthdays count
    on 28 Feb in non-leap years; birth_year 0 = unknown."""
    for i in prange(birth_year.size):
        by = birth_year[i]
        if by == 0:
            out[i] = 0
            continue
        md = birth_md[i]
        if md == 229 and not leap:
            md = 228
        age = today_year - by - (1 if today_md < md else 0)
        out[i] = 1 if (age >= lo and age <= hi) else 0


@njit(cache=True, nogil=True)
def rank_keys(values, ids, descending, null, out):
    """out[j]: the ascending sort key of customer ids[j]'s ranking value (negated when
    descending; an absent value, `null`, the largest key: last either way)."""
    big = (1 << 63) - 1
    for j in range(ids.size):
        v = values[ids[j]]
        out[j] = big if v == null else (-v if descending else v)
