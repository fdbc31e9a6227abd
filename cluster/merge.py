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
import pyarrow as pa

from segments.engine.model import segment as S
from segments.engine.results import CountResult, ExplainNode, Materialized, Preview

from .merge_kernels import merge_all, merge_runs, merge_two, merge_two_values, union_dense
from .partitioning import partition_of

INT64_MAX = np.iinfo(np.int64).max
FLOAT_RANKS = ("last_purchase", "loyalty_points")   # Materialized.rank_values: float64, NaN = absent
PARALLEL_MERGE = 1 << 16   # whole merges from this many rows on run in chunks, in parallel
MERGE_CHUNKS = 16
DENSE_SPAN = 8   # ids spanning at most this many times their count are merged through a table of marks


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


def merge_order(ids: np.ndarray, rank_values: Optional[np.ndarray], order_by: Optional[S.OrderBy],
                sizes: Sequence[int], n: Optional[int] = None):
    """(perm, taken): the positions of the first n (default all) of the concatenation
    (ids, rank_values) in output order, given that it is len(sizes) runs each already in
    output order; taken[p] = how many of run p are among them."""
    starts = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=starts[1:])
    n = int(starts[-1]) if n is None else min(int(n), int(starts[-1]))
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    keys = ids if rank_values is None or order_by is None else order_key(rank_values, order_by.descending)
    if n == starts[-1] and n >= PARALLEL_MERGE:
        if keys is ids:   # unranked: unique ids, merged pairwise without branches
            return _merge_pairs(ids, starts), np.asarray(sizes, np.int64)
        perm = np.empty(n, np.int64)
        merge_all(keys, ids, starts, MERGE_CHUNKS, perm)
        return perm, np.asarray(sizes, np.int64)
    perm = np.empty(n, np.int64)
    taken = np.zeros(len(sizes), np.int64)
    merge_runs(keys, ids, starts, n, perm, taken)
    return perm, taken


