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
from .behaviour import LEAVES as BEHAVIOUR_LEAVES
from . import kernels as K
from . import line_kernels as LK
from ..model import segment as S
from ..storage.customer_attrs import INT32_NULL, INT64_NULL
from ..errors import Cancelled
from ..storage.ingest_read import digits_only, normalize_text
from ..storage import text_kernels as TK
from ..storage.bitmaps import mask_to_roaring
from ..storage.shard_customers import fnv1a64
from ..storage.text_index import needle_codes, scratch_mask
from ..model.timerange import AsOf, MAX_DAY, MIN_DAY, days_from

PRODUCT_INDEX = {f: i for i, f in enumerate(S.PRODUCT_FIELDS)}
SHARD_BATCH = 16
MAX_PAIR_COMBOS = 4096  # wanted (value, value) combinations a pair index is read for  # shards per kernel call: the granularity at which deadlines are honoured


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
        self.trace: Optional[dict] = None  # node -> (bitmap, ms, bytes read) when explaining
        self.bytes_read = 0                # bytes of arrays the leaves read (approximate)
        self.shared_scans: dict = {}  # (filter, range) pairs used more than once -> LK.W_* wanted
        self.last_day_filters: set = set()  # filters whose aggregates should carry last sale days
        self.live = hasattr(snap, "delta")  # a LiveView: appended lines are added to the version's
        self.access_paths = LK.ALL_PATHS    # aggregates and posting lists allowed (tests force scans)
        self.stats = np.zeros(LK.STAT_N, np.int64)  # what purchase leaves read, by access path
        self.references = None          # in_segment / in_group resolver (output.evaluate sets it)
        self.reference_path: tuple = ()  # saved segments being evaluated around this one
        self.evaluate_reference = None   # (name, Segment) -> members, set by output.evaluate

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
        b0 = self.bytes_read
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
            out = self.leaf(cond)
        self._memo[cond] = out
        if self.trace is not None:
            self.trace[cond] = (out, (time.perf_counter() - t0) * 1000, self.bytes_read - b0)
        return out

    def leaf(self, cond: S.Condition) -> BitMap:
        """A leaf condition's customers (a subclass may evaluate some leaves elsewhere)."""
        return LEAVES[type(cond)](self, cond)

    # ---------------------------------------------------------------- line helpers
    def day_bounds(self, r: S.TimeRange):
        """[start, end] day numbers, clipped to today (nothing after as-of)."""
        s, e = self.asof.resolve(r)
        return s, min(e, self.asof.today_day)

    def all_time(self, r: S.TimeRange) -> bool:
        """Does the range hold every day up to today (no start, an end today or later)?"""
        lo_bound, hi_bound = self.asof.resolve(r)
        return lo_bound <= MIN_DAY and hi_bound >= self.asof.today_day

    def _clip(self, d: int) -> int:
        return min(max(d, MIN_DAY), MAX_DAY)

    def product_filter(self, f: S.ProductFilter):
        """(field numbers int64, luts uint8 [F, W], wanted codes CSR (ptr int64, codes
        uint32)) of a product filter: luts[j, code] = 1 when field j accepts the code."""
        key = ("filter", f)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        snap = self.snap
        rows, codesets = [], []
        for name, values in f.fields:
            cmap = snap.code_of(name)
            rows.append(PRODUCT_INDEX[name])
            codesets.append(sorted({cmap[v] for v in values if v in cmap}))
        width = 1 + max((len(snap.dictionary(n)) for n, _ in f.fields), default=0)
        luts = np.zeros((max(len(rows), 1), width), np.uint8)  # a row even without fields
        ptr = np.zeros(len(rows) + 1, np.int64)
        for j, cs in enumerate(codesets):
            luts[j, cs] = 1
            ptr[j + 1] = ptr[j] + len(cs)
        wanted = np.asarray([c for cs in codesets for c in cs], np.uint32)
        out = (np.asarray(rows, np.int64), luts, ptr, wanted) + self._pair_plan(f, codesets)
        self._memo[key] = out
        return out

    def _pair_plan(self, f: S.ProductFilter, codesets) -> tuple:
        """(slot, j1, j2, wanted composite codes) of the dataset's pair index covering two of
        the filter's fields (the one with the fewest wanted combinations), or slot -1."""
        pairs = getattr(getattr(self.snap, "manifest", None), "pairs", ())
        names = [name for name, _ in f.fields]
        best = None
        for slot, (a, b) in enumerate(pairs):
            if a in names and b in names:
                j1, j2 = names.index(a), names.index(b)
                combos = len(codesets[j1]) * len(codesets[j2])
                if combos <= MAX_PAIR_COMBOS and (best is None or combos < best[0]):
                    best = (combos, slot, j1, j2)
        if best is None:
            return (-1, -1, -1, np.zeros(0, np.uint64))
        _, slot, j1, j2 = best
        wanted = np.sort(np.asarray([(x << 32) | y for x in codesets[j1] for y in codesets[j2]], np.uint64))
        return (slot, j1, j2, wanted)

    def product_luts(self, f: S.ProductFilter):
        """(field rows int64, luts uint8 [F, W]) of a product filter."""
        return self.product_filter(f)[:2]

    def _purchases(self, f: S.ProductFilter, r: S.TimeRange, want: int, mask=None):
        """Run the purchase kernel over every shard, in batches (deadline checked between):
        with `mask` = (which, vlo, vhi) a uint8 mask, else dense accumulators (spend, count,
        first, last; those not wanted have size 1)."""
        snap = self.snap
        ps = snap.pieces("p")
        s, e = self.day_bounds(r)
        fields, luts, wc_ptr, wc, pslot, pj1, pj2, pwc = self.product_filter(f)
        all_time = self.all_time(r)
        c_day = self.asof.today_day - 1
        stats = np.zeros((ps.n_shards, LK.STAT_N), np.int64)
        n = snap.n
        if mask is not None:
            out = np.zeros(n, np.uint8)
        else:
            size = lambda bit: n if want & bit else 1  # noqa: E731
            spend, count = np.zeros(size(LK.W_SPEND), np.int64), np.zeros(size(LK.W_COUNT), np.int64)
            first = np.full(size(LK.W_FIRST), LK.FIRST_NONE, np.int64)
            last = np.full(size(LK.W_LAST), LK.LAST_NONE, np.int64)
        if ps.n_shards:
            for a, b in self._batches(ps.n_shards):
                self.check_deadline()
                args = (ps.addr, ps.size, ps.meta, ps.shard_ptr, ps.base, ps.n, a, b, self._clip(s),
                        self._clip(e), self._clip(c_day), all_time, self.asof.micros, fields, luts, wc_ptr, wc,
                        pslot, pj1, pj2, pwc, want, self.access_paths)
                if mask is not None:
                    LK.purchase_mask(*args, mask[0], mask[1], mask[2], out, stats)
                else:
                    LK.purchase_values(*args, spend, count, first, last, stats)
        F = fields.size
        per_line = 2 + 8 + 4 * F + (4 if want & (LK.W_FIRST | LK.W_LAST) else 0)
        t = stats.sum(axis=0)
        self.stats += t
        self.bytes_read += int(t[LK.STAT_SCANNED] * per_line + t[LK.STAT_POSTED] * 4
                               + t[LK.STAT_GATHERED] * (per_line - 4) + t[LK.STAT_AGG] * 22
                               + t[LK.STAT_DENSE] * 4 * bin(want).count("1"))
        return out if mask is not None else (spend, count, first, last)

    def line_mask(self, f: S.ProductFilter, r: S.TimeRange, mode: int, vlo: int, vhi: int) -> BitMap:
        """Customers whose aggregate of the lines matching f in r lies in [vlo, vhi] (bought:
        a sale; first / last day: a sale day in [vlo, vhi])."""
        if mode in (K.MODE_FIRST_DAY, K.MODE_LAST_DAY) or (f, r) in self.shared_scans or self.delta("p") is not None:
            v = self.line_values(f, r, mode)
            none = K.NO_DAY if mode in (K.MODE_FIRST_DAY, K.MODE_LAST_DAY) else K.outside(vlo, vhi)
            hit = np.empty(v.size, np.uint8)
            if none is None:     # every value lies in [vlo, vhi]
                hit.fill(1)
            else:
                K.range_mask(np.ascontiguousarray(v, np.int64), none, vlo, vhi, hit)
            return _bm_from_mask(hit)
        which, want = {K.MODE_BOUGHT: (LK.A_COUNT, LK.W_COUNT), K.MODE_SPEND: (LK.A_SPEND, LK.W_SPEND),
                       K.MODE_COUNT: (LK.A_COUNT, LK.W_COUNT)}[mode]
        return _bm_from_mask(self._purchases(f, r, want, (which, vlo, vhi)))

    def want_scan(self, f: S.ProductFilter, r: S.TimeRange, want: int) -> None:
        """Plan (f, r)'s purchase pass to compute `want` (LK.W_*) for every use."""
        self.shared_scans = merge_shared_scans(self.shared_scans, {(f, r): want})

    def line_both(self, f: S.ProductFilter, r: S.TimeRange, need: int = LK.W_SPEND | LK.W_COUNT):
        """(net spend, sale count) per customer from one pass, memoised per filter and range;
        the pass computes what `need` and the segment's other uses of (f, r) want
        (shared_scans), so one not wanted is a placeholder of size 1."""
        key = ("both", f, r)
        hit = self._memo.get(key)
        if hit is not None and hit[2] & need == need:
            return hit[0], hit[1]
        want = need | self.shared_scans.get((f, r), 0) | (hit[2] if hit is not None else 0)
        if self.delta("p") is not None:
            want |= LK.W_SPEND | LK.W_COUNT   # appended lines add to both
        if f in self.last_day_filters:
            want |= LK.W_LAST  # the ranking's last sale days come from the same pass
        spend, count, _, last = self._purchases(f, r, want)
        s, e = self.day_bounds(r)
        if want & LK.W_SPEND and want & LK.W_COUNT:
            self.add_appended(f, s, e, spend, count, last if want & LK.W_LAST else None)
        if want & LK.W_LAST:
            self._memo[("values", f, r, K.MODE_LAST_DAY)] = _days(last, LK.LAST_NONE)
        self._memo[key] = (spend, count, want & (LK.W_SPEND | LK.W_COUNT))
        return spend, count

    def line_values(self, f: S.ProductFilter, r: S.TimeRange, mode: int) -> np.ndarray:
        """Per-customer aggregate (int64, dense): spend, count, or first / last sale day
        (NO_DAY when none)."""
        key = ("values", f, r, mode)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if mode in (K.MODE_SPEND, K.MODE_COUNT, K.MODE_BOUGHT):
            spend, count = self.line_both(f, r, LK.W_SPEND if mode == K.MODE_SPEND else LK.W_COUNT)
            return spend if mode == K.MODE_SPEND else count
        want = LK.W_FIRST if mode == K.MODE_FIRST_DAY else LK.W_LAST
        _, _, first, last = self._purchases(f, r, want)
        s, e = self.day_bounds(r)
        if mode == K.MODE_FIRST_DAY:
            self.add_appended(f, s, e, None, None, None, first)
            out = _days(first, LK.FIRST_NONE)
        else:
            self.add_appended(f, s, e, None, None, last)
            out = _days(last, LK.LAST_NONE)
        self._memo[key] = out
        return out

    def add_appended(self, f: S.ProductFilter, s: int, e: int, spend, count, last, first=None) -> None:
        """Add the appended purchase lines on days [s, e] visible as of the as-of instant
        to dense per-customer spend / count, last and first sale day (each when given)."""
        d = self.delta("p")
        if d is None or s > e:
            return
        fields, luts = self.product_luts(f)
        none = np.zeros(1, np.int64)
        DK.purchases_add(d.addr, d.size, np.int64(s), np.int64(e), self.asof.micros, fields, luts,
                         spend is not None, last is not None, first is not None,
                         none if spend is None else spend, none if count is None else count,
                         none if last is None else last, none if first is None else first)

    def _batches(self, n: int):
        return [(a, min(n, a + SHARD_BATCH)) for a in range(0, n, SHARD_BATCH)]

    def shop_lut(self, shops):
        snap = self.snap
        lut = np.zeros(len(snap.dictionary("shop")) + 1, np.uint8)
        cmap = snap.code_of("shop")
        lut[[cmap[v] for v in shops if v in cmap]] = 1
        return lut


