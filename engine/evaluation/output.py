"""Segment-level evaluation and the outputs: count, preview, materialize, explain.

Result = top `limit` of (include - exclude) by the ranking (ties: ascending customer_id),
then union (append - exclude); everything intersected with the alive customers.
Internal ids ascend with customer_id, so "ascending customer_id" is bitmap order.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from typing import Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
from pyroaring import BitMap

from . import kernels as K
from ..model import segment as S
from ..errors import InvalidArgument
from . import behaviour_kernels as BK
from .behaviour import average_order_values, order_values, population_histogram
from .evaluate import Context, merge_shared_scans, plan_shared_scans
from ..results import CountResult, ExplainNode, Materialized, Preview
from ..model.schema import PROFILE_FIELDS
from ..model.segment_json import dump_condition
from ..model.timerange import from_day_number, parse_instant

RANK_MODES = {"spend": K.MODE_SPEND, "purchase_count": K.MODE_COUNT, "last_purchase": K.MODE_LAST_DAY}
INT64_NULL = np.int64(-(2**63))


class Evaluated:
    """A segment's final members plus what ordering them needs."""

    def __init__(self, ctx: Context, members: BitMap, seg: S.Segment):
        self.ctx = ctx
        self.members = members
        self.seg = seg
        self._values = None

    def rank_values(self) -> Optional[np.ndarray]:
        """Dense per-customer ranking values (int64; INT64_NULL = absent), or None."""
        if self.seg.order_by is None:
            return None
        if self._values is None:
            self._values = rank_values(self.ctx, self.seg.order_by)
        return self._values

    def ordered_ids(self, n: Optional[int] = None) -> np.ndarray:
        """Internal ids in output order (ranking, else ascending customer_id); first n."""
        ids = np.frombuffer(self.members.to_array(), dtype=np.uint32).astype(np.int64)
        snap = self.ctx.snap
        # after live changes new customer_ids may sort before older ones: order by them
        cid = None if getattr(snap, "ordered", True) else snap.ext_ids()[ids]
        vals = self.rank_values()
        if vals is None:
            if cid is not None:
                ids = ids[np.argsort(cid, kind="stable")]
            return ids if n is None else ids[:n]
        return _rank_order(ids, vals, self.seg.order_by.descending, n, cid)


def _rank_order(ids: np.ndarray, values: np.ndarray, descending: bool, n: Optional[int],
                cid: Optional[np.ndarray] = None) -> np.ndarray:
    """ids sorted by their dense ranking `values` (absent last), ties by ascending
    customer_id (`cid`, default the ids themselves, which ascend with customer_id in a
    version)."""
    if n == 0:   # a limit of 0 (a cluster partition holding none of the top customers)
        return ids[:0]
    tie = ids if cid is None else cid
    key = np.empty(ids.size, np.int64)
    K.rank_keys(np.ascontiguousarray(values, np.int64), ids, descending, INT64_NULL, key)
    if n is not None and n < ids.size:
        # the n smallest (key, tie): every key below the n-th smallest key, then the
        # smallest ties among the keys equal to it (linear time; ties can be many)
        kth = np.partition(key, n - 1)[n - 1]
        below = np.flatnonzero(key < kth)
        equal = np.flatnonzero(key == kth)
        need = n - below.size
        if equal.size > need:
            equal = equal[np.argpartition(tie[equal], need - 1)[:need]]
        sel = np.concatenate([below, equal])
        ids, key, tie = ids[sel], key[sel], tie[sel]
    order = np.lexsort((tie, key))
    out = ids[order]
    return out if n is None else out[:n]


def rank_values(ctx: Context, ob: S.OrderBy) -> np.ndarray:
    """Dense ranking values for every customer."""
    if ob.key == "loyalty_points":
        return np.asarray(ctx.snap.array("c/loyalty_points", np.int64))
    if ob.key == "order_count":
        return order_values(ctx, ob.filter, ob.range, BK.ORDERS_COUNT)[0]
    if ob.key == "average_order_value":
        return average_order_values(ctx, ob.range)
    vals = ctx.line_values(ob.filter, ob.range, RANK_MODES[ob.key])
    if ob.key == "last_purchase":
        vals = np.where(vals == K.NO_DAY, INT64_NULL, vals)
    return vals


