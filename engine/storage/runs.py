"""Sorted runs: one shard's lines of one table, as the columns a version stores.

A run's lines are sorted by (local day, instant), so a date range is a slice found by
binary search. A purchases run also stores, per product field:
  x.<field>.codes / .ptr / .pos   posting lists: the positions of each code's lines
                                  (ascending), so a filter reads only its values' lines;
  a.<field>.codes / .ptr / .cust / .spend / .count / .first / .last
                                  all-time aggregates per (code, customer) of the lines up to
                                  the run's aggregate cutoff day, of the codes that keep them
                                  (keep_codes: decided code by code; a code without them is
                                  read through its posting list);
and a.all.spend / .count / .first / .last: the same per customer without a filter (dense);
  m.days / .spend / .count / .last   month marks: per local month start of the run's span
                                  (the newest MONTH_MARKS) and customer, spend, sale count and
                                  last sale day of the lines dated before it (runs with at
                                  least one line per customer); m.osale: the same for the
                                  run's orders with a sale (o.*).
For each field pair of the dataset's pair indexes (manifest.pairs: pairs that often occur
together on a line, chosen from the first load's lines), the same again keyed by the pair's
composite code (code_f << 32 | code_g, uint64) over the lines that have both: x.<f>+<g>.*
and a.<f>+<g>.*, so a filter on both reads only the lines, or customers, of the pair.
Lines newer than the cutoff (AGG_TAIL_DAYS before the run's newest day, or before the day
the run is built when it has lines dated later: bookings, mistakes) are left out of the
aggregates, so evaluating as of a recent instant still uses them and reads the tail.

Column arrays of a table (`LINE_COLUMNS`) carry local customer ids (`cust`, uint16) and
the table's values; product codes are uint32 (code 0 = null).
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Dict, Optional, Tuple

import numpy as np

from ..model import timerange
from ..model.segment import PRODUCT_FIELDS
from . import build_kernels as K
from . import layout as LY
from .manifest import Run
from .orders import order_summaries

AGG_TAIL_DAYS = 7      # newest days of a run left out of its aggregates
AGG_MIN_LINES = 4096   # smaller runs get no aggregates (scanning them is cheaper than storing them)
AGG_MAX_RATIO = 0.5    # a code's aggregates are kept when entries <= this x its lines (keep_codes)
AGG_CODE_LINES = 2048  # ... or when it has this many lines (gathering them costs more than its entries)
MONTH_MARKS = 25       # month marks a run keeps at most (its newest: ranges reach back from the present)

LINE_COLUMNS = {
    "p": {"cust": np.uint16, "day": np.int32, "ts": np.int64, "amount": np.int64, "quantity": np.int32,
          **{f"c.{f}": np.uint32 for f in PRODUCT_FIELDS}, "order": np.int64},
    "v": {"cust": np.uint16, "day": np.int32, "ts": np.int64, "status": np.uint8, "shop": np.uint32},
    "l": {"cust": np.uint16, "opened": np.int32, "due": np.int32, "balance": np.int64, "status": np.uint8},
}
MARK_COLUMNS = {"days": np.int32, "spend": np.int64, "count": np.int32, "last": np.int32}
AGG_COLUMNS = {"codes": np.uint32, "ptr": np.int64, "cust": np.uint16, "spend": np.int64,
               "count": np.int32, "first": np.int32, "last": np.int32}
ALL_COLUMNS = {"spend": np.int64, "count": np.int32, "first": np.int32, "last": np.int32}
POSTING_COLUMNS = {"codes": np.uint32, "ptr": np.int64, "pos": np.uint32}
MAX_PAIRS = LY.MAX_PAIRS  # pair indexes a dataset keeps at most


def pair_name(pair) -> str:
    return f"{pair[0]}+{pair[1]}"


def pair_codes(cf: np.ndarray, cg: np.ndarray) -> np.ndarray:
    """Composite codes of lines with both fields set (0 where either is null)."""
    both = (cf != 0) & (cg != 0)
    return np.where(both, (cf.astype(np.uint64) << np.uint64(32)) | cg.astype(np.uint64), np.uint64(0))


DENSE_PAIR_CODES = 1 << 24   # a pair whose value combinations fit here gets a counting sort


def _pair_postings(cf: np.ndarray, cg: np.ndarray) -> tuple:
    """Posting lists of a field pair, keyed by composite code (code_f << 32 | code_g)."""
    wf = int(cf.max()) + 1 if cf.size else 1
    wg = int(cg.max()) + 1 if cg.size else 1
    if wf * wg > DENSE_PAIR_CODES:
        return _postings_of(pair_codes(cf, cg))
    both = (cf != 0) & (cg != 0)
    dense = np.where(both, cf.astype(np.uint32) * np.uint32(wg) + cg.astype(np.uint32), np.uint32(0))
    present, ptr, pos = K.postings(dense, wf * wg)
    f, g = present // np.uint32(wg), present % np.uint32(wg)
    return (f.astype(np.uint64) << np.uint64(32)) | g.astype(np.uint64), ptr, pos


def _postings_of(codes) -> tuple:
    """(present codes ascending, ptr, pos) for codes of any width (0 = none)."""
    if codes.dtype == np.uint32:
        ncodes = int(codes.max()) if codes.size else 0
        return K.postings(codes, ncodes)
    uniq, inverse = np.unique(codes, return_inverse=True)
    ranks = inverse.astype(np.uint32)
    if uniq.size and uniq[0] == 0:
        present, ptr, pos = K.postings(ranks, uniq.size - 1)
    else:
        present, ptr, pos = K.postings(ranks + np.uint32(1), uniq.size)
        present = present - np.uint32(1)
    return uniq[present], ptr, pos


def empty_columns(table: str) -> Dict[str, np.ndarray]:
    return {k: np.zeros(0, dt) for k, dt in LINE_COLUMNS[table].items()}


def sort_order(day: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Order of lines by (local day, instant), ties in input order."""
    return K.day_time_order(np.ascontiguousarray(day, np.int32), np.ascontiguousarray(ts, np.int64))