def _days(v: np.ndarray, none) -> np.ndarray:
    """First / last sale days with the kernel's 'none' replaced by NO_DAY, in place (v is
    the fresh output of one kernel pass)."""
    K.replaced(v, none, K.NO_DAY, v)
    return v


def plan_shared_scans(seg: S.Segment) -> dict:
    """{(filter, range): accumulators wanted (LK.W_*)} of the pairs that more than one
    purchase test or the ranking scan: those are computed once, with what all their uses
    want (spend for spend tests and rankings, the sale count for bought and count tests),
    instead of once per use."""
    uses: dict = {}

    def use(f, r, want):
        n, w = uses.get((f, r), (0, 0))
        uses[(f, r)] = (n + 1, w | want)
    for top in S.segment_conditions(seg):
        for c in S.walk(top):
            if isinstance(c, S.Spend):
                use(c.filter, c.range, LK.W_SPEND)
            elif isinstance(c, (S.Bought, S.PurchaseCount)):
                use(c.filter, c.range, LK.W_COUNT)
    ob = seg.order_by
    if ob is not None and ob.key in ("spend", "purchase_count"):
        use(ob.filter, ob.range, LK.W_SPEND if ob.key == "spend" else LK.W_COUNT)
    return {k: w for k, (n, w) in uses.items() if n > 1}


