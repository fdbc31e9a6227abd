"""Leaves of the behaviour conditions (shared/spec behaviour.md) on a snapshot or live view.

Lifecycle and distribution kinds reuse the purchase kernels' per-customer values
(Context.line_values: spend, count, first and last sale day, appended live lines added);
sequences, regularity and orders gather a shard's visible events of a date range and answer
per customer inside the shard (behaviour_kernels, version runs and appended lines alike);
references evaluate another
saved segment or read a group through the resolver the catalog gives the evaluation.
A cluster partition's resolver also gives the value interval of each percentile and RFM
score, ranked over every partition's population (population_histogram is its first round).
"""
from __future__ import annotations

import datetime as dt
import threading

import numba
import numpy as np
from pyroaring import BitMap

from . import behaviour_kernels as BK
from . import kernels as K
from . import line_kernels as LK
from ..errors import InvalidArgument
from ..model import segment as S
from ..model.timerange import MIN_DAY, add_months, day_number
from ..storage.bitmaps import mask_to_roaring
from ..storage.customer_attrs import INT64_NULL
from ..storage.shard_customers import fnv1a64


def _bm(mask: np.ndarray) -> BitMap:
    if mask.dtype == np.bool_:
        mask = mask.view(np.uint8)    # the same bytes: no copy of every customer's flag
    return BitMap.deserialize(mask_to_roaring(np.ascontiguousarray(mask, np.uint8)).tobytes())


def _in(v: np.ndarray, lo: int, hi: int, none=None) -> np.ndarray:
    """0/1 per customer: v in [lo, hi] and not `none`, in one pass."""
    out = np.empty(v.size, np.uint8)
    if none is None:
        none = K.outside(lo, hi)
    if none is None:
        out.fill(1)
    else:
        K.range_mask(np.ascontiguousarray(v, np.int64), none, lo, hi, out)
    return out


# ---------------------------------------------------------------- shards and scratch

def _shard_plan(ctx, prefix: str):
    """(pieces, appended PieceTable or an empty one, sh_base, sh_n, v_lo, v_hi, d_idx): every
    shard with lines of a table, version runs and appended lines together."""
    key = ("bk.plan", prefix)
    hit = ctx._memo.get(key)
    if hit is not None:
        return hit
    snap = ctx.snap
    ps = snap.pieces(prefix)
    live = ctx.delta(prefix)
    bits = int(snap.shard_bits)
    shards = {}
    for k in range(ps.n_shards):
        shards[int(ps.shard[k])] = [int(ps.base[k]), int(ps.n[k]), int(ps.shard_ptr[k]), int(ps.shard_ptr[k + 1]), -1]
    if live is not None:
        for j, (s, _) in enumerate(snap.state.lines(prefix)):   # the appended PieceTable's order
            shards.setdefault(int(s), [int(s) << bits, 0, 0, 0, -1])[4] = j
    if ctx.live:   # customers created since the version extend the last shards
        for s, row in shards.items():
            row[1] = max(0, min(1 << bits, snap.n - row[0]))
    rows = np.asarray([shards[s] for s in sorted(shards)], np.int64).reshape(-1, 5)
    # an upper bound of each shard's lines: its runs' rows and its appended lines
    piece_rows = np.asarray(ps.meta[:, 0], np.int64) if ps.meta.size else np.zeros(0, np.int64)
    caps = np.zeros(rows.shape[0], np.int64)
    for i, (base, n, v_lo, v_hi, d_idx) in enumerate(rows):
        caps[i] = int(piece_rows[v_lo:v_hi].sum()) + (int(live.size[0, d_idx]) if d_idx >= 0 else 0)
    if live is None:
        ncols = 6 if prefix == "p" else 5
        daddr, dsize = np.zeros((ncols, 0), np.uint64), np.zeros((ncols, 0), np.int64)
    else:
        daddr, dsize = live.addr, live.size
    out = (ps, live, daddr, dsize) + tuple(np.ascontiguousarray(rows[:, j]) for j in range(5)) + (caps,)
    ctx._memo[key] = out
    return out