def evaluate(snap, seg: S.Segment, as_of, deadline, trace: bool = False, ctx: Optional[Context] = None,
             references=None, reference_path: tuple = ()) -> Evaluated:
    """The final members of a segment as of an instant. `ctx`: a Context of the same
    snapshot and instant shared by several segments (their common conditions are evaluated
    once; tracked segments' maintenance does so). references: what in_segment and in_group
    read (segment(name) -> Segment, group_members(name) -> customer_ids), or None;
    reference_path: the saved segments being evaluated around this one (cycle check)."""
    if ctx is None:
        ctx = Context(snap, as_of, deadline)
        ctx.shared_scans = plan_shared_scans(seg)
    else:
        ctx.shared_scans = merge_shared_scans(ctx.shared_scans, plan_shared_scans(seg))
    _bind_references(ctx, snap, deadline, references, reference_path)
    if seg.order_by is not None and seg.order_by.key == "last_purchase":
        ctx.last_day_filters = ctx.last_day_filters | {seg.order_by.filter}
    if getattr(snap, "empty", False):
        return Evaluated(ctx, BitMap(), seg)
    if trace:
        ctx.trace = {}
    alive = snap.alive
    base = ctx.eval(seg.include) & alive
    excl = ctx.eval(seg.exclude) if seg.exclude is not None else None
    if excl is not None:
        base -= excl
    values = None
    if seg.limit is not None and len(base) > seg.limit:
        ev = Evaluated(ctx, base, seg)
        base = BitMap(ev.ordered_ids(seg.limit).astype(np.uint32))
        values = ev._values  # the ranking the cut used: preview / materialize reuse it
    if seg.append:
        app = BitMap.union(*[ctx.eval(c) for c in seg.append]) & alive
        if excl is not None:
            app -= excl
        base |= app
    out = Evaluated(ctx, base, seg)
    out._values = values
    return out


def _bind_references(ctx: Context, snap, deadline, references, reference_path: tuple) -> None:
    """What in_segment, in_group (and a cluster partition's percentiles) read, given to ctx."""
    ctx.references = references
    ctx.reference_path = reference_path
    instant = ctx.asof.instant   # not ctx itself: a ctx <-> closure cycle kept snapshots (and
    # their parts' descriptors) alive until the cyclic collector ran
    ctx.evaluate_reference = lambda name, ref: evaluate(
        snap, ref, instant, deadline, references=references,
        reference_path=reference_path + (name,)).members


def value_histograms(snap, items, as_of=None, deadline=None, references=None) -> list:
    """For each (Value, among) of `items`: (sorted distinct values, count of each) over the
    population of a percentile with that value and among (behaviour.population_histogram),
    the first round of a percentile or RFM ranked across cluster partitions."""
    ctx = Context(snap, _as_of(as_of), deadline)
    _bind_references(ctx, snap, deadline, references, ())
    if getattr(snap, "empty", False):
        return [(np.zeros(0, np.int64), None) for _ in items]
    return [population_histogram(ctx, value, among) for value, among in items]


def parse_as_of(as_of):
    """An as-of argument (None, an aware datetime, or ISO-8601 text) as a datetime or None."""
    return _as_of(as_of)


def _as_of(as_of):
    if as_of is None or isinstance(as_of, dt.datetime):
        return as_of
    if isinstance(as_of, str):
        return parse_instant(as_of)
    raise InvalidArgument("as_of", f"expected an instant, got {as_of!r}")


def count(snap, seg: S.Segment, as_of=None, deadline=None, references=None) -> CountResult:
    """Result size and email / SMS reachable counts."""
    t0 = time.perf_counter()
    ev = evaluate(snap, seg, _as_of(as_of), deadline, references=references)
    m = ev.members
    if getattr(snap, "empty", False):
        return CountResult(0, 0, 0, tuple(ev.ctx.missing_ids), 0.0)
    return CountResult(len(m), m.intersection_cardinality(snap.bitmap("email_reach")),
                       m.intersection_cardinality(snap.bitmap("sms_reach")),
                       tuple(sorted(set(ev.ctx.missing_ids))), (time.perf_counter() - t0) * 1000)


def _check_fields(fields: Sequence[str]) -> Tuple[str, ...]:
    """Known profile fields, each once (a table cannot hold a column twice)."""
    seen = {}
    for i, f in enumerate(fields):
        if f not in PROFILE_FIELDS:
            shown = repr(f) if isinstance(f, str) and len(f) <= 64 else f"of {len(f)} characters"
            raise InvalidArgument(f"fields[{i}]", f"unknown field {shown} (expected one of: {', '.join(PROFILE_FIELDS)})")
        if f in seen:
            raise InvalidArgument(f"fields[{i}]", f"field {f!r} is asked for twice (first at fields[{seen[f]}])")
        seen[f] = i
    return tuple(fields)


def _rank_column(ev: Evaluated, ids: np.ndarray):
    vals = ev.rank_values()
    if vals is None:
        return None
    return vals[ids]


