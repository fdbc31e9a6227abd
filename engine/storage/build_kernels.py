"""Numba kernels used while building a version: customer-id lookup, grouping lines by
shard, and the all-time rollups. Plain arrays in, arrays out (like engine.kernels)."""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .layout import NO_DAY


@njit(cache=True, nogil=True)
def _hash_slot(key, mask):
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64(h >> np.uint64(20)) & mask


@njit(cache=True, nogil=True)
def build_id_hash(keys):
    """Open-addressing table of keys -> position (power-of-two size, load <= 0.5)."""
    size = 1
    while size < 2 * keys.size + 2:
        size <<= 1
    mask = size - 1
    tkeys = np.empty(size, dtype=np.int64)
    tvals = np.full(size, -1, dtype=np.int64)
    for i in range(keys.size):
        s = _hash_slot(keys[i], mask)
        while tvals[s] != -1:
            s = (s + 1) & mask
        tkeys[s] = keys[i]
        tvals[s] = i
    return tkeys, tvals


@njit(cache=True, nogil=True, parallel=True)
def hash_lookup(tkeys, tvals, queries):
    """Position of each query in the table's keys, -1 when absent."""
    mask = tkeys.size - 1
    out = np.empty(queries.size, dtype=np.int64)
    for i in prange(queries.size):
        q = queries[i]
        s = _hash_slot(q, mask)
        r = -1
        while tvals[s] != -1:
            if tkeys[s] == q:
                r = tvals[s]
                break
            s = (s + 1) & mask
        out[i] = r
    return out


@njit(cache=True, nogil=True)
def bucket_order(bucket, n_buckets):
    """Stable counting sort by bucket: (order, starts[n_buckets + 1])."""
    counts = np.zeros(n_buckets + 1, dtype=np.int64)
    for i in range(bucket.size):
        counts[bucket[i] + 1] += 1
    starts = np.cumsum(counts)
    pos = starts[:-1].copy()
    order = np.empty(bucket.size, dtype=np.int64)
    for i in range(bucket.size):
        b = bucket[i]
        order[pos[b]] = i
        pos[b] += 1
    return order, starts


@njit(cache=True, nogil=True)
def rollup_build(cust, amount, day, code, n, width):
    """One shard's all-time aggregates per (customer, code): CSR rows per customer of
    (code, net spend, sale count, last sale day or NO_DAY), one entry per pair with lines."""
    size = n * width
    spend = np.zeros(size, dtype=np.int64)
    count = np.zeros(size, dtype=np.int32)
    last = np.full(size, NO_DAY, dtype=np.int64)
    seen = np.zeros(size, dtype=np.uint8)
    for i in range(cust.size):
        k = np.int64(cust[i]) * width + np.int64(code[i])
        a = amount[i]
        spend[k] += a
        seen[k] = 1
        if a >= 0:
            count[k] += 1
            if day[i] > last[k]:
                last[k] = day[i]
    nnz = 0
    for k in range(size):
        nnz += seen[k]
    ptr = np.zeros(n + 1, dtype=np.int64)
    codes = np.empty(nnz, dtype=np.uint16)
    sp = np.empty(nnz, dtype=np.int64)
    ct = np.empty(nnz, dtype=np.int32)
    ls = np.empty(nnz, dtype=np.int32)
    e = 0
    for c in range(n):
        for w in range(width):
            k = c * width + w
            if seen[k]:
                codes[e] = w
                sp[e] = spend[k]
                ct[e] = count[k]
                ls[e] = np.int32(-(2**31)) if last[k] == NO_DAY else np.int32(last[k])
                e += 1
        ptr[c + 1] = e
    return ptr, codes, sp, ct, ls
