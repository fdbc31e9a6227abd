"""Evaluate a condition tree on a snapshot, as of an instant, into a roaring bitmap.

Leaves read bitmaps (categorical profile values) or run numba kernels (dense per-customer
columns, per-shard line tables) whose 0/1 mask becomes a bitmap with one deserialize.
Leaves are evaluated over every customer; activeness is applied once: NOT is alive minus
the child and results are intersected with `alive` at the top (output.py).
"""
from __future__ import annotations

import calendar
import datetime as dt
import functools
import time
from typing import Optional

import numpy as np
import pyarrow as pa
from pyroaring import BitMap, FrozenBitMap

from . import delta_kernels as DK
from . import kernels as K
from ..model import segment as S
from ..storage.customer_attrs import INT32_NULL, INT64_NULL
from ..errors import Cancelled
from ..storage.ingest_read import digits_only, normalize_text
from ..storage import text_kernels as TK
from ..storage.bitmaps import mask_to_roaring
from ..storage.text_index import scratch_mask, search_field
from ..model.timerange import AsOf, MAX_DAY, MIN_DAY, days_from

PRODUCT_INDEX = {f: i for i, f in enumerate(S.PRODUCT_FIELDS)}
SHARD_BATCH = 16  # shards per kernel call: the granularity at which deadlines are honoured


def _bm_from_mask(mask: np.ndarray) -> BitMap:
    return BitMap.deserialize(mask_to_roaring(mask).tobytes())


def _bm_from_ids(ids: np.ndarray, n: int) -> BitMap:
    mask = np.zeros(n, dtype=np.uint8)
    mask[ids] = 1
    return _bm_from_mask(mask)


