"""Numba kernels: contiguous typed arrays and scalars in, arrays out. No lmdb, no pyroaring.

Line kernels take numba typed Lists with one array per shard (a shard's lines are sorted by
local day, then instant) and run `prange` over shards: each shard owns a disjoint slice
[base, base+n) of the dense output, so threads never share a write (per-thread scratch =
the shard's accumulator). `lo..hi` is the shard's slice of lines in the date range; lines at
index >= `mid` may lie after the as-of instant and have their instant checked.

Per-line product filters: `fields[j]` is a row of the shard's (8, n) code matrix and
`luts[j, code]` is 1 when that code is accepted; a line matches when every field accepts it.
"""
from __future__ import annotations

import warnings

import numpy as np
from numba import njit, prange
from numba.core.errors import NumbaTypeSafetyWarning

from ..storage.layout import LAYBY_OPEN, NO_DAY, VISIT_BOOKED, VISIT_COMPLETED  # noqa: F401

# prange indices are unsigned; indexing int64 arrays with them is safe here (sizes < 2**63)
warnings.filterwarnings("ignore", category=NumbaTypeSafetyWarning)

MODE_BOUGHT = 0       # any matching non-refund line
MODE_SPEND = 1        # net sum of matching amounts
MODE_COUNT = 2        # number of matching non-refund lines
MODE_LAST_DAY = 3     # latest local day of a matching non-refund line (NO_DAY if none)


@njit(cache=True, nogil=True, inline="always")
def _accepts(codes, i, fields, luts):
    for j in range(fields.size):
        if luts[j, codes[fields[j], i]] == 0:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _add(acc, c, a, m, i, mode):
    """Fold line i (customer c, amount a, filter match m in {0, 1}) into acc, branch-free
    for spend and counts (a mispredicted branch per line costs more than the add)."""
    if mode == MODE_SPEND:
        acc[c] += np.int64(a) * m
    elif mode == MODE_LAST_DAY:
        # lines are day-sorted: the last visible matching sale is the latest (branch-free)
        keep = np.int64(m) * (a >= 0)
        acc[c] += (i - acc[c]) * keep
    elif a >= 0:  # refunds are rare: this branch predicts well
        acc[c] += m


@njit(cache=True, nogil=True)
def _line_acc_shard(cust, amount, ts, codes, lo, mid, hi, fields, luts, asof, n, mode):
    """One shard's per-customer aggregate of matching visible lines in [lo, hi).

    Lines before `mid` are visible by their day; lines from `mid` on have their instant
    checked against asof. The main loop is specialised for 0, 1 and 2-3 filtered fields."""
    if mode == MODE_LAST_DAY:
        acc = np.full(n, NO_DAY, dtype=np.int64)
    else:
        acc = np.zeros(n, dtype=np.int64)
    F = fields.size
    if F == 0:
        for i in range(lo, mid):
            _add(acc, cust[i], amount[i], 1, i, mode)
    elif F == 1:
        r0 = codes[fields[0]]
        l0 = luts[0]
        for i in range(lo, mid):
            _add(acc, cust[i], amount[i], l0[r0[i]], i, mode)
    elif F <= 3:
        r0, l0 = codes[fields[0]], luts[0]
        r1, l1 = codes[fields[1]], luts[1]
        r2, l2 = (codes[fields[2]], luts[2]) if F == 3 else (r1, l1)
        for i in range(lo, mid):
            _add(acc, cust[i], amount[i], l0[r0[i]] & l1[r1[i]] & l2[r2[i]], i, mode)
    else:
        for i in range(lo, mid):
            _add(acc, cust[i], amount[i], np.uint8(_accepts(codes, i, fields, luts)), i, mode)
    for i in range(mid, hi):
        m = np.uint8(ts[i] <= asof and (F == 0 or _accepts(codes, i, fields, luts)))
        _add(acc, cust[i], amount[i], m, i, mode)
    return acc


@njit(cache=True, nogil=True, inline="always")
def _add2(spend, count, c, a, m):
    spend[c] += np.int64(a) * m
    if a >= 0:
        count[c] += m


