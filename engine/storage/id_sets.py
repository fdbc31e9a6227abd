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


def unique_ids(a: np.ndarray) -> np.ndarray:
    """The distinct values of an int64 array, ascending: a sort and a comparison of
    neighbours (numpy's unique hashes first, ~20x slower on a round's touched ids)."""
    s = np.sort(np.asarray(a, np.int64))
    return s[np.r_[True, s[1:] != s[:-1]]] if s.size else s


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
def sorted_in_gallop(a, b):
    """sorted_in for `a` much smaller than `b`: from where the previous element stopped,
    steps of doubling length, then a binary search within the last step (cost a.size x
    log(b.size / a.size), reading b near the previous position)."""
    out = np.zeros(a.size, np.bool_)
    j = 0
    n = b.size
    for i in range(a.size):
        x = a[i]
        if j >= n:
            break
        if b[j] < x:
            step = 1
            lo = j
            while j + step < n and b[j + step] < x:
                lo = j + step
                step *= 2
            hi = min(j + step, n)      # b[lo] < x <= b[hi] (or hi == n)
            lo += 1
            while lo < hi:
                mid = (lo + hi) >> 1
                if b[mid] < x:
                    lo = mid + 1
                else:
                    hi = mid
            j = lo
        if j < n and b[j] == x:
            out[i] = True
    return out


@njit(cache=True, nogil=True)
def sorted_apply(ids, entered, exited):
    """Sorted unique `ids` without those in `exited`, with `entered` (not in ids; all three
    sorted ascending, unique): one merge, one copy."""
    out = np.empty(ids.size + entered.size, np.int64)
    j = 0
    k = 0
    o = 0
    for i in range(ids.size):
        x = ids[i]
        while j < entered.size and entered[j] < x:
            out[o] = entered[j]
            o += 1
            j += 1
        while k < exited.size and exited[k] < x:
            k += 1
        if k < exited.size and exited[k] == x:
            continue
        out[o] = x
        o += 1
    while j < entered.size:
        out[o] = entered[j]
        o += 1
        j += 1
    return out[:o]


@njit(cache=True, nogil=True)
def sorted_to_roaring64(vals):
    """The 64-bit portable roaring serialization of sorted unique uint64 values: buckets by
    high half, each a 32-bit portable bitmap (array and bitset containers, offsets header)."""
    n = vals.size
    # containers: (bucket, 16-bit key) groups, in order
    c_start = np.empty(n + 1, np.int64)
    nc = 0
    nb = 0
    prev_hi = np.uint64(0)
    prev_key = np.int64(-1)
    for i in range(n):
        hi = vals[i] >> np.uint64(32)
        key = np.int64((vals[i] >> np.uint64(16)) & np.uint64(0xFFFF))
        if i == 0 or hi != prev_hi:
            nb += 1
            c_start[nc] = i
            nc += 1
        elif key != prev_key:
            c_start[nc] = i
            nc += 1
        prev_hi = hi
        prev_key = key
    c_start[nc] = n
    b_first = np.empty(nb + 1, np.int64)   # first container of each bucket
    b = 0
    for j in range(nc):
        if j == 0 or (vals[c_start[j]] >> np.uint64(32)) != (vals[c_start[j - 1]] >> np.uint64(32)):
            b_first[b] = j
            b += 1
    b_first[nb] = nc
    size = 8
    for b in range(nb):
        size += 4 + 8 + 8 * (b_first[b + 1] - b_first[b])
    for j in range(nc):
        card = c_start[j + 1] - c_start[j]
        size += 2 * card if card <= 4096 else 8192
    out = np.zeros(size, np.uint8)
    _put(out, 0, np.uint64(nb), 8)
    pos = 8
    for b in range(nb):
        j0, j1 = b_first[b], b_first[b + 1]
        m = j1 - j0
        _put(out, pos, vals[c_start[j0]] >> np.uint64(32), 4)
        pos += 4
        _put(out, pos, np.uint64(_NO_RUNS_COOKIE), 4)
        _put(out, pos + 4, np.uint64(m), 4)
        off = 8 + 8 * m               # container offsets count from the bucket's header
        for q in range(m):
            j = j0 + q
            card = c_start[j + 1] - c_start[j]
            key = (vals[c_start[j]] >> np.uint64(16)) & np.uint64(0xFFFF)
            _put(out, pos + 8 + 4 * q, key, 2)
            _put(out, pos + 10 + 4 * q, np.uint64(card - 1), 2)
            _put(out, pos + 8 + 4 * m + 4 * q, np.uint64(off), 4)
            p = pos + off
            if card <= 4096:
                for i in range(c_start[j], c_start[j + 1]):
                    low = vals[i] & np.uint64(0xFFFF)
                    out[p] = np.uint8(low & np.uint64(0xFF))
                    out[p + 1] = np.uint8(low >> np.uint64(8))
                    p += 2
                off += 2 * card
            else:   # a bitset: bit (low & 7) of byte (low >> 3), little-endian words
                for i in range(c_start[j], c_start[j + 1]):
                    low = np.int64(vals[i] & np.uint64(0xFFFF))
                    out[p + (low >> 3)] |= np.uint8(1 << (low & 7))
                off += 8192
        pos += off
    return out


@njit(cache=True, nogil=True, inline="always")
def _put(out, pos, v, nbytes):
    for k in range(nbytes):
        out[pos + k] = np.uint8((v >> np.uint64(8 * k)) & np.uint64(0xFF))


def serialize_ids(ids) -> bytes:
    """Customer_ids (sorted ascending, unique) as a portable 64-bit roaring bitmap, the
    bytes BitMap64(ids, optimize=False).serialize() gives."""
    ids = np.asarray(ids, np.int64)
    if ids.size and ids[0] < 0:   # negative ids sort last as uint64: let the library order them
        return BitMap64(ids.astype(np.uint64), optimize=False).serialize()
    return sorted_to_roaring64(np.ascontiguousarray(ids.astype(np.uint64))).tobytes()


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