class Context:
    """Everything one evaluation needs: snapshot, as-of reading, deadline, caches, stats."""

    def __init__(self, snap, as_of: Optional[dt.datetime], deadline: Optional[float] = None):
        self.snap = snap
        self.asof = AsOf(as_of, snap.zone)
        self.deadline = deadline
        self.missing_ids: list = []
        self._memo: dict = {}
        self.trace: Optional[dict] = None  # node id -> (size, ms) when explaining
        self.shared_scans: set = set()  # (filter, range) pairs used more than once
        self.last_day_filters: set = set()  # filters whose rollup should carry last sale days
        self.live = hasattr(snap, "delta")  # a LiveView: appended lines are added to the version's

    def delta(self, prefix: str):
        """Appended lines of a line table since the version (None when none)."""
        return self.snap.delta(prefix) if self.live else None

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Cancelled("deadline", "deadline exceeded")

    # ---------------------------------------------------------------- tree
    def eval(self, cond: S.Condition) -> BitMap:
        """The customers (any activeness) matching cond; NOT nodes subtract from alive."""
        self.check_deadline()
        hit = self._memo.get(cond)
        if hit is not None:
            return hit
        t0 = time.perf_counter()
        t = type(cond)
        if t is S.AllOf:
            kids = sorted((self.eval(c) for c in cond.children), key=len)
            out = BitMap(kids[0])
            for k in kids[1:]:
                if not out:
                    break
                out &= k
        elif t is S.AnyOf:
            out = BitMap.union(*[self.eval(c) for c in cond.children])
        elif t is S.Not:
            out = BitMap(self.snap.alive) - self.eval(cond.child)
        else:
            out = LEAVES[t](self, cond)
        self._memo[cond] = out
        if self.trace is not None:
            self.trace[cond] = (out, (time.perf_counter() - t0) * 1000)
        return out

    # ---------------------------------------------------------------- line helpers
    def day_bounds(self, r: S.TimeRange):
        """[start, end] day numbers, clipped to today (nothing after as-of)."""
        s, e = self.asof.resolve(r)
        return s, min(e, self.asof.today_day)

    def slices(self, table: str, start_day: int, end_day: int):
        """Per-shard (lo, mid, hi): lines with day in [start, end]; from mid on, lines on
        days that reach past the day before today, whose instants need the as-of check."""
        snap = self.snap
        days = snap.shard_list(table, "day", np.int32)
        n = len(days)
        lo = np.zeros(n, np.int64)
        mid = np.zeros(n, np.int64)
        hi = np.zeros(n, np.int64)
        if start_day > end_day:
            return lo, mid, hi
        # numpy scalars of the column's dtype: a Python int would convert the whole column
        clip = lambda v: np.int32(min(max(v, MIN_DAY), MAX_DAY))  # noqa: E731
        s32, e32, c32 = clip(start_day), clip(end_day), clip(self.asof.today_day - 1)
        for k, d in enumerate(days):
            lo[k] = d.searchsorted(s32, "left")
            hi[k] = d.searchsorted(e32, "right")
            mid[k] = max(lo[k], min(hi[k], d.searchsorted(c32, "left")))
        return lo, mid, hi

    def product_luts(self, f: S.ProductFilter):
        """(field rows int64, luts uint8 [F, maxcode+1]) for a product filter."""
        snap = self.snap
        if not f.fields:
            return np.zeros(0, np.int64), np.zeros((0, 1), np.uint8)
        rows, codesets = [], []
        for name, values in f.fields:
            dname = "shop" if name == "shop" else name
            cmap = snap.code_of(dname)
            rows.append(PRODUCT_INDEX[name])
            codesets.append([cmap[v] for v in values if v in cmap])
        width = 1 + max((len(snap.dictionary("shop" if n == "shop" else n)) for n, _ in f.fields), default=0)
        luts = np.zeros((len(rows), width), np.uint8)
        for j, cs in enumerate(codesets):
            luts[j, cs] = 1
        return np.asarray(rows, np.int64), luts

    def line_mask(self, f: S.ProductFilter, r: S.TimeRange, mode: int, vlo: int, vhi: int) -> BitMap:
        if (f, r) in self.shared_scans or self.delta("p") is not None or self.rollup(f, r) is not None:
            spend, count = self.line_both(f, r)
            v = spend if mode == K.MODE_SPEND else count
            return _bm_from_mask(((v >= vlo) & (v <= vhi)).view(np.uint8))
        snap = self.snap
        s, e = self.day_bounds(r)
        lo, mid, hi = self.slices("p", s, e)
        fields, luts = self.product_luts(f)
        out = np.zeros(snap.n, np.uint8)
        for a, b in self._batches():
            self.check_deadline()
            K.line_agg_mask(*self._purchase_lists(a, b), lo[a:b], mid[a:b], hi[a:b],
                            snap.shard_bases()[a:b], snap.shard_sizes()[a:b], fields, luts,
                            self.asof.micros, mode, vlo, vhi, out)
        return _bm_from_mask(out)

    def rollup(self, f: S.ProductFilter, r: S.TimeRange, want_last: bool = False):
        """(net spend, sale count, last sale day) per customer for an all-time range: the
        rollups (lines up to the cutoff day) plus a scan of the newer tail with the as-of
        check. None when they cannot answer: a bounded range, an as-of before the last
        rolled-up line, or a filter no rollup covers."""
        snap = self.snap
        rolled_to = snap.meta.get("rollup_max_micros")
        rollups = snap.meta.get("rollups") or {}
        if rolled_to is None or self.asof.micros < rolled_to or not rollups:
            return None
        if not (r.kind == "ever" or (r.kind == "custom" and r.start is None and r.end is None)):
            return None
        names = [name for name, _ in f.fields]
        name = "+".join(names) if names else "all"
        spec = rollups.get(name)
        if spec is None:
            return None
        want_last = want_last or f in self.last_day_filters  # one pass for test and ranking
        key = ("rollup", f)
        hit = self._memo.get(key)
        if hit is not None and (hit[2] is not None or not want_last):
            return hit
        dims = spec["dims"]
        if not names:
            lut = np.ones(int(np.prod(dims)), np.uint8)
        else:
            _, luts = self.product_luts(f)
            lut = luts[0, :dims[0]].copy()
            if len(names) == 2:
                lut = (luts[0, :dims[0], None] & luts[1, None, :dims[1]]).reshape(-1)
        lists = [snap.shard_arrays("p", f"r.{name}.{k}", dt)
                 for k, dt in (("ptr", np.int64), ("code", np.uint16), ("spend", np.int64),
                               ("count", np.int32), ("last", np.int32))]
        spend = np.zeros(snap.n, np.int64)
        count = np.zeros(snap.n, np.int64)
        last = np.full(snap.n if want_last else 1, K.NO_DAY, np.int64)
        self.check_deadline()
        K.rollup_values(*lists, snap.shard_bases(), snap.shard_sizes(), lut, want_last, spend, count, last)
        # the tail: lines after the rollup cutoff day, visible as of the as-of instant
        lo, mid, hi = self.slices("p", snap.meta["rollup_cutoff_day"] + 1, self.asof.today_day)
        if (hi > lo).any():
            fields, luts = self.product_luts(f)
            K.tail_add(*self._purchase_lists(0, snap.n_shards), lo, mid, hi, snap.shard_bases(),
                       fields, luts, self.asof.micros, want_last, spend, count, last)
        self.add_appended(f, MIN_DAY, MAX_DAY, spend, count, last if want_last else None)
        result = (spend, count, last if want_last else None)
        self._memo[key] = result
        return result

    def line_both(self, f: S.ProductFilter, r: S.TimeRange):
        """(net spend, sale count) per customer from one scan, memoised per filter and range."""
        rolled = self.rollup(f, r)
        if rolled is not None:
            return rolled[0], rolled[1]
        key = ("both", f, r)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        snap = self.snap
        s, e = self.day_bounds(r)
        lo, mid, hi = self.slices("p", s, e)
        fields, luts = self.product_luts(f)
        spend = np.zeros(snap.n, np.int64)
        count = np.zeros(snap.n, np.int64)
        for a, b in self._batches():
            self.check_deadline()
            K.line_agg_both(*self._purchase_lists(a, b), lo[a:b], mid[a:b], hi[a:b],
                            snap.shard_bases()[a:b], snap.shard_sizes()[a:b], fields, luts,
                            self.asof.micros, spend, count)
        self.add_appended(f, s, e, spend, count, None)
        self._memo[key] = (spend, count)
        return spend, count

    def line_values(self, f: S.ProductFilter, r: S.TimeRange, mode: int) -> np.ndarray:
        """Per-customer aggregate (int64, dense) for ranking."""
        rolled = self.rollup(f, r, want_last=mode == K.MODE_LAST_DAY)
        if rolled is not None:
            return rolled[{K.MODE_SPEND: 0, K.MODE_COUNT: 1, K.MODE_LAST_DAY: 2}[mode]]
        if mode != K.MODE_LAST_DAY and ((f, r) in self.shared_scans or self.delta("p") is not None):
            spend, count = self.line_both(f, r)
            return spend if mode == K.MODE_SPEND else count
        snap = self.snap
        s, e = self.day_bounds(r)
        lo, mid, hi = self.slices("p", s, e)
        fields, luts = self.product_luts(f)
        out = np.zeros(snap.n, np.int64)
        if mode == K.MODE_LAST_DAY:
            out[:] = K.NO_DAY
        for a, b in self._batches():
            self.check_deadline()
            K.line_agg_values(*self._purchase_lists(a, b), lo[a:b], mid[a:b], hi[a:b],
                              snap.shard_bases()[a:b], snap.shard_sizes()[a:b], fields, luts,
                              self.asof.micros, mode, out)
        self.add_appended(f, s, e, None, None, out)  # last sale day (the other modes went above)
        return out

    def add_appended(self, f: S.ProductFilter, s: int, e: int, spend, count, last) -> None:
        """Add the appended purchase lines on days [s, e] visible as of the as-of instant
        to dense per-customer spend / count (when given) and last sale day (when given)."""
        d = self.delta("p")
        if d is None or s > e:
            return
        fields, luts = self.product_luts(f)
        none = np.zeros(0, np.int64)
        DK.purchases_add(d["iid"], d["day"], d["ts"], d["amount"], d["codes"], np.int64(s), np.int64(e),
                         self.asof.micros, fields, luts, spend is not None, last is not None,
                         none if spend is None else spend, none if count is None else count,
                         none if last is None else last)

    def _batches(self):
        n = self.snap.n_shards
        return [(a, min(n, a + SHARD_BATCH)) for a in range(0, n, SHARD_BATCH)]

    def _purchase_lists(self, a, b):
        snap = self.snap
        cdt = np.dtype(snap.meta["cust_dtype"])
        lists = (snap.shard_arrays("p", "cust", cdt), snap.shard_arrays("p", "amount", np.dtype(snap.meta.get("amount_dtype", "int64"))),
                 snap.shard_arrays("p", "ts", np.int64), snap.shard_arrays("p", "codes", np.dtype(snap.meta.get("code_dtype", "int32"))),
                 snap.shard_arrays("p", "day", np.int32))
        if a == 0 and b == snap.n_shards:
            return lists
        return tuple(snap._cached(("sub", id(l), a, b), lambda l=l: _sub(l, a, b)) for l in lists)

    def _visit_lists(self, a, b):
        snap = self.snap
        cdt = np.dtype(snap.meta["cust_dtype"])
        lists = (snap.shard_arrays("v", "cust", cdt), snap.shard_arrays("v", "ts", np.int64),
                 snap.shard_arrays("v", "status", np.uint8), snap.shard_arrays("v", "shop", np.int32))
        if a == 0 and b == snap.n_shards:
            return lists
        return tuple(snap._cached(("sub", id(l), a, b), lambda l=l: _sub(l, a, b)) for l in lists)

    def shop_lut(self, shops):
        snap = self.snap
        lut = np.zeros(len(snap.dictionary("shop")) + 1, np.uint8)
        cmap = snap.code_of("shop")
        lut[[cmap[v] for v in shops if v in cmap]] = 1
        return lut


