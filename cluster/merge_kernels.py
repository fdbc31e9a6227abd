"""Numba kernel of the coordinator's merge: runs already in output order -> their merge.

Every partition answers in output order, so merging P answers is a P-way merge of sorted
runs (linear), not a sort of their concatenation (n log n: ~25 ms for 1M ids here).
"""
from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def merge_runs(keys, ids, starts, n, out, taken):
    """out[:n] = positions of the first n of the concatenation in (key, id) order, where
    each run keys[starts[p]:starts[p + 1]] (ids alike) ascends by (key, id);
    taken[p] = how many of run p those are. n <= starts[-1]."""
    runs = starts.size - 1
    heads = starts[:-1].copy()
    for k in range(n):
        best = -1
        bk = 0
        bi = 0
        for p in range(runs):
            h = heads[p]
            if h < starts[p + 1]:
                kh = keys[h]
                if best < 0 or kh < bk or (kh == bk and ids[h] < bi):
                    best = p
                    bk = kh
                    bi = ids[h]
        out[k] = heads[best]
        heads[best] += 1
    for p in range(runs):
        taken[p] = heads[p] - starts[p]
