"""Kernels that pick some customers' lines out of a version's runs (engine.evaluation.subset).

A run's lines carry the local customer (`cust`, uint16) of their shard; `luts[j, c]` is the
new local number of shard row c in the subset, or -1 when the row is not in it. Piece p
belongs to lut row `lut_of[p]`. Counting and filling are two passes, so the positions
array is allocated once at its exact size.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..storage.views import view_u16


@njit(cache=True, nogil=True, parallel=True)
def count_lines(addr, size, col, lut_of, luts, counts):
    """counts[p] = lines of piece p whose customer is in the subset."""
    for p in prange(lut_of.size):
        cust = view_u16(addr[col, p], size[col, p])
        lut = luts[lut_of[p]]
        k = 0
        for i in range(cust.size):
            if lut[cust[i]] >= 0:
                k += 1
        counts[p] = k


@njit(cache=True, nogil=True, parallel=True)
def select_lines(addr, size, col, lut_of, luts, ptr, pos, cust_out):
    """pos[ptr[p]:ptr[p + 1]] = positions of piece p's lines whose customer is in the
    subset (ascending: the run's order is kept), cust_out = their new local customers."""
    for p in prange(lut_of.size):
        cust = view_u16(addr[col, p], size[col, p])
        lut = luts[lut_of[p]]
        k = ptr[p]
        for i in range(cust.size):
            c = lut[cust[i]]
            if c >= 0:
                pos[k] = i
                cust_out[k] = c
                k += 1
