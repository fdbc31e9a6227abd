"""Numba kernels over the appended lines of live changes (engine.live_state buffers).

Appended lines are kept per shard, in arrival order; a compaction folds them into the
version. Each kernel runs `prange` over the shards that have appended lines (typed Lists,
one array per shard), tests every line's day and instant, and adds into the dense
per-customer arrays indexed by internal id that the version's kernels fill. A shard's lines
name only its own customers, so threads never write the same element and each works in
its shard's cache-sized slice of those arrays.
"""
from __future__ import annotations

from numba import njit, prange

from ..storage.layout import LAYBY_OPEN, VISIT_BOOKED, VISIT_COMPLETED


@njit(cache=True, nogil=True, parallel=True)
def purchases_add(iid_l, day_l, ts_l, amount_l, codes_l, s_day, e_day, asof, fields, luts,
                  want_sums, want_last, spend, count, last):
    """Add appended purchase lines on days [s_day, e_day] at or before asof, accepted by
    every filtered field (column fields[j] of a shard's (n, 8) codes), into spend / count
    (want_sums) and the last sale day (want_last)."""
    for k in prange(len(iid_l)):
        iid, day, ts, amount, codes = iid_l[k], day_l[k], ts_l[k], amount_l[k], codes_l[k]
        for i in range(iid.size):
            d = day[i]
            if d < s_day or d > e_day or ts[i] > asof:
                continue
            ok = True
            for j in range(fields.size):
                if luts[j, codes[i, fields[j]]] == 0:
                    ok = False
                    break
            if not ok:
                continue
            c = iid[i]
            a = amount[i]
            if want_sums:
                spend[c] += a
                if a >= 0:
                    count[c] += 1
            if want_last and a >= 0 and d > last[c]:
                last[c] = d


@njit(cache=True, nogil=True, parallel=True)
def visits_add(iid_l, day_l, ts_l, status_l, shop_l, s_day, e_day, asof, use_shops, shop_lut, counts):
    """counts[c] += completed visits on days [s_day, e_day] at or before asof (at accepted shops)."""
    for k in prange(len(iid_l)):
        iid, day, ts, status, shop = iid_l[k], day_l[k], ts_l[k], status_l[k], shop_l[k]
        for i in range(iid.size):
            d = day[i]
            if status[i] != VISIT_COMPLETED or d < s_day or d > e_day or ts[i] > asof:
                continue
            if use_shops and shop_lut[shop[i]] == 0:
                continue
            counts[iid[i]] += 1


@njit(cache=True, nogil=True, parallel=True)
def upcoming_set(iid_l, ts_l, status_l, shop_l, use_shops, shop_lut, asof, out):
    """out[c] = 1 for a booked visit starting after asof (at an accepted shop)."""
    for k in prange(len(iid_l)):
        iid, ts, status, shop = iid_l[k], ts_l[k], status_l[k], shop_l[k]
        for i in range(iid.size):
            if status[i] == VISIT_BOOKED and ts[i] > asof and (not use_shops or shop_lut[shop[i]] != 0):
                out[iid[i]] = 1


@njit(cache=True, nogil=True, parallel=True)
def overdue_set(iid_l, opened_l, due_l, balance_l, status_l, today, out):
    """out[c] = 1 for an open layby opened by today with balance > 0, due before today."""
    for k in prange(len(iid_l)):
        iid, opened, due, balance, status = iid_l[k], opened_l[k], due_l[k], balance_l[k], status_l[k]
        for i in range(iid.size):
            if status[i] == LAYBY_OPEN and balance[i] > 0 and due[i] < today and opened[i] <= today:
                out[iid[i]] = 1