def plan_shared_scans(seg: S.Segment) -> set:
    """(filter, range) pairs that more than one purchase test or the ranking scan: those
    are computed once as (spend, count) instead of once per use."""
    uses: dict = {}
    for top in S.segment_conditions(seg):
        for c in S.walk(top):
            if isinstance(c, (S.Bought, S.Spend, S.PurchaseCount)):
                uses[(c.filter, c.range)] = uses.get((c.filter, c.range), 0) + 1
    ob = seg.order_by
    if ob is not None and ob.key in ("spend", "purchase_count"):
        uses[(ob.filter, ob.range)] = uses.get((ob.filter, ob.range), 0) + 1
    return {k for k, n in uses.items() if n > 1}


def _sub(lst, a, b):
    from numba import typed
    out = typed.List()
    for i in range(a, b):
        out.append(lst[i])
    return out


# ------------------------------------------------------------------- leaves

def _all(ctx, c):
    return BitMap(ctx.snap.alive)


def _customers(ctx, c: S.Customers):
    found, missing = ctx.snap.internal_ids(np.asarray(c.ids, dtype=np.int64))
    ctx.missing_ids.extend(int(x) for x in missing)
    return _bm_from_ids(found, ctx.snap.n)


@functools.lru_cache(maxsize=1024)
def _search_needles(text: str) -> tuple:
    """(normalised utf-8 needle, digits-only needle) of a search text (arrow's normalisation
    costs ~1 ms for non-ASCII text, more than an indexed search)."""
    return ((normalize_text(pa.array([text]))[0].as_py() or "").encode(),
            (digits_only(pa.array([text]))[0].as_py() or "").encode())


