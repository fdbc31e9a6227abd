"""Kernels that pick some customers' lines out of a version's runs (engine.evaluation.subset).

A run's lines carry the local customer (`cust`, uint16) of their shard; `luts[j, c]` is the
new local number of shard row c in the subset, or -1 when the row is not in it. Piece p
belongs to lut row `lut_of[p]`. Counting and filling are two passes, so the positions
array is allocated once at its exact size.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..storage.views import view_u8, view_u16, view_u32, view_u64


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


@njit(cache=True, nogil=True)
def _gather_piece(addr, size, rows, cols, widths, out_addr, total, ptr, pos, p):
    """The selected lines of piece p, column by column (see gather_lines)."""
    a, b = ptr[p], ptr[p + 1]
    if b == a:
        return
    for j in range(cols.size):
        c = cols[j]
        n = size[c, p]
        if n == 0 or n != rows[p]:       # a column the run lacks (order keys may): left empty
            continue
        w = widths[j]
        if w == 8:
            src8, dst8 = view_u64(addr[c, p], n), view_u64(out_addr[j], total)
            for i in range(a, b):
                dst8[i] = src8[pos[i]]
        elif w == 4:
            src4, dst4 = view_u32(addr[c, p], n), view_u32(out_addr[j], total)
            for i in range(a, b):
                dst4[i] = src4[pos[i]]
        elif w == 2:
            src2, dst2 = view_u16(addr[c, p], n), view_u16(out_addr[j], total)
            for i in range(a, b):
                dst2[i] = src2[pos[i]]
        else:
            src1, dst1 = view_u8(addr[c, p], n), view_u8(out_addr[j], total)
            for i in range(a, b):
                dst1[i] = src1[pos[i]]


@njit(cache=True, nogil=True, parallel=True)
def gather_lines(addr, size, rows, cols, widths, out_addr, ptr, pos):
    """Column j (cols[j] of the piece table, items of widths[j] bytes) of the selected lines:
    out_j[ptr[p]:ptr[p + 1]] = column of piece p at pos[ptr[p]:ptr[p + 1]], for every piece
    whose column holds all its rows[p] lines (out_j holds ptr[-1] items at out_addr[j])."""
    total = ptr[ptr.size - 1]
    for p in prange(ptr.size - 1):
        _gather_piece(addr, size, rows, cols, widths, out_addr, total, ptr, pos, p)