def _rank_py(key: str, v: int):
    if v == INT64_NULL:
        return None
    return from_day_number(int(v)) if key == "last_purchase" else int(v)


def preview(snap, seg: S.Segment, n: int = 20, fields=(), as_of=None, deadline=None, references=None) -> Preview:
    """The first n customers with chosen fields and the ranking value."""
    t0 = time.perf_counter()
    fields = _check_fields(fields)
    if not isinstance(n, int) or n < 0:
        raise InvalidArgument("n", f"must be a non-negative integer, got {n!r}")
    ev = evaluate(snap, seg, _as_of(as_of), deadline, references=references)
    if getattr(snap, "empty", False):
        return Preview([], 0, tuple(ev.ctx.missing_ids), 0.0)
    rows = _preview_rows(ev, ev.ordered_ids(n), fields)
    return Preview(rows, len(ev.members), tuple(sorted(set(ev.ctx.missing_ids))),
                   (time.perf_counter() - t0) * 1000)


def _preview_rows(ev: Evaluated, ids: np.ndarray, fields: Tuple[str, ...]) -> list:
    """Preview rows of internal ids (already in output order)."""
    snap = ev.ctx.snap
    ext = snap.ext_ids()[ids]
    cols = {}
    if fields and ids.size:
        t = snap.profile_take(ids, fields)
        cols = {f: t.column(f).to_pylist() for f in fields}
    rv = _rank_column(ev, ids)
    rows = []
    for i in range(ids.size):
        row = {"customer_id": int(ext[i])}
        for f in fields:
            row[f] = cols[f][i]
        if rv is not None:
            row["rank_value"] = _rank_py(ev.seg.order_by.key, rv[i])
        rows.append(row)
    return rows


def materialize(snap, seg: S.Segment, fields=(), as_of=None, deadline=None, references=None) -> Materialized:
    """Every customer_id of the result (preview order) and chosen fields."""
    t0 = time.perf_counter()
    fields = _check_fields(fields)
    ev = evaluate(snap, seg, _as_of(as_of), deadline, references=references)
    if getattr(snap, "empty", False):
        return Materialized(np.zeros(0, np.int64), {f: pa.nulls(0) for f in fields}, None, None,
                            tuple(ev.ctx.missing_ids))
    m = _materialized(ev, ev.ordered_ids(), fields)
    m.missing_ids = tuple(sorted(set(ev.ctx.missing_ids)))
    m.elapsed_ms = (time.perf_counter() - t0) * 1000
    return m


def _materialized(ev: Evaluated, ids: np.ndarray, fields: Tuple[str, ...]) -> Materialized:
    """Internal ids (already in output order) as customer_ids, fields and rank values."""
    snap = ev.ctx.snap
    cols = {}
    if fields:
        t = snap.profile_take(ids, fields)
        cols = {f: t.column(f).combine_chunks() for f in fields}
    rv = _rank_column(ev, ids)
    key = ev.seg.order_by.key if ev.seg.order_by is not None else None
    if rv is not None and key in ("last_purchase", "loyalty_points", "average_order_value"):
        rv = np.where(rv == INT64_NULL, np.nan, rv.astype(np.float64))
    return Materialized(snap.ext_ids()[ids], cols, rv, key)


PIECE_OUTPUTS = ("count", "preview", "materialize")


def _members_of(ids: np.ndarray, bm: BitMap) -> np.ndarray:
    """A bool per internal id of `ids`: in bm."""
    return np.isin(ids, np.frombuffer(bm.to_array(), dtype=np.uint32).astype(np.int64))