def build_run(table: str, cols: Dict[str, np.ndarray], n: int, part: str, key: str,
              aggregates: bool = True, pairs=()) -> Tuple[Dict[str, np.ndarray], Run]:
    """The stored arrays (key suffix -> array) and the Run entry of one shard's lines of
    `table` (columns unsorted, local customer ids < n); `pairs`: the dataset's pair indexes."""
    rows = int(cols["cust"].size)
    if table == "l":
        order = np.argsort(cols["cust"], kind="stable")
        out = {k: np.ascontiguousarray(cols[k][order], dt) for k, dt in LINE_COLUMNS[table].items()}
        return out, Run(part, key, rows)
    order = sort_order(cols["day"], cols["ts"])
    out = {k: np.ascontiguousarray(cols[k][order], dt) for k, dt in LINE_COLUMNS[table].items()}
    for k, a in cols.items():  # extra per-line columns travel with the lines
        if k not in out:
            out[k] = np.ascontiguousarray(a[order])
    if table == "p" and not out["order"].any():
        del out["order"]   # no order_id on any line: read as all zeros (as in runs from before order keys)
    day = out["day"]
    run = Run(part, key, rows, int(day[0]) if rows else 0, int(day[-1]) if rows else 0,
              int(out["ts"].max()) if rows else 0)
    if table == "v":
        if aggregates and rows >= AGG_MIN_LINES and not LY.lean_shard(n):
            out, run = _visit_aggregates(out, run, n)
        return out, run
    for f in PRODUCT_FIELDS:
        out[f"x.{f}.codes"], out[f"x.{f}.ptr"], out[f"x.{f}.pos"] = _postings_of(out[f"c.{f}"])
    if LY.lean_shard(n):   # lines and single-field posting lists only
        return out, run
    for pair in pairs:
        name = pair_name(pair)
        out[f"x.{name}.codes"], out[f"x.{name}.ptr"], out[f"x.{name}.pos"] = \
            _pair_postings(out[f"c.{pair[0]}"], out[f"c.{pair[1]}"])
    run = replace(run, pairs=tuple(pair_name(p) for p in pairs))
    out.update(order_summaries(out, n, _cutoff(day), dense=aggregates))   # o.*: engine/storage/orders.py
    if aggregates and rows >= AGG_MIN_LINES:
        out, run = _with_aggregates(out, run, n, pairs)
        if rows >= n:
            out.update(_month_marks(out, n))
    return out, run


def month_starts(first_day: int, last_day: int, keep: int) -> np.ndarray:
    """The local days that begin a month in (first_day, last_day], the newest `keep`."""
    if last_day <= first_day:
        return np.zeros(0, np.int32)
    d = timerange.from_day_number(last_day).replace(day=1)
    out = []
    while len(out) < keep and timerange.day_number(d) > first_day:
        out.append(timerange.day_number(d))
        d = timerange.add_months(d, -1)
    return np.asarray(out[::-1], np.int32)


def _month_marks(out: dict, n: int) -> dict:
    """m.days / m.spend / m.count / m.last: per local month start of the run's span (the
    newest MONTH_MARKS) and customer, the unfiltered sums of the lines dated before it, so
    a range over whole months is two rows of differences plus the lines of its partial
    months at either end (engine.evaluation.line_kernels)."""
    day = out["day"]
    marks = month_starts(int(day[0]), int(day[-1]), MONTH_MARKS)
    if marks.size < 2:
        return {}
    spend, count, last = K.month_marks(out["cust"], out["amount"], day, marks, n)
    got = {"m.days": marks, "m.spend": spend, "m.count": count, "m.last": last}
    if "o.day" in out:   # orders with a sale before each mark: the same sums over the order rows
        sale, _, _ = K.month_marks(out["o.cust"], out["o.sale"].astype(np.int64), out["o.day"], marks, n)
        got["m.osale"] = sale.astype(np.int32)
    return got


