"""Numba kernels over the appended lines of live changes (engine.live.state buffers).

Appended lines are kept per shard, in arrival order, until a compaction folds them into the
version. A kernel reads them through a PieceTable (engine.storage.views, columns named by
layout.D_*: one piece per shard that has lines), runs `prange` over the pieces, tests every
line's day and instant, and adds into the dense per-customer arrays indexed by internal id
that the version's kernels filled. A shard's lines name only its own customers, so threads
never write the same element.
"""
from __future__ import annotations

from numba import njit, prange

from ..storage import layout as LY
from ..storage.views import view_i32, view_i64, view_u8


@njit(cache=True, nogil=True, parallel=True)
def purchases_add(addr, size, s_day, e_day, asof, fields, luts, want_sums, want_last, want_first,
                  spend, count, last, first):
    """Add appended purchase lines on days [s_day, e_day] at or before asof, accepted by
    every filtered field (codes: (n, 8) row-major), into spend / count (want_sums), the last
    (want_last) and the first (want_first) sale day."""
    for k in prange(addr.shape[1]):
        iid = view_i64(addr[LY.D_IID, k], size[LY.D_IID, k])
        day = view_i32(addr[LY.D_DAY, k], size[LY.D_DAY, k])
        ts = view_i64(addr[LY.D_TS, k], size[LY.D_TS, k])
        amount = view_i64(addr[LY.D_AMOUNT, k], size[LY.D_AMOUNT, k])
        codes = view_i32(addr[LY.D_CODES, k], size[LY.D_CODES, k])
        for i in range(iid.size):
            d = day[i]
            if d < s_day or d > e_day or ts[i] > asof:
                continue
            ok = True
            for j in range(fields.size):
                if luts[j, codes[i * LY.N_PRODUCT_FIELDS + fields[j]]] == 0:
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
            if a >= 0:
                if want_last and d > last[c]:
                    last[c] = d
                if want_first and d < first[c]:
                    first[c] = d


@njit(cache=True, nogil=True, parallel=True)
def visits_add(addr, size, s_day, e_day, asof, use_shops, shop_lut, counts):
    """counts[c] += completed visits on days [s_day, e_day] at or before asof (at accepted shops)."""
    for k in prange(addr.shape[1]):
        iid = view_i64(addr[LY.DV_IID, k], size[LY.DV_IID, k])
        day = view_i32(addr[LY.DV_DAY, k], size[LY.DV_DAY, k])
        ts = view_i64(addr[LY.DV_TS, k], size[LY.DV_TS, k])
        status = view_u8(addr[LY.DV_STATUS, k], size[LY.DV_STATUS, k])
        shop = view_i32(addr[LY.DV_SHOP, k], size[LY.DV_SHOP, k])
        for i in range(iid.size):
            d = day[i]
            if status[i] != LY.VISIT_COMPLETED or d < s_day or d > e_day or ts[i] > asof:
                continue
            if use_shops and shop_lut[shop[i]] == 0:
                continue
            counts[iid[i]] += 1


@njit(cache=True, nogil=True, parallel=True)
def upcoming_set(addr, size, use_shops, shop_lut, asof, out):
    """out[c] = 1 for a booked visit starting after asof (at an accepted shop)."""
    for k in prange(addr.shape[1]):
        iid = view_i64(addr[LY.DV_IID, k], size[LY.DV_IID, k])
        ts = view_i64(addr[LY.DV_TS, k], size[LY.DV_TS, k])
        status = view_u8(addr[LY.DV_STATUS, k], size[LY.DV_STATUS, k])
        shop = view_i32(addr[LY.DV_SHOP, k], size[LY.DV_SHOP, k])
        for i in range(iid.size):
            if status[i] == LY.VISIT_BOOKED and ts[i] > asof and (not use_shops or shop_lut[shop[i]] != 0):
                out[iid[i]] = 1


@njit(cache=True, nogil=True, parallel=True)
def overdue_set(addr, size, today, out):
    """out[c] = 1 for an open layby opened by today with balance > 0, due before today."""
    for k in prange(addr.shape[1]):
        iid = view_i64(addr[LY.DL_IID, k], size[LY.DL_IID, k])
        opened = view_i32(addr[LY.DL_OPENED, k], size[LY.DL_OPENED, k])
        due = view_i32(addr[LY.DL_DUE, k], size[LY.DL_DUE, k])
        balance = view_i64(addr[LY.DL_BALANCE, k], size[LY.DL_BALANCE, k])
        status = view_u8(addr[LY.DL_STATUS, k], size[LY.DL_STATUS, k])
        for i in range(iid.size):
            if status[i] == LY.LAYBY_OPEN and balance[i] > 0 and due[i] < today and opened[i] <= today:
                out[iid[i]] = 1