def limit_pieces(snap, seg: S.Segment, want: str = "count", n: int = 0, fields=(), as_of=None, deadline=None,
                 references=None) -> dict:
    """A segment with a limit as its two pieces, so that a coordinator of partitions
    answers it in one round: "top", the first `limit` of (include - exclude) in output
    order (Materialized: ids and rank values), and "rest", (append - exclude);
    "top_in_rest" flags the top rows that are in rest too. The segment is top | rest;
    across partitions it is the first `limit` of the merged tops (a prefix of each
    partition's) plus every rest. `want` says what else the pieces carry:
    count: "top_email" / "top_sms" (a bool per top row) and "rest" = (size, email, sms);
    preview: "top_rows" (top's first n rows) and "rest" = (rest's first n rows, size);
    materialize: the fields on top, and "rest" a Materialized with them too."""
    if want not in PIECE_OUTPUTS:
        raise InvalidArgument("want", f"expected one of {', '.join(PIECE_OUTPUTS)}, got {want!r}")
    fields = _check_fields(fields)
    as_of = _as_of(as_of)
    ctx = Context(snap, as_of, deadline)
    ctx.shared_scans = plan_shared_scans(seg)   # the appends' scans are shared too
    ev = evaluate(snap, dataclasses.replace(seg, append=()), as_of, deadline, ctx=ctx, references=references)
    if getattr(snap, "empty", False):
        none = Materialized(np.zeros(0, np.int64), {f: pa.nulls(0) for f in fields},
                            None if seg.order_by is None else np.zeros(0, np.float64),
                            seg.order_by.key if seg.order_by is not None else None)
        return {"top": none, "missing_ids": tuple(sorted(set(ctx.missing_ids))), "top_in_rest": np.zeros(0, bool), "top_email": np.zeros(0, bool),
                "top_sms": np.zeros(0, bool), "top_rows": [],
                "rest": {"count": (0, 0, 0), "preview": ([], 0), "materialize": none}[want]}
    rest = BitMap()
    if seg.append:
        rest = BitMap.union(*[ctx.eval(c) for c in seg.append]) & snap.alive
        if seg.exclude is not None:
            rest -= ctx.eval(seg.exclude)
    rest_ev = Evaluated(ctx, rest, seg)
    rest_ev._values = ev.rank_values()    # one ranking for both pieces (None: unranked)
    top = ev.ordered_ids()
    out = {"top": _materialized(ev, top, fields if want == "materialize" else ()),
           "missing_ids": tuple(sorted(set(ctx.missing_ids))),
           "top_in_rest": _members_of(top, ev.members & rest)}
    if want == "count":
        reach = [snap.bitmap("email_reach"), snap.bitmap("sms_reach")]
        for label, bm in zip(("top_email", "top_sms"), reach):
            out[label] = _members_of(top, ev.members & bm)
        out["rest"] = (len(rest), rest.intersection_cardinality(reach[0]), rest.intersection_cardinality(reach[1]))
    elif want == "preview":
        out["top_rows"] = _preview_rows(ev, top[:n], fields)
        out["rest"] = (_preview_rows(rest_ev, rest_ev.ordered_ids(n), fields), len(rest))
    else:
        out["rest"] = _materialized(rest_ev, rest_ev.ordered_ids(), fields)
    return out


def explain(snap, seg: S.Segment, as_of=None, deadline=None, references=None) -> ExplainNode:
    """The evaluated tree with each node's size (alive members) and time."""
    t0 = time.perf_counter()
    ev = evaluate(snap, seg, _as_of(as_of), deadline, trace=True, references=references)
    if getattr(snap, "empty", False):
        return ExplainNode("segment", 0, 0.0)
    alive = snap.alive
    trace = ev.ctx.trace

    def node(c: S.Condition, label: Optional[str] = None) -> ExplainNode:
        bm, ms, nbytes = trace.get(c, (BitMap(), 0.0, 0))
        if isinstance(c, (S.AllOf, S.AnyOf)):
            kids = tuple(node(k) for k in c.children)
            lab = "all_of" if isinstance(c, S.AllOf) else "any_of"
        elif isinstance(c, S.Not):
            kids = (node(c.child),)
            lab = "not"
        else:
            kids = ()
            lab = json.dumps(dump_condition(c), sort_keys=True)
        return ExplainNode(label + ": " + lab if label else lab, bm.intersection_cardinality(alive), ms, kids, nbytes)

    parts = [node(seg.include, "include")]
    if seg.exclude is not None:
        parts.append(node(seg.exclude, "exclude"))
    for i, a in enumerate(seg.append):
        parts.append(node(a, f"append[{i}]"))
    label = "segment"
    if seg.order_by is not None or seg.limit is not None:
        label += f" (order_by={seg.order_by.key if seg.order_by else 'customer_id'}, limit={seg.limit})"
    return ExplainNode(label, len(ev.members), (time.perf_counter() - t0) * 1000, tuple(parts), ev.ctx.bytes_read)


def rows_of(snap, customer_ids, fields=()) -> Materialized:
    """The given customers still in the dataset (active or not), ascending customer_id,
    with chosen fields; ids no longer present are left out and listed in missing_ids."""
    fields = _check_fields(fields)
    ids = np.unique(np.asarray(customer_ids, dtype=np.int64))
    if getattr(snap, "empty", False):
        return Materialized(np.zeros(0, np.int64), {f: pa.nulls(0) for f in fields}, missing_ids=tuple(ids.tolist()))
    found, missing = snap.internal_ids(ids)
    cols = {}
    if fields:
        t = snap.profile_take(found, fields)
        cols = {f: t.column(f).combine_chunks() for f in fields}
    return Materialized(snap.ext_ids()[found], cols, missing_ids=tuple(int(x) for x in missing))
