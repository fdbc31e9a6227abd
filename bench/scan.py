"""What the scan kernels must read, and how fast they read it.

The bytes a scan needs are computed from the snapshot's own slices (the per-shard
[lo, mid, hi) line ranges engine.evaluation.evaluate.Context cuts for the range) and the array dtypes
in Snapshot.meta; "lines" are the lines in the range's slices, summed over shards.

  purchases (bought / spend / purchase_count, and order_by spend / purchase_count /
  last_purchase), engine.evaluation.kernels.line_agg_mask / line_agg_values:
      lines x (cust + amount + code x filtered fields) + lines_after_mid x ts 8 B
  visited (visit_count_mask):
      lines x (status 1 B + cust + shop 4 B when shops are given) + lines_after_mid x ts 8 B
  upcoming_appointment (upcoming_mask), lines from yesterday on:
      lines x status 1 B + booked lines x (ts 8 B + cust + shop 4 B when shops are given)
  overdue_layby (overdue_layby_mask), every layby:
      laybys x (cust + opened 4 B + due 4 B + balance 8 B + status 1 B)
with cust = 2 B (uint16 shard-local ids) and code = 2 B (uint16 dictionary codes) on the
current format. lines_after_mid are the lines on days from yesterday on, whose instants
are compared with the as-of instant. Every field of a filter is counted for every line
(the kernel stops at the first field that rejects, but a 64-byte cache line of a code row
holds 32 lines, so the rows are streamed anyway), and so are cust and amount: an upper
bound of the kernel's reads, a lower bound of its memory traffic. Not counted: the
per-customer accumulators and the output mask (customers x 9 B) and the bitmap made from
it. Effective GB/s = bytes / time; the fraction is of bench.bandwidth's measured limit.
"""
from __future__ import annotations

import json
import statistics
import time
from typing import List, Optional

import numpy as np

from segments.engine.evaluation import kernels as K
from segments.engine.evaluation import output
from segments.engine.model import segment as S
from segments.engine.evaluation.evaluate import Context
from segments.engine.model.segment_json import dump_condition, dump_range
from segments.engine.model.timerange import MAX_DAY, MIN_DAY

PURCHASE_LEAVES = (S.Bought, S.Spend, S.PurchaseCount)
SCAN_LEAVES = PURCHASE_LEAVES + (S.Visited, S.UpcomingAppointment, S.OverdueLayby)
RANK_MODES = {"spend": K.MODE_SPEND, "purchase_count": K.MODE_COUNT, "last_purchase": K.MODE_LAST_DAY}


def _itemsize(snap, key: str, default: str) -> int:
    return np.dtype(snap.meta.get(key, default)).itemsize


def _line_counts(ctx: Context, table: str, r: S.TimeRange):
    s, e = ctx.day_bounds(r)
    lo, mid, hi = ctx.slices(table, s, e)
    return int((hi - lo).sum()), int((hi - np.maximum(mid, lo)).sum())


def purchase_bytes(ctx: Context, f: S.ProductFilter, r: S.TimeRange) -> tuple:
    """(bytes, lines) a purchase-line scan over filter f and range r must read."""
    snap = ctx.snap
    cust, code = _itemsize(snap, "cust_dtype", "uint16"), _itemsize(snap, "code_dtype", "int32")
    amount = _itemsize(snap, "amount_dtype", "int64")
    lines, late = _line_counts(ctx, "p", r)
    return lines * (cust + amount + code * len(f.fields)) + late * 8, lines


def leaf_bytes(ctx: Context, c: S.Condition) -> Optional[tuple]:
    """(bytes, lines) for a scan leaf, None for leaves that are not line scans."""
    snap = ctx.snap
    cust = _itemsize(snap, "cust_dtype", "uint16")
    t = type(c)
    if t in PURCHASE_LEAVES:
        return purchase_bytes(ctx, c.filter, c.range)
    if t is S.Visited:
        lines, late = _line_counts(ctx, "v", c.range)
        return lines * (1 + cust + (4 if c.shops else 0)) + late * 8, lines
    if t is S.UpcomingAppointment:
        _, lo, _ = ctx.slices("v", MIN_DAY, MAX_DAY)
        status = snap.shard_list("v", "status", np.uint8)
        lines = sum(int(a.size - lo[k]) for k, a in enumerate(status))
        booked = sum(int(np.count_nonzero(a[lo[k]:] == K.VISIT_BOOKED)) for k, a in enumerate(status))
        return lines + booked * (8 + cust + (4 if c.shops else 0)), lines
    if t is S.OverdueLayby:
        rows = int(snap.meta["rows"].get("laybys", 0))
        return rows * (cust + 4 + 4 + 8 + 1), rows
    return None


