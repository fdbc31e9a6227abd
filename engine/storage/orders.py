"""Order keys: purchases.order_id as one int64 per line.

A line's order key is the FNV-1a 64 of its order_id's UTF-8 text (never 0), or 0 when the
order_id is null (such lines form orders by (customer_id, purchased_at): shared/spec
behaviour.md). Orders are per customer, so a hash collision would have to fall between two
order ids of one customer to matter.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import build_kernels as K
from . import layout as LY


def order_keys(col) -> np.ndarray:
    """int64 order key of each value of a string (or integer) column; None: every key 0."""
    if col is None:
        return np.zeros(0, np.int64)
    if isinstance(col, pa.ChunkedArray):
        chunks = col.chunks
        n = len(col)
    else:
        chunks, n = [col], len(col)
    out = np.zeros(n, np.int64)
    at = 0
    for ch in chunks:
        if not pa.types.is_string(ch.type):
            ch = pc.cast(ch, pa.string())
        m = len(ch)
        if m:
            bufs = ch.buffers()
            offsets = np.frombuffer(bufs[1], np.int32)[ch.offset: ch.offset + m + 1]
            data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(1, np.uint8)
            valid = np.asarray(ch.is_valid().to_numpy(zero_copy_only=False), np.uint8)
            K.order_keys(data, offsets, valid, out[at:at + m])
        at += m
    return out


# ---------------------------------------------------------------- per-run order summaries
# A purchases run also stores its orders (the orders its own lines form), so that order
# counts and values read one row per order, or one entry per customer, not lines sorted per
# customer at query time (engine.evaluation.behaviour). Keys under the run's prefix:
#   o.day, o.ts, o.cust, o.net, o.sale, o.last   one row per order, sorted by (day, instant):
#       the local day and instant of its earliest line, its customer, net amount (refunds
#       included), 1 when it holds a non-refund line, the instant of its latest line;
#   o.all.num, o.all.net, o.all.sale   per customer (dense): orders, net sum and orders with
#       a sale, over the orders whose lines all lie on days up to the cutoff (runs of at
#       least DENSE_MIN_LINES lines: the aggregates' cutoff; absent in smaller runs);
#   o.tail     rows of the orders left out of o.all.* (ascending);
#   o.spread   rows of the orders whose lines are at more than one instant (ascending);
#   o.keys     the run's order keys (ascending, unique; lines without order_id have none);
#   o.meta     int64 [cutoff day, newest instant of the orders in o.all.*, first and last
#              instant of the orders without order_id (1, 0 when none)].
# Orders are exact per run; whether a customer's order can have lines in two runs (or in
# appended live lines) is checked when reading (o.keys, the instants of o.meta).
ORDER_ROW_COLUMNS = {"o.day": np.int32, "o.ts": np.int64, "o.cust": np.uint16, "o.net": np.int64,
                     "o.sale": np.uint8, "o.last": np.int64}
ORDER_COLUMNS = {**ORDER_ROW_COLUMNS, "o.all.num": np.int32, "o.all.net": np.int64, "o.all.sale": np.int32,
                 "o.tail": np.int64, "o.spread": np.int64, "o.keys": np.int64, "o.meta": np.int64,
                 "m.days": np.int32, "m.osale": np.int32}   # month marks (engine.storage.runs)
DENSE_MIN_LINES = 4096
NO_MICROS = -(2**62)


def _grouped(cust, key, ts, null):
    """(perm, group starts): the lines grouped by order, each group in time order. The lines
    come sorted by (day, instant), so a stable sort by customer groups the lines without
    order_id by (customer, instant) with no further key; keyed lines (often none) are sorted
    by (customer, key, instant)."""
    nul = np.flatnonzero(null)
    nul = nul[np.argsort(cust[nul].astype(np.uint16), kind="stable")]   # a radix sort
    keyed = np.flatnonzero(~null)
    keyed = keyed[np.lexsort((ts[keyed], key[keyed], cust[keyed]))]
    starts = []
    for part, ident in ((nul, ts), (keyed, key)):
        st = np.ones(part.size, bool)
        if part.size:
            c, i = cust[part], ident[part]
            st[1:] = (c[1:] != c[:-1]) | (i[1:] != i[:-1])
        starts.append(st)
    return np.concatenate([nul, keyed]), np.concatenate(starts)


def _per_customer(cust, values, n):
    """Exact int64 sums of values per customer (< n)."""
    out = np.zeros(n, np.int64)
    if cust.size:
        order = np.argsort(cust.astype(np.uint16), kind="stable")   # local customers: a radix sort
        c = cust[order]
        first = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
        out[c[first]] = np.add.reduceat(values[order], first)
    return out


def order_summaries(cols: dict, n: int, cutoff: int, dense: bool = True) -> dict:
    """The o.* arrays of one run's purchase lines (columns cust, day, ts, amount, order;
    sorted by (day, instant); local customers < n); with `dense` (and DENSE_MIN_LINES lines),
    per-customer sums over the orders ending on days <= cutoff."""
    cust = np.asarray(cols["cust"], np.int64)
    day, ts = np.asarray(cols["day"], np.int32), np.asarray(cols["ts"], np.int64)
    amount = np.asarray(cols["amount"], np.int64)
    key = np.asarray(cols.get("order", np.zeros(0, np.int64)), np.int64)
    if key.size != cust.size:
        key = np.zeros(cust.size, np.int64)
    m = cust.size
    null = key == 0
    perm, start = _grouped(cust, key, ts, null)
    first = np.flatnonzero(start)                      # each order's lines: perm[first[g]:last[g] + 1]
    last = np.append(first[1:], m) - 1
    net = np.add.reduceat(amount[perm], first) if m else np.zeros(0, np.int64)
    sale = np.add.reduceat((amount[perm] >= 0).astype(np.int64), first) > 0 if m else np.zeros(0, bool)
    # orders by (day, instant) of their earliest line, i.e. by that line's position in the run
    slot = np.full(m, -1, np.int64)
    slot[perm[first]] = np.arange(first.size)
    rows = slot[slot >= 0]
    first, last, net, sale = first[rows], last[rows], net[rows], sale[rows]
    out = {"o.day": day[perm[first]], "o.ts": ts[perm[first]], "o.cust": cust[perm[first]].astype(np.uint16),
           "o.net": net, "o.sale": sale.astype(np.uint8), "o.last": ts[perm[last]]}
    lastday, null_r = day[perm[last]], null[perm[first]]
    dense = dense and m >= DENSE_MIN_LINES
    inc = (lastday <= cutoff) if dense else np.zeros(rows.size, bool)
    meta = np.array([cutoff if dense else -(2**31), NO_MICROS, 1, 0], np.int64)
    if dense:
        c = out["o.cust"][inc].astype(np.int64)
        num = np.bincount(c, minlength=n).astype(np.int32)
        sale = np.bincount(c[out["o.sale"][inc] != 0], minlength=n).astype(np.int32)
        out.update({"o.all.num": num, "o.all.net": _per_customer(c, out["o.net"][inc], n), "o.all.sale": sale})
        if inc.any():
            meta[1] = int(out["o.last"][inc].max())
    if null_r.any():
        meta[2], meta[3] = int(out["o.ts"][null_r].min()), int(out["o.last"][null_r].max())
    out["o.tail"] = np.flatnonzero(~inc).astype(np.int64)
    out["o.spread"] = np.flatnonzero(out["o.last"] != out["o.ts"]).astype(np.int64)
    out["o.keys"] = np.unique(key[~null])
    out["o.meta"] = meta
    return {k: np.ascontiguousarray(v, ORDER_COLUMNS[k]) for k, v in out.items()}

assert tuple(ORDER_COLUMNS).index("o.day") == LY.O_DAY and tuple(ORDER_COLUMNS).index("o.meta") == LY.O_META
assert len(ORDER_COLUMNS) == LY.O_NCOLS