def merge_shared_scans(a: dict, b: dict) -> dict:
    """Two plans of one Context (segments evaluated together): what either wants."""
    out = dict(a)
    for k, w in b.items():
        out[k] = out.get(k, 0) | w
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
        if not text:  # an empty needle (e.g. no digits for phone) matches nothing
            continue
        pt, base = snap.text_pieces(f)
        codes = np.unique(needle_codes(text)) if len(text) >= 3 else np.zeros(0, np.uint32)
        TK.search_pieces(pt.addr, pt.size, base, codes, np.frombuffer(text, np.uint8), out)
        ctx.bytes_read += int(pt.size[TK.T_IDS].sum()) * 4 // max(1, len(codes)) if codes.size else \
            int(pt.size[TK.T_DATA].sum())
    _text_overlay(ctx, [(f, digits if f == "phone" else needle) for f in c.fields], TK.substring_mask, out)
    return _bm_from_mask(out)


def _surname(ctx, c: S.Surname):
    needle = (normalize_text(pa.array([c.text]))[0].as_py() or "").encode()
    out = np.zeros(ctx.snap.n, np.uint8)
    if needle:
        pt, base = ctx.snap.text_pieces("last_name")
        TK.equal_pieces(pt.addr, pt.size, base, np.frombuffer(needle, np.uint8), np.uint64(fnv1a64(needle)), out)
        ctx.bytes_read += 64 * base.size
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
    ps = snap.pieces("l")
    out = np.zeros(snap.n, np.uint8)
    stats = np.zeros((ps.n_shards, LK.STAT_N), np.int64)
    if ps.n_shards:
        LK.overdue_layby_mask(ps.addr, ps.size, ps.shard_ptr, ps.base, 0, ps.n_shards, ctx.asof.today_day, out,
                              stats)
    ctx.bytes_read += int(stats[:, LK.STAT_SCANNED].sum()) * 23
    d = ctx.delta("l")
    if d is not None:
        DK.overdue_set(d.addr, d.size, ctx.asof.today_day, out)
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
    ps = snap.pieces("v")
    s, e = ctx.day_bounds(c.range)
    vlo, vhi = c.cmp.bounds()
    lut = ctx.shop_lut(c.shops)
    d = ctx.delta("v")
    stats = np.zeros((ps.n_shards, LK.STAT_N), np.int64)
    clip = ctx._clip
    counts = out = None
    if d is not None:
        counts = np.zeros(snap.n, np.int64)
    else:
        out = np.zeros(snap.n, np.uint8)
    if ps.n_shards:
        for a, b in ctx._batches(ps.n_shards):
            ctx.check_deadline()
            args = (ps.addr, ps.size, ps.meta, ps.shard_ptr, ps.base, ps.n, a, b, clip(s), clip(e),
                    clip(ctx.asof.today_day - 1), ctx.all_time(c.range), ctx.asof.micros, bool(c.shops), lut,
                    ctx.access_paths)
            if counts is not None:
                LK.visit_count_values(*args, counts, stats)
            else:
                LK.visit_count_mask(*args, vlo, vhi, out, stats)
    ctx.bytes_read += (int(stats[:, LK.STAT_SCANNED].sum()) * (7 + (4 if c.shops else 0))
                       + int(stats[:, LK.STAT_DENSE].sum()) * 4)
    ctx.stats += stats.sum(axis=0)
    if counts is None:
        return _bm_from_mask(out)
    if s <= e:
        DK.visits_add(d.addr, d.size, np.int64(s), np.int64(e), ctx.asof.micros, bool(c.shops), lut, counts)
    return _bm_from_mask(((counts >= vlo) & (counts <= vhi)).view(np.uint8))


def _upcoming(ctx, c: S.UpcomingAppointment):
    snap = ctx.snap
    ps = snap.pieces("v")
    out = np.zeros(snap.n, np.uint8)
    lut = ctx.shop_lut(c.shops)
    stats = np.zeros((ps.n_shards, LK.STAT_N), np.int64)
    if ps.n_shards:
        for a, b in ctx._batches(ps.n_shards):
            ctx.check_deadline()
            LK.upcoming_mask(ps.addr, ps.size, ps.shard_ptr, ps.base, a, b, ctx._clip(ctx.asof.today_day - 1),
                             ctx.asof.micros, bool(c.shops), lut, out, stats)
    ctx.bytes_read += int(stats[:, LK.STAT_SCANNED].sum()) * 13
    d = ctx.delta("v")
    if d is not None:
        DK.upcoming_set(d.addr, d.size, bool(c.shops), lut, ctx.asof.micros, out)
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
LEAVES.update(BEHAVIOUR_LEAVES)   # engine/evaluation/behaviour.py
