"""Numba kernels over normalised UTF-8 text (bytes + row offsets): substring and equality."""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .views import view_i64, view_u8, view_u32, view_u64

# columns of a text PieceTable (engine.storage.snapshot.Snapshot.text_pieces): one piece per shard
T_DATA, T_OFFSETS, T_KEYS, T_KOFFSETS, T_IDS, T_EQ_HASH, T_EQ_ROWS = 0, 1, 2, 3, 4, 5, 6
T_NAMES = ("data", "offsets", "keys", "koffsets", "ids", "eq_hash", "eq_rows")


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
            hit = data[i] == first
            if hit:
                for j in range(1, m):
                    if data[i + j] != needle[j]:
                        hit = False
                        break
            if hit:
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
def _row_contains(data, s, e, needle):
    m = needle.size
    first = needle[0]
    for i in range(s, e - m + 1):
        if data[i] == first:
            ok = True
            for j in range(1, m):
                if data[i + j] != needle[j]:
                    ok = False
                    break
            if ok:
                return True
    return False


@njit(cache=True, nogil=True, parallel=True)
def search_pieces(addr, size, base, codes, needle, out):
    """out[base[k] + r] = 1 for each row r of shard k whose text contains needle: the rows
    of the needle trigram with the shortest posting list in the shard's index, each
    checked (a needle of 3 bytes is its trigram's list), or every row when the needle is
    shorter than a trigram or the shard has no index. `codes`: the needle's distinct
    trigram codes."""
    m = needle.size
    for k in prange(base.size):
        data = view_u8(addr[T_DATA, k], size[T_DATA, k])
        offs = view_i64(addr[T_OFFSETS, k], size[T_OFFSETS, k])
        keys = view_u32(addr[T_KEYS, k], size[T_KEYS, k])
        b = base[k]
        nrows = offs.size - 1
        if m < 3 or keys.size == 0:
            for r in range(nrows):
                if offs[r + 1] - offs[r] >= m and _row_contains(data, offs[r], offs[r + 1], needle):
                    out[b + r] = 1
            continue
        koffs = view_i64(addr[T_KOFFSETS, k], size[T_KOFFSETS, k])
        ids = view_u32(addr[T_IDS, k], size[T_IDS, k])
        best_lo, best_hi = np.int64(0), np.int64(-1)
        missing = False
        for c in range(codes.size):
            j = np.searchsorted(keys, codes[c])
            if j >= keys.size or keys[j] != codes[c]:
                missing = True
                break
            if best_hi < 0 or koffs[j + 1] - koffs[j] < best_hi - best_lo:
                best_lo, best_hi = koffs[j], koffs[j + 1]
        if missing:
            continue
        for q in range(best_lo, best_hi):
            r = ids[q]
            if m == 3 or _row_contains(data, offs[r], offs[r + 1], needle):
                out[b + r] = 1


@njit(cache=True, nogil=True, parallel=True)
def equal_pieces(addr, size, base, needle, h, out):
    """out[base[k] + r] = 1 for each row r of shard k whose bytes equal needle, through the
    shard's sorted row hashes (rows with hash h are compared)."""
    m = needle.size
    for k in prange(base.size):
        data = view_u8(addr[T_DATA, k], size[T_DATA, k])
        offs = view_i64(addr[T_OFFSETS, k], size[T_OFFSETS, k])
        hashes = view_u64(addr[T_EQ_HASH, k], size[T_EQ_HASH, k])
        rows = view_u32(addr[T_EQ_ROWS, k], size[T_EQ_ROWS, k])
        b = base[k]
        j = np.searchsorted(hashes, h)
        while j < hashes.size and hashes[j] == h:
            r = rows[j]
            s, e = offs[r], offs[r + 1]
            if e - s == m:
                ok = True
                for i in range(m):
                    if data[s + i] != needle[i]:
                        ok = False
                        break
                if ok:
                    out[b + r] = 1
            j += 1
