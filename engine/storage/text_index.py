"""Trigram index over the normalised search text: build (engine.build) and query (engine.evaluate).

Per search field, every distinct byte trigram of a customer's normalised UTF-8 text maps
to the sorted internal ids of the customers holding it, stored as one CSR posting list:
  t/<field>/keys      uint32, sorted trigram codes (b0 << 16 | b1 << 8 | b2)
  t/<field>/offsets   int64, len(keys) + 1: ids[offsets[i]:offsets[i+1]] belong to keys[i]
  t/<field>/ids       uint32, the concatenated posting lists (ascending within each list)
  t/<field>/pos       uint8, parallel to ids: the byte offset of the trigram's first
                      occurrence in that customer's text (255: at 255 or beyond, unknown)
Trigrams never straddle two customers, so a 3-byte needle's posting list is its exact
answer; longer needles intersect their trigrams' lists. A candidate whose first
occurrences of every needle trigram line up (trigram k at start + k) provably contains the
needle; the others get an exact substring check. Needles under 3 bytes fall back to the
full scan.
"""
from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
from numba import njit, prange

from .text_kernels import contains, substring_mask

MAX_LISTS = 6        # intersect at most this many (the shortest) posting lists; verify the rest
GALLOP_RATIO = 8     # a list this many times longer than the candidates is probed, not marked


_scratch = threading.local()


def _scratch_arrays(n: int):
    """This thread's reusable per-row (cnt uint8 all zero, start int16) arrays: fresh
    allocations would pay their page faults inside the parallel kernels on every query.
    The caller zeroes cnt again when done (see _release)."""
    cnt = getattr(_scratch, "cnt", None)
    if cnt is None or cnt.size < n:
        _scratch.cnt = cnt = np.zeros(n, np.uint8)
        _scratch.start = np.zeros(n, np.int16)
    elif not _scratch.clean:  # a search stopped before _release
        cnt[:] = 0
    _scratch.clean = False
    return cnt[:n], _scratch.start[:n]


def _release(cnt, first_rows) -> None:
    """Zero cnt again: only rows of the first marked list can be nonzero."""
    if first_rows.size * 16 < cnt.size:
        reset_rows(first_rows, cnt)
    else:
        cnt[:] = 0
    _scratch.clean = True


def scratch_mask(n: int) -> np.ndarray:
    """This thread's reusable zeroed uint8 mask of n rows (valid until its next call)."""
    m = getattr(_scratch, "mask", None)
    if m is None or m.size < n:
        _scratch.mask = m = np.zeros(n, np.uint8)
    else:
        m[:n] = 0
    return m[:n]


