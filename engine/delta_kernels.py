"""Numba kernels over the appended lines of live changes (engine.live_state buffers).

The appended lines are few (a compaction folds them into the version) and in arrival
order, so each kernel is one serial pass that tests every line's day and instant and adds
into dense per-customer arrays indexed by internal id (`iid`), the same arrays the version's
kernels fill. Serial: two lines of one customer never race.
"""
from __future__ import annotations

from numba import njit

from .kernels import LAYBY_OPEN, VISIT_BOOKED, VISIT_COMPLETED


@njit(cache=True, nogil=True)
def purchases_add(iid, day, ts, amount, codes, s_day, e_day, asof, fields, luts,
                  want_sums, want_last, spend, count, last):
    """Add appended purchase lines on days [s_day, e_day] at or before asof, accepted by
    every filtered field (codes[j] = the line's code of product field fields[j]), into
    spend / count (want_sums) and last sale day (want_last)."""
    for i in range(iid.size):
        d = day[i]
        if d < s_day or d > e_day or ts[i] > asof:
            continue
        ok = True
        for j in range(fields.size):
            if luts[j, codes[fields[j]][i]] == 0:
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


@njit(cache=True, nogil=True)
def visits_add(iid, day, ts, status, shop, s_day, e_day, asof, use_shops, shop_lut, counts):
    """counts[c] += completed visits on days [s_day, e_day] at or before asof (at accepted shops)."""
    for i in range(iid.size):
        d = day[i]
        if status[i] != VISIT_COMPLETED or d < s_day or d > e_day or ts[i] > asof:
            continue
        if use_shops and shop_lut[shop[i]] == 0:
            continue
        counts[iid[i]] += 1


@njit(cache=True, nogil=True)
def upcoming_set(iid, ts, status, shop, use_shops, shop_lut, asof, out):
    """out[c] = 1 for a booked visit starting after asof (at an accepted shop)."""
    for i in range(iid.size):
        if status[i] == VISIT_BOOKED and ts[i] > asof and (not use_shops or shop_lut[shop[i]] != 0):
            out[iid[i]] = 1


@njit(cache=True, nogil=True)
def overdue_set(iid, opened, due, balance, status, today, out):
    """out[c] = 1 for an open layby opened by today with balance > 0, due before today."""
    for i in range(iid.size):
        if status[i] == LAYBY_OPEN and balance[i] > 0 and due[i] < today and opened[i] <= today:
            out[iid[i]] = 1