def _search(ctx, c: S.Search):
    snap = ctx.snap
    needle, digits = _search_needles(c.text)
    out = scratch_mask(snap.n)  # consumed by _bm_from_mask below, before any reuse
    for f in c.fields:
        text = digits if f == "phone" else needle
        if text:  # an empty needle (e.g. no digits for phone) matches nothing
            search_field(snap.trigram_index(f), *snap.text_column(f), text, out)
    _text_overlay(ctx, [(f, digits if f == "phone" else needle) for f in c.fields], TK.substring_mask, out)
    return _bm_from_mask(out)


def _surname(ctx, c: S.Surname):
    needle = (normalize_text(pa.array([c.text]))[0].as_py() or "").encode()
    out = np.zeros(ctx.snap.n, np.uint8)
    if needle:
        TK.equal_mask(*ctx.snap.text_column("last_name"), np.frombuffer(needle, np.uint8), out)
    _text_overlay(ctx, [("last_name", needle)], TK.equal_mask, out)
    return _bm_from_mask(out)


def _text_overlay(ctx, needles, kernel, out) -> None:
    """Customers changed since the version answer by their current text: their bits are
    cleared, then set again from a scan of the changed rows only."""
    if not ctx.live:
        return
    iids = ctx.snap.search_rows(needles[0][0])[0]  # the same changed customers for every field
    if not iids.size:
        return
    out[iids] = 0
    local = np.zeros(iids.size, np.uint8)
    for f, text in needles:
        if text:
            _, data, offsets = ctx.snap.search_rows(f)
            hit = np.zeros(iids.size, np.uint8)
            kernel(data, offsets, np.frombuffer(text, np.uint8), hit)
            local |= hit
    out[iids[local.astype(bool)]] = 1


