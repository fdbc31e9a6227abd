"""The merge half of every scattered call: partition answers -> the one-machine answer.

Output order is the engine's: by ranking value (absent last; descending or ascending),
ties by ascending customer_id; unranked, ascending customer_id. Each partition's answer
is already in that order, and customer_ids are unique across partitions, so merging is a
sort of the concatenation by (ranking key, customer_id).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import List, Optional, Sequence

import numpy as np

from segments.engine.model import segment as S
from segments.engine.results import CountResult, ExplainNode, Materialized, Preview

from .partitioning import partition_of

INT64_MAX = np.iinfo(np.int64).max
FLOAT_RANKS = ("last_purchase", "loyalty_points")   # Materialized.rank_values: float64, NaN = absent


def order_key(rank_values: np.ndarray, descending: bool) -> np.ndarray:
    """int64 keys ascending in output order: absent values last."""
    v = np.asarray(rank_values)
    if v.dtype.kind == "f":
        absent = np.isnan(v)
        whole = np.where(absent, 0, v).astype(np.int64)
    else:
        whole = v.astype(np.int64)
        absent = whole == np.iinfo(np.int64).min
    return np.where(absent, INT64_MAX, -whole if descending else whole)


def output_order(ids: np.ndarray, rank_values: Optional[np.ndarray], order_by: Optional[S.OrderBy]) -> np.ndarray:
    """The permutation putting (ids, rank_values) in output order."""
    if rank_values is None or order_by is None:
        return np.argsort(ids, kind="stable")
    return np.lexsort((ids, order_key(rank_values, order_by.descending)))


def top_counts(answers: Sequence[Materialized], seg: S.Segment) -> List[int]:
    """How many of each partition's ordered candidates are in the whole top `seg.limit`.

    Each partition's candidates are its own top `limit` of (include - exclude) in output
    order; the global top `limit` is the first `limit` of their merge, so it takes a prefix
    of each partition's candidates: the counts say how long."""
    sizes = [len(m.customer_ids) for m in answers]
    if sum(sizes) <= seg.limit:
        return sizes
    ids = np.concatenate([m.customer_ids for m in answers])
    ranked = seg.order_by is not None
    rv = np.concatenate([_ranks(m, seg) for m in answers]) if ranked else None
    owner = np.repeat(np.arange(len(answers)), sizes)
    chosen = output_order(ids, rv, seg.order_by)[:seg.limit]
    return [int(c) for c in np.bincount(owner[chosen], minlength=len(answers))]


def _ranks(m: Materialized, seg: S.Segment) -> np.ndarray:
    if m.rank_values is not None:
        return m.rank_values
    dtype = np.float64 if seg.order_by.key in FLOAT_RANKS else np.int64
    return np.zeros(len(m.customer_ids), dtype)


def missing_ids(per_partition: Sequence[Sequence[int]], partitions: int) -> tuple:
    """ids of `customers` conditions that exist nowhere: each id is judged by the
    partition that would own it."""
    out = set()
    for p, ids in enumerate(per_partition):
        if ids:
            a = np.asarray(ids, dtype=np.int64)
            out.update(int(x) for x in a[partition_of(a, partitions) == p])
    return tuple(sorted(out))


def counts(answers: Sequence[CountResult], partitions: int, elapsed_ms: float) -> CountResult:
    """Sizes and reachable counts summed."""
    return CountResult(sum(c.count for c in answers), sum(c.email_reachable for c in answers),
                       sum(c.sms_reachable for c in answers),
                       missing_ids([c.missing_ids for c in answers], partitions), elapsed_ms)


def _row_key(row: dict, order_by: Optional[S.OrderBy]):
    if order_by is None:
        return (0, 0, row["customer_id"])
    v = row.get("rank_value")
    if v is None:
        return (1, 0, row["customer_id"])
    if isinstance(v, dt.date):
        v = v.toordinal()
    return (0, -v if order_by.descending else v, row["customer_id"])


def previews(answers: Sequence[Preview], seg: S.Segment, n: int, partitions: int, elapsed_ms: float) -> Preview:
    """The first n rows of every partition's first n, in output order; totals summed."""
    rows = [r for p in answers for r in p.rows]
    rows.sort(key=lambda r: _row_key(r, seg.order_by))
    return Preview(rows[:n], sum(p.total for p in answers),
                   missing_ids([p.missing_ids for p in answers], partitions), elapsed_ms)


def materialized(answers: Sequence[Materialized], seg: Optional[S.Segment], fields: Sequence[str],
                 partitions: int, elapsed_ms: float) -> Materialized:
    """Every partition's ids (and fields, rank values) in output order. seg None: ascending
    customer_id (rows_of)."""
    import pyarrow as pa

    ids = np.concatenate([m.customer_ids for m in answers]).astype(np.int64, copy=False)
    order_by = seg.order_by if seg is not None else None
    rv = np.concatenate([_ranks(m, seg) for m in answers]) if order_by is not None else None
    perm = output_order(ids, rv, order_by)
    cols = {}
    for f in fields:
        parts = [m.columns[f] for m in answers if len(m.customer_ids)]
        if not parts:
            parts = [answers[0].columns[f]]
        arr = pa.concat_arrays([a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in parts]) \
            if len(parts) > 1 else parts[0]
        cols[f] = arr.take(pa.array(perm)) if len(arr) > 1 else arr
    return Materialized(ids[perm], cols, None if rv is None else rv[perm],
                        order_by.key if order_by is not None else None,
                        missing_ids([m.missing_ids for m in answers], partitions), elapsed_ms)


def explains(answers: Sequence[ExplainNode], seg: S.Segment, times: Sequence[float], elapsed_ms: float) -> ExplainNode:
    """One tree: each node's size and bytes read summed over partitions, its time the
    slowest partition's; then one node per partition with its result size and time."""
    def join(nodes: Sequence[ExplainNode]) -> ExplainNode:
        first = nodes[0]
        kids = tuple(join([n.children[i] for n in nodes]) for i in range(len(first.children)))
        return ExplainNode(first.label, sum(n.size for n in nodes), max(n.ms for n in nodes), kids,
                           sum(n.bytes_read for n in nodes))

    full = [a for a in answers if a.children]
    if not full:
        return ExplainNode("segment", 0, elapsed_ms)
    root = join(full)
    label = "segment"
    if seg.order_by is not None or seg.limit is not None:
        label += f" (order_by={seg.order_by.key if seg.order_by else 'customer_id'}, limit={seg.limit})"
    parts = tuple(ExplainNode(f"partition {p}", a.size, float(times[p]), (), a.bytes_read)
                  for p, a in enumerate(answers))
    return dataclasses.replace(root, label=label, size=sum(a.size for a in answers), ms=elapsed_ms,
                               children=root.children + parts)
