"""Sorted arrays of customer_ids as sets: membership by one merge, and 64-bit roaring's
portable format written and read without a per-id insert (tracked segments' snapshots,
engine/catalog/audiences.py, store memberships of up to every customer every round).

The 64-bit portable format (CRoaring's roaring64 portable serialization, what pyroaring's
BitMap64 writes and reads): uint64 number of buckets, then per bucket in ascending order
the uint32 high half of its ids and the 32-bit portable roaring bitmap of their low halves.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from pyroaring import BitMap, BitMap64

_NO_RUNS_COOKIE = 12346


@njit(cache=True, nogil=True)
def sorted_in(a, b):
    """out[i] = a[i] is in b (both sorted ascending, unique): one merge of the two."""
    out = np.zeros(a.size, np.bool_)
    j = 0
    for i in range(a.size):
        x = a[i]
        while j < b.size and b[j] < x:
            j += 1
        if j == b.size:
            break
        out[i] = b[j] == x
    return out


@njit(cache=True, nogil=True)
def sorted_to_roaring(vals):
    """The 32-bit portable roaring serialization (array and bitset containers, offsets
    header) of sorted unique uint32 values."""
    n = vals.size
    nc = 0
    prev = np.int64(-1)
    for i in range(n):
        k = np.int64(vals[i] >> 16)
        if k != prev:
            nc += 1
            prev = k
    keys = np.empty(nc, np.int64)
    starts = np.empty(nc, np.int64)
    cards = np.zeros(nc, np.int64)
    j = -1
    prev = np.int64(-1)
    for i in range(n):
        k = np.int64(vals[i] >> 16)
        if k != prev:
            j += 1
            keys[j] = k
            starts[j] = i
            prev = k
        cards[j] += 1
    offs = np.empty(nc, np.int64)
    pos = 8 + 8 * nc
    for j in range(nc):
        offs[j] = pos
        pos += 2 * cards[j] if cards[j] <= 4096 else 8192
    out = np.zeros(pos, np.uint8)
    header = np.empty(2, np.uint32)
    header[0] = _NO_RUNS_COOKIE
    header[1] = nc
    out[0:8] = header.view(np.uint8)
    if nc:
        kc = np.empty(2 * nc, np.uint16)
        for j in range(nc):
            kc[2 * j] = keys[j]
            kc[2 * j + 1] = cards[j] - 1
        out[8:8 + 4 * nc] = kc.view(np.uint8)
        out[8 + 4 * nc:8 + 8 * nc] = offs.astype(np.uint32).view(np.uint8)
    for j in range(nc):
        p = offs[j]
        s = starts[j]
        c = cards[j]
        if c <= 4096:
            for q in range(c):
                low = vals[s + q] & 0xFFFF
                out[p + 2 * q] = low & 0xFF
                out[p + 2 * q + 1] = low >> 8
        else:   # a bitset: bit (low & 7) of byte (low >> 3), little-endian words
            for q in range(c):
                low = vals[s + q] & 0xFFFF
                out[p + (low >> 3)] |= np.uint8(1 << (low & 7))
    return out


def serialize_ids(ids) -> bytes:
    """Customer_ids (sorted ascending, unique) as a portable 64-bit roaring bitmap, the
    bytes BitMap64(ids).serialize() gives."""
    ids = np.asarray(ids, np.int64)
    if ids.size and ids[0] < 0:   # negative ids sort last as uint64: let the library order them
        return BitMap64(ids.astype(np.uint64)).serialize()
    u = ids.astype(np.uint64)
    high = (u >> np.uint64(32)).astype(np.int64)
    keys = np.unique(high) if high.size and high[-1] != high[0] else high[:1]
    parts = [np.uint64(keys.size).tobytes()]
    for k in keys:
        lo, hi = np.searchsorted(high, k), np.searchsorted(high, k, side="right")
        parts.append(np.uint32(k).tobytes())
        parts.append(sorted_to_roaring(np.ascontiguousarray(u[lo:hi] & np.uint64(0xFFFFFFFF)).astype(np.uint32))
                     .tobytes())
    return b"".join(parts)


def deserialize_ids(data: bytes) -> np.ndarray:
    """Sorted customer_ids of a portable 64-bit roaring bitmap."""
    count = int(np.frombuffer(data[:8], np.uint64)[0]) if len(data) >= 8 else 0
    if count == 0:
        return np.zeros(0, np.int64)
    if count == 1:   # one bucket: the rest is its 32-bit bitmap
        high = np.uint64(np.frombuffer(data[8:12], np.uint32)[0])
        low = np.asarray(BitMap.deserialize(data[12:]).to_array(), np.uint32)
        if not high:
            return low.astype(np.int64)
        return (low.astype(np.uint64) | (high << np.uint64(32))).astype(np.int64)
    bm = BitMap64.deserialize(data)
    return np.asarray(bm.to_array(), np.uint64).astype(np.int64)
