"""Numba kernels over normalised UTF-8 text (bytes + row offsets): substring and equality."""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _match_at(data, i, needle):
    """data[i:i+len(needle)] == needle (the caller keeps i + len(needle) in bounds)."""
    for j in range(needle.size):
        if data[i + j] != needle[j]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def contains(data, s, e, needle):
    """needle occurs within data[s:e]."""
    first = needle[0]
    for i in range(s, e - needle.size + 1):
        if data[i] == first and _match_at(data, i, needle):
            return True
    return False


@njit(cache=True, nogil=True, parallel=True)
def substring_mask(data, offsets, needle, out):
    """out[r] |= 1 when row r (bytes data[offsets[r]:offsets[r+1]]) contains needle.

    Rows are taken in blocks; each block's bytes are one contiguous run, scanned in a
    tight loop, and a hit is mapped to its row by advancing a row cursor (a match that
    would straddle two rows is rejected)."""
    m = needle.size
    first = needle[0]
    nrows = offsets.size - 1
    block = 4096
    for bi in prange((nrows + block - 1) // block):
        r = bi * block
        r_end = min(nrows, r + block)
        s, e = offsets[r], offsets[r_end]
        i = s
        while i <= e - m:
            if data[i] == first and _match_at(data, i, needle):
                while offsets[r + 1] <= i:
                    r += 1
                if i + m <= offsets[r + 1]:
                    out[r] = 1
                    i = offsets[r + 1]  # the row is decided: jump to the next one
                    continue
            i += 1


@njit(cache=True, nogil=True, parallel=True)
def equal_mask(data, offsets, needle, out):
    """out[r] = 1 when row r's bytes equal needle."""
    m = needle.size
    for r in prange(offsets.size - 1):
        s, e = offsets[r], offsets[r + 1]
        if e - s != m:
            out[r] = 0
            continue
        ok = 1
        for j in range(m):
            if data[s + j] != needle[j]:
                ok = 0
                break
        out[r] = ok


@njit(cache=True, nogil=True)
def equal_rows(hashes, rows, data, offsets, needle, h, out):
    """out[r] = 1 for each row r whose bytes equal needle, found through the sorted row
    hashes (FNV-1a 64, engine.storage.shard_customers): only rows with hash h are compared."""
    k = np.searchsorted(hashes, h)
    m = needle.size
    while k < hashes.size and hashes[k] == h:
        r = rows[k]
        s, e = offsets[r], offsets[r + 1]
        if e - s == m:
            ok = True
            for j in range(m):
                if data[s + j] != needle[j]:
                    ok = False
                    break
            if ok:
                out[r] = 1
        k += 1