def _md_lut(dates) -> np.ndarray:
    """A 1300-entry table over month*100+day: 1 for the month-days of `dates`, with a
    29 February date counting on 28 February in non-leap years."""
    lut = np.zeros(1300, np.uint8)
    for d in dates:
        lut[d.month * 100 + d.day] = 1
        if d.month == 2 and d.day == 28 and not calendar.isleap(d.year):
            lut[229] = 1
    return lut


def _birthday(ctx, c: S.Birthday):
    snap = ctx.snap
    today = ctx.asof.today
    prefix = "birth" if c.which == "birth" else "anniversary"
    if c.mode in ("this_month", "month"):
        month = today.month if c.mode == "this_month" else c.month
        return BitMap(snap.bitmap(f"{prefix}_month", month))
    if c.mode == "today":
        dates = [today]
    else:
        dates = days_from(today, c.days)
    md = snap.array(f"c/{prefix}_md", np.int16)
    out = np.zeros(snap.n, np.uint8)
    K.lut_mask(md, _md_lut(dates), out)
    return _bm_from_mask(out)


def _married_today(ctx, c):
    t = ctx.asof.today_day
    return _range(ctx, "c/wedding_date_day", np.int32, INT32_NULL, t, t)


def _range(ctx, key, dtype, null, lo, hi):
    vals = ctx.snap.array(key, dtype)
    out = np.zeros(ctx.snap.n, np.uint8)
    info = np.iinfo(dtype)
    lo, hi = max(lo, info.min), min(hi, info.max)
    if lo > hi:
        return BitMap()
    K.range_mask(vals, dtype(null), dtype(lo), dtype(hi), out)
    return _bm_from_mask(out)


def _age(ctx, c: S.Age):
    snap = ctx.snap
    t = ctx.asof.today
    lo, hi = c.cmp.bounds()
    out = np.zeros(snap.n, np.uint8)
    K.age_mask(snap.array("c/birth_year", np.int16), snap.array("c/birth_md", np.int16),
               t.year, t.month * 100 + t.day, calendar.isleap(t.year),
               max(lo, -(2**62)), min(hi, 2**62), out)
    return _bm_from_mask(out)


def _joined(ctx, c: S.Joined):
    s, e = ctx.asof.resolve(c.range)  # a profile date: not clipped to today
    return _range(ctx, "c/joined_on_day", np.int32, INT32_NULL, max(s, MIN_DAY), min(e, MAX_DAY))


def _flag(name):
    return lambda ctx, c: BitMap(ctx.snap.bitmap(name))


def _points(ctx, c):
    lo, hi = c.cmp.bounds()
    return _range(ctx, "c/loyalty_points", np.int64, INT64_NULL, lo, hi)


def _balance(ctx, c):
    lo, hi = c.cmp.bounds()
    return _range(ctx, "c/account_balance", np.int64, INT64_NULL, lo, hi)


def _in_values(ctx, c: S.InValues):
    cmap = ctx.snap.code_of(c.field)
    bms = [ctx.snap.bitmap(c.field, cmap[v]) for v in c.values if v in cmap]
    return BitMap.union(*bms) if bms else BitMap()


def _tags(ctx, c: S.Tags):
    cmap = ctx.snap.code_of("tag")
    bms = [ctx.snap.bitmap("tag", cmap[t]) if t in cmap else FrozenBitMap() for t in c.tags]
    if c.mode == "any":
        return BitMap.union(*bms)
    bms.sort(key=len)
    out = BitMap(bms[0])
    for b in bms[1:]:
        out &= b
    return out


def _reachable(ctx, c: S.Reachable):
    return BitMap(ctx.snap.bitmap(c.channel))


