"""Numba kernels over a version's line runs (engine.storage.runs), read through PieceSets.

Each kernel runs `prange` over the shards k of [k_lo, k_hi) (a batch: deadlines are checked
between calls); a shard's pieces (its runs) are folded one after the other into the shard's
own accumulators, so threads never share a write, and the shard's slice of the output
[base, base + n) is written last.

Purchases: for each run the kernel picks the cheapest way to read what the filter and
range select, and counts what it read in `stats` (layout of STAT_*):
  - all-time, as of an instant after the run's aggregates: per-customer aggregates (no
    filter) or the per-code aggregates of the wanted codes (one filtered field), plus the
    lines newer than the aggregates;
  - otherwise the lines of the date range: through the posting lists of the filtered field
    whose wanted codes have the fewest lines in the range (the other fields checked per
    line), or a scan of the range when that would read most of it anyway.
Lines on days from the day before today on have their instant compared with the as-of
instant; earlier lines are visible by their day.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..storage import layout as LY
from ..storage.views import view_i32, view_i64, view_u8, view_u16, view_u32, view_u64

W_SPEND, W_COUNT, W_FIRST, W_LAST = 1, 2, 4, 8          # accumulators wanted
A_SPEND, A_COUNT, A_FIRST, A_LAST = 0, 1, 2, 3          # which one a mask tests
STAT_SCANNED, STAT_POSTED, STAT_GATHERED, STAT_AGG, STAT_DENSE, STAT_N = 0, 1, 2, 3, 4, 5
# Costs in scanned lines: a posting entry is 4 sequential bytes; a gathered line touches a
# cache line per column read, where a scanned line reads 1/8 to 1/32 of one.
COST_POSTING = 0.25
COST_GATHER = 8.0
PATH_AGGREGATES, PATH_POSTINGS = 1, 2                   # access paths a call may use (tests force scans)
ALL_PATHS = PATH_AGGREGATES | PATH_POSTINGS
FIRST_NONE = np.int64(2**31 - 1)
LAST_NONE = np.int64(-(2**31))


@njit(cache=True, nogil=True)
def _posting_range(addr, size, p, f, code, a, b):
    """(start, end) in the posting list of code `code` of field f of piece p: its lines in
    positions [a, b); (0, 0) when the code has none."""
    xc = view_u32(addr[LY.P_XCODES + f, p], size[LY.P_XCODES + f, p])
    k = np.searchsorted(xc, np.uint32(code))
    if k >= xc.size or xc[k] != code:
        return 0, 0
    xp = view_i64(addr[LY.P_XPTR + f, p], size[LY.P_XPTR + f, p])
    xs = view_u32(addr[LY.P_XPOS + f, p], size[LY.P_XPOS + f, p])
    s0, s1 = xp[k], xp[k + 1]
    lo = s0 + np.searchsorted(xs[s0:s1], np.uint32(a))
    hi = s0 + np.searchsorted(xs[s0:s1], np.uint32(b))
    return lo, hi


@njit(cache=True, nogil=True)
def _pair_range(addr, size, p, slot, code, a, b):
    """(start, end) in pair slot `slot`'s posting list of composite code `code` of piece p:
    its lines in positions [a, b); (0, 0) when none."""
    xc = view_u64(addr[LY.P_PXCODES + slot, p], size[LY.P_PXCODES + slot, p])
    k = np.searchsorted(xc, np.uint64(code))
    if k >= xc.size or xc[k] != code:
        return 0, 0
    xp = view_i64(addr[LY.P_PXPTR + slot, p], size[LY.P_PXPTR + slot, p])
    xs = view_u32(addr[LY.P_PXPOS + slot, p], size[LY.P_PXPOS + slot, p])
    s0, s1 = xp[k], xp[k + 1]
    lo = s0 + np.searchsorted(xs[s0:s1], np.uint32(a))
    hi = s0 + np.searchsorted(xs[s0:s1], np.uint32(b))
    return lo, hi


@njit(cache=True, nogil=True)
def _pair_candidates(addr, size, p, slot, pwc, a, b, n):
    """Positions in [a, b) of the lines of the wanted composite codes of a pair slot."""
    out = np.empty(n, np.int64)
    xs = view_u32(addr[LY.P_PXPOS + slot, p], size[LY.P_PXPOS + slot, p])
    k = 0
    for w in range(pwc.size):
        lo, hi = _pair_range(addr, size, p, slot, pwc[w], a, b)
        for q in range(lo, hi):
            out[k] = xs[q]
            k += 1
    return out[:k]


@njit(cache=True, nogil=True, inline="always")
def _rest_accepts(addr, size, p, fields, luts, first, skip1, skip2, i):
    """Line i passes the filtered fields j >= first other than skip1 and skip2 (the slow
    path for filters on more than three fields)."""
    for j in range(first, fields.size):
        if j == skip1 or j == skip2:
            continue
        f = fields[j]
        codes = view_u32(addr[LY.P_CODE + f, p], size[LY.P_CODE + f, p])
        if luts[j, codes[i]] == 0:
            return False
    return True


# The loops below are written out rather than calling small helpers: numba's inlining of a
# helper that takes arrays costs tens of nanoseconds per call (measured: 14 ms instead of
# 0.08 ms for 92k lines), more than the work itself.

@njit(cache=True, nogil=True)
def _candidates(addr, size, p, fields, wc_ptr, wc, a, b, j1, j2, n1, n2):
    """Positions in [a, b) of the lines accepted by field j1 (j2 < 0), or by both j1 and j2:
    j1's posting lists marked in a bitset of the range, j2's read against it. Order is not
    kept (folding does not need it)."""
    if j2 < 0:
        out = np.empty(n1, np.int64)
        k = 0
        f = fields[j1]
        xs = view_u32(addr[LY.P_XPOS + f, p], size[LY.P_XPOS + f, p])
        for w in range(wc_ptr[j1], wc_ptr[j1 + 1]):
            lo, hi = _posting_range(addr, size, p, f, wc[w], a, b)
            for q in range(lo, hi):
                out[k] = xs[q]
                k += 1
        return out[:k]
    bits = np.zeros(((b - a) >> 6) + 1, np.uint64)
    f = fields[j1]
    xs = view_u32(addr[LY.P_XPOS + f, p], size[LY.P_XPOS + f, p])
    for w in range(wc_ptr[j1], wc_ptr[j1 + 1]):
        lo, hi = _posting_range(addr, size, p, f, wc[w], a, b)
        for q in range(lo, hi):
            r = np.int64(xs[q]) - a
            bits[r >> 6] |= np.uint64(1) << np.uint64(r & 63)
    out = np.empty(min(n1, n2), np.int64)
    k = 0
    f = fields[j2]
    xs = view_u32(addr[LY.P_XPOS + f, p], size[LY.P_XPOS + f, p])
    for w in range(wc_ptr[j2], wc_ptr[j2 + 1]):
        lo, hi = _posting_range(addr, size, p, f, wc[w], a, b)
        for q in range(lo, hi):
            r = np.int64(xs[q]) - a
            if bits[r >> 6] & (np.uint64(1) << np.uint64(r & 63)):
                out[k] = r + a
                k += 1
    return out[:k]


@njit(cache=True, nogil=True)
def _lines(addr, size, meta, p, a, b, mid, asof, fields, luts, wc_ptr, wc, pslot, pj1, pj2, pwc, want,
           sp, ct, fi, la, st, paths, pcheck):
    """Fold piece p's matching visible lines at positions [a, b) into the accumulators.

    Three ways, the cheapest for what the filter selects: scan [a, b) checking every
    filtered field; gather the lines of the filtered field with the fewest (its posting
    lists), checking the others; or intersect the posting lists of the two fields with the
    fewest lines (a bitset of the range) and gather only lines in both; or, when the filter
    has both fields of a pair index (pslot >= 0: fields pj1 and pj2, wanted composite codes
    pwc), gather the lines of the pair's posting lists. With `pcheck`, a line read another way
    must also have one of the composite codes pwc (sorted) in fields pj1 and pj2: the pair's
    codes without aggregates."""
    if a >= b:
        return
    cust = view_u16(addr[LY.P_CUST, p], size[LY.P_CUST, p])
    amount = view_i64(addr[LY.P_AMOUNT, p], size[LY.P_AMOUNT, p])
    day = view_i32(addr[LY.P_DAY, p], size[LY.P_DAY, p])
    ts = view_i64(addr[LY.P_TS, p], size[LY.P_TS, p])
    F = fields.size
    j1, j2, n1, n2 = -1, -1, b - a, b - a
    if F > 0 and paths & PATH_POSTINGS:
        for j in range(F):
            cnt = 0
            for w in range(wc_ptr[j], wc_ptr[j + 1]):
                lo, hi = _posting_range(addr, size, p, fields[j], wc[w], a, b)
                cnt += hi - lo
            if j1 < 0 or cnt < n1:
                j2, n2 = j1, n1
                j1, n1 = j, cnt
            elif j2 < 0 or cnt < n2:
                j2, n2 = j, cnt
        if n1 == 0:
            return
    scan_cost = np.float64(b - a)
    gather_cost = n1 * (COST_POSTING + COST_GATHER) if j1 >= 0 else scan_cost + 1
    both = min(n1, n2, 2.0 * n1 * n2 / (b - a))  # lines in both lists, if not independent
    inter_cost = (n1 + n2) * COST_POSTING + both * COST_GATHER if j2 >= 0 else scan_cost + 1
    n_pair = 0
    pair_cost = scan_cost + 1
    if pslot >= 0 and paths & PATH_POSTINGS and (meta[p, LY.M_PAIRS] >> pslot) & 1:
        for w in range(pwc.size):
            lo, hi = _pair_range(addr, size, p, pslot, pwc[w], a, b)
            n_pair += hi - lo
        if n_pair == 0:
            return
        pair_cost = n_pair * (COST_POSTING + COST_GATHER)
    use_pair = pair_cost < min(scan_cost, gather_cost, inter_cost)
    gather = use_pair or (j1 >= 0 and min(gather_cost, inter_cost) < scan_cost)
    intersect = gather and not use_pair and inter_cost < gather_cost
    if use_pair:
        j1, j2 = pj1, pj2
    elif not gather:
        j1 = j2 = -1
    elif not intersect:
        j2 = -1
    # the fields left to check per line, as up to three (column, lut row) pairs plus the rest
    o0 = o1 = o2 = -1
    n_other = 0
    for j in range(F):
        if j == j1 or j == j2:
            continue
        if n_other == 0:
            o0 = j
        elif n_other == 1:
            o1 = j
        elif n_other == 2:
            o2 = j
        n_other += 1
    f0 = fields[o0] if o0 >= 0 else 0
    f1 = fields[o1] if o1 >= 0 else 0
    f2 = fields[o2] if o2 >= 0 else 0
    c0 = view_u32(addr[LY.P_CODE + f0, p], size[LY.P_CODE + f0, p])
    c1 = view_u32(addr[LY.P_CODE + f1, p], size[LY.P_CODE + f1, p])
    c2 = view_u32(addr[LY.P_CODE + f2, p], size[LY.P_CODE + f2, p])
    l0 = luts[max(o0, 0)]
    l1 = luts[max(o1, 0)]
    l2 = luts[max(o2, 0)]
    rest = n_other > 3
    rest_from = o2 + 1
    pcheck = pcheck and not use_pair
    g1 = fields[pj1] if pcheck else 0
    g2 = fields[pj2] if pcheck else 0
    pc1 = view_u32(addr[LY.P_CODE + g1, p], size[LY.P_CODE + g1, p])
    pc2 = view_u32(addr[LY.P_CODE + g2, p], size[LY.P_CODE + g2, p])
    if gather:
        if use_pair:
            cand = _pair_candidates(addr, size, p, pslot, pwc, a, b, n_pair)
            st[STAT_POSTED] += n_pair
        else:
            cand = _candidates(addr, size, p, fields, wc_ptr, wc, a, b, j1, j2, n1, n2)
            st[STAT_POSTED] += n1 + (n2 if intersect else 0)
        st[STAT_GATHERED] += cand.size
        m = cand.size
    else:
        cand = np.empty(0, np.int64)
        st[STAT_SCANNED] += b - a
        m = b - a
    for k in range(m):
        i = cand[k] if gather else a + k
        if n_other >= 1:
            if l0[c0[i]] == 0:
                continue
            if n_other >= 2:
                if l1[c1[i]] == 0:
                    continue
                if n_other >= 3:
                    if l2[c2[i]] == 0:
                        continue
                    if rest and not _rest_accepts(addr, size, p, fields, luts, rest_from, j1, j2, i):
                        continue
        if i >= mid and ts[i] > asof:
            continue
        if pcheck:
            comp = (np.uint64(pc1[i]) << np.uint64(32)) | np.uint64(pc2[i])
            q = np.searchsorted(pwc, comp)
            if q >= pwc.size or pwc[q] != comp:
                continue
        c = cust[i]
        x = amount[i]
        if want & W_SPEND:
            sp[c] += x
        if x >= 0:
            if want & W_COUNT:
                ct[c] += 1
            if want & (W_FIRST | W_LAST):
                d = day[i]
                if want & W_FIRST and d < fi[c]:
                    fi[c] = d
                if want & W_LAST and d > la[c]:
                    la[c] = d


@njit(cache=True, nogil=True)
def _code_aggregates(addr, size, p, f, wc_ptr, wc, want, sp, ct, fi, la, st, miss):
    """Fold the all-time per-code aggregates of the wanted codes of field f (filter j = 0);
    the wanted codes without aggregates in this piece go to `miss` (their lines are read
    instead); returns how many."""
    ac = view_u32(addr[LY.P_ACODES + f, p], size[LY.P_ACODES + f, p])
    ap = view_i64(addr[LY.P_APTR + f, p], size[LY.P_APTR + f, p])
    acu = view_u16(addr[LY.P_ACUST + f, p], size[LY.P_ACUST + f, p])
    asp = view_i64(addr[LY.P_ASPEND + f, p], size[LY.P_ASPEND + f, p])
    act = view_i32(addr[LY.P_ACOUNT + f, p], size[LY.P_ACOUNT + f, p])
    afi = view_i32(addr[LY.P_AFIRST + f, p], size[LY.P_AFIRST + f, p])
    ala = view_i32(addr[LY.P_ALAST + f, p], size[LY.P_ALAST + f, p])
    nm = 0
    for w in range(wc_ptr[0], wc_ptr[1]):
        code = np.uint32(wc[w])
        k = np.searchsorted(ac, code)
        if k >= ac.size or ac[k] != code:
            miss[nm] = code
            nm += 1
            continue
        st[STAT_AGG] += ap[k + 1] - ap[k]
        for e in range(ap[k], ap[k + 1]):
            c = acu[e]
            if want & W_SPEND:
                sp[c] += asp[e]
            if want & W_COUNT:
                ct[c] += act[e]
            if want & W_FIRST:
                if afi[e] < fi[c]:
                    fi[c] = afi[e]
            if want & W_LAST:
                if ala[e] > la[c]:
                    la[c] = ala[e]
    return nm


@njit(cache=True, nogil=True)
def _pair_aggregates(addr, size, p, slot, pwc, want, sp, ct, fi, la, st, miss):
    """Fold the all-time aggregates of the wanted composite codes of a pair slot; those
    without aggregates in this piece go to `miss` (ascending); returns how many."""
    ac = view_u64(addr[LY.P_PACODES + slot, p], size[LY.P_PACODES + slot, p])
    ap = view_i64(addr[LY.P_PAPTR + slot, p], size[LY.P_PAPTR + slot, p])
    acu = view_u16(addr[LY.P_PACUST + slot, p], size[LY.P_PACUST + slot, p])
    asp = view_i64(addr[LY.P_PASPEND + slot, p], size[LY.P_PASPEND + slot, p])
    act = view_i32(addr[LY.P_PACOUNT + slot, p], size[LY.P_PACOUNT + slot, p])
    afi = view_i32(addr[LY.P_PAFIRST + slot, p], size[LY.P_PAFIRST + slot, p])
    ala = view_i32(addr[LY.P_PALAST + slot, p], size[LY.P_PALAST + slot, p])
    nm = 0
    for w in range(pwc.size):
        code = pwc[w]
        k = np.searchsorted(ac, code)
        if k >= ac.size or ac[k] != code:
            miss[nm] = code
            nm += 1
            continue
        st[STAT_AGG] += ap[k + 1] - ap[k]
        for e in range(ap[k], ap[k + 1]):
            c = acu[e]
            if want & W_SPEND:
                sp[c] += asp[e]
            if want & W_COUNT:
                ct[c] += act[e]
            if want & W_FIRST:
                if afi[e] < fi[c]:
                    fi[c] = afi[e]
            if want & W_LAST:
                if ala[e] > la[c]:
                    la[c] = ala[e]
    return nm


@njit(cache=True, nogil=True)
def _dense_aggregates(addr, size, p, n, want, sp, ct, fi, la, st):
    """Fold the all-time per-customer aggregates of piece p (no filter). They cover the
    customers the shard had when the run was built: those added since have no lines in it."""
    nb = min(n, size[LY.P_ALL_SPEND, p])
    st[STAT_DENSE] += nb
    if want & W_SPEND:
        a = view_i64(addr[LY.P_ALL_SPEND, p], size[LY.P_ALL_SPEND, p])
        for c in range(nb):
            sp[c] += a[c]
    if want & W_COUNT:
        a = view_i32(addr[LY.P_ALL_COUNT, p], size[LY.P_ALL_COUNT, p])
        for c in range(nb):
            ct[c] += a[c]
    if want & W_FIRST:
        a = view_i32(addr[LY.P_ALL_FIRST, p], size[LY.P_ALL_FIRST, p])
        for c in range(nb):
            if a[c] < fi[c]:
                fi[c] = a[c]
    if want & W_LAST:
        a = view_i32(addr[LY.P_ALL_LAST, p], size[LY.P_ALL_LAST, p])
        for c in range(nb):
            if a[c] > la[c]:
                la[c] = a[c]


@njit(cache=True, nogil=True)
def _shard(addr, size, meta, p0, p1, n, s_day, e_day, c_day, all_time, asof, fields, luts, wc_ptr, wc,
           pslot, pj1, pj2, pwc, want, st, paths):
    """The accumulators (spend, count, first, last) of one shard over its pieces."""
    sp = np.zeros(n if want & W_SPEND else 1, np.int64)
    ct = np.zeros(n if want & W_COUNT else 1, np.int64)
    fi = np.full(n if want & W_FIRST else 1, FIRST_NONE, np.int64)
    la = np.full(n if want & W_LAST else 1, LAST_NONE, np.int64)
    _fold(addr, size, meta, p0, p1, n, s_day, e_day, c_day, all_time, asof, fields, luts, wc_ptr, wc,
          pslot, pj1, pj2, pwc, want, st, paths, sp, ct, fi, la)
    return sp, ct, fi, la


@njit(cache=True, nogil=True)
def _fold(addr, size, meta, p0, p1, n, s_day, e_day, c_day, all_time, asof, fields, luts, wc_ptr, wc,
          pslot, pj1, pj2, pwc, want, st, paths, sp, ct, fi, la):
    """Fold one shard's pieces into its accumulators (spend, count, first, last: zero,
    zero, FIRST_NONE, LAST_NONE where nothing was folded yet; size 1 when not wanted)."""
    F = fields.size
    for p in range(p0, p1):
        day = view_i32(addr[LY.P_DAY, p], size[LY.P_DAY, p])
        lo = np.searchsorted(day, np.int32(s_day))
        hi = np.searchsorted(day, np.int32(e_day), side="right")
        if lo >= hi:
            continue
        mid = max(lo, min(hi, np.searchsorted(day, np.int32(c_day))))
        start = lo
        if all_time and paths & PATH_AGGREGATES and meta[p, LY.M_AGG] == 1 and asof >= meta[p, LY.M_AGG_MICROS]:
            tail = np.searchsorted(day, np.int32(meta[p, LY.M_CUTOFF]), side="right")
            if F == 0:
                _dense_aggregates(addr, size, p, n, want, sp, ct, fi, la, st)
                start = tail
            elif F == 1 and (meta[p, LY.M_AGG_FIELDS] >> fields[0]) & 1:
                # codes keep their aggregates one by one: the others are read as lines
                nw = wc_ptr[1] - wc_ptr[0]
                miss = np.empty(nw, np.uint32)
                nm = _code_aggregates(addr, size, p, fields[0], wc_ptr, wc, want, sp, ct, fi, la, st, miss)
                if nm == nw:
                    _lines(addr, size, meta, p, lo, tail, mid, asof, fields, luts, wc_ptr, wc, pslot, pj1, pj2,
                           pwc, want, sp, ct, fi, la, st, paths, False)
                elif nm > 0:
                    rl = np.zeros((1, luts.shape[1]), np.uint8)
                    for q in range(nm):
                        rl[0, miss[q]] = 1
                    rptr = np.zeros(2, np.int64)
                    rptr[1] = nm
                    _lines(addr, size, meta, p, lo, tail, mid, asof, fields, rl, rptr, miss[:nm], pslot, pj1, pj2,
                           pwc, want, sp, ct, fi, la, st, paths, False)
                start = tail
            elif F == 2 and pslot >= 0 and (meta[p, LY.M_AGG_FIELDS] >> (8 + pslot)) & 1:
                pmiss = np.empty(pwc.size, np.uint64)
                nm = _pair_aggregates(addr, size, p, pslot, pwc, want, sp, ct, fi, la, st, pmiss)
                if nm > 0:
                    _lines(addr, size, meta, p, lo, tail, mid, asof, fields, luts, wc_ptr, wc, pslot, pj1, pj2,
                           pmiss[:nm], want, sp, ct, fi, la, st, paths, nm < pwc.size)
                start = tail
        elif not all_time and F == 0 and paths & PATH_AGGREGATES and not want & W_FIRST:
            pa, pb = _month_marks(addr, size, p, day, lo, hi, s_day, e_day, c_day, want, sp, ct, la, st)
            if pa < pb:
                _lines(addr, size, meta, p, lo, pa, mid, asof, fields, luts, wc_ptr, wc, pslot, pj1, pj2, pwc,
                       want, sp, ct, fi, la, st, paths, False)
                start = pb
        _lines(addr, size, meta, p, start, hi, mid, asof, fields, luts, wc_ptr, wc, pslot, pj1, pj2, pwc, want,
               sp, ct, fi, la, st, paths, False)


@njit(cache=True, nogil=True)
def mark_span(marks, values, day, lo, hi, s_day, e_day, c_day):
    """(js, je, pa, pb, nb) of month marks `marks` (K days; `values` entries, K per
    customer of the run at build: nb) for rows `day` [lo, hi) of a range [s_day, e_day]:
    the first mark on or after s_day, the last on or before both e_day + 1 and c_day (rows
    before it are visible by their day), and the rows [pa, pb) between them; pa == pb
    when there are no such marks or two rows of nb differences would read more."""
    K = marks.size
    if K < 2 or values == 0:
        return 0, 0, lo, lo, 0
    nb = values // K
    js = np.searchsorted(marks, np.int32(s_day))
    je = np.searchsorted(marks, np.int32(min(e_day + 1, c_day)), side="right") - 1
    if js >= je:
        return 0, 0, lo, lo, nb
    pa = max(lo, np.searchsorted(day, marks[js]))
    pb = min(hi, np.searchsorted(day, marks[je]))
    if pb - pa <= 2 * nb:
        return 0, 0, lo, lo, nb
    return js, je, pa, pb, nb


@njit(cache=True, nogil=True)
def _month_marks(addr, size, p, day, lo, hi, s_day, e_day, c_day, want, sp, ct, la, st):
    """Fold the lines of whole months inside [s_day, e_day] from piece p's month marks (the
    differences of two marks; only lines dated before c_day, visible by their day), when
    that reads less than the lines; returns the positions [pa, pb) so folded (pa == pb:
    none), the caller reads [lo, pa) and [pb, hi) as lines."""
    marks = view_i32(addr[LY.P_MDAYS, p], size[LY.P_MDAYS, p])
    js, je, pa, pb, nb = mark_span(marks, size[LY.P_MSPEND, p], day, lo, hi, s_day, e_day, c_day)
    if pa == pb:
        return lo, lo
    st[STAT_DENSE] += 2 * nb
    a, b = js * nb, je * nb
    if want & W_SPEND:
        ms = view_i64(addr[LY.P_MSPEND, p], size[LY.P_MSPEND, p])
        for c in range(nb):
            sp[c] += ms[b + c] - ms[a + c]
    if want & W_COUNT:
        mc = view_i32(addr[LY.P_MCOUNT, p], size[LY.P_MCOUNT, p])
        for c in range(nb):
            ct[c] += mc[b + c] - mc[a + c]
    if want & W_LAST:
        ml = view_i32(addr[LY.P_MLAST, p], size[LY.P_MLAST, p])
        first_mark = marks[js]
        for c in range(nb):
            d = ml[b + c]                          # the last sale day before mark je
            if d >= first_mark and d > la[c]:
                la[c] = d
    return pa, pb


@njit(cache=True, nogil=True, parallel=True)
def purchase_mask(addr, size, meta, shard_ptr, base, nn, k_lo, k_hi, s_day, e_day, c_day, all_time, asof,
                  fields, luts, wc_ptr, wc, pslot, pj1, pj2, pwc, want, paths, which, vlo, vhi, out, stats):
    """out[base + c] = 1 when shard customer c's accumulator `which` lies in [vlo, vhi]
    (first / last: only customers with a sale)."""
    for k in prange(k_lo, k_hi):
        n = nn[k]
        sp, ct, fi, la = _shard(addr, size, meta, shard_ptr[k], shard_ptr[k + 1], n, s_day, e_day, c_day,
                                all_time, asof, fields, luts, wc_ptr, wc, pslot, pj1, pj2, pwc, want, stats[k],
                                paths)
        b = base[k]
        for c in range(n):
            if which == A_SPEND:
                v = sp[c]
                ok = v >= vlo and v <= vhi
            elif which == A_COUNT:
                v = ct[c]
                ok = v >= vlo and v <= vhi
            elif which == A_FIRST:
                v = fi[c]
                ok = v != FIRST_NONE and v >= vlo and v <= vhi
            else:
                v = la[c]
                ok = v != LAST_NONE and v >= vlo and v <= vhi
            out[b + c] = 1 if ok else 0


@njit(cache=True, nogil=True, parallel=True)
def purchase_values(addr, size, meta, shard_ptr, base, nn, k_lo, k_hi, s_day, e_day, c_day, all_time, asof,
                    fields, luts, wc_ptr, wc, pslot, pj1, pj2, pwc, want, paths, spend, count, first, last,
                    stats):
    """The wanted accumulators per customer into dense arrays, which come filled with the
    values of a customer without a sale (0, 0, FIRST_NONE, LAST_NONE) and are folded into
    in place, each shard its own slice (no per-shard copies); arrays not wanted have size 1."""
    for k in prange(k_lo, k_hi):
        n = nn[k]
        b = base[k]
        _fold(addr, size, meta, shard_ptr[k], shard_ptr[k + 1], n, s_day, e_day, c_day, all_time, asof, fields,
              luts, wc_ptr, wc, pslot, pj1, pj2, pwc, want, stats[k], paths,
              spend[b:b + n] if want & W_SPEND else spend[:1], count[b:b + n] if want & W_COUNT else count[:1],
              first[b:b + n] if want & W_FIRST else first[:1], last[b:b + n] if want & W_LAST else last[:1])


# ------------------------------------------------------------------ visits and laybys

@njit(cache=True, nogil=True)
def _visit_counts(addr, size, meta, p0, p1, n, s_day, e_day, c_day, all_time, asof, use_shops, shop_lut, st,
                  paths):
    """Completed visits per shard customer on days [s_day, e_day] visible as of asof (at
    accepted shops): an all-time count without shops reads the runs' per-customer counts
    and only the lines newer than them."""
    acc = np.zeros(n, np.int64)
    for p in range(p0, p1):
        day = view_i32(addr[LY.V_DAY, p], size[LY.V_DAY, p])
        lo = np.searchsorted(day, np.int32(s_day))
        hi = np.searchsorted(day, np.int32(e_day), side="right")
        if lo >= hi:
            continue
        mid = max(lo, min(hi, np.searchsorted(day, np.int32(c_day))))
        if (all_time and not use_shops and paths & PATH_AGGREGATES and meta[p, LY.M_AGG] == 1
                and asof >= meta[p, LY.M_AGG_MICROS]):
            counts = view_i32(addr[LY.V_ALL_COUNT, p], size[LY.V_ALL_COUNT, p])
            nb = min(n, counts.size)          # the shard's customers when the run was built
            st[STAT_DENSE] += nb
            for c in range(nb):
                acc[c] += counts[c]
            lo = np.searchsorted(day, np.int32(meta[p, LY.M_CUTOFF]), side="right")
        cust = view_u16(addr[LY.V_CUST, p], size[LY.V_CUST, p])
        status = view_u8(addr[LY.V_STATUS, p], size[LY.V_STATUS, p])
        shop = view_u32(addr[LY.V_SHOP, p], size[LY.V_SHOP, p])
        ts = view_i64(addr[LY.V_TS, p], size[LY.V_TS, p])
        st[STAT_SCANNED] += hi - lo
        # days before c_day hold no instant after asof: counted without a branch per line
        # (which visits are completed is data, not a pattern a branch predictor learns)
        done = np.uint8(LY.VISIT_COMPLETED)
        if use_shops:
            for i in range(lo, mid):
                acc[cust[i]] += (status[i] == done) & (shop_lut[shop[i]] != 0)
        else:
            for i in range(lo, mid):
                acc[cust[i]] += status[i] == done
        for i in range(mid, hi):
            if status[i] == done and ts[i] <= asof and (not use_shops or shop_lut[shop[i]] != 0):
                acc[cust[i]] += 1
    return acc


@njit(cache=True, nogil=True, parallel=True)
def visit_count_mask(addr, size, meta, shard_ptr, base, nn, k_lo, k_hi, s_day, e_day, c_day, all_time, asof,
                     use_shops, shop_lut, paths, vlo, vhi, out, stats):
    """out[base + c] = 1 when the number of visible completed visits (at accepted shops) on
    days [s_day, e_day] lies in [vlo, vhi]."""
    for k in prange(k_lo, k_hi):
        n = nn[k]
        acc = _visit_counts(addr, size, meta, shard_ptr[k], shard_ptr[k + 1], n, s_day, e_day, c_day, all_time,
                            asof, use_shops, shop_lut, stats[k], paths)
        b = base[k]
        for c in range(n):
            v = acc[c]
            out[b + c] = 1 if (v >= vlo and v <= vhi) else 0


@njit(cache=True, nogil=True, parallel=True)
def visit_count_values(addr, size, meta, shard_ptr, base, nn, k_lo, k_hi, s_day, e_day, c_day, all_time,
                       asof, use_shops, shop_lut, paths, out, stats):
    """out[base + c] = the number of visible completed visits (at accepted shops) on days
    [s_day, e_day]."""
    for k in prange(k_lo, k_hi):
        n = nn[k]
        acc = _visit_counts(addr, size, meta, shard_ptr[k], shard_ptr[k + 1], n, s_day, e_day, c_day, all_time,
                            asof, use_shops, shop_lut, stats[k], paths)
        b = base[k]
        out[b:b + n] = acc


@njit(cache=True, nogil=True, parallel=True)
def upcoming_mask(addr, size, shard_ptr, base, k_lo, k_hi, c_day, asof, use_shops, shop_lut, out, stats):
    """out[base + c] = 1 when shard customer c has a booked visit (at an accepted shop)
    starting after asof (lines before day c_day end before the as-of instant)."""
    for k in prange(k_lo, k_hi):
        b = base[k]
        for p in range(shard_ptr[k], shard_ptr[k + 1]):
            day = view_i32(addr[LY.V_DAY, p], size[LY.V_DAY, p])
            lo = np.searchsorted(day, np.int32(c_day))
            cust = view_u16(addr[LY.V_CUST, p], size[LY.V_CUST, p])
            status = view_u8(addr[LY.V_STATUS, p], size[LY.V_STATUS, p])
            shop = view_u32(addr[LY.V_SHOP, p], size[LY.V_SHOP, p])
            ts = view_i64(addr[LY.V_TS, p], size[LY.V_TS, p])
            stats[k, STAT_SCANNED] += day.size - lo
            for i in range(lo, day.size):
                if status[i] == LY.VISIT_BOOKED and ts[i] > asof:
                    if use_shops and shop_lut[shop[i]] == 0:
                        continue
                    out[b + cust[i]] = 1


@njit(cache=True, nogil=True, parallel=True)
def overdue_layby_mask(addr, size, shard_ptr, base, k_lo, k_hi, today, out, stats):
    """out[base + c] = 1 when shard customer c has an open layby opened by today with
    balance > 0 and due before today."""
    for k in prange(k_lo, k_hi):
        b = base[k]
        for p in range(shard_ptr[k], shard_ptr[k + 1]):
            cust = view_u16(addr[LY.L_CUST, p], size[LY.L_CUST, p])
            opened = view_i32(addr[LY.L_OPENED, p], size[LY.L_OPENED, p])
            due = view_i32(addr[LY.L_DUE, p], size[LY.L_DUE, p])
            bal = view_i64(addr[LY.L_BALANCE, p], size[LY.L_BALANCE, p])
            status = view_u8(addr[LY.L_STATUS, p], size[LY.L_STATUS, p])
            stats[k, STAT_SCANNED] += cust.size
            for i in range(cust.size):
                if status[i] == LY.LAYBY_OPEN and bal[i] > 0 and due[i] < today and opened[i] <= today:
                    out[b + cust[i]] = 1