def text_buffers(col) -> tuple:
    """(utf-8 bytes as uint8, int64 row offsets) of a string column; null rows are empty."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    col = col.fill_null("")
    _, off, data = col.buffers()
    odt = np.int64 if pa.types.is_large_string(col.type) else np.int32
    offsets = np.frombuffer(off, dtype=odt, count=len(col) + 1, offset=col.offset * np.dtype(odt).itemsize)
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return raw, offsets.astype(np.int64)


# ------------------------------------------------------------------- build

@njit(cache=True, nogil=True)
def trigram_postings_into(data, offsets, counts, last):
    """(keys uint32, offsets int64, ids uint32, pos uint8): the CSR posting lists of the
    distinct trigrams of each row, with each trigram's first offset in the row (capped at
    255). Two passes over the bytes: count (a trigram repeated within a row counts once, via
    the last row that counted it), then scatter rows in ascending order. `counts` (int32,
    2**24 zeros) and `last` (int32, 2**24 of -1) are scratch, left as they were found: the
    work follows the text, not the 16M possible trigrams."""
    nrows = offsets.size - 1
    distinct = np.empty(max(0, data.size), np.int64)
    nd = 0
    for r in range(nrows):
        for i in range(offsets[r], offsets[r + 1] - 2):
            c = (np.int64(data[i]) << 16) | (np.int64(data[i + 1]) << 8) | np.int64(data[i + 2])
            if last[c] != r:
                last[c] = r
                if counts[c] == 0:
                    distinct[nd] = c
                    nd += 1
                counts[c] += 1
    codes = np.sort(distinct[:nd])
    keys = codes.astype(np.uint32)
    offs = np.empty(nd + 1, np.int64)
    total = np.int64(0)
    for j in range(nd):
        c = codes[j]
        k = counts[c]
        offs[j] = total
        counts[c] = total  # reused: the next write position of each code
        total += k
    offs[nd] = total
    ids = np.empty(total, np.uint32)
    first = np.empty(total, np.uint8)
    for r in range(nrows):
        for i in range(offsets[r], offsets[r + 1] - 2):
            c = (np.int64(data[i]) << 16) | (np.int64(data[i + 1]) << 8) | np.int64(data[i + 2])
            if last[c] != -2 - r:  # a second marker per row
                last[c] = -2 - r
                ids[counts[c]] = r
                first[counts[c]] = min(i - offsets[r], 255)
                counts[c] += 1
    for j in range(nd):
        counts[codes[j]] = 0
        last[codes[j]] = -1
    return keys, offs, ids, first


_build_scratch = threading.local()


def trigram_postings(data, offsets):
    """(keys, offsets, ids, pos) of the rows' trigrams (trigram_postings_into, with this
    thread's scratch: 128 MB, allocated once)."""
    s = getattr(_build_scratch, "arrays", None)
    if s is None:
        s = _build_scratch.arrays = (np.zeros(1 << 24, np.int32), np.full(1 << 24, -1, np.int32))
    return trigram_postings_into(data, offsets, *s)


def build_index(put, fields: dict, pool=None) -> None:
    """Write t/<field>/{keys,offsets,ids} for each (field -> string column); `put(key, array)`.
    With a thread pool, fields are indexed concurrently (the kernel releases the GIL)."""
    def one(item):
        name, col = item
        return name, trigram_postings(*text_buffers(col))
    results = pool.map(one, fields.items()) if pool is not None else map(one, fields.items())
    for name, (keys, offs, ids, first) in results:
        put(f"t/{name}/keys", keys)
        put(f"t/{name}/offsets", offs)
        put(f"t/{name}/ids", ids)
        put(f"t/{name}/pos", first)


# ------------------------------------------------------------------- query