def _event_args(ctx, ev: S.Event):
    """(is_visit, fields, luts, use_shops, shop_lut) of an event kind."""
    fields, luts = ctx.product_luts(ev.filter if ev.kind == "bought" else S.NO_FILTER)
    return ev.kind == "visited", fields, luts, bool(ev.shops), ctx.shop_lut(ev.shops)


def _wanted(ctx, ev: S.Event):
    """(ptr, codes) of the wanted codes per filtered field of an event kind (posting lists)."""
    return ctx.product_filter(ev.filter if ev.kind == "bought" else S.NO_FILTER)[2:4]


def _both_plans(ctx):
    """The kernel arguments naming both line tables' shards, aligned on one shard list."""
    pp = _shard_plan(ctx, "p")
    vp = _shard_plan(ctx, "v")
    bases = np.union1d(pp[4], vp[4]).astype(np.int64)

    def align(plan):
        ps, live, daddr, dsize, base, n, v_lo, v_hi, d_idx, caps = plan
        where = {int(x): i for i, x in enumerate(base)}
        sel = np.asarray([where.get(int(x), -1) for x in bases], np.int64)
        has, j = sel >= 0, np.maximum(sel, 0)

        def pick(a, none):
            return np.where(has, a[j], none).astype(np.int64) if a.size else np.full(bases.size, none, np.int64)
        return (ps.addr, ps.size, pick(v_lo, 0), pick(v_hi, 0), daddr, dsize, pick(d_idx, -1)), pick(n, 0), \
            pick(caps, 0)
    pa_, pn, pc = align(pp)
    va_, vn, vc = align(vp)
    return bases, np.maximum(pn, vn), pa_, va_, np.maximum(pc, vc)


_LOCAL = threading.local()


def scratch(slots: int, cap: int):
    """(I64 [slots, 6, cap], I32 [slots, 4, cap], U16 [slots, 2, cap], U8 [slots, 2, cap]):
    the shard kernels' scratch rows, kept per thread and reused, so their pages are faulted
    in once rather than on every evaluation (fresh pages cost more than the work)."""
    have = getattr(_LOCAL, "scratch", None)
    if have is None or have[0].shape[0] < slots or have[0].shape[2] < cap:
        slots = max(slots, have[0].shape[0] if have is not None else 0)
        cap = max(cap, int((have[0].shape[2] if have is not None else 0)), 1)
        have = (np.empty((slots, 6, cap), np.int64), np.empty((slots, 4, cap), np.int32),
                np.empty((slots, 2, cap), np.uint16), np.empty((slots, 2, cap), np.uint8))
        _LOCAL.scratch = have
    return have


def _batches(n: int):
    """Shard batches of one per kernel thread: each shard of a batch has its own scratch."""
    t = max(1, numba.get_num_threads())
    return [(a, min(n, a + t)) for a in range(0, n, t)], t


def _first_purchase(ctx, c: S.FirstPurchase):
    first = ctx.line_values(c.filter, S.EVER, K.MODE_FIRST_DAY)
    s, e = ctx.asof.resolve(c.range)
    return _bm(_in(first, s, e, K.NO_DAY))


def _last_purchase(ctx, c: S.LastPurchase):
    last = ctx.line_values(c.filter, S.EVER, K.MODE_LAST_DAY)
    s, e = ctx.asof.resolve(c.range)
    return _bm(_in(last, s, e, K.NO_DAY))