def _overdue(ctx, c):
    snap = ctx.snap
    cdt = np.dtype(snap.meta["cust_dtype"])
    out = np.zeros(snap.n, np.uint8)
    K.overdue_layby_mask(snap.shard_arrays("l", "cust", cdt), snap.shard_arrays("l", "opened", np.int32),
                         snap.shard_arrays("l", "due", np.int32), snap.shard_arrays("l", "balance", np.int64),
                         snap.shard_arrays("l", "status", np.uint8), snap.shard_bases(),
                         ctx.asof.today_day, out)
    d = ctx.delta("l")
    if d is not None:
        DK.overdue_set(d["iid"], d["opened"], d["due"], d["balance"], d["status"], ctx.asof.today_day, out)
    return _bm_from_mask(out)


def _bought(ctx, c: S.Bought):
    return ctx.line_mask(c.filter, c.range, K.MODE_BOUGHT, 1, 2**62)


def _spend(ctx, c: S.Spend):
    lo, hi = c.cmp.bounds()
    return ctx.line_mask(c.filter, c.range, K.MODE_SPEND, lo, hi)


def _purchase_count(ctx, c: S.PurchaseCount):
    lo, hi = c.cmp.bounds()
    return ctx.line_mask(c.filter, c.range, K.MODE_COUNT, lo, hi)


def _visited(ctx, c: S.Visited):
    snap = ctx.snap
    s, e = ctx.day_bounds(c.range)
    lo, mid, hi = ctx.slices("v", s, e)
    vlo, vhi = c.cmp.bounds()
    lut = ctx.shop_lut(c.shops)
    d = ctx.delta("v")
    if d is not None:  # counts of the version's visits plus the appended ones, then the test
        counts = np.zeros(snap.n, np.int64)
        for a, b in ctx._batches():
            ctx.check_deadline()
            K.visit_count_values(*ctx._visit_lists(a, b), lo[a:b], mid[a:b], hi[a:b],
                                 snap.shard_bases()[a:b], snap.shard_sizes()[a:b], bool(c.shops), lut,
                                 ctx.asof.micros, counts)
        if s <= e:
            DK.visits_add(d["iid"], d["day"], d["ts"], d["status"], d["shop"], np.int64(s), np.int64(e),
                          ctx.asof.micros, bool(c.shops), lut, counts)
        return _bm_from_mask(((counts >= vlo) & (counts <= vhi)).view(np.uint8))
    out = np.zeros(snap.n, np.uint8)
    for a, b in ctx._batches():
        ctx.check_deadline()
        K.visit_count_mask(*ctx._visit_lists(a, b), lo[a:b], mid[a:b], hi[a:b],
                           snap.shard_bases()[a:b], snap.shard_sizes()[a:b], bool(c.shops), lut,
                           ctx.asof.micros, vlo, vhi, out)
    return _bm_from_mask(out)


def _upcoming(ctx, c: S.UpcomingAppointment):
    snap = ctx.snap
    _, lo, _ = ctx.slices("v", MIN_DAY, MAX_DAY)  # mid = first line on yesterday or later
    out = np.zeros(snap.n, np.uint8)
    lut = ctx.shop_lut(c.shops)
    for a, b in ctx._batches():
        ctx.check_deadline()
        K.upcoming_mask(*ctx._visit_lists(a, b), lo[a:b], snap.shard_bases()[a:b],
                        bool(c.shops), lut, ctx.asof.micros, out)
    d = ctx.delta("v")
    if d is not None:
        DK.upcoming_set(d["iid"], d["ts"], d["status"], d["shop"], bool(c.shops), lut, ctx.asof.micros, out)
    return _bm_from_mask(out)


LEAVES = {
    S.All: _all,
    S.Customers: _customers,
    S.Search: _search,
    S.Surname: _surname,
    S.Birthday: _birthday,
    S.MarriedToday: _married_today,
    S.Age: _age,
    S.Joined: _joined,
    S.LoyaltyMember: _flag("loyalty_member"),
    S.LoyaltyPoints: _points,
    S.InValues: _in_values,
    S.Tags: _tags,
    S.Reachable: _reachable,
    S.AccountBalance: _balance,
    S.OverdueLayby: _overdue,
    S.Bought: _bought,
    S.Spend: _spend,
    S.PurchaseCount: _purchase_count,
    S.Visited: _visited,
    S.UpcomingAppointment: _upcoming,
}
