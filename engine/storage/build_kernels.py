"""Numba kernels used while building a version: customer-id lookup, grouping lines by
shard, posting lists and all-time aggregates of a sorted run. Plain arrays in, arrays out."""
from __future__ import annotations

import numpy as np
from numba import njit, prange



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


FIRST_NONE = np.int32(2**31 - 1)   # first sale day of a customer without one
LAST_NONE = np.int32(-(2**31))     # last sale day of a customer without one


@njit(cache=True, nogil=True)
def postings(codes, ncodes):
    """Positions of each nonzero code, as CSR: (present codes uint32 ascending, ptr int64,
    pos uint32 ascending within each code). A counting sort: one pass to count, one to place."""
    counts = np.zeros(ncodes + 1, np.int64)
    for i in range(codes.size):
        counts[codes[i]] += 1
    npresent = 0
    for c in range(1, ncodes + 1):
        if counts[c] > 0:
            npresent += 1
    present = np.empty(npresent, np.uint32)
    ptr = np.empty(npresent + 1, np.int64)
    start = np.zeros(ncodes + 1, np.int64)
    j = 0
    total = np.int64(0)
    for c in range(1, ncodes + 1):
        if counts[c] > 0:
            present[j] = c
            ptr[j] = total
            start[c] = total
            total += counts[c]
            j += 1
    ptr[npresent] = total
    pos = np.empty(total, np.uint32)
    for i in range(codes.size):
        c = codes[i]
        if c != 0:
            pos[start[c]] = i
            start[c] += 1
    return present, ptr, pos


@njit(cache=True, nogil=True)
def code_entries(cust, ptr, pos, upto, n):
    """Per code (index into the posting lists): (lines before `upto`, distinct customers of
    those lines), the lines a code's postings hold and the entries its aggregates would."""
    owner = np.full(n, -1, np.int64)
    lines = np.zeros(ptr.size - 1, np.int64)
    ents = np.zeros(ptr.size - 1, np.int64)
    for j in range(ptr.size - 1):
        for k in range(ptr[j], ptr[j + 1]):
            i = pos[k]
            if i >= upto:
                break
            lines[j] += 1
            c = cust[i]
            if owner[c] != j:
                owner[c] = j
                ents[j] += 1
    return lines, ents


@njit(cache=True, nogil=True)
def code_aggregates(cust, amount, day, present, ptr, pos, upto, n, keep):
    """All-time aggregates per (code, customer) over the lines before position `upto`, of
    the codes j with keep[j]: CSR by code (the indexes into `present` of the codes with
    entries, ptr int64) of
    entries (cust uint16, net spend int64, sale count int32, first and last sale day
    int32, FIRST_NONE / LAST_NONE without a sale).
    Each code's positions ascend, so a customer's lines of it are met in time order. One
    pass into arrays sized for the worst case (an entry per line), trimmed at the end."""
    cap = 0
    for j in range(present.size):
        if not keep[j]:
            continue
        for k in range(ptr[j], ptr[j + 1]):
            if pos[k] >= upto:
                break
            cap += 1
    slot = np.empty(n, np.int32)
    owner = np.full(n, -1, np.int32)
    acust = np.empty(cap, np.uint16)
    spend = np.zeros(cap, np.int64)
    count = np.zeros(cap, np.int32)
    first = np.full(cap, FIRST_NONE, np.int32)
    last = np.full(cap, LAST_NONE, np.int32)
    used = np.empty(present.size, np.int64)
    aptr = np.empty(present.size + 1, np.int64)
    e = 0
    u = 0
    for j in range(present.size):
        had = e
        if not keep[j]:
            continue
        for k in range(ptr[j], ptr[j + 1]):
            i = pos[k]
            if i >= upto:
                break
            c = cust[i]
            if owner[c] != j:
                owner[c] = j
                slot[c] = e
                acust[e] = c
                e += 1
            s = slot[c]
            a = amount[i]
            spend[s] += a
            if a >= 0:
                count[s] += 1
                d = day[i]
                if d < first[s]:
                    first[s] = d
                if d > last[s]:
                    last[s] = d
        if e > had:
            used[u] = j
            aptr[u] = had
            u += 1
    aptr[u] = e
    return (used[:u].copy(), aptr[:u + 1].copy(), acust[:e].copy(), spend[:e].copy(), count[:e].copy(),
            first[:e].copy(), last[:e].copy())


@njit(cache=True, nogil=True)
def day_time_order(day, ts):
    """The order of lines by (day, instant), ties in input order: a counting sort by day,
    then each day's lines sorted by instant."""
    n = day.size
    order = np.empty(n, np.int64)
    if n == 0:
        return order
    lo, hi = day.min(), day.max()
    counts = np.zeros(np.int64(hi) - lo + 2, np.int64)
    for i in range(n):
        counts[np.int64(day[i]) - lo + 1] += 1
    for d in range(1, counts.size):
        counts[d] += counts[d - 1]
    start = counts[:-1].copy()
    for i in range(n):
        d = np.int64(day[i]) - lo
        order[start[d]] = i
        start[d] += 1
    for d in range(counts.size - 1):
        a, b = counts[d], counts[d + 1]
        if b - a > 1:
            seg = order[a:b]
            o = np.argsort(ts[seg], kind="mergesort")
            order[a:b] = seg[o]
    return order


@njit(cache=True, nogil=True)
def customer_aggregates(cust, amount, day, upto, n):
    """All-time aggregates per customer (dense, n) over the lines before `upto`."""
    spend = np.zeros(n, np.int64)
    count = np.zeros(n, np.int32)
    first = np.full(n, FIRST_NONE, np.int32)
    last = np.full(n, LAST_NONE, np.int32)
    for i in range(upto):
        c = cust[i]
        a = amount[i]
        spend[c] += a
        if a >= 0:
            count[c] += 1
            d = day[i]
            if d < first[c]:
                first[c] = d
            if d > last[c]:
                last[c] = d
    return spend, count, first, last


@njit(cache=True, nogil=True)
def month_marks(cust, amount, day, marks, n):
    """Per mark j (ascending days) and customer c < n: net spend, sale count and last sale
    day of the lines (sorted by day) dated before marks[j], as flat [K * n] arrays."""
    K = marks.size
    spend = np.empty(K * n, np.int64)
    count = np.empty(K * n, np.int32)
    last = np.empty(K * n, np.int32)
    sp = np.zeros(n, np.int64)
    ct = np.zeros(n, np.int32)
    la = np.full(n, LAST_NONE, np.int32)
    i = 0
    for j in range(K):
        while i < day.size and day[i] < marks[j]:
            c = cust[i]
            a = amount[i]
            sp[c] += a
            if a >= 0:
                ct[c] += 1
                if day[i] > la[c]:
                    la[c] = day[i]
            i += 1
        spend[j * n:(j + 1) * n] = sp
        count[j * n:(j + 1) * n] = ct
        last[j * n:(j + 1) * n] = la
    return spend, count, last


@njit(cache=True, nogil=True)
def order_keys(data, offsets, valid, out):
    """out[i] = FNV-1a 64 of text i (bytes data[offsets[i]:offsets[i+1]]) as int64, never 0
    (0 means null: valid[i] == 0)."""
    for i in range(out.size):
        if valid[i] == 0:
            out[i] = 0
            continue
        h = np.uint64(0xcbf29ce484222325)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * np.uint64(0x100000001b3)
        v = np.int64(h)
        out[i] = v if v != 0 else np.int64(1)