def _regularly(ctx, c: S.Regularly):
    today = ctx.asof.today
    if c.period == "week":
        start = today - dt.timedelta(days=today.weekday() + 7 * (c.periods - 1))
        lo = day_number(start)
        period_of = (np.arange(day_number(today) - lo + 1) // 7).astype(np.int64)
    else:
        first = add_months(today.replace(day=1), -(c.periods - 1))
        lo = day_number(first)
        period_of = np.empty(day_number(today) - lo + 1, np.int64)
        d, i = first, 0
        while d <= today:
            nxt = add_months(d, 1)
            a, b = day_number(d) - lo, min(day_number(nxt), day_number(today) + 1) - lo
            period_of[a:b] = i
            d, i = nxt, i + 1
    out = np.zeros(ctx.snap.n, np.uint8)
    bases, ns, pargs, vargs, caps = _both_plans(ctx)
    is_visit, fields, luts, use_shops, lut = _event_args(ctx, c.event)
    batches, t = _batches(bases.size)
    if c.min_per_period == 1 and c.periods <= BK.MAX_BIT_PERIODS and ctx._clip(lo) == lo:
        # a bit per period and customer: one pass over the events, no grouping
        for a, b in batches:
            ctx.check_deadline()
            BK.regularly_bits(bases, ns, is_visit, *pargs, *vargs, ctx._clip(lo), ctx._clip(ctx.asof.today_day),
                              ctx._clip(ctx.asof.today_day - 1), ctx.asof.micros, fields, luts, use_shops, lut,
                              period_of, c.min_periods, out, a, b)
        return _bm(out)
    scr = scratch(t, int(caps.max()) if caps.size else 1)
    for a, b in batches:
        ctx.check_deadline()
        BK.regularly_shards(bases, ns, is_visit, *pargs, *vargs, ctx._clip(lo), ctx._clip(ctx.asof.today_day),
                            ctx.asof.micros, fields, luts, use_shops, lut, lo, period_of, c.min_periods,
                            c.min_per_period, out, a, b, *scr)
    return _bm(out)


def _sequence(ctx, c: S.Sequence):
    s, e = ctx.day_bounds(c.range)
    if s > e:
        return BitMap()
    out = np.zeros(ctx.snap.n, np.uint8)
    bases, ns, pargs, vargs, caps = _both_plans(ctx)
    v1, f1, l1, u1, sl1 = _event_args(ctx, c.first)
    v2, f2, l2, u2, sl2 = _event_args(ctx, c.then)
    batches, t = _batches(bases.size)
    done = np.zeros(bases.size, np.uint8)
    if BK.STREAM_SEQUENCES:   # shards with one run per table, no appended lines: a pass back in time
        w1, w2 = _wanted(ctx, c.first), _wanted(ctx, c.then)
        for a, b in batches:
            ctx.check_deadline()
            BK.sequence_streams(bases, ns, v1, v2, pargs[0], pargs[1], pargs[2], pargs[3], pargs[6], vargs[0],
                                vargs[1], vargs[2], vargs[3], vargs[6], ctx.asof.micros,
                                ctx._clip(ctx.asof.today_day - 1), ctx._clip(s), ctx._clip(e), f1, l1, *w1, u1,
                                sl1, f2, l2, *w2, u2, sl2, c.within_days, c.negate, ctx.access_paths,
                                BK.SEQUENCE_GATHER_SHARE, out, done,
                                a, b)
        if done.all():
            return _bm(out)
    scr = scratch(2 * t, int(caps.max()) if caps.size else 1)
    for a, b in batches:
        ctx.check_deadline()
        # a later instant is at least the first event's local date minus a day (zone shifts)
        BK.sequence_shards(bases, ns, v1, v2, *pargs, *vargs, ctx.asof.micros, ctx._clip(s), ctx._clip(e), f1, l1,
                           u1, sl1, ctx._clip(max(s, MIN_DAY + 2) - 2), ctx._clip(ctx.asof.today_day), f2, l2, u2,
                           sl2, c.within_days, c.negate, out, done, a, b, *scr)
    return _bm(out)


# ---------------------------------------------------------------- orders

def order_values(ctx, f: S.ProductFilter, r: S.TimeRange, want: int = BK.ORDERS_COUNT | BK.ORDERS_VALUE):
    """(order count with a matching non-refund line, net sum, number of orders) per customer
    over the orders whose instant is dated in r; those not `want`ed (BK.ORDERS_*) are None."""
    s, e = ctx.day_bounds(r)
    for w in (want, BK.ORDERS_COUNT | BK.ORDERS_VALUE):
        hit = ctx._memo.get(("bk.orders", f, s, e, w))
        if hit is not None:
            return hit
    n = ctx.snap.n
    z = lambda w: np.zeros(n if want & w else 1, np.int64)  # noqa: E731
    counts, sums, num = z(BK.ORDERS_COUNT), z(BK.ORDERS_VALUE), z(BK.ORDERS_VALUE)
    if s <= e:
        # an order's lines may come before the range (its instant is then earlier): read all
        ps, live, daddr, dsize, base, ns, v_lo, v_hi, d_idx, caps = _shard_plan(ctx, "p")
        fields, luts = ctx.product_luts(f)
        # without a filter, the runs' stored orders (engine/storage/orders.py) where exact
        use_stored = fields.size == 0 and bool(ctx.access_paths & LK.PATH_AGGREGATES)
        ot = ctx.snap.order_pieces()
        batches, t = _batches(base.size)
        scr = scratch(t, int(caps.max()) if caps.size else 1)
        for a, b in batches:
            ctx.check_deadline()
            BK.order_shards(base, ns, ps.addr, ps.size, v_lo, v_hi, daddr, dsize, d_idx, ot.addr, ot.size,
                            use_stored, ctx.asof.micros, fields, luts, ctx._clip(s), ctx._clip(e),
                            ctx._clip(ctx.asof.today_day), want, counts, sums, num, a, b, *scr)
    out = (counts if want & BK.ORDERS_COUNT else None,) + ((sums, num) if want & BK.ORDERS_VALUE else (None, None))
    ctx._memo[("bk.orders", f, s, e, want)] = out
    return out


def average_order_values(ctx, r: S.TimeRange) -> np.ndarray:
    """floor(net sum / orders) per customer, INT64_NULL without an order in r."""
    _, sums, num = order_values(ctx, S.NO_FILTER, r, BK.ORDERS_VALUE)
    out = np.empty(sums.size, np.int64)
    BK.floor_means(sums, num, INT64_NULL, out)
    return out


def _in_mask(values: np.ndarray, lo: int, hi: int, none: int) -> BitMap:
    """Customers whose value lies in [lo, hi] and is not `none`."""
    out = np.empty(values.size, np.uint8)
    K.range_mask(values, none, lo, hi, out)
    return _bm(out)


def _order_count(ctx, c: S.OrderCount):
    lo, hi = c.cmp.bounds()
    return _in_mask(order_values(ctx, c.filter, c.range, BK.ORDERS_COUNT)[0], lo, hi, INT64_NULL)


def _average_order_value(ctx, c: S.AverageOrderValue):
    lo, hi = c.cmp.bounds()
    return _in_mask(average_order_values(ctx, c.range), lo, hi, INT64_NULL)


# ---------------------------------------------------------------- distribution

def percentile_values(ctx, v: S.Value) -> np.ndarray:
    """The value a percentile ranks, per customer; absent values (no line, null points) are
    the lowest int64."""
    if v.key == "loyalty_points":
        return np.asarray(ctx.snap.array("c/loyalty_points", np.int64))   # null is INT64_NULL, the lowest
    if v.key == "order_count":
        return order_values(ctx, v.filter, v.range, BK.ORDERS_COUNT)[0]
    mode = {"spend": K.MODE_SPEND, "purchase_count": K.MODE_COUNT, "last_purchase": K.MODE_LAST_DAY}[v.key]
    vals = ctx.line_values(v.filter, v.range, mode)
    if v.key == "last_purchase":
        out = np.empty_like(vals)
        K.replaced(vals, K.NO_DAY, INT64_NULL, out)
        return out
    return vals


def _population(ctx, among) -> np.ndarray:
    alive = BitMap(ctx.snap.alive)
    if among is not None:
        alive &= ctx.eval(among)
    mask = np.zeros(ctx.snap.n, np.uint8)
    ids = np.asarray(alive.to_array(), np.int64)
    mask[ids] = 1
    return mask


def percentile_bounds(cmp: S.Cmp) -> tuple:
    """The percentile interval [lo, hi] a comparison accepts, within 0..99 (lo > hi: none)."""
    lo, hi = cmp.bounds()
    return max(lo, 0), min(hi, 99)


def rfm_scores(c: S.Rfm) -> list:
    """(value key, pct lo, pct hi) of each score an RFM condition tests, in the order its
    value rows are computed: score = 1 + floor(pct / 20) in the comparison's bounds."""
    out = []
    for key, cmp in (("purchase_count", c.f), ("spend", c.m), ("last_purchase", c.r)):
        if cmp is not None:
            a, b = cmp.bounds()   # scores lie in 1..5
            a, b = min(max(a, 1), 6), max(min(b, 5), 0)
            out.append((key, 20 * (a - 1), 20 * b - 1))
    return out


def _pct_mask(values: np.ndarray, member: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """0/1 per customer: a member whose percentile floor(100 * below / N) (behaviour.md) lies
    in [lo, hi]. below >= B holds exactly when the B-th smallest member value (1-based) is
    lower than c's, and below <= B when the (B + 1)-th is not lower: two order statistics
    bound the matching values, where ranking every member takes a sort. They come from a
    histogram where the values span little (counts, days), else from numpy's selection."""
    values = np.ascontiguousarray(values, np.int64)
    out = np.zeros(values.size, np.uint8)
    lo, hi = max(lo, 0), min(hi, 99)
    n, nulls, vmin, vmax = BK.member_summary(values, member)
    if lo > hi or n == 0:
        return out
    b_lo = (lo * n + 99) // 100               # pct >= lo  <=>  below >= ceil(lo N / 100)
    b_hi = ((hi + 1) * n + 99) // 100 - 1     # pct <= hi  <=>  100 below < (hi + 1) N
    if b_lo > b_hi or b_lo >= n:
        return out
    has_lo, has_hi = b_lo >= 1, b_hi < n - 1   # below <= N - 1 always holds for a member
    if nulls < n and vmax - vmin < max(BK.PCT_HISTOGRAM, n // 4):
        t_lo, t_hi = BK.kth_counted(values, member, vmin, vmax, nulls, b_lo - 1, b_hi)
    else:
        ks = [k for k, has in ((b_lo - 1, has_lo), (b_hi, has_hi)) if has]
        x = BK.member_values(values, member, n)
        if ks:
            x = np.partition(x, ks)
        t_lo = int(x[b_lo - 1]) if has_lo else 0
        t_hi = int(x[b_hi]) if has_hi else 0
    BK.values_between(values, member, has_lo, t_lo, has_hi, t_hi, out)
    return out


def _given_cuts(ctx, c):
    """The value interval of each percentile c tests when its population is wider than this
    snapshot, or None. A cluster partition's references give them (`value_cuts(c)`: the
    coordinator ranked every partition's population, cluster/population.py); the catalog's
    do not (one machine ranks its own population here)."""
    cuts = getattr(ctx.references, "value_cuts", None)
    return None if cuts is None else cuts(c)


def _cut_mask(values: np.ndarray, member: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """0/1 per customer: a member whose value lies in [lo, hi] (absent values included:
    they are the lowest int64)."""
    out = np.zeros(len(values), np.uint8)
    if lo <= hi:
        lowest, highest = lo == int(INT64_NULL), hi == 2**63 - 1
        BK.values_between(np.ascontiguousarray(values, np.int64), member, not lowest, 0 if lowest else lo - 1,
                          not highest, 0 if highest else hi, out)
    return out


def _percentile(ctx, c: S.Percentile):
    member = _population(ctx, c.among)
    cuts = _given_cuts(ctx, c)
    if cuts is not None:
        return _bm(_cut_mask(percentile_values(ctx, c.of), member, *cuts[0]))
    return _bm(_pct_mask(percentile_values(ctx, c.of), member, *percentile_bounds(c.cmp)))


def _rfm(ctx, c: S.Rfm):
    member = _population(ctx, c.among)
    if c.r is not None and (c.f is not None or c.m is not None):
        ctx.last_day_filters.add(c.filter)   # the last sale days from the spend / count pass
    if c.f is not None and c.m is not None:   # count and spend from one pass
        ctx.want_scan(c.filter, c.range, LK.W_SPEND | LK.W_COUNT)
    scores = rfm_scores(c)
    if not scores:
        return _bm(member)
    cuts = _given_cuts(ctx, c)
    out = member.copy()
    for j, (key, lo, hi) in enumerate(scores):   # one score after another, no copy of its values
        values = percentile_values(ctx, S.Value(key, c.filter, c.range))
        out &= _pct_mask(values, member, lo, hi) if cuts is None else _cut_mask(values, member, *cuts[j])
    return _bm(out)


def population_histogram(ctx, value: S.Value, among) -> tuple:
    """(sorted distinct values, count of each) of `value` over the population of a
    percentile (active customers matching among): what a cluster coordinator merges to
    rank a customer among every partition's population. Values mostly distinct (spend)
    come as (every value sorted, None): half the bytes."""
    member = _population(ctx, among)
    vals = np.sort(np.asarray(percentile_values(ctx, value), np.int64)[member.view(bool)])
    if vals.size == 0:
        return vals, None
    first = np.empty(vals.size, bool)
    first[0] = True
    np.not_equal(vals[1:], vals[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    if 2 * starts.size > vals.size:
        return vals, None
    return vals[starts], np.diff(np.append(starts, vals.size)).astype(np.int64)


def _random_bucket(ctx, c: S.RandomBucket):
    ids = np.ascontiguousarray(ctx.snap.ext_ids(), np.int64).view(np.uint64)
    buckets = np.empty(ids.size, np.int64)
    BK.random_buckets(ids, np.uint64(fnv1a64_salt(c.salt)), buckets)
    lo, hi = c.cmp.bounds()
    return _bm(_in(buckets, lo, hi))


def fnv1a64_salt(salt: str) -> int:
    """FNV-1a 64 of the salt's UTF-8 bytes (the offset basis for an empty salt)."""
    data = salt.encode("utf-8")
    return fnv1a64(data) if data else 0xcbf29ce484222325


# ---------------------------------------------------------------- references

def _in_segment(ctx, c: S.InSegment):
    refs = ctx.references
    if refs is None:
        raise InvalidArgument("in_segment", "saved segments are not available to this evaluation")
    if c.name in ctx.reference_path:
        cycle = " -> ".join(ctx.reference_path + (c.name,))
        raise InvalidArgument("in_segment", f"reference cycle: {cycle}")
    seg = refs.segment(c.name)
    return ctx.evaluate_reference(c.name, seg)


def _in_group(ctx, c: S.InGroup):
    refs = ctx.references
    if refs is None:
        raise InvalidArgument("in_group", "customer groups are not available to this evaluation")
    members = np.asarray(refs.group_members(c.name), np.int64)
    found, _ = ctx.snap.internal_ids(members)
    mask = np.zeros(ctx.snap.n, np.uint8)
    mask[np.asarray(found, np.int64)] = 1
    return _bm(mask)


LEAVES = {
    S.FirstPurchase: _first_purchase,
    S.LastPurchase: _last_purchase,
    S.Regularly: _regularly,
    S.Sequence: _sequence,
    S.OrderCount: _order_count,
    S.AverageOrderValue: _average_order_value,
    S.Percentile: _percentile,
    S.Rfm: _rfm,
    S.RandomBucket: _random_bucket,
    S.InSegment: _in_segment,
    S.InGroup: _in_group,
}