def _merge_pairs(ids: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The positions of ids in ascending order, given runs ids[starts[p]:starts[p + 1]]
    each ascending: pairs of runs merged until one is left (~40% faster than numpy's
    stable argsort of the concatenation here, ~10 ms for 1M ids in 4 runs)."""
    runs = [(ids[a:b], np.arange(a, b, dtype=np.int64)) for a, b in zip(starts[:-1], starts[1:])]
    while len(runs) > 1:
        paired = []
        for (a, pa), (b, pb) in zip(runs[0::2], runs[1::2]):
            out, pout = np.empty(a.size + b.size, np.int64), np.empty(a.size + b.size, np.int64)
            merge_two(a, pa, b, pb, out, pout)
            paired.append((out, pout))
        runs = paired + runs[len(paired) * 2:]
    return runs[0][1]


def merged_ids(runs: Sequence[np.ndarray]) -> np.ndarray:
    """The ids of runs (each ascending, unique across runs) ascending: an unranked
    materialize without fields needs no positions. Ids dense in their range (customer ids
    counted from 1 are) are marked in a table of bytes and read back in order (~2 ms for
    1M ids here against ~8-20 ms for merging with positions and gathering); others are
    merged pairwise, values only."""
    runs = [np.ascontiguousarray(r, dtype=np.int64) for r in runs if len(r)]
    n = sum(r.size for r in runs)
    if len(runs) <= 1:
        return runs[0].copy() if runs else np.zeros(0, np.int64)   # a copy: an answer may be read-only
    lo, hi = min(int(r[0]) for r in runs), max(int(r[-1]) for r in runs)
    if hi - lo < DENSE_SPAN * n:
        out = np.empty(n + 1, np.int64)
        union_dense(np.concatenate(runs), lo, hi - lo + 1, out)
        return out[:n]
    while len(runs) > 1:
        paired = []
        for a, b in zip(runs[0::2], runs[1::2]):
            out = np.empty(a.size + b.size, np.int64)
            merge_two_values(a, b, out)
            paired.append(out)
        runs = paired + runs[len(paired) * 2:]
    return runs[0]


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
    _, taken = merge_order(ids, rv, seg.order_by, sizes, seg.limit)
    return [int(c) for c in taken]


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
    order_by = seg.order_by if seg is not None else None
    missing = missing_ids([m.missing_ids for m in answers], partitions)
    if order_by is None and not fields:
        return Materialized(merged_ids([m.customer_ids for m in answers]), {}, None, None, missing, elapsed_ms)
    ids = np.concatenate([m.customer_ids for m in answers]).astype(np.int64, copy=False)
    rv = np.concatenate([_ranks(m, seg) for m in answers]) if order_by is not None else None
    perm, _ = merge_order(ids, rv, order_by, [len(m.customer_ids) for m in answers])
    cols = {}
    for f in fields:
        parts = [m.columns[f] for m in answers if len(m.customer_ids)]
        if not parts:
            parts = [answers[0].columns[f]]
        arr = pa.concat_arrays([a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in parts]) \
            if len(parts) > 1 else parts[0]
        cols[f] = arr.take(pa.array(perm)) if len(arr) > 1 else arr
    return Materialized(ids[perm], cols, None if rv is None else rv[perm],
                        order_by.key if order_by is not None else None, missing, elapsed_ms)


# ---------------------------------------------------------------- a limit in one round
# Each partition answers output.limit_pieces: "top", its own first `limit` of
# (include - exclude), "rest", its (append - exclude), and which top rows are in rest.
# The result is the first `limit` of the merged tops (a prefix of each: top_counts) plus
# every rest.

def _kept(pieces: Sequence[dict], seg: S.Segment) -> List[np.ndarray]:
    """Per partition: the positions of its top rows in the result and not in its rest."""
    keep = top_counts([pc["top"] for pc in pieces], seg)
    return [np.flatnonzero(~np.asarray(pc["top_in_rest"][:k], dtype=bool)) for k, pc in zip(keep, pieces)]


def limited_counts(pieces: Sequence[dict], seg: S.Segment, partitions: int, elapsed_ms: float) -> CountResult:
    """A limit's count: each partition's kept top rows outside its rest, plus its rest."""
    size = email = sms = 0
    for rows, pc in zip(_kept(pieces, seg), pieces):
        rest = pc["rest"]
        size += rows.size + rest[0]
        email += int(np.count_nonzero(pc["top_email"][rows])) + rest[1]
        sms += int(np.count_nonzero(pc["top_sms"][rows])) + rest[2]
    return CountResult(size, email, sms, missing_ids([pc["missing_ids"] for pc in pieces], partitions), elapsed_ms)


def limited_previews(pieces: Sequence[dict], seg: S.Segment, n: int, partitions: int, elapsed_ms: float) -> Preview:
    """A limit's preview: the first n of every partition's kept top rows and rest rows."""
    rows, total = [], 0
    for kept, pc in zip(_kept(pieces, seg), pieces):
        top_rows = pc["top_rows"]
        rows += [top_rows[i] for i in kept[kept < len(top_rows)]] + pc["rest"][0]
        total += kept.size + pc["rest"][1]
    rows.sort(key=lambda r: _row_key(r, seg.order_by))
    return Preview(rows[:n], total, missing_ids([pc["missing_ids"] for pc in pieces], partitions), elapsed_ms)


def limited_materialized(pieces: Sequence[dict], seg: S.Segment, fields: Sequence[str], partitions: int,
                         elapsed_ms: float) -> Materialized:
    """A limit's materialize: every partition's kept top rows merged with its rest."""
    answers = []
    for kept, pc in zip(_kept(pieces, seg), pieces):
        top, rest = pc["top"], pc["rest"]
        ids = np.concatenate([top.customer_ids[kept], rest.customer_ids])
        rv = None if seg.order_by is None else np.concatenate([_ranks(top, seg)[kept], _ranks(rest, seg)])
        perm, _ = merge_order(ids, rv, seg.order_by, [kept.size, len(rest.customer_ids)])   # one run in output order
        take = pa.array(kept)
        cols = {f: _concat([top.columns[f].take(take), rest.columns[f]]).take(pa.array(perm)) for f in fields}
        answers.append(Materialized(ids[perm], cols, None if rv is None else rv[perm], top.rank_key))
    m = materialized(answers, seg, fields, partitions, elapsed_ms)
    m.missing_ids = missing_ids([pc["missing_ids"] for pc in pieces], partitions)
    return m


def _concat(arrays):
    return pa.concat_arrays([a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays])


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


# ---------------------------------------------------------------- streamed materialize
# Each partition sends its result in output order, a chunk at a time (Ray's streaming
# generator, back-pressured): the merge holds at most one chunk per partition and one chunk
# of output. A row can be sent once no partition still sending can have one before it: at
# most the smallest of the last (key, id) of the chunks in hand of the partitions not done.

def _keys(m: Materialized, order_by: Optional[S.OrderBy]) -> np.ndarray:
    ids = np.asarray(m.customer_ids, np.int64)
    return ids if order_by is None else order_key(m.rank_values, order_by.descending)


def _upto(keys: np.ndarray, ids: np.ndarray, key: int, cid: int) -> int:
    """How many leading rows (keys, ids ascending as pairs) are <= (key, cid)."""
    lo = int(np.searchsorted(keys, key, side="left"))
    hi = int(np.searchsorted(keys, key, side="right"))
    return lo + int(np.searchsorted(ids[lo:hi], cid, side="right"))


def _joined(pieces: Sequence[Materialized], fields: Sequence[str], rank_key) -> Materialized:
    if len(pieces) == 1:
        return pieces[0]
    return Materialized(np.concatenate([p.customer_ids for p in pieces]),
                        {f: _concat([p.columns[f] for p in pieces]) for f in fields},
                        None if pieces[0].rank_values is None else np.concatenate([p.rank_values for p in pieces]),
                        rank_key)


def _next_each(runs: Sequence, wanted: List[int]) -> list:
    return [next(runs[p], None) for p in wanted]


def merge_streams(runs: Sequence, order_by: Optional[S.OrderBy], fields: Sequence[str], chunk_ids: int,
                  empty: Materialized, pull=_next_each):
    """Materialized pieces of chunk_ids rows (the last shorter; `empty`, zero rows typed as
    the answer, when there are none) in the output order of runs, each an iterator of
    Materialized chunks already in output order (customer_ids unique across runs).
    pull(runs, [p, ...]): the next chunk of each run named (None at its end), all at once."""
    fields = tuple(fields)
    rank_key = order_by.key if order_by is not None else None
    held: List[Optional[tuple]] = [None] * len(runs)   # (chunk, keys) not yet sent
    done = [False] * len(runs)
    out: List[Materialized] = []
    out_n = 0
    sent = False
    while True:
        while True:
            wanted = [p for p in range(len(runs))
                      if not done[p] and (held[p] is None or len(held[p][0].customer_ids) == 0)]
            if not wanted:
                break
            for p, m in zip(wanted, pull(runs, wanted)):
                if m is None:
                    done[p] = True
                else:
                    held[p] = (m, _keys(m, order_by))
        live = [p for p in range(len(runs)) if held[p] is not None and len(held[p][0].customer_ids)]
        if not live:
            break
        bound = min(((int(held[p][1][-1]), int(held[p][0].customer_ids[-1])) for p in live if not done[p]),
                    default=None)
        takes = []
        for p in live:
            m, keys = held[p]
            k = len(keys) if bound is None else _upto(keys, np.asarray(m.customer_ids, np.int64), *bound)
            if k:
                takes.append(m.rows(0, k))
                rest = m.rows(k, len(keys))
                held[p] = (rest, keys[k:])
        piece = materialized(takes, None if order_by is None else S.Segment(S.All(), order_by=order_by), fields, 1, 0.0)
        piece.rank_key = rank_key
        out.append(piece)
        out_n += len(piece.customer_ids)
        while out_n >= chunk_ids:
            whole = _joined(out, fields, rank_key)
            yield whole.rows(0, chunk_ids)
            sent = True
            out = [whole.rows(chunk_ids, out_n)]
            out_n -= chunk_ids
    if out_n or not sent:
        yield _joined(out, fields, rank_key) if out_n else empty