def scan_leaves(seg: S.Segment) -> list:
    """The distinct scan leaves a segment's evaluation runs (evaluation memoises equal ones)."""
    seen = []
    for top in S.segment_conditions(seg):
        for c in S.walk(top):
            if isinstance(c, SCAN_LEAVES) and c not in seen:
                seen.append(c)
    return seen


def count_scan(snap, seg: S.Segment, as_of) -> dict:
    """Bytes and lines the line scans of one `count` read (ranking too when the limit cut needs it)."""
    ctx = Context(snap, as_of)
    total, lines = 0, 0
    for c in scan_leaves(seg):
        b, n = leaf_bytes(ctx, c)
        total, lines = total + b, lines + n
    ranked = False
    ob = seg.order_by
    if ob is not None and ob.key in RANK_MODES and seg.limit is not None:
        ranked = output.evaluate(snap, seg, as_of, None)._values is not None
        if ranked:
            b, n = purchase_bytes(ctx, ob.filter, ob.range)
            total, lines = total + b, lines + n
    return {"scan_bytes": int(total), "scan_lines": int(lines), "rank_scan": ranked}


def label(c) -> str:
    """A short label: the condition's JSON, or `order_by {...}` for a ranking."""
    if isinstance(c, S.OrderBy):
        d = {"key": c.key}
        if c.filter.fields:
            d["filter"] = {k: list(v) for k, v in c.filter.fields}
        if c.range.kind != "ever":
            d["range"] = dump_range(c.range)
        return "order_by " + json.dumps(d, ensure_ascii=False)
    return json.dumps(dump_condition(c), ensure_ascii=False)


def _median_ms(fn, repeat: int) -> tuple:
    fn()                                      # warm-up: compile, lazy loading
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(runs), runs


def time_kernels(snap, suite, as_of, repeat: int, bandwidth_gbps: float) -> List[dict]:
    """Each distinct scan leaf (and purchase ranking) of the suite evaluated alone: median ms,
    bytes, effective GB/s and its fraction of the bandwidth. Leaf time includes making its
    result bitmap; ranking time is engine.evaluation.evaluate.Context.line_values alone."""
    items = []
    for bs in suite:
        for c in scan_leaves(bs.segment):
            if c not in items:
                items.append(c)
        ob = bs.segment.order_by
        if ob is not None and ob.key in RANK_MODES and ob not in items:
            items.append(ob)
    out = []
    for c in items:
        ctx = Context(snap, as_of)
        if isinstance(c, S.OrderBy):
            b, lines = purchase_bytes(ctx, c.filter, c.range)
            fn = (lambda c=c: Context(snap, as_of).line_values(c.filter, c.range, RANK_MODES[c.key]))
            kernel = "line_agg_values"
        else:
            b, lines = leaf_bytes(ctx, c)
            fn = (lambda c=c: Context(snap, as_of).eval(c))
            kernel = {S.Visited: "visit_count_mask", S.UpcomingAppointment: "upcoming_mask",
                      S.OverdueLayby: "overdue_layby_mask"}.get(type(c), "line_agg_mask")
        ms, runs = _median_ms(fn, repeat)
        gbps = b / (ms / 1000) / 1e9 if ms > 0 else None
        out.append({"leaf": label(c), "kernel": kernel, "lines": lines, "bytes": int(b),
                    "ms": round(ms, 3), "runs_ms": [round(x, 3) for x in runs],
                    "gbps": None if gbps is None else round(gbps, 3),
                    "fraction_of_bandwidth": None if gbps is None else round(gbps / bandwidth_gbps, 4)})
    return out