def _with_aggregates(out: dict, run: Run, n: int, pairs=()):
    day = out["day"]
    cutoff = _cutoff(day)
    upto = int(np.searchsorted(day, np.int32(cutoff), "right"))
    if upto == 0:
        return out, run
    cust, amount = out["cust"], out["amount"]
    for k, a in zip(ALL_COLUMNS, K.customer_aggregates(cust, amount, day, upto, n)):
        out[f"a.all.{k}"] = a
    kept = []
    for f in list(PRODUCT_FIELDS) + [pair_name(p) for p in pairs]:
        ptr, pos = out[f"x.{f}.ptr"], out[f"x.{f}.pos"]
        if not pos.size:
            continue
        keep = keep_codes(*K.code_entries(cust, ptr, pos, upto, n))
        if not keep.any():
            continue
        used, *parts = K.code_aggregates(cust, amount, day, out[f"x.{f}.codes"], ptr, pos, upto, n, keep)
        out[f"a.{f}.codes"] = out[f"x.{f}.codes"][used]
        for k, a in zip(list(AGG_COLUMNS)[1:], parts):
            out[f"a.{f}.{k}"] = a
        kept.append(f)
    max_micros = int(out["ts"][:upto].max())
    return out, replace(run, agg_cutoff_day=cutoff, agg_max_micros=max_micros, agg_fields=tuple(kept))


def keep_codes(lines: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """Which codes keep per-customer aggregates, given each code's lines before the cutoff
    and the (code, customer) entries they make: a code whose customers buy it again and
    again (entries <= AGG_MAX_RATIO x lines: the aggregates are the smaller read and the
    smaller store), or one with at least AGG_CODE_LINES lines (gathering a line through a
    posting list touches a cache line per column, an entry is read in sequence, and a
    code's entries are at most its lines). The rest, a field's long tail of codes with
    few lines each, answer from their posting lists at about the same cost."""
    return (lines > 0) & ((entries <= AGG_MAX_RATIO * lines) | (lines >= AGG_CODE_LINES))


def _cutoff(day: np.ndarray) -> int:
    """The last day the aggregates hold: AGG_TAIL_DAYS before the newest day, or before
    today (UTC, at build time) when lines are dated after it."""
    today = int(time.time() // 86400)
    return min(int(day.max()), today) - AGG_TAIL_DAYS


def _visit_aggregates(out: dict, run: Run, n: int):
    """Per customer: completed visits, first and last completed day, of the visits up to
    the cutoff day (a.all.count / .first / .last). The cutoff follows the completed visits:
    booked ones run ahead of the data's present."""
    day = out["day"]
    completed = day[out["status"] == LY.VISIT_COMPLETED]
    if not completed.size:
        return out, run
    cutoff = _cutoff(completed)
    upto = int(np.searchsorted(day, np.int32(cutoff), "right"))
    if upto == 0:
        return out, run
    done = out["status"][:upto] == LY.VISIT_COMPLETED
    cust = out["cust"][:upto][done]
    d = day[:upto][done]
    out["a.all.count"] = np.bincount(cust, minlength=n).astype(np.int32)
    first = np.full(n, LY.FIRST_NONE, np.int32)
    last = np.full(n, LY.LAST_NONE, np.int32)
    np.minimum.at(first, cust, d)
    np.maximum.at(last, cust, d)
    out["a.all.first"], out["a.all.last"] = first, last
    return out, replace(run, agg_cutoff_day=cutoff, agg_max_micros=int(out["ts"][:upto].max()))


def concat_columns(table: str, parts: list) -> Dict[str, np.ndarray]:
    """The line columns of several runs (or batches) of one shard, concatenated (unsorted)."""
    if not parts:
        return empty_columns(table)
    if len(parts) == 1:
        return dict(parts[0])
    keys = set(parts[0])
    for p in parts[1:]:
        keys &= set(p)
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def run_line_columns(table: str, arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The per-line columns of a stored run (posting lists and aggregates left out)."""
    return {k: v for k, v in arrays.items() if not k.startswith(("x.", "a.", "o.", "m."))}


def drop_customers(cols: Dict[str, np.ndarray], local_ids: Optional[np.ndarray]) -> Dict[str, np.ndarray]:
    """Columns without the lines of the given local customer ids."""
    if local_ids is None or not local_ids.size:
        return cols
    keep = ~np.isin(cols["cust"], local_ids)
    return {k: v[keep] for k, v in cols.items()}
