"""Numba kernels of the coordinator's merge: runs already in output order -> their merge.

Every partition answers in output order, so merging P answers is a P-way merge of sorted
runs (linear), not a sort of their concatenation (n log n). A long merge is cut into
chunks at splitters taken from the longest run, and the chunks merge in parallel.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _before(ka, ia, kb, ib):
    """(ka, ia) < (kb, ib)."""
    return ka < kb or (ka == kb and ia < ib)


@njit(cache=True, nogil=True)
def _merge_into(keys, ids, lo, hi, n, out, at):
    """out[at:at + n] = positions of the first n of runs [lo[p], hi[p]) in (key, id) order;
    lo is advanced past what was taken."""
    runs = lo.size
    for k in range(n):
        best = -1
        bk = keys[0]
        bi = ids[0]
        for p in range(runs):
            h = lo[p]
            if h < hi[p]:
                if best < 0 or _before(keys[h], ids[h], bk, bi):
                    best = p
                    bk = keys[h]
                    bi = ids[h]
        out[at + k] = lo[best]
        lo[best] += 1


@njit(cache=True, nogil=True)
def merge_runs(keys, ids, starts, n, out, taken):
    """out[:n] = positions of the first n of the concatenation in (key, id) order, where
    each run keys[starts[p]:starts[p + 1]] (ids alike) ascends by (key, id);
    taken[p] = how many of run p those are. n <= starts[-1]."""
    lo = starts[:-1].copy()
    _merge_into(keys, ids, lo, starts[1:].copy(), n, out, 0)
    for p in range(lo.size):
        taken[p] = lo[p] - starts[p]


@njit(cache=True, nogil=True)
def _lower_bound(keys, ids, lo, hi, k, i):
    """The first position in [lo, hi) whose (key, id) is not before (k, i)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if _before(keys[mid], ids[mid], k, i):
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, parallel=True)
def merge_all(keys, ids, starts, chunks, out):
    """out = positions of the whole concatenation in (key, id) order (runs as in
    merge_runs), merged in `chunks` pieces in parallel: piece c holds what lies between
    the splitters c and c + 1, taken evenly from the longest run."""
    runs = starts.size - 1
    longest = 0
    for p in range(runs):
        if starts[p + 1] - starts[p] > starts[longest + 1] - starts[longest]:
            longest = p
    size = starts[longest + 1] - starts[longest]
    bounds = np.empty((chunks + 1, runs), np.int64)   # bounds[c, p]: where piece c starts in run p
    for p in range(runs):
        bounds[0, p] = starts[p]
        bounds[chunks, p] = starts[p + 1]
    for c in range(1, chunks):
        s = starts[longest] + size * c // chunks
        for p in range(runs):
            bounds[c, p] = _lower_bound(keys, ids, starts[p], starts[p + 1], keys[s], ids[s])
    for c in prange(chunks):
        at = 0
        n = 0
        for p in range(runs):
            at += bounds[c, p] - starts[p]
            n += bounds[c + 1, p] - bounds[c, p]
        _merge_into(keys, ids, bounds[c].copy(), bounds[c + 1].copy(), n, out, at)


@njit(cache=True, nogil=True, boundscheck=False)
def merge_two(a, pa, b, pb, out, pout):
    """(out, pout) = the merge of ascending runs a and b (unique values), with their
    positions pa / pb. Branch-free: which run gives the next value is data (t), not a jump
    the CPU must guess (with hash partitions it is a coin toss)."""
    i = 0
    j = 0
    k = 0
    na = a.size
    nb = b.size
    while i < na and j < nb:
        x = a[i]
        y = b[j]
        t = np.int64(x < y)
        out[k] = y + (x - y) * t     # modular int64 arithmetic: exact
        pout[k] = pb[j] + (pa[i] - pb[j]) * t
        i += t
        j += 1 - t
        k += 1
    while i < na:
        out[k] = a[i]
        pout[k] = pa[i]
        i += 1
        k += 1
    while j < nb:
        out[k] = b[j]
        pout[k] = pb[j]
        j += 1
        k += 1


@njit(cache=True, nogil=True, boundscheck=False)
def union_dense(ids, lo, span, out):
    """out[:ids.size] = ids ascending, where ids are unique and all in [lo, lo + span):
    each marked in a table of span bytes, then the table read in order (linear in
    ids.size + span, no comparisons). out holds ids.size + 1 (the read is branch-free: it
    writes every value and advances past the marked ones)."""
    mark = np.zeros(span, np.uint8)
    for i in range(ids.size):
        mark[ids[i] - lo] = 1
    k = 0
    for j in range(span):
        out[k] = lo + j
        k += mark[j]


@njit(cache=True, nogil=True, boundscheck=False)
def merge_two_values(a, b, out):
    """out = the merge of ascending runs a and b (unique values), branch-free as merge_two."""
    i = 0
    j = 0
    k = 0
    na = a.size
    nb = b.size
    while i < na and j < nb:
        x = a[i]
        y = b[j]
        t = np.int64(x < y)
        out[k] = y + (x - y) * t
        i += t
        j += 1 - t
        k += 1
    while i < na:
        out[k] = a[i]
        i += 1
        k += 1
    while j < nb:
        out[k] = b[j]
        j += 1
        k += 1


@njit(cache=True, nogil=True)
def kth_of_histograms(values, cum, cum_at, starts, q, lo, hi):
    """The least v in [lo, hi] with more than q values <= v, over the histograms p: values
    [starts[p], starts[p + 1]) ascending, their cumulative counts from cum[cum_at[p]] (-1:
    one each) - a percentile's cut over every partition's population. Bisection of the
    value range, a binary search per histogram per step (64 steps at most)."""
    runs = starts.size - 1
    while lo < hi:
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)   # floor((lo + hi) / 2) without overflow
        below = 0
        for p in range(runs):
            a, b = starts[p], starts[p + 1]
            while a < b:   # the first value > mid
                m = (a + b) >> 1
                if values[m] <= mid:
                    a = m + 1
                else:
                    b = m
            k = a - starts[p]   # values <= mid
            if k > 0:
                below += k if cum_at[p] < 0 else cum[cum_at[p] + k - 1]
        if below > q:
            hi = mid
        else:
            lo = mid + 1
    return lo