@njit(cache=True, nogil=True)
def _line_acc2_shard(cust, amount, ts, codes, lo, mid, hi, fields, luts, asof, n):
    """Net spend and non-refund line count of one shard's matching visible lines in one
    pass, into shard-local (L2-resident) accumulators."""
    spend = np.zeros(n, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    F = fields.size
    if F == 0:
        for i in range(lo, mid):
            _add2(spend, count, cust[i], amount[i], 1)
    elif F == 1:
        r0 = codes[fields[0]]
        l0 = luts[0]
        for i in range(lo, mid):
            _add2(spend, count, cust[i], amount[i], l0[r0[i]])
    else:
        for i in range(lo, mid):
            _add2(spend, count, cust[i], amount[i], np.uint8(_accepts(codes, i, fields, luts)))
    for i in range(mid, hi):
        m = np.uint8(ts[i] <= asof and (F == 0 or _accepts(codes, i, fields, luts)))
        _add2(spend, count, cust[i], amount[i], m)
    return spend, count


@njit(cache=True, nogil=True, parallel=True)
def line_agg_both(cust_l, amount_l, ts_l, codes_l, day_l, lo_s, mid_s, hi_s, base_s, n_s,
                  fields, luts, asof, spend, count):
    """spend[base+c], count[base+c] = net spend and sale count per customer (one scan
    serving every spend / count / bought test and ranking on the same filter and range)."""
    for k in prange(len(cust_l)):
        sp, ct = _line_acc2_shard(cust_l[k], amount_l[k], ts_l[k], codes_l[k], lo_s[k], mid_s[k],
                                  hi_s[k], fields, luts, asof, n_s[k])
        base = base_s[k]
        spend[base:base + n_s[k]] = sp
        count[base:base + n_s[k]] = ct


@njit(cache=True, nogil=True, parallel=True)
def line_agg_mask(cust_l, amount_l, ts_l, codes_l, day_l, lo_s, mid_s, hi_s, base_s, n_s,
                  fields, luts, asof, mode, vlo, vhi, out):
    """out[base+c] = 1 when shard customer c's aggregate lies in [vlo, vhi] (bought: >= 1)."""
    for k in prange(len(cust_l)):
        acc = _line_acc_shard(cust_l[k], amount_l[k], ts_l[k], codes_l[k], lo_s[k], mid_s[k],
                              hi_s[k], fields, luts, asof, n_s[k], mode)
        base = base_s[k]
        for c in range(n_s[k]):
            v = acc[c]
            out[base + c] = 1 if (v >= vlo and v <= vhi) else 0


@njit(cache=True, nogil=True, parallel=True)
def line_agg_values(cust_l, amount_l, ts_l, codes_l, day_l, lo_s, mid_s, hi_s, base_s, n_s,
                    fields, luts, asof, mode, out):
    """out[base+c] = shard customer c's aggregate (last day: NO_DAY when none)."""
    for k in prange(len(cust_l)):
        acc = _line_acc_shard(cust_l[k], amount_l[k], ts_l[k], codes_l[k], lo_s[k], mid_s[k],
                              hi_s[k], fields, luts, asof, n_s[k], mode)
        base = base_s[k]
        if mode == MODE_LAST_DAY:
            day = day_l[k]
            for c in range(n_s[k]):
                i = acc[c]
                out[base + c] = NO_DAY if i == NO_DAY else day[i]
        else:
            for c in range(n_s[k]):
                out[base + c] = acc[c]


@njit(cache=True, nogil=True)
def _visit_acc_shard(cust, ts, status, shop, lo, mid, hi, n, use_shops, shop_lut, asof):
    """One shard's number of visible completed visits (at accepted shops) in [lo, hi)."""
    acc = np.zeros(n, dtype=np.int64)
    for i in range(lo, hi):
        if status[i] != VISIT_COMPLETED:
            continue
        if i >= mid and ts[i] > asof:
            continue
        if use_shops and shop_lut[shop[i]] == 0:
            continue
        acc[cust[i]] += 1
    return acc


@njit(cache=True, nogil=True, parallel=True)
def visit_count_mask(cust_l, ts_l, status_l, shop_l, lo_s, mid_s, hi_s, base_s, n_s,
                     use_shops, shop_lut, asof, vlo, vhi, out):
    """out[base+c] = 1 when the number of visible completed visits (at accepted shops) in
    [lo, hi) lies in [vlo, vhi]."""
    for k in prange(len(cust_l)):
        acc = _visit_acc_shard(cust_l[k], ts_l[k], status_l[k], shop_l[k], lo_s[k], mid_s[k], hi_s[k],
                               n_s[k], use_shops, shop_lut, asof)
        base = base_s[k]
        for c in range(n_s[k]):
            v = acc[c]
            out[base + c] = 1 if (v >= vlo and v <= vhi) else 0


@njit(cache=True, nogil=True, parallel=True)
def visit_count_values(cust_l, ts_l, status_l, shop_l, lo_s, mid_s, hi_s, base_s, n_s,
                       use_shops, shop_lut, asof, out):
    """out[base+c] = the number of visible completed visits (at accepted shops) in [lo, hi)."""
    for k in prange(len(cust_l)):
        acc = _visit_acc_shard(cust_l[k], ts_l[k], status_l[k], shop_l[k], lo_s[k], mid_s[k], hi_s[k],
                               n_s[k], use_shops, shop_lut, asof)
        base = base_s[k]
        out[base:base + n_s[k]] = acc


@njit(cache=True, nogil=True, parallel=True)
def upcoming_mask(cust_l, ts_l, status_l, shop_l, lo_s, base_s, use_shops, shop_lut, asof, out):
    """out[base+c] = 1 when shard customer c has a booked visit starting after asof
    (lines before lo are on days that end before the as-of instant)."""
    for k in prange(len(cust_l)):
        cust, ts, status, shop = cust_l[k], ts_l[k], status_l[k], shop_l[k]
        base = base_s[k]
        for i in range(lo_s[k], ts.size):
            if status[i] == VISIT_BOOKED and ts[i] > asof:
                if use_shops and shop_lut[shop[i]] == 0:
                    continue
                out[base + cust[i]] = 1


@njit(cache=True, nogil=True, parallel=True)
def overdue_layby_mask(cust_l, opened_l, due_l, balance_l, status_l, base_s, today, out):
    """out[base+c] = 1 when shard customer c has an open layby opened by today with
    balance > 0 and due before today."""
    for k in prange(len(cust_l)):
        cust, opened, due, bal, status = cust_l[k], opened_l[k], due_l[k], balance_l[k], status_l[k]
        base = base_s[k]
        for i in range(cust.size):
            if status[i] == LAYBY_OPEN and bal[i] > 0 and due[i] < today and opened[i] <= today:
                out[base + cust[i]] = 1


@njit(cache=True, nogil=True, parallel=True)
def range_mask(values, null, lo, hi, out):
    """out[i] = 1 when values[i] is not the null sentinel and lies in [lo, hi]."""
    for i in prange(values.size):
        v = values[i]
        out[i] = 1 if (v != null and v >= lo and v <= hi) else 0


@njit(cache=True, nogil=True, parallel=True)
def lut_mask(codes, lut, out):
    """out[i] = lut[codes[i]]."""
    for i in prange(codes.size):
        out[i] = lut[codes[i]]


@njit(cache=True, nogil=True, parallel=True)
def age_mask(birth_year, birth_md, today_year, today_md, leap, lo, hi, out):
    """out[i] = 1 when the completed age on today lies in [lo, hi]; 29 Feb birthdays count
    on 28 Feb in non-leap years; birth_year 0 = unknown."""
    for i in prange(birth_year.size):
        by = birth_year[i]
        if by == 0:
            out[i] = 0
            continue
        md = birth_md[i]
        if md == 229 and not leap:
            md = 228
        age = today_year - by - (1 if today_md < md else 0)
        out[i] = 1 if (age >= lo and age <= hi) else 0


# ------------------------------------------------------------------ all-time rollups

@njit(cache=True, nogil=True, parallel=True)
def rollup_values(ptr_l, code_l, spend_l, count_l, last_l, base_s, n_s, lut, want_last,
                  spend, count, last):
    """Per customer: net spend, sale count and (want_last) last sale day (NO_DAY if none)
    over the rollup entries whose code the lut accepts; branch-free sums."""
    for k in prange(len(ptr_l)):
        ptr, code, sp, ct, ls = ptr_l[k], code_l[k], spend_l[k], count_l[k], last_l[k]
        base = base_s[k]
        for c in range(n_s[k]):
            s = np.int64(0)
            m = np.int64(0)
            for e in range(ptr[c], ptr[c + 1]):
                w = np.int64(lut[code[e]])
                s += sp[e] * w
                m += np.int64(ct[e]) * w
            spend[base + c] = s
            count[base + c] = m
            if want_last:
                d = NO_DAY
                for e in range(ptr[c], ptr[c + 1]):
                    if lut[code[e]] and ct[e] > 0 and ls[e] > d:
                        d = ls[e]
                last[base + c] = d


@njit(cache=True, nogil=True, parallel=True)
def tail_add(cust_l, amount_l, ts_l, codes_l, day_l, lo_s, mid_s, hi_s, base_s,
             fields, luts, asof, want_last, spend, count, last):
    """Add the matching visible lines of each shard's slice [lo, hi) straight into the
    dense per-customer arrays (cost: the slice's lines, not the customers); last sale days
    only when want_last."""
    for k in prange(len(cust_l)):
        cust, amount, ts, codes, day = cust_l[k], amount_l[k], ts_l[k], codes_l[k], day_l[k]
        base = base_s[k]
        for i in range(lo_s[k], hi_s[k]):
            if i >= mid_s[k] and ts[i] > asof:
                continue
            if fields.size > 0 and not _accepts(codes, i, fields, luts):
                continue
            c = base + cust[i]
            a = amount[i]
            spend[c] += a
            if a >= 0:
                count[c] += 1
                if want_last and day[i] > last[c]:
                    last[c] = day[i]
