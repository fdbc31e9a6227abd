"""Numba kernels of the behaviour conditions (shared/spec behaviour.md).

A sequence, a regularity or an order needs a customer's events, not one aggregate. The
shard kernels (`prange` over a batch of shards, one per thread) gather a shard's visible
lines of a date range from its runs and its appended live lines, group them by local
customer (a two-pass radix sort) and answer each customer there, all in scratch rows the
caller keeps per thread (engine.evaluation.behaviour.scratch). Holdout buckets are a plain
per-customer pass; a percentile condition is two order statistics (quickselect) of the
population's values and a pass.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import line_kernels as LK
from ..storage import layout as LY
from ..storage.views import view_i32, view_i64, view_u8, view_u16, view_u32

# ---------------------------------------------------------------- per customer

@njit(cache=True, nogil=True, parallel=True)
def floor_means(sums, num, none, out):
    """out[i] = floor(sums[i] / num[i]), `none` where num[i] == 0 (one pass, no masks)."""
    for i in prange(sums.size):
        out[i] = sums[i] // num[i] if num[i] > 0 else none


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


PCT_HISTOGRAM = 1 << 16   # a value span counted in a histogram (cache-sized) rather than selected


@njit(cache=True, nogil=True)
def kth_counted(values, member, vmin, vmax, nulls, k1, k2):
    """The k1-th and k2-th smallest member values (0-based; k < 0 or past the end: 0), the
    lowest int64 counted `nulls` times below [vmin, vmax]: a counting select."""
    cnt = np.zeros(vmax - vmin + 1, np.int64)
    for c in range(values.size):
        if member[c] != 0:
            v = values[c]
            if v != -(2**63):
                cnt[v - vmin] += 1
    out = np.zeros(2, np.int64)
    for j in range(2):
        k = k1 if j == 0 else k2
        if k < 0:
            continue
        if k < nulls:
            out[j] = -(2**63)
            continue
        seen = nulls
        for w in range(cnt.size):
            seen += cnt[w]
            if seen > k:
                out[j] = vmin + w
                break
    return out[0], out[1]


@njit(cache=True, nogil=True, parallel=True)
def member_summary(values, member):
    """(members, members whose value is the lowest int64 (absent), lowest and highest of the
    others' values) in one pass."""
    n = nulls = 0
    vmin, vmax = np.int64(2**63 - 1), np.int64(-(2**63) + 1)
    for c in prange(values.size):
        if member[c] != 0:
            v = values[c]
            n += 1
            nulls += 1 if v == -(2**63) else 0
            vmin = min(vmin, v if v != -(2**63) else np.int64(2**63 - 1))
            vmax = max(vmax, v)
    return n, nulls, vmin, vmax


@njit(cache=True, nogil=True)
def member_values(values, member, n):
    """The n members' values, in customer order."""
    x = np.empty(n, np.int64)
    q = 0
    for c in range(values.size):
        if member[c] != 0:
            x[q] = values[c]
            q += 1
    return x


@njit(cache=True, nogil=True, parallel=True)
def values_between(values, member, has_lo, t_lo, has_hi, t_hi, out):
    """out[c] = 1 for members c with t_lo < value (when has_lo) and value <= t_hi (has_hi)."""
    for c in prange(values.size):
        v = values[c]
        out[c] = 1 if member[c] != 0 and (not has_lo or v > t_lo) and (not has_hi or v <= t_hi) else 0


# ---------------------------------------------------------------- per shard
# Shard k: version pieces [v_lo[k], v_hi[k]), appended piece d_idx[k] (-1: none), customers
# [sh_base[k], sh_base[k] + sh_n[k]); nothing the size of the dataset is built.

@njit(cache=True, nogil=True)
def _group(cu, m, n, t_idx, t_cu, perm):
    """(ptr [n + 1], perm): the first m lines stably sorted by local customer cu (uint16),
    as an LSD radix sort of two 8-bit passes: each pass writes 256 sequential streams, where
    one counting pass over n customers would scatter every line to a random place."""
    cnt = np.zeros(257, np.int64)
    for i in range(m):
        cnt[(cu[i] & 255) + 1] += 1
    for j in range(256):
        cnt[j + 1] += cnt[j]
    for i in range(m):
        b = cu[i] & 255
        w = cnt[b]
        cnt[b] += 1
        t_idx[w] = i
        t_cu[w] = cu[i]
    cnt2 = np.zeros(257, np.int64)
    for q in range(m):
        cnt2[(t_cu[q] >> 8) + 1] += 1
    for j in range(256):
        cnt2[j + 1] += cnt2[j]
    ptr = np.zeros(n + 1, np.int64)
    for q in range(m):
        c = t_cu[q]
        b = c >> 8
        w = cnt2[b]
        cnt2[b] += 1
        perm[w] = t_idx[q]
        ptr[np.int64(c) + 1] += 1
    for c in range(n):
        ptr[c + 1] += ptr[c]
    return ptr, perm[:m]


@njit(cache=True, nogil=True)
def _shard_purchases(addr, size, p0, p1, daddr, dsize, dk, b, n, s_day, e_day, asof, fields, luts, all_lines,
                     I64, I32, U16, U8, slot, keep_from):
    """(ptr [n + 1], ts, day, amount, order, flag) of one shard's visible purchase lines on
    days [s_day, e_day], grouped by local customer (see gather_purchases for which lines)."""
    cap = 0
    for p in range(p0, p1):
        day = view_i32(addr[LY.P_DAY, p], size[LY.P_DAY, p])
        cap += np.searchsorted(day, np.int32(e_day), side="right") - np.searchsorted(day, np.int32(s_day))
    if dk >= 0:
        cap += dsize[LY.D_IID, dk]
    # scratch rows (engine.evaluation.behaviour.scratch): reused pages, never freshly faulted
    cu, t_, d_, a_, o_, f_ = U16[slot, 0], I64[slot, 0], I32[slot, 0], I64[slot, 1], I64[slot, 2], U8[slot, 0]
    m = 0
    for p in range(p0, p1):
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
        f0 = fields[0] if fields.size > 0 else 0   # the first filtered field's codes, viewed once
        c0 = view_u32(addr[LY.P_CODE + f0, p], size[LY.P_CODE + f0, p])
        for i in range(lo, hi):
            if ts[i] > asof:
                continue
            if day[i] < keep_from and (not has_order or order[i] == 0):
                continue   # a line without order_id before keep_from is in no order dated from keep_from
            ok = amount[i] >= 0
            if ok and fields.size > 0:
                if luts[0, c0[i]] == 0:
                    ok = False
                else:
                    for j in range(1, fields.size):
                        codes = view_u32(addr[LY.P_CODE + fields[j], p], size[LY.P_CODE + fields[j], p])
                        if luts[j, codes[i]] == 0:
                            ok = False
                            break
            if not ok and not all_lines:
                continue
            cu[m] = cust[i]
            t_[m] = ts[i]
            d_[m] = day[i]
            a_[m] = amount[i]
            o_[m] = order[i] if has_order else 0
            f_[m] = 1 if ok else 0
            m += 1
    if dk >= 0:
        iid = view_i64(daddr[LY.D_IID, dk], dsize[LY.D_IID, dk])
        day = view_i32(daddr[LY.D_DAY, dk], dsize[LY.D_DAY, dk])
        ts = view_i64(daddr[LY.D_TS, dk], dsize[LY.D_TS, dk])
        amount = view_i64(daddr[LY.D_AMOUNT, dk], dsize[LY.D_AMOUNT, dk])
        codes = view_i32(daddr[LY.D_CODES, dk], dsize[LY.D_CODES, dk])
        order = view_i64(daddr[LY.D_ORDER, dk], dsize[LY.D_ORDER, dk])
        has_order = order.size == iid.size
        for i in range(iid.size):
            dd = day[i]
            if dd < s_day or dd > e_day or ts[i] > asof:
                continue
            if dd < keep_from and (not has_order or order[i] == 0):
                continue
            ok = amount[i] >= 0
            if ok:
                for j in range(fields.size):
                    if luts[j, codes[i * LY.N_PRODUCT_FIELDS + fields[j]]] == 0:
                        ok = False
                        break
            if not ok and not all_lines:
                continue
            cu[m] = iid[i] - b
            t_[m] = ts[i]
            d_[m] = dd
            a_[m] = amount[i]
            o_[m] = order[i] if has_order else 0
            f_[m] = 1 if ok else 0
            m += 1
    ptr, perm = _group(cu, m, n, I32[slot, 2], U16[slot, 1], I32[slot, 3])
    ts_o, day_o = I64[slot, 3, :m], I32[slot, 1, :m]
    am_o, or_o, fl_o = I64[slot, 4, :m], I64[slot, 5, :m], U8[slot, 1, :m]
    for w in range(m):
        i = perm[w]
        ts_o[w] = t_[i]
        day_o[w] = d_[i]
        if all_lines:
            am_o[w] = a_[i]
            or_o[w] = o_[i]
            fl_o[w] = f_[i]
    return ptr, ts_o, day_o, am_o, or_o, fl_o


@njit(cache=True, nogil=True)
def _shard_visits(addr, size, p0, p1, daddr, dsize, dk, b, n, s_day, e_day, asof, use_shops, shop_lut,
                  I64, I32, U16, U8, slot):
    """(ptr [n + 1], ts, day) of one shard's visible completed visits on days [s_day, e_day]
    (at accepted shops), grouped by local customer."""
    cap = 0
    for p in range(p0, p1):
        day = view_i32(addr[LY.V_DAY, p], size[LY.V_DAY, p])
        cap += np.searchsorted(day, np.int32(e_day), side="right") - np.searchsorted(day, np.int32(s_day))
    if dk >= 0:
        cap += dsize[LY.DV_IID, dk]
    cu, t_, d_ = U16[slot, 0], I64[slot, 0], I32[slot, 0]
    m = 0
    for p in range(p0, p1):
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
            cu[m] = cust[i]
            t_[m] = ts[i]
            d_[m] = day[i]
            m += 1
    if dk >= 0:
        iid = view_i64(daddr[LY.DV_IID, dk], dsize[LY.DV_IID, dk])
        day = view_i32(daddr[LY.DV_DAY, dk], dsize[LY.DV_DAY, dk])
        ts = view_i64(daddr[LY.DV_TS, dk], dsize[LY.DV_TS, dk])
        status = view_u8(daddr[LY.DV_STATUS, dk], dsize[LY.DV_STATUS, dk])
        shop = view_i32(daddr[LY.DV_SHOP, dk], dsize[LY.DV_SHOP, dk])
        for i in range(iid.size):
            dd = day[i]
            if status[i] != LY.VISIT_COMPLETED or dd < s_day or dd > e_day or ts[i] > asof:
                continue
            if use_shops and shop_lut[shop[i]] == 0:
                continue
            cu[m] = iid[i] - b
            t_[m] = ts[i]
            d_[m] = dd
            m += 1
    ptr, perm = _group(cu, m, n, I32[slot, 2], U16[slot, 1], I32[slot, 3])
    ts_o, day_o = I64[slot, 3, :m], I32[slot, 1, :m]
    for w in range(m):
        i = perm[w]
        ts_o[w] = t_[i]
        day_o[w] = d_[i]
    return ptr, ts_o, day_o


@njit(cache=True, nogil=True)
def _shard_events(is_visit, paddr, psize, pv_lo, pv_hi, pdaddr, pdsize, pdk, vaddr, vsize, vv_lo, vv_hi, vdaddr,
                  vdsize, vdk, b, n, s_day, e_day, asof, fields, luts, use_shops, shop_lut, I64, I32, U16, U8, slot):
    """(ptr, ts, day) of one shard's events: completed visits (is_visit) or non-refund
    purchase lines accepted by the filter."""
    if is_visit:
        return _shard_visits(vaddr, vsize, vv_lo, vv_hi, vdaddr, vdsize, vdk, b, n, s_day, e_day, asof,
                             use_shops, shop_lut, I64, I32, U16, U8, slot)
    ptr, ts, day, _, _, _ = _shard_purchases(paddr, psize, pv_lo, pv_hi, pdaddr, pdsize, pdk, b, n, s_day, e_day,
                                             asof, fields, luts, False, I64, I32, U16, U8, slot, s_day)
    return ptr, ts, day


@njit(cache=True, nogil=True)
def _max_group(ptr):
    m = 1
    for c in range(ptr.size - 1):
        if ptr[c + 1] - ptr[c] > m:
            m = ptr[c + 1] - ptr[c]
    return m


@njit(cache=True, nogil=True, inline="always")
def _regular_one(day, lo, hi, period_lo, period_of, min_periods, min_per_period, ps):
    """Do at least min_periods periods hold min_per_period of the events [lo, hi)? (ps: scratch)"""
    if hi - lo < min_periods * min_per_period:
        return False
    m = 0
    for i in range(lo, hi):
        j = day[i] - period_lo
        if j >= 0 and j < period_of.size and period_of[j] >= 0:
            x = period_of[j]
            q = m          # insertion into the sorted prefix ps[:m]
            while q > 0 and ps[q - 1] > x:
                ps[q] = ps[q - 1]
                q -= 1
            ps[q] = x
            m += 1
    good = 0
    run = 0
    for i in range(m):
        if i > 0 and ps[i] == ps[i - 1]:
            run += 1
        else:
            run = 1
        if run == min_per_period:
            good += 1
    return good >= min_periods


@njit(cache=True, nogil=True, parallel=True)
def regularly_shards(sh_base, sh_n, is_visit, paddr, psize, pv_lo, pv_hi, pdaddr, pdsize, pd_idx, vaddr, vsize,
                     vv_lo, vv_hi, vdaddr, vdsize, vd_idx, s_day, e_day, asof, fields, luts, use_shops, shop_lut,
                     period_lo, period_of, min_periods, min_per_period, out, k_lo, k_hi, I64, I32, U16, U8):
    """regularly_mask, shard by shard, for shards [k_lo, k_hi) (scratch slot k - k_lo)."""
    for k in prange(k_lo, k_hi):
        b, n = sh_base[k], sh_n[k]
        ptr, ts, day = _shard_events(is_visit, paddr, psize, pv_lo[k], pv_hi[k], pdaddr, pdsize, pd_idx[k], vaddr,
                                     vsize, vv_lo[k], vv_hi[k], vdaddr, vdsize, vd_idx[k], b, n, s_day, e_day, asof,
                                     fields, luts, use_shops, shop_lut, I64, I32, U16, U8, k - k_lo)
        ps = np.empty(_max_group(ptr), np.int64)
        for c in range(n):
            ok = _regular_one(day, ptr[c], ptr[c + 1], period_lo, period_of, min_periods, min_per_period, ps)
            out[b + c] = 1 if ok else 0


STREAM_SEQUENCES = True   # sequences read one run per table in time order where they can (tests turn it off)
ORDERS_COUNT, ORDERS_VALUE = 1, 2   # order_values wanted: counts; net sums and order numbers
SEQUENCE_GATHER_SHARE = 0.5   # sequences read posting lists selecting under this share of a range's lines
MAX_BIT_PERIODS = 64   # regularity with one event per period: a bit per period per customer


@njit(cache=True, nogil=True, parallel=True)
def regularly_bits(sh_base, sh_n, is_visit, paddr, psize, pv_lo, pv_hi, pdaddr, pdsize, pd_idx, vaddr, vsize,
                   vv_lo, vv_hi, vdaddr, vdsize, vd_idx, s_day, e_day, c_day, asof, fields, luts, use_shops, shop_lut,
                   period_of, min_periods, out, k_lo, k_hi):
    """regularly with min_per_period 1 and at most MAX_BIT_PERIODS periods, shard by shard:
    one pass over the events of days [s_day, e_day] (period_of[day - s_day]) sets a bit per
    period per customer; no grouping, no order (runs and appended lines alike)."""
    for k in prange(k_lo, k_hi):
        b, n = sh_base[k], sh_n[k]
        bits = np.zeros(max(n, 1), np.uint64)
        one = np.uint64(1)
        if is_visit:
            for p in range(vv_lo[k], vv_hi[k]):
                day = view_i32(vaddr[LY.V_DAY, p], vsize[LY.V_DAY, p])
                lo = np.searchsorted(day, np.int32(s_day))
                hi = np.searchsorted(day, np.int32(e_day), side="right")
                ts = view_i64(vaddr[LY.V_TS, p], vsize[LY.V_TS, p])
                cust = view_u16(vaddr[LY.V_CUST, p], vsize[LY.V_CUST, p])
                status = view_u8(vaddr[LY.V_STATUS, p], vsize[LY.V_STATUS, p])
                shop = view_u32(vaddr[LY.V_SHOP, p], vsize[LY.V_SHOP, p])
                for i in range(lo, hi):
                    if status[i] != LY.VISIT_COMPLETED or (use_shops and shop_lut[shop[i]] == 0):
                        continue
                    d = day[i]
                    if d >= c_day and ts[i] > asof:
                        continue
                    bits[cust[i]] |= one << np.uint64(period_of[d - s_day])
            dk = vd_idx[k]
            if dk >= 0:
                iid = view_i64(vdaddr[LY.DV_IID, dk], vdsize[LY.DV_IID, dk])
                day = view_i32(vdaddr[LY.DV_DAY, dk], vdsize[LY.DV_DAY, dk])
                ts = view_i64(vdaddr[LY.DV_TS, dk], vdsize[LY.DV_TS, dk])
                status = view_u8(vdaddr[LY.DV_STATUS, dk], vdsize[LY.DV_STATUS, dk])
                shop = view_i32(vdaddr[LY.DV_SHOP, dk], vdsize[LY.DV_SHOP, dk])
                for i in range(iid.size):
                    d = day[i]
                    if status[i] != LY.VISIT_COMPLETED or d < s_day or d > e_day or ts[i] > asof:
                        continue
                    if use_shops and shop_lut[shop[i]] == 0:
                        continue
                    bits[iid[i] - b] |= one << np.uint64(period_of[d - s_day])
        else:
            F = fields.size
            f0 = fields[0] if F > 0 else 0
            for p in range(pv_lo[k], pv_hi[k]):
                day = view_i32(paddr[LY.P_DAY, p], psize[LY.P_DAY, p])
                lo = np.searchsorted(day, np.int32(s_day))
                hi = np.searchsorted(day, np.int32(e_day), side="right")
                ts = view_i64(paddr[LY.P_TS, p], psize[LY.P_TS, p])
                cust = view_u16(paddr[LY.P_CUST, p], psize[LY.P_CUST, p])
                amount = view_i64(paddr[LY.P_AMOUNT, p], psize[LY.P_AMOUNT, p])
                c0 = view_u32(paddr[LY.P_CODE + f0, p], psize[LY.P_CODE + f0, p])
                for i in range(lo, hi):
                    if amount[i] < 0:
                        continue
                    if F > 0:
                        if luts[0, c0[i]] == 0:
                            continue
                        ok = True
                        for j in range(1, F):
                            codes = view_u32(paddr[LY.P_CODE + fields[j], p], psize[LY.P_CODE + fields[j], p])
                            if luts[j, codes[i]] == 0:
                                ok = False
                                break
                        if not ok:
                            continue
                    d = day[i]
                    if d >= c_day and ts[i] > asof:
                        continue
                    bits[cust[i]] |= one << np.uint64(period_of[d - s_day])
            dk = pd_idx[k]
            if dk >= 0:
                iid = view_i64(pdaddr[LY.D_IID, dk], pdsize[LY.D_IID, dk])
                day = view_i32(pdaddr[LY.D_DAY, dk], pdsize[LY.D_DAY, dk])
                ts = view_i64(pdaddr[LY.D_TS, dk], pdsize[LY.D_TS, dk])
                amount = view_i64(pdaddr[LY.D_AMOUNT, dk], pdsize[LY.D_AMOUNT, dk])
                codes = view_i32(pdaddr[LY.D_CODES, dk], pdsize[LY.D_CODES, dk])
                for i in range(iid.size):
                    d = day[i]
                    if d < s_day or d > e_day or ts[i] > asof or amount[i] < 0:
                        continue
                    ok = True
                    for j in range(F):
                        if luts[j, codes[i * LY.N_PRODUCT_FIELDS + fields[j]]] == 0:
                            ok = False
                            break
                    if ok:
                        bits[iid[i] - b] |= one << np.uint64(period_of[d - s_day])
        for c in range(n):
            x = bits[c]
            m = 0
            while x != 0:
                x &= x - one
                m += 1
            out[b + c] = 1 if m >= min_periods else 0


@njit(cache=True, nogil=True, inline="always")
def _sequence_one(ts1, day1, a0, a1, ts2, day2, b0, b1, within, negate, order, sts, smin):
    """Has some first event [a0, a1) a (negate: no) second event [b0, b1) later in time and
    at most `within` days after? order, sts, smin: scratch of at least b1 - b0."""
    if a1 <= a0:
        return False
    m = b1 - b0
    if m == 0:
        return negate
    for j in range(m):            # second events by time: insertion sort (a customer's are few)
        x = b0 + j
        tx = ts2[x]
        q = j
        while q > 0 and ts2[order[q - 1]] > tx:
            order[q] = order[q - 1]
            q -= 1
        order[q] = x
    for j in range(m):
        sts[j] = ts2[order[j]]
    best = np.int64(2**62)
    for j in range(m - 1, -1, -1):
        d = np.int64(day2[order[j]])
        if d < best:
            best = d
        smin[j] = best
    for i in range(a0, a1):
        j = np.searchsorted(sts[:m], ts1[i], side="right")
        found = j < m and smin[j] - day1[i] <= within
        if found != negate:
            return True
    return False


@njit(cache=True, nogil=True, inline="always")
def _other_fields(paddr, psize, p, i, fields, luts):
    """Line i of purchases piece p passes filtered fields 1.. (field 0 is checked inline)."""
    for j in range(1, fields.size):
        codes = view_u32(paddr[LY.P_CODE + fields[j], p], psize[LY.P_CODE + fields[j], p])
        if luts[j, codes[i]] == 0:
            return False
    return True


@njit(cache=True, nogil=True)
def _event_source(addr, size, p, fields, wc_ptr, wc, a, b, paths, share):
    """(positions, lo, hi): the lines in [a, b) of run p that may be events of a filtered
    purchase kind, ascending, as positions[lo:hi]: the posting lists of the filtered field
    with the fewest (one code: a slice of the stored list; several: their sorted union; the
    other fields are checked per line by the caller). hi = -1 when no field has postings or
    they hold `share` of the range's lines or more (reading the range costs less)."""
    j1, n1 = -1, b - a
    if fields.size > 0 and paths & LK.PATH_POSTINGS:
        for j in range(fields.size):
            cnt = 0
            for w in range(wc_ptr[j], wc_ptr[j + 1]):
                lo, hi = LK._posting_range(addr, size, p, fields[j], wc[w], a, b)
                cnt += hi - lo
            if j1 < 0 or cnt < n1:
                j1, n1 = j, cnt
    if j1 < 0 or n1 >= share * (b - a):
        return np.empty(0, np.uint32), 0, -1
    f = fields[j1]
    xs = view_u32(addr[LY.P_XPOS + f, p], size[LY.P_XPOS + f, p])
    if wc_ptr[j1 + 1] - wc_ptr[j1] == 1:
        lo, hi = LK._posting_range(addr, size, p, f, wc[wc_ptr[j1]], a, b)
        return xs, lo, hi
    out = np.empty(n1, np.uint32)
    k = 0
    for w in range(wc_ptr[j1], wc_ptr[j1 + 1]):
        lo, hi = LK._posting_range(addr, size, p, f, wc[w], a, b)
        for q in range(lo, hi):
            out[k] = xs[q]
            k += 1
    out.sort()
    return out, 0, n1


SEQ_NONE = 0xFFFF             # a record's day slot without a second event
SEQ_HIT = 0xFFFE              # a record's later-day slot once the customer matched (decided)
SEQ_MAX_SPAN = 0xFFFF - 3     # days a shard's lines may span for the 16-bit day slots
SEQ_SIDE_BIT = 2**30         # a record's position bit of a side event (sequence_streams)
SEQ_CHUNK = 2048              # purchase positions merged ahead of the pass (an L1-sized buffer)


@njit(cache=True, nogil=True)
def _merge_back(xa, ja, xlo, ya, jb, ylo, pos, flags):
    """Up to pos.size positions of the backward merge of xa[xlo:ja+1] and ya[ylo:jb+1]
    (ascending, each without repeats), newest first, into pos with flags (1: of xa, 2: of
    ya, 3: both): (count, ja, jb) after them. Selects, not branches, while both remain."""
    k = 0
    while k < pos.size and ja >= xlo and jb >= ylo:
        pa, pb = np.int64(xa[ja]), np.int64(ya[jb])
        i = max(pa, pb)
        fa, fb = pa == i, pb == i
        pos[k] = i
        flags[k] = np.uint8(fa) | (np.uint8(fb) << np.uint8(1))
        ja -= np.int64(fa)
        jb -= np.int64(fb)
        k += 1
    while k < pos.size and ja >= xlo:
        pos[k] = xa[ja]
        flags[k] = 1
        ja -= 1
        k += 1
    while k < pos.size and jb >= ylo:
        pos[k] = ya[jb]
        flags[k] = 2
        jb -= 1
        k += 1
    return k, ja, jb


@njit(cache=True, nogil=True, inline="always")   # a call per line would cost its arrays' reference counts
def _seq_record(rec, c, dd, at, is1, is2, within, negate, pts, vts, sts):
    """One event (at: its position in the largest purchases run, or a visit's with bit 31, or
    a side event's with bit 30; dd: its relative day) of customer c in the backward pass: a
    first event matches against the earliest second event strictly after it; a second event
    joins the record."""
    none = np.uint64(SEQ_NONE)
    m16 = np.uint64(0xFFFF)
    m32 = np.uint64(0xFFFFFFFF)
    vbit = np.int64(2**31)
    x = rec[c]
    lo = (x >> np.uint64(32)) & m16
    hi = x >> np.uint64(48)
    # second events at the latest-seen line's instant are strictly later than this line
    # unless it is at that same instant (same day, then the instants compared); selects
    # rather than branches: which way a line goes is data, not a pattern
    same = lo == dd
    if same:
        w = np.int64(x & m32)
        t_then = vts[w - vbit] if w >= vbit else (sts[w - SEQ_SIDE_BIT] if w >= SEQ_SIDE_BIT else pts[w])
        same = t_then == (vts[at - vbit] if at >= vbit else (sts[at - SEQ_SIDE_BIT] if at >= SEQ_SIDE_BIT else pts[at]))
    hi = hi if same else min(hi, lo)
    lo = lo if same else none
    found = (hi != none) & (np.int64(hi) - np.int64(dd) <= within)
    lo = min(lo, dd) if is2 else lo
    hi = np.uint64(SEQ_HIT) if is1 & (found != negate) else hi
    rec[c] = (hi << np.uint64(48)) | (lo << np.uint64(32)) | np.uint64(at)


@njit(cache=True, nogil=True, inline="always")
def _seq_visit(i, vday, vts, vcu, vst, vsh, visit1, visit2, e1, shops1, lut1, shops2, lut2, c_day, asof, d0, rec,
               within, negate, pts, sts):
    """Visit line i in the backward pass of sequence_streams."""
    if vst[i] != LY.VISIT_COMPLETED:
        return
    d = np.int64(vday[i])
    is1 = visit1 and d <= e1 and (not shops1 or lut1[vsh[i]] != 0)
    is2 = visit2 and (not shops2 or lut2[vsh[i]] != 0)
    if not is1 and not is2:
        return
    if d >= c_day and vts[i] > asof:
        return
    c = np.int64(vcu[i])
    if rec[c] >> np.uint64(48) != SEQ_HIT:
        _seq_record(rec, c, np.uint64(d - d0), np.int64(i) | np.int64(2**31), is1, is2, within, negate, pts, vts,
                    sts)


SEQ_SIDE_SHARE = 0.5   # events beside a shard's largest runs read into a sorted side list, up to
SEQ_SIDE_MIN = 4096    # this share of those runs' lines in range (or this many); more: grouped


@njit(cache=True, nogil=True)
def _largest(size, col, lo, hi):
    """The piece in [lo, hi) with the most rows (col: a per-line column), -1 when none."""
    best, rows = -1, -1
    for p in range(lo, hi):
        if size[col, p] > rows:
            best, rows = p, size[col, p]
    return best


@njit(cache=True, nogil=True)
def _run_passes(addr, size, p, i, fields, luts):
    """Line i of purchases run p passes every filtered field."""
    for j in range(fields.size):
        codes = view_u32(addr[LY.P_CODE + fields[j], p], size[LY.P_CODE + fields[j], p])
        if luts[j, codes[i]] == 0:
            return False
    return True


@njit(cache=True, nogil=True)
def _side_events(visit1, visit2, paddr, psize, p_lo, p_hi, q, pdaddr, pdsize, pdk, vaddr, vsize, v_lo, v_hi, r,
                 vdaddr, vdsize, vdk, b, s1, last_day, e1, asof, fields1, luts1, shops1, lut1, fields2, luts2,
                 shops2, lut2, limit):
    """The events of a shard beside its largest runs q (purchases) and r (visits): its other
    runs' and its appended lines' visible events on days [s1, last_day], sorted by (day,
    instant): (day, instant, local customer, flags (1: a first event, 2: a second), count);
    count -1 when the lines to read exceed `limit`."""
    uses_p, uses_v = not visit1 or not visit2, visit1 or visit2
    cap = 0
    for p in range(p_lo, p_hi):
        if uses_p and p != q:
            day = view_i32(paddr[LY.P_DAY, p], psize[LY.P_DAY, p])
            cap += np.searchsorted(day, np.int32(last_day), side="right") - np.searchsorted(day, np.int32(s1))
    for p in range(v_lo, v_hi):
        if uses_v and p != r:
            day = view_i32(vaddr[LY.V_DAY, p], vsize[LY.V_DAY, p])
            cap += np.searchsorted(day, np.int32(last_day), side="right") - np.searchsorted(day, np.int32(s1))
    if uses_p and pdk >= 0:
        cap += pdsize[LY.D_IID, pdk]
    if uses_v and vdk >= 0:
        cap += vdsize[LY.DV_IID, vdk]
    sday, sts = np.empty(cap, np.int64), np.empty(cap, np.int64)
    scu, sfl = np.empty(cap, np.int64), np.empty(cap, np.uint8)
    if cap > limit:
        return sday, sts, scu, sfl, -1
    m = 0
    for p in range(p_lo, p_hi):
        if not uses_p or p == q:
            continue
        day = view_i32(paddr[LY.P_DAY, p], psize[LY.P_DAY, p])
        ts = view_i64(paddr[LY.P_TS, p], psize[LY.P_TS, p])
        cust = view_u16(paddr[LY.P_CUST, p], psize[LY.P_CUST, p])
        amount = view_i64(paddr[LY.P_AMOUNT, p], psize[LY.P_AMOUNT, p])
        for i in range(np.searchsorted(day, np.int32(s1)), np.searchsorted(day, np.int32(last_day), side="right")):
            if ts[i] > asof or amount[i] < 0:
                continue
            is1 = not visit1 and day[i] <= e1 and _run_passes(paddr, psize, p, i, fields1, luts1)
            is2 = not visit2 and _run_passes(paddr, psize, p, i, fields2, luts2)
            if is1 or is2:
                sday[m], sts[m], scu[m] = day[i], ts[i], cust[i]
                sfl[m] = np.uint8(is1) | (np.uint8(is2) << np.uint8(1))
                m += 1
    if uses_p and pdk >= 0:
        iid = view_i64(pdaddr[LY.D_IID, pdk], pdsize[LY.D_IID, pdk])
        day = view_i32(pdaddr[LY.D_DAY, pdk], pdsize[LY.D_DAY, pdk])
        ts = view_i64(pdaddr[LY.D_TS, pdk], pdsize[LY.D_TS, pdk])
        amount = view_i64(pdaddr[LY.D_AMOUNT, pdk], pdsize[LY.D_AMOUNT, pdk])
        codes = view_i32(pdaddr[LY.D_CODES, pdk], pdsize[LY.D_CODES, pdk])
        for i in range(iid.size):
            d = day[i]
            if d < s1 or d > last_day or ts[i] > asof or amount[i] < 0:
                continue
            is1 = not visit1 and d <= e1
            for j in range(fields1.size):
                is1 = is1 and luts1[j, codes[i * LY.N_PRODUCT_FIELDS + fields1[j]]] != 0
            is2 = not visit2
            for j in range(fields2.size):
                is2 = is2 and luts2[j, codes[i * LY.N_PRODUCT_FIELDS + fields2[j]]] != 0
            if is1 or is2:
                sday[m], sts[m], scu[m] = d, ts[i], iid[i] - b
                sfl[m] = np.uint8(is1) | (np.uint8(is2) << np.uint8(1))
                m += 1
    for p in range(v_lo, v_hi):
        if not uses_v or p == r:
            continue
        day = view_i32(vaddr[LY.V_DAY, p], vsize[LY.V_DAY, p])
        ts = view_i64(vaddr[LY.V_TS, p], vsize[LY.V_TS, p])
        cust = view_u16(vaddr[LY.V_CUST, p], vsize[LY.V_CUST, p])
        status = view_u8(vaddr[LY.V_STATUS, p], vsize[LY.V_STATUS, p])
        shop = view_u32(vaddr[LY.V_SHOP, p], vsize[LY.V_SHOP, p])
        for i in range(np.searchsorted(day, np.int32(s1)), np.searchsorted(day, np.int32(last_day), side="right")):
            if status[i] != LY.VISIT_COMPLETED or ts[i] > asof:
                continue
            is1 = visit1 and day[i] <= e1 and (not shops1 or lut1[shop[i]] != 0)
            is2 = visit2 and (not shops2 or lut2[shop[i]] != 0)
            if is1 or is2:
                sday[m], sts[m], scu[m] = day[i], ts[i], cust[i]
                sfl[m] = np.uint8(is1) | (np.uint8(is2) << np.uint8(1))
                m += 1
    if uses_v and vdk >= 0:
        iid = view_i64(vdaddr[LY.DV_IID, vdk], vdsize[LY.DV_IID, vdk])
        day = view_i32(vdaddr[LY.DV_DAY, vdk], vdsize[LY.DV_DAY, vdk])
        ts = view_i64(vdaddr[LY.DV_TS, vdk], vdsize[LY.DV_TS, vdk])
        status = view_u8(vdaddr[LY.DV_STATUS, vdk], vdsize[LY.DV_STATUS, vdk])
        shop = view_i32(vdaddr[LY.DV_SHOP, vdk], vdsize[LY.DV_SHOP, vdk])
        for i in range(iid.size):
            d = day[i]
            if d < s1 or d > last_day or status[i] != LY.VISIT_COMPLETED or ts[i] > asof:
                continue
            is1 = visit1 and d <= e1 and (not shops1 or lut1[shop[i]] != 0)
            is2 = visit2 and (not shops2 or lut2[shop[i]] != 0)
            if is1 or is2:
                sday[m], sts[m], scu[m] = d, ts[i], iid[i] - b
                sfl[m] = np.uint8(is1) | (np.uint8(is2) << np.uint8(1))
                m += 1
    # by (day, instant): instants first, then days, each sort stable
    o = np.argsort(sts[:m], kind="mergesort")
    o = o[np.argsort(sday[:m][o], kind="mergesort")]
    return sday[:m][o], sts[:m][o], scu[:m][o], sfl[:m][o], m


@njit(cache=True, nogil=True, parallel=True)
def sequence_streams(sh_base, sh_n, visit1, visit2, paddr, psize, pv_lo, pv_hi, pdaddr, pdsize, pd_idx, vaddr, vsize,
                     vv_lo, vv_hi, vdaddr, vdsize, vd_idx, asof, c_day, s1, e1, fields1, luts1, wc_ptr1, wc1, shops1,
                     lut1, fields2, luts2, wc_ptr2, wc2, shops2, lut2, within, negate, paths, share, out, done,
                     k_lo, k_hi):
    """sequence_mask (then, or then_not with `negate`) as one pass back in time (done[k] = 1;
    shards it does not suit are left to sequence_shards): a run's lines are already in time
    order, so the pass keeps, per customer, the earliest second event strictly after each
    line, with no grouping: a first event matches when that event is at most (then_not:
    absent or more than) `within` days after its date. It reads each table's largest run in
    place; the events of the shard's other runs and appended lines (up to SEQ_SIDE_SHARE of
    those runs' lines) are gathered and sorted beside it. Filtered purchase events are read
    through their posting lists (merged as they are read) where that reads fewer lines than
    the date range, so the cost follows the lines the two filters select."""
    F1, F2 = fields1.size, fields2.size
    for k in prange(k_lo, k_hi):
        uses_p = not visit1 or not visit2
        uses_v = visit1 or visit2
        b, n = sh_base[k], sh_n[k]
        last_day = min(c_day + 1, e1 + within)       # no second event after this day matters
        pp = _largest(psize, LY.P_DAY, pv_lo[k], pv_hi[k]) if uses_p else -1
        vp = _largest(vsize, LY.V_DAY, vv_lo[k], vv_hi[k]) if uses_v else -1
        q, r = max(pp, 0), max(vp, 0)
        pn = psize[LY.P_DAY, q] if pp >= 0 else 0
        vn = vsize[LY.V_DAY, r] if vp >= 0 else 0
        pday = view_i32(paddr[LY.P_DAY, q], pn)
        pts = view_i64(paddr[LY.P_TS, q], pn)
        pcu = view_u16(paddr[LY.P_CUST, q], pn)
        pam = view_i64(paddr[LY.P_AMOUNT, q], pn)
        pc1 = view_u32(paddr[LY.P_CODE + (fields1[0] if F1 > 0 else 0), q], pn)
        pc2 = view_u32(paddr[LY.P_CODE + (fields2[0] if F2 > 0 else 0), q], pn)
        vday = view_i32(vaddr[LY.V_DAY, r], vn)
        vts = view_i64(vaddr[LY.V_TS, r], vn)
        vcu = view_u16(vaddr[LY.V_CUST, r], vn)
        vst = view_u8(vaddr[LY.V_STATUS, r], vn)
        vsh = view_u32(vaddr[LY.V_SHOP, r], vn)
        p_lo = np.searchsorted(pday, np.int32(s1))
        p_hi = np.searchsorted(pday, np.int32(last_day), side="right")
        v_lo = np.searchsorted(vday, np.int32(s1))
        v_hi = np.searchsorted(vday, np.int32(last_day), side="right")
        limit = max(SEQ_SIDE_MIN, SEQ_SIDE_SHARE * ((p_hi - p_lo) + (v_hi - v_lo)))
        sday, sts, scu, sfl, m = _side_events(visit1, visit2, paddr, psize, pv_lo[k], pv_hi[k], pp, pdaddr, pdsize,
                                              pd_idx[k], vaddr, vsize, vv_lo[k], vv_hi[k], vp, vdaddr, vdsize,
                                              vd_idx[k], b, s1, last_day, e1, asof, fields1, luts1, shops1, lut1,
                                              fields2, luts2, shops2, lut2, limit)
        # days relative to the shard's first event in range, in 16 bits
        d0, d1 = np.int64(2**40), np.int64(-(2**40))
        if p_lo < p_hi:
            d0, d1 = min(d0, np.int64(pday[p_lo])), max(d1, np.int64(pday[p_hi - 1]))
        if v_lo < v_hi:
            d0, d1 = min(d0, np.int64(vday[v_lo])), max(d1, np.int64(vday[v_hi - 1]))
        if m > 0:
            d0, d1 = min(d0, sday[0]), max(d1, sday[m - 1])
        if m < 0 or d1 - d0 > SEQ_MAX_SPAN or max(pn, vn, m) >= 2**30:
            done[k] = 0
            continue
        done[k] = 1
        # the purchase lines to read: the range, or the posting lists of both filters
        xa, xlo, xhi = np.empty(0, np.uint32), 0, 0
        ya, ylo, yhi = np.empty(0, np.uint32), 0, 0
        gathered = False
        if pn > 0 and p_lo < p_hi:
            if not visit1:
                xa, xlo, xhi = _event_source(paddr, psize, q, fields1, wc_ptr1, wc1, p_lo, p_hi, paths, share)
            if not visit2:
                ya, ylo, yhi = _event_source(paddr, psize, q, fields2, wc_ptr2, wc2, p_lo, p_hi, paths, share)
            gathered = xhi >= 0 and yhi >= 0 and (xhi - xlo) + (yhi - ylo) < share * (p_hi - p_lo)
        # per customer one 8-byte record (lines come in time order, customers at random):
        # bits 0-31 the latest-seen event (bit 31: a visit of the largest run, bit 30: a
        # side event), 32-47 the earliest second-event day at that event's instant (not yet
        # "strictly after"), 48-63 the earliest strictly after it; SEQ_NONE: none. Instants
        # are read only to tell events of one day apart.
        none = np.uint64(SEQ_NONE)
        rec = np.full(n, (none << np.uint64(48)) | (none << np.uint64(32)) | np.uint64(0xFFFFFFFF), np.uint64)
        pos = np.empty(SEQ_CHUNK, np.int64)
        flags = np.full(SEQ_CHUNK, 3, np.uint8)
        ja, jb, ip = xhi - 1, yhi - 1, p_hi - 1
        iv, js = v_hi - 1, m - 1
        cnt, t = 0, 0
        while True:
            if t >= cnt:
                # the next purchase lines back in time: merged from the posting lists, or the range
                if gathered:
                    cnt, ja, jb = _merge_back(xa, ja, xlo, ya, jb, ylo, pos, flags)
                else:
                    cnt = max(min(SEQ_CHUNK, ip - p_lo + 1), 0)
                    for u in range(cnt):
                        pos[u] = ip - u
                    ip -= cnt
                t = 0
            # the latest of: the run's next purchase line, visit, side event (at one instant
            # in that order: any order of one instant gives the same answer)
            has_p = t < cnt
            if not has_p and iv < v_lo and js < 0:
                break
            i = pos[t] if has_p else np.int64(-1)
            pick = 0 if has_p else (1 if iv >= v_lo else 2)
            if iv >= v_lo and has_p and (vday[iv] > pday[i] or (vday[iv] == pday[i] and vts[iv] > pts[i])):
                pick = 1
            if js >= 0 and pick != 2:
                sd, st_ = (pday[i], pts[i]) if pick == 0 else (vday[iv], vts[iv])
                if sday[js] > sd or (sday[js] == sd and sts[js] > st_):
                    pick = 2
            if pick == 1:
                _seq_visit(iv, vday, vts, vcu, vst, vsh, visit1, visit2, e1, shops1, lut1, shops2, lut2, c_day,
                           asof, d0, rec, within, negate, pts, sts)
                iv -= 1
                continue
            if pick == 2:
                c = scu[js]
                if rec[c] >> np.uint64(48) != SEQ_HIT:
                    f = sfl[js]
                    _seq_record(rec, c, np.uint64(sday[js] - d0), js | SEQ_SIDE_BIT, f & 1 != 0, f & 2 != 0,
                                within, negate, pts, vts, sts)
                js -= 1
                continue
            t += 1
            c = np.int64(pcu[i])
            if rec[c] >> np.uint64(48) == SEQ_HIT:     # decided: a match is never undone
                continue
            d = np.int64(pday[i])
            if pam[i] < 0:
                continue
            f1, f2 = flags[t - 1] & 1 != 0, flags[t - 1] & 2 != 0
            if gathered and F1 == 1:     # a one-field filter's posting lists are exact
                is1 = f1 and d <= e1
            else:
                is1 = f1 and not visit1 and d <= e1 and (F1 == 0 or (luts1[0, pc1[i]] != 0 and (
                    F1 == 1 or _other_fields(paddr, psize, q, i, fields1, luts1))))
            if gathered and F2 == 1:
                is2 = f2
            else:
                is2 = f2 and not visit2 and (F2 == 0 or (luts2[0, pc2[i]] != 0 and (
                    F2 == 1 or _other_fields(paddr, psize, q, i, fields2, luts2))))
            if not is1 and not is2:
                continue
            if d >= c_day and pts[i] > asof:
                continue
            _seq_record(rec, c, np.uint64(d - d0), i, is1, is2, within, negate, pts, vts, sts)
        for c in range(n):
            out[b + c] = 1 if rec[c] >> np.uint64(48) == SEQ_HIT else 0


@njit(cache=True, nogil=True, parallel=True)
def sequence_shards(sh_base, sh_n, visit1, visit2, paddr, psize, pv_lo, pv_hi, pdaddr, pdsize, pd_idx, vaddr, vsize,
                    vv_lo, vv_hi, vdaddr, vdsize, vd_idx, asof, s1, e1, fields1, luts1, shops1, lut1,
                    s2, e2, fields2, luts2, shops2, lut2, within, negate, out, done, k_lo, k_hi, I64, I32, U16, U8):
    """sequence_mask, shard by shard: first events on days [s1, e1], second on [s2, e2];
    shards [k_lo, k_hi) but those done (done[k] = 1), scratch slots 2 (k - k_lo) and the next."""
    for k in prange(k_lo, k_hi):
        if done[k] != 0:
            continue
        b, n = sh_base[k], sh_n[k]
        ptr1, ts1, day1 = _shard_events(visit1, paddr, psize, pv_lo[k], pv_hi[k], pdaddr, pdsize, pd_idx[k], vaddr,
                                        vsize, vv_lo[k], vv_hi[k], vdaddr, vdsize, vd_idx[k], b, n, s1, e1, asof,
                                        fields1, luts1, shops1, lut1, I64, I32, U16, U8, 2 * (k - k_lo))
        if ptr1[n] == 0:
            for c in range(n):
                out[b + c] = 0
            continue
        ptr2, ts2, day2 = _shard_events(visit2, paddr, psize, pv_lo[k], pv_hi[k], pdaddr, pdsize, pd_idx[k], vaddr,
                                        vsize, vv_lo[k], vv_hi[k], vdaddr, vdsize, vd_idx[k], b, n, s2, e2, asof,
                                        fields2, luts2, shops2, lut2, I64, I32, U16, U8, 2 * (k - k_lo) + 1)
        mm = _max_group(ptr2)
        order, sts, smin = np.empty(mm, np.int64), np.empty(mm, np.int64), np.empty(mm, np.int64)
        for c in range(n):
            ok = _sequence_one(ts1, day1, ptr1[c], ptr1[c + 1], ts2, day2, ptr2[c], ptr2[c + 1], within, negate,
                               order, sts, smin)
            out[b + c] = 1 if ok else 0


@njit(cache=True, nogil=True, inline="always")
def _before(ts, order, x, y):
    """Line x sorts before line y by (no order key, key or instant, instant)."""
    nx, ny = order[x] == 0, order[y] == 0
    if nx != ny:
        return ny           # keyed orders first
    kx = ts[x] if nx else order[x]
    ky = ts[y] if ny else order[y]
    if kx != ky:
        return kx < ky
    return ts[x] < ts[y]


@njit(cache=True, nogil=True, inline="always")
def _orders_one(ts, day, amount, order, flag, lo, hi, s_day, e_day, idx):
    """(orders with a flagged line, net sum, orders) of one customer's lines [lo, hi) over
    orders whose instant is dated in [s_day, e_day]; idx: scratch of at least hi - lo."""
    m = hi - lo
    if m == 0:
        return 0, 0, 0
    if m == 1:
        if day[lo] >= s_day and day[lo] <= e_day:
            return (1 if flag[lo] != 0 else 0), amount[lo], 1
        return 0, 0, 0
    for j in range(m):            # insertion sort by (null key, key, instant): a customer's lines are few
        x = lo + j
        q = j
        while q > 0 and _before(ts, order, x, idx[q - 1]):
            idx[q] = idx[q - 1]
            q -= 1
        idx[q] = x
    cnt = 0
    total = 0
    num = 0
    a = 0
    while a < m:
        first = idx[a]
        null = order[first] == 0
        key = ts[first] if null else order[first]
        e = a + 1
        while e < m:
            y = idx[e]
            if (order[y] == 0) != null or (ts[y] if null else order[y]) != key:
                break
            e += 1
        d = day[first]            # the earliest line (sorted by instant within the order)
        if d >= s_day and d <= e_day:
            net = 0
            any_flag = False
            for q in range(a, e):
                net += amount[idx[q]]
                if flag[idx[q]] != 0:
                    any_flag = True
            num += 1
            total += net
            if any_flag:
                cnt += 1
        a = e
    return cnt, total, num


@njit(cache=True, nogil=True)
def _keys_meet(a, b):
    """Do two ascending key arrays share a value?"""
    if a.size > b.size:
        a, b = b, a
    for x in a:
        k = np.searchsorted(b, x)
        if k < b.size and b[k] == x:
            return True
    return False


@njit(cache=True, nogil=True)
def _stored_at(oaddr, osize, p, d, t, c):
    """Does run p store an order of local customer c whose earliest line is at instant t,
    local day d? (An appended line without order_id at t would belong to it.) Orders are
    sorted by (day, instant): by instant within a day (not across days where a zone's clock
    goes back over midnight)."""
    oday = view_i32(oaddr[LY.O_DAY, p], osize[LY.O_DAY, p])
    ots = view_i64(oaddr[LY.O_TS, p], osize[LY.O_TS, p])
    cust = view_u16(oaddr[LY.O_CUST, p], osize[LY.O_CUST, p])
    lo = np.searchsorted(oday, np.int32(d))
    hi = np.searchsorted(oday, np.int32(d), side="right")
    q = lo + np.searchsorted(ots[lo:hi], t)
    while q < hi and ots[q] == t:
        if np.int64(cust[q]) == c:
            return True
        q += 1
    return False


@njit(cache=True, nogil=True)
def _stored_orders_exact(oaddr, osize, p0, p1, daddr, dsize, dk, b, asof):
    """Do the shard's runs' stored orders (engine.storage.orders) answer exactly as of asof?
    Every run has them, none is partly visible (lines on both sides of asof), and no order
    can have lines in two runs (conservative: instants of orders without order_id in
    overlapping spans, or a shared order key), or in a run and the appended lines (a shared
    order key; an appended line without order_id at the instant of a stored order of its
    customer, b being the shard's first internal id)."""
    for p in range(p0, p1):
        if osize[LY.O_META, p] != 4:
            return False
        ts = view_i64(oaddr[LY.O_TS, p], osize[LY.O_TS, p])
        last = view_i64(oaddr[LY.O_LAST, p], osize[LY.O_LAST, p])
        spread = view_i64(oaddr[LY.O_SPREAD, p], osize[LY.O_SPREAD, p])
        for q in spread:
            if ts[q] <= asof and last[q] > asof:
                return False
    for p in range(p0, p1):
        mp = view_i64(oaddr[LY.O_META, p], 4)
        kp = view_i64(oaddr[LY.O_KEYS, p], osize[LY.O_KEYS, p])
        for r in range(p + 1, p1):
            mr = view_i64(oaddr[LY.O_META, r], 4)
            if mp[2] <= mp[3] and mr[2] <= mr[3] and mp[2] <= mr[3] and mr[2] <= mp[3]:
                return False
            if _keys_meet(kp, view_i64(oaddr[LY.O_KEYS, r], osize[LY.O_KEYS, r])):
                return False
    if dk >= 0:
        ts = view_i64(daddr[LY.D_TS, dk], dsize[LY.D_TS, dk])
        day = view_i32(daddr[LY.D_DAY, dk], dsize[LY.D_DAY, dk])
        iid = view_i64(daddr[LY.D_IID, dk], dsize[LY.D_IID, dk])
        order = view_i64(daddr[LY.D_ORDER, dk], dsize[LY.D_ORDER, dk])
        has_order = order.size == ts.size
        for i in range(ts.size):
            if ts[i] > asof:
                continue
            key = order[i] if has_order else 0
            for p in range(p0, p1):
                mp = view_i64(oaddr[LY.O_META, p], 4)
                if key == 0:
                    if mp[2] <= ts[i] and ts[i] <= mp[3] and _stored_at(oaddr, osize, p, day[i], ts[i], iid[i] - b):
                        return False
                else:
                    keys = view_i64(oaddr[LY.O_KEYS, p], osize[LY.O_KEYS, p])
                    k = np.searchsorted(keys, key)
                    if k < keys.size and keys[k] == key:
                        return False
    return True


@njit(cache=True, nogil=True)
def _order_marks(oaddr, osize, p, day, lo, hi, s_day, e_day, c_day, b, counts):
    """Add the orders with a sale of the whole months inside [s_day, e_day] from run p's
    month marks (two rows of differences; only orders dated before c_day, visible by their
    day) when that reads less than their rows; returns the rows [pa, pb) so counted (pa ==
    pb: none), the caller reads [lo, pa) and [pb, hi)."""
    marks = view_i32(oaddr[LY.O_MDAYS, p], osize[LY.O_MDAYS, p])
    js, je, pa, pb, nb = LK.mark_span(marks, osize[LY.O_MSALE, p], day, lo, hi, s_day, e_day, c_day)
    if pa == pb:
        return lo, lo
    ms = view_i32(oaddr[LY.O_MSALE, p], osize[LY.O_MSALE, p])
    a, z = js * nb, je * nb
    for c in range(nb):
        counts[b + c] += ms[z + c] - ms[a + c]
    return pa, pb


@njit(cache=True, nogil=True)
def _stored_orders(oaddr, osize, p0, p1, b, n, s_day, e_day, c_day, asof, want, counts, sums, n_orders):
    """Add the shard's stored orders dated in [s_day, e_day] and visible as of asof (those
    on days from c_day on are compared by instant) into the accumulators [b, b + n): the
    per-customer sums when the range covers them, else the order rows of the range. Only
    the wanted accumulators are read and written (ORDERS_COUNT: counts; ORDERS_VALUE: sums
    and n_orders)."""
    wc, wv = want & ORDERS_COUNT, want & ORDERS_VALUE
    for p in range(p0, p1):
        day = view_i32(oaddr[LY.O_DAY, p], osize[LY.O_DAY, p])
        if day.size == 0:
            continue
        ts = view_i64(oaddr[LY.O_TS, p], osize[LY.O_TS, p])
        cust = view_u16(oaddr[LY.O_CUST, p], osize[LY.O_CUST, p])
        net = view_i64(oaddr[LY.O_NET, p], osize[LY.O_NET, p])
        sale = view_u8(oaddr[LY.O_SALE, p], osize[LY.O_SALE, p])
        meta = view_i64(oaddr[LY.O_META, p], 4)
        dn = min(osize[LY.O_ALL_NUM, p], n)
        if dn > 0 and s_day <= day[0] and e_day >= meta[0] and asof >= meta[1]:
            a_num = view_i32(oaddr[LY.O_ALL_NUM, p], osize[LY.O_ALL_NUM, p])
            a_net = view_i64(oaddr[LY.O_ALL_NET, p], osize[LY.O_ALL_NET, p])
            a_sale = view_i32(oaddr[LY.O_ALL_SALE, p], osize[LY.O_ALL_SALE, p])
            if wv:
                for c in range(dn):
                    n_orders[b + c] += a_num[c]
                    sums[b + c] += a_net[c]
            if wc:
                for c in range(dn):
                    counts[b + c] += a_sale[c]
            tail = view_i64(oaddr[LY.O_TAIL, p], osize[LY.O_TAIL, p])
            for q in tail:
                d = day[q]
                if d < s_day or d > e_day or (d >= c_day and ts[q] > asof):
                    continue
                c = b + np.int64(cust[q])
                if wv:
                    n_orders[c] += 1
                    sums[c] += net[q]
                if wc:
                    counts[c] += sale[q]
        else:
            lo = np.searchsorted(day, np.int32(s_day))
            hi = np.searchsorted(day, np.int32(e_day), side="right")
            mid = max(lo, min(hi, np.searchsorted(day, np.int32(c_day))))   # instants compared from here
            if wc and not wv:
                pa, pb = _order_marks(oaddr, osize, p, day, lo, hi, s_day, e_day, c_day, b, counts)
                for q in range(lo, pa):
                    counts[b + np.int64(cust[q])] += sale[q]
                for q in range(pb, mid):
                    counts[b + np.int64(cust[q])] += sale[q]
                for q in range(max(pb, mid), hi):
                    if ts[q] <= asof:
                        counts[b + np.int64(cust[q])] += sale[q]
                continue
            for q in range(lo, hi):
                if q >= mid and ts[q] > asof:
                    continue
                c = b + np.int64(cust[q])
                if wv:
                    n_orders[c] += 1
                    sums[c] += net[q]
                if wc:
                    counts[c] += sale[q]


@njit(cache=True, nogil=True, parallel=True)
def order_shards(sh_base, sh_n, addr, size, v_lo, v_hi, daddr, dsize, d_idx, oaddr, osize, use_stored, asof, fields,
                 luts, s_day, e_day, today, want, counts, sums, n_orders, k_lo, k_hi, I64, I32, U16, U8):
    """order_values, shard by shard, for shards [k_lo, k_hi) (scratch slot k - k_lo). Without
    a filter (use_stored), a shard whose stored orders are exact reads them and groups only its
    appended lines; otherwise every visible line up to today is read and grouped (an order's
    lines may start before the range). Accumulators not wanted (see _stored_orders) are left
    alone."""
    wc, wv = want & ORDERS_COUNT, want & ORDERS_VALUE
    for k in prange(k_lo, k_hi):
        b, n = sh_base[k], sh_n[k]
        p0, p1 = v_lo[k], v_hi[k]
        stored = use_stored and _stored_orders_exact(oaddr, osize, p0, p1, daddr, dsize, d_idx[k], b, asof)
        if stored:
            for c in range(n):
                if wc:
                    counts[b + c] = 0
                if wv:
                    sums[b + c] = 0
                    n_orders[b + c] = 0
            _stored_orders(oaddr, osize, p0, p1, b, n, s_day, e_day, today - 1, asof, want, counts, sums,
                           n_orders)
            if d_idx[k] < 0:
                continue
            p0 = p1            # the appended lines alone, grouped below
        ptr, ts, day, amount, order, flag = _shard_purchases(addr, size, p0, p1, daddr, dsize, d_idx[k], b,
                                                             n, np.int64(-(2**31) + 1), today, asof, fields, luts,
                                                             True, I64, I32, U16, U8, k - k_lo, np.int64(s_day - 1))
        idx = np.empty(_max_group(ptr), np.int64)
        for c in range(n):
            cnt, total, num = _orders_one(ts, day, amount, order, flag, ptr[c], ptr[c + 1], s_day, e_day, idx)
            if stored:
                if wc:
                    counts[b + c] += cnt
                if wv:
                    sums[b + c] += total
                    n_orders[b + c] += num
            else:
                if wc:
                    counts[b + c] = cnt
                if wv:
                    sums[b + c] = total
                    n_orders[b + c] = num