@njit(cache=True, nogil=True)
def intersect_gallop(a, b):
    """Sorted a ∩ sorted b, probing b by exponential then binary search (|a| << |b|)."""
    out = np.empty(a.size, np.uint32)
    n = 0
    lo = 0
    nb = b.size
    for x in a:
        step = 1
        hi = lo
        while hi < nb and b[hi] < x:
            lo = hi + 1
            hi += step
            step <<= 1
        if hi > nb:
            hi = nb
        while lo < hi:  # first index in [lo, hi) with b >= x
            mid = (lo + hi) >> 1
            if b[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        if lo >= nb:
            break
        if b[lo] == x:
            out[n] = x
            n += 1
            lo += 1
    return out[:n]


@njit(cache=True, nogil=True, parallel=True)
def reset_rows(rows, cnt):
    for j in prange(rows.size):
        cnt[rows[j]] = 0


NO_START = -32768  # a row whose trigram offsets do not line up (or are unknown)


@njit(cache=True, nogil=True, parallel=True)
def mark_rows(rows, first, k, cnt, start, level, prove):
    """For each r of rows (distinct) with cnt[r] == level: cnt[r] = level + 1 and, when
    proving, start[r] = first[j] - k if it agrees with the earlier lists' start, else NO_START."""
    for j in prange(rows.size):
        r = rows[j]
        if cnt[r] == level:
            cnt[r] = level + 1
            if prove:
                p = np.int32(first[j])
                st = p - k if p != 255 else NO_START
                if level == 0 or start[r] == st:
                    start[r] = st
                else:
                    start[r] = NO_START


@njit(cache=True, nogil=True, parallel=True)
def substring_rows(data, offsets, needle, rows, exact, out):
    """out[r] = 1 for each candidate r of rows whose bytes contain needle (every r when exact)."""
    for j in prange(rows.size):
        r = rows[j]
        if out[r] == 0 and (exact or contains(data, offsets[r], offsets[r + 1], needle)):
            out[r] = 1


@njit(cache=True, nogil=True, parallel=True)
def substring_marked(data, offsets, needle, rows, first, k, cnt, start, level, prove, exact, out):
    """out[r] = 1 for each r of rows with cnt[r] == level (in every earlier list) that contains
    needle: proven when its trigram offsets line up (start[r] == first[j] - k), else checked."""
    for j in prange(rows.size):
        r = rows[j]
        if cnt[r] == level and out[r] == 0:
            if exact or (prove and first[j] != 255 and start[r] != NO_START
                         and start[r] == np.int32(first[j]) - k):
                out[r] = 1
            elif contains(data, offsets[r], offsets[r + 1], needle):
                out[r] = 1


def needle_codes(needle: bytes) -> np.ndarray:
    """The trigram code at each offset of needle (>= 3 bytes)."""
    b = np.frombuffer(needle, np.uint8).astype(np.uint32)
    return (b[:-2] << 16) | (b[1:-1] << 8) | b[2:]


def search_field(index, data, offsets, needle: bytes, out) -> None:
    """out[r] |= 1 for rows containing needle (non-empty bytes): through the trigram index
    when there is one and the needle has >= 3 bytes, else by scanning every row."""
    if not needle:
        return  # an empty needle matches nothing
    if index is not None and len(needle) >= 3:
        search_indexed(index, data, offsets, needle, out)
    else:
        substring_mask(data, offsets, np.frombuffer(needle, np.uint8), out)


def search_indexed(index, data, offsets, needle: bytes, out) -> None:
    """out[r] |= 1 for rows containing needle (>= 3 bytes); index = (keys, offsets, ids, pos)."""
    keys, offs, ids, first = index
    if keys.size == 0:
        return
    codes, at = np.unique(needle_codes(needle), return_index=True)  # at: first needle offset
    pos = np.searchsorted(keys, codes)
    if (pos >= keys.size).any() or (keys[np.minimum(pos, keys.size - 1)] != codes).any():
        return  # a trigram nobody has: no match
    lists = sorted(((ids[offs[p]:offs[p + 1]], first[offs[p]:offs[p + 1]], int(k)) for p, k in zip(pos, at)),
                   key=lambda t: t[0].size)
    # a line-up proves a match only when every needle offset has its own distinct trigram
    prove = codes.size == len(needle) - 2 and codes.size <= MAX_LISTS
    lists = lists[:MAX_LISTS]
    exact = len(needle) == 3
    nd = np.frombuffer(needle, np.uint8)
    cand = lists[0][0]
    i = 1
    while i < len(lists) and lists[i][0].size >= GALLOP_RATIO * cand.size:
        cand = intersect_gallop(cand, lists[i][0])  # few candidates: probe the long list
        i += 1
    if i == len(lists) or cand.size == 0:
        substring_rows(data, offsets, nd, cand, exact, out)
        return
    # comparable lists: count memberships (and trigram line-ups) in per-row arrays, a parallel
    # streaming pass per list; then settle the rows of the last list that are in all others
    cnt, start = _scratch_arrays(offsets.size - 1)
    prove = prove and i == 1
    if i == 1:
        mark_rows(lists[0][0], lists[0][1], lists[0][2], cnt, start, 0, prove)
    else:
        mark_rows(cand, lists[0][1], 0, cnt, start, 0, False)
    for level, (rows, fp, k) in enumerate(lists[i:-1], start=1):
        mark_rows(rows, fp, k, cnt, start, level, prove)
    rows, fp, k = lists[-1]
    substring_marked(data, offsets, nd, rows, fp, k, cnt, start, len(lists) - i, prove, exact, out)
    _release(cnt, cand)
