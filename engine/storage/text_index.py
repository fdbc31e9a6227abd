"""Trigram index over the normalised search text, written per shard by the builder and read
by text_kernels.search_pieces.

Per search field, every distinct byte trigram of a customer's normalised UTF-8 text maps
to the sorted rows of the customers holding it, stored as one CSR posting list:
  t/<field>/keys      uint32, sorted trigram codes (b0 << 16 | b1 << 8 | b2)
  t/<field>/offsets   int64, len(keys) + 1: ids[offsets[i]:offsets[i+1]] belong to keys[i]
  t/<field>/ids       uint32, the concatenated posting lists (ascending within each list)
Trigrams never straddle two customers, so a 3-byte needle's posting list is its exact
answer; a longer needle's answer is among the rows of its rarest trigram, each checked.
Needles under 3 bytes are answered by scanning the rows.
"""
from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
from numba import njit

_scratch = threading.local()


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


_scratch_free: list = []   # (counts, last) pairs not in use, kept for the process's next build
_scratch_lock = threading.Lock()


def trigram_postings(data, offsets):
    """(keys, offsets, ids, pos) of the rows' trigrams (trigram_postings_into, with a
    scratch pair of 128 MB taken from the process's free ones and given back after: each
    build makes new threads, so scratch per thread was allocated and filled per build)."""
    with _scratch_lock:
        s = _scratch_free.pop() if _scratch_free else None
    if s is None:
        s = (np.zeros(1 << 24, np.int32), np.full(1 << 24, -1, np.int32))
    out = trigram_postings_into(data, offsets, *s)
    with _scratch_lock:   # the kernel left it as it found it (not after an error: dropped)
        _scratch_free.append(s)
    return out


def build_index(put, fields: dict, pool=None) -> None:
    """Write t/<field>/{keys,offsets,ids} for each (field -> string column); `put(key, array)`.
    With a thread pool, fields are indexed concurrently (the kernel releases the GIL)."""
    def one(item):
        name, col = item
        return name, trigram_postings(*text_buffers(col))
    results = pool.map(one, fields.items()) if pool is not None else map(one, fields.items())
    for name, (keys, offs, ids, _) in results:
        put(f"t/{name}/keys", keys)
        put(f"t/{name}/offsets", offs)
        put(f"t/{name}/ids", ids)


def needle_codes(needle: bytes) -> np.ndarray:
    """The trigram code at each offset of needle (>= 3 bytes)."""
    b = np.frombuffer(needle, np.uint8).astype(np.uint32)
    return (b[:-2] << 16) | (b[1:-1] << 8) | b[2:]
