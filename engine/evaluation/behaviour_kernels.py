"""Numba kernels of the behaviour conditions (shared/spec behaviour.md).

A behaviour condition needs a customer's events in time order, not one aggregate: the
kernels gather the visible lines of a date range from every run of every shard
(`prange` over shards; a count pass, then a fill pass at each shard's offset) and from the
appended live lines (`prange` over their pieces), group them by customer with a counting
sort (linear), and then answer per customer (`prange` over customers; each customer's
lines are sorted by instant in place, they are few).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..storage import layout as LY
from ..storage.views import view_i32, view_i64, view_u8, view_u16, view_u32

NO_VALUE = np.int64(-(2**63))


# ---------------------------------------------------------------- gather

@njit(cache=True, nogil=True, parallel=True)
def gather_purchases(addr, size, shard_ptr, base, s_day, e_day, asof, fields, luts, all_lines, fill, offsets,
                     o_iid, o_ts, o_day, o_amount, o_order, o_flag):
    """Visible purchase lines of every run on days [s_day, e_day]: with all_lines every line
    (o_flag = 1 for a matching non-refund line), else only matching non-refund lines. Count
    pass (fill False): offsets[k + 1] = lines of shard k. Fill pass: written from offsets[k]."""
    for k in prange(shard_ptr.size - 1):
        at = offsets[k]
        b = base[k]
        got = 0
        for p in range(shard_ptr[k], shard_ptr[k + 1]):
            day = view_i32(addr[LY.P_DAY, p], size[LY.P_DAY, p])
            lo = np.searchsorted(day, np.int32(s_day))
            hi = np.searchsorted(day, np.int32(e_day), side="right")
            if lo >= hi:
                continue
            ts = view_i64(addr[LY.P_TS, p], size[LY.P_TS, p])
            amount = view_i64(addr[LY.P_AMOUNT, p], size[LY.P_AMOUNT, p])
            cust = view_u16(addr[LY.P_CUST, p], size[LY.P_CUST, p])
            order = view_i64(addr[LY.P_ORDER, p], size[LY.P_ORDER, p])
            has_order = order.size == day.size
            for i in range(lo, hi):
                if ts[i] > asof:
                    continue
                ok = amount[i] >= 0
                if ok:
                    for j in range(fields.size):
                        codes = view_u32(addr[LY.P_CODE + fields[j], p], size[LY.P_CODE + fields[j], p])
                        if luts[j, codes[i]] == 0:
                            ok = False
                            break
                if not ok and not all_lines:
                    continue
                if fill:
                    w = at + got
                    o_iid[w] = b + cust[i]
                    o_ts[w] = ts[i]
                    o_day[w] = day[i]
                    o_amount[w] = amount[i]
                    o_order[w] = order[i] if has_order else 0
                    o_flag[w] = 1 if ok else 0
                got += 1
        if not fill:
            offsets[k + 1] = got


@njit(cache=True, nogil=True, parallel=True)
def gather_appended_purchases(addr, size, s_day, e_day, asof, fields, luts, all_lines, fill, offsets,
                              o_iid, o_ts, o_day, o_amount, o_order, o_flag):
    """gather_purchases over appended live lines (columns layout.D_*), per piece."""
    for k in prange(addr.shape[1]):
        iid = view_i64(addr[LY.D_IID, k], size[LY.D_IID, k])
        day = view_i32(addr[LY.D_DAY, k], size[LY.D_DAY, k])
        ts = view_i64(addr[LY.D_TS, k], size[LY.D_TS, k])
        amount = view_i64(addr[LY.D_AMOUNT, k], size[LY.D_AMOUNT, k])
        codes = view_i32(addr[LY.D_CODES, k], size[LY.D_CODES, k])
        order = view_i64(addr[LY.D_ORDER, k], size[LY.D_ORDER, k])
        has_order = order.size == iid.size
        at = offsets[k]
        got = 0
        for i in range(iid.size):
            d = day[i]
            if d < s_day or d > e_day or ts[i] > asof:
                continue
            ok = amount[i] >= 0
            if ok:
                for j in range(fields.size):
                    if luts[j, codes[i * LY.N_PRODUCT_FIELDS + fields[j]]] == 0:
                        ok = False
                        break
            if not ok and not all_lines:
                continue
            if fill:
                w = at + got
                o_iid[w] = iid[i]
                o_ts[w] = ts[i]
                o_day[w] = d
                o_amount[w] = amount[i]
                o_order[w] = order[i] if has_order else 0
                o_flag[w] = 1 if ok else 0
            got += 1
        if not fill:
            offsets[k + 1] = got


@njit(cache=True, nogil=True, parallel=True)
def gather_visits(addr, size, shard_ptr, base, s_day, e_day, asof, use_shops, shop_lut, fill, offsets,
                  o_iid, o_ts, o_day):
    """Visible completed visits (at accepted shops) of every run on days [s_day, e_day]."""
    for k in prange(shard_ptr.size - 1):
        at = offsets[k]
        b = base[k]
        got = 0
        for p in range(shard_ptr[k], shard_ptr[k + 1]):
            day = view_i32(addr[LY.V_DAY, p], size[LY.V_DAY, p])
            lo = np.searchsorted(day, np.int32(s_day))
            hi = np.searchsorted(day, np.int32(e_day), side="right")
            if lo >= hi:
                continue
            ts = view_i64(addr[LY.V_TS, p], size[LY.V_TS, p])
            cust = view_u16(addr[LY.V_CUST, p], size[LY.V_CUST, p])
            status = view_u8(addr[LY.V_STATUS, p], size[LY.V_STATUS, p])
            shop = view_u32(addr[LY.V_SHOP, p], size[LY.V_SHOP, p])
            for i in range(lo, hi):
                if status[i] != LY.VISIT_COMPLETED or ts[i] > asof:
                    continue
                if use_shops and shop_lut[shop[i]] == 0:
                    continue
                if fill:
                    w = at + got
                    o_iid[w] = b + cust[i]
                    o_ts[w] = ts[i]
                    o_day[w] = day[i]
                got += 1
        if not fill:
            offsets[k + 1] = got


@njit(cache=True, nogil=True, parallel=True)
def gather_appended_visits(addr, size, s_day, e_day, asof, use_shops, shop_lut, fill, offsets, o_iid, o_ts, o_day):
    """gather_visits over appended live visits (columns layout.DV_*), per piece."""
    for k in prange(addr.shape[1]):
        iid = view_i64(addr[LY.DV_IID, k], size[LY.DV_IID, k])
        day = view_i32(addr[LY.DV_DAY, k], size[LY.DV_DAY, k])
        ts = view_i64(addr[LY.DV_TS, k], size[LY.DV_TS, k])
        status = view_u8(addr[LY.DV_STATUS, k], size[LY.DV_STATUS, k])
        shop = view_i32(addr[LY.DV_SHOP, k], size[LY.DV_SHOP, k])
        at = offsets[k]
        got = 0
        for i in range(iid.size):
            d = day[i]
            if status[i] != LY.VISIT_COMPLETED or d < s_day or d > e_day or ts[i] > asof:
                continue
            if use_shops and shop_lut[shop[i]] == 0:
                continue
            if fill:
                w = at + got
                o_iid[w] = iid[i]
                o_ts[w] = ts[i]
                o_day[w] = d
            got += 1
        if not fill:
            offsets[k + 1] = got


@njit(cache=True, nogil=True)
def group_by_customer(iid, n):
    """(ptr [n + 1], perm): a stable counting sort of lines by internal id."""
    ptr = np.zeros(n + 1, np.int64)
    for i in range(iid.size):
        ptr[iid[i] + 1] += 1
    for c in range(n):
        ptr[c + 1] += ptr[c]
    fill = ptr[:-1].copy()
    perm = np.empty(iid.size, np.int64)
    for i in range(iid.size):
        c = iid[i]
        perm[fill[c]] = i
        fill[c] += 1
    return ptr, perm


@njit(cache=True, nogil=True)
def _sort_slice_by(key, idx):
    """Insertion sort of idx (positions) by key[idx] (a customer's few lines)."""
    for a in range(1, idx.size):
        x = idx[a]
        kx = key[x]
        b = a - 1
        while b >= 0 and key[idx[b]] > kx:
            idx[b + 1] = idx[b]
            b -= 1
        idx[b + 1] = x


@njit(cache=True, nogil=True)
def _by_time(ts, lo, hi):
    """Positions lo..hi-1 in ascending instant (ties: input order)."""
    idx = np.arange(lo, hi)
    if hi - lo > 64:
        return lo + np.argsort(ts[lo:hi], kind="mergesort")
    _sort_slice_by(ts, idx)
    return idx


# ---------------------------------------------------------------- per customer

@njit(cache=True, nogil=True, parallel=True)
def regularly_mask(ptr, day, period_lo, period_of, n_periods, min_periods, min_per_period, out):
    """out[c] = 1 when at least min_periods periods hold at least min_per_period of c's events
    (period of an event on day d: period_of[d - period_lo]; events outside: -1)."""
    for c in prange(ptr.size - 1):
        lo, hi = ptr[c], ptr[c + 1]
        if hi - lo < min_periods * min_per_period:
            out[c] = 0
            continue
        ps = np.empty(hi - lo, np.int64)
        m = 0
        for i in range(lo, hi):
            j = day[i] - period_lo
            if j >= 0 and j < period_of.size and period_of[j] >= 0:
                ps[m] = period_of[j]
                m += 1
        ps = np.sort(ps[:m])
        good = 0
        run = 0
        for i in range(m):
            if i > 0 and ps[i] == ps[i - 1]:
                run += 1
            else:
                run = 1
            if run == min_per_period:
                good += 1
        out[c] = 1 if good >= min_periods else 0


@njit(cache=True, nogil=True, parallel=True)
def sequence_mask(ptr1, ts1, day1, ptr2, ts2, day2, within, negate, out):
    """out[c] = 1 when some first event e1 of c has (negate False) / has not (negate True) a
    second event e2 with ts2 > ts1 and day2 - day1 <= within."""
    for c in prange(ptr1.size - 1):
        a0, a1 = ptr1[c], ptr1[c + 1]
        hit = False
        if a1 > a0:
            b0, b1 = ptr2[c], ptr2[c + 1]
            m = b1 - b0
            order = _by_time(ts2, b0, b1)
            sts = np.empty(m, np.int64)
            smin = np.empty(m, np.int64)   # smin[j] = min day of the events j.. (by time)
            for j in range(m):
                sts[j] = ts2[order[j]]
            best = np.int64(2**62)
            for j in range(m - 1, -1, -1):
                d = np.int64(day2[order[j]])
                if d < best:
                    best = d
                smin[j] = best
            for i in range(a0, a1):
                j = np.searchsorted(sts, ts1[i], side="right")
                found = j < m and smin[j] - day1[i] <= within
                if found != negate:
                    hit = True
                    break
        out[c] = 1 if hit else 0


@njit(cache=True, nogil=True, parallel=True)
def order_values(ptr, ts, day, amount, order, flag, s_day, e_day, counts, sums, n_orders):
    """Per customer c, over its orders (lines sharing a non-zero order key, or with a zero
    key the same instant) whose instant (earliest line) is dated in [s_day, e_day]:
    counts[c] = those holding a flagged line, sums[c] = their net amount, n_orders[c] = their
    number."""
    for c in prange(ptr.size - 1):
        lo, hi = ptr[c], ptr[c + 1]
        cnt = 0
        total = 0
        num = 0
        if hi > lo:
            m = hi - lo
            # group key: the order key, or for a null order the instant (tagged apart)
            key = np.empty(m, np.int64)
            isnull = np.empty(m, np.int64)
            for i in range(m):
                isnull[i] = 1 if order[lo + i] == 0 else 0
                key[i] = ts[lo + i] if order[lo + i] == 0 else order[lo + i]
            # sort by (isnull, key, ts): stable sorts from the last key to the first
            perm = np.argsort(ts[lo:hi], kind="mergesort")
            perm = perm[np.argsort(key[perm], kind="mergesort")]
            perm = perm[np.argsort(isnull[perm], kind="mergesort")]
            a = 0
            while a < m:
                b = a + 1
                while b < m and isnull[perm[b]] == isnull[perm[a]] and key[perm[b]] == key[perm[a]]:
                    b += 1
                first = lo + perm[a]     # earliest line of the order (sorted by ts within)
                d = day[first]
                if d >= s_day and d <= e_day:
                    net = 0
                    any_flag = False
                    for q in range(a, b):
                        net += amount[lo + perm[q]]
                        if flag[lo + perm[q]] != 0:
                            any_flag = True
                    num += 1
                    total += net
                    if any_flag:
                        cnt += 1
                a = b
        counts[c] = cnt
        sums[c] = total
        n_orders[c] = num


@njit(cache=True, nogil=True, parallel=True)
def random_buckets(ids, salt_hash, out):
    """out[i] = splitmix64(ids[i] XOR salt_hash) mod 10000 (ids: uint64, the customer_ids'
    two's complement; all uint64 arithmetic)."""
    for i in prange(ids.size):
        x = ids[i] ^ salt_hash
        x = x + np.uint64(0x9e3779b97f4a7c15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
        x = x ^ (x >> np.uint64(31))
        out[i] = np.int64(x % np.uint64(10000))


@njit(cache=True, nogil=True)
def percentiles(values, member, out):
    """out[c] = floor(100 * below / N) for members c (below: members with a strictly lower
    value; N: members), -1 for others."""
    idx = np.flatnonzero(member)
    N = idx.size
    v = values[idx]
    order = np.argsort(v, kind="mergesort")
    sv = v[order]
    out[:] = -1
    for q in range(N):
        c = idx[order[q]]
        below = np.searchsorted(sv, sv[q], side="left")
        out[c] = (100 * below) // N
