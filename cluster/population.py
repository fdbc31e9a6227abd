"""Conditions no partition answers alone, made answerable before a call is scattered.

* `in_segment`: a saved segment lives in the coordinator's catalog. Without a limit its
  definition is per customer and goes to every partition as it is (its own references
  resolved the same way); with a limit its result is the top `limit` over every partition,
  so the coordinator evaluates it first (a cluster call of its own) and gives each
  partition its share of the result's ids, read like a group's members.
* `in_group`: each partition is given its share of the group's frozen customer_ids.
* `percentile` and `rfm` rank a customer among the whole population, in two rounds. Round 1:
  each partition answers the sorted distinct values of its population members and their
  counts, or every value sorted when they are mostly distinct (`Engine.value_histograms`;
  packed as uint16 gaps on the wire, `pack_sorted`); the coordinator finds, exactly as the
  one-machine evaluation does (`behaviour._pct_mask`: ties, absent values as the lowest
  int64), the interval of values whose percentile lies in the asked bounds, from two order
  statistics of the merged histograms (`value_cut`). Round 2: the segment itself, each partition
  testing those value intervals (`behaviour._given_cuts`) instead of its own ranks. A
  percentile whose `among` holds another is ranked after it (one more round per level).

Reference cycles and unknown, inactive or expired names raise here, before any partition
works, with the one-machine errors. Partitions read all of it through `PartitionReferences`
(the `references` of Engine's evaluations).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from segments.engine import errors as E
from segments.engine.evaluation.behaviour import percentile_bounds, rfm_scores
from segments.engine.model import segment as S

from .merge_kernels import kth_of_histograms
from .partitioning import split_ids

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EMPTY = (1, 0)   # a value interval nothing lies in
RANKED = (S.Percentile, S.Rfm)
# a saved segment with a limit reaches partitions as the ids of its result, read as a group
# of this name (no group name can start with '#': catalog NAME_RE)
SEGMENT_RESULT = "#result:"


class PartitionReferences:
    """What one partition's in_segment, in_group, percentile and rfm read (Engine's
    `references`), as the coordinator resolved them for one call; pickled to the partition."""

    def __init__(self, segments: Dict[str, S.Segment], groups: Dict[str, np.ndarray], cuts: dict):
        self.segments, self.groups, self.cuts = segments, groups, cuts

    def segment(self, name: str) -> S.Segment:
        return self.segments[name]

    def group_members(self, name: str) -> np.ndarray:
        return self.groups[name]

    def value_cuts(self, cond) -> Optional[tuple]:
        """Per value the condition ranks: the [lo, hi] its matching members' values lie in."""
        return self.cuts.get(cond)


# ---------------------------------------------------------------- histograms on the wire

def pack_sorted(v: np.ndarray) -> tuple:
    """Ascending int64 values as (first, uint16 gaps, positions and uint64 values of the gaps
    that do not fit): ~2 bytes a value instead of 8, so that a partition's histogram mostly
    travels inside Ray's task reply rather than through its object store. Gaps are taken
    modulo 2^64 (absent values, the lowest int64, lie 2^63 below the others)."""
    v = np.asarray(v, np.int64)
    if v.size == 0:
        return (None, np.zeros(0, np.uint16), np.zeros(0, np.int64), np.zeros(0, np.uint64))
    d = np.diff(v.view(np.uint64))
    small = d < (1 << 16)
    big = np.flatnonzero(~small)
    return (int(v[0]), np.where(small, d, 0).astype(np.uint16), big, d[big])


def unpack_sorted(packed: tuple) -> np.ndarray:
    """The values pack_sorted packed."""
    first, gaps, big, big_gaps = packed
    if first is None:
        return np.zeros(0, np.int64)
    d = gaps.astype(np.uint64)
    d[big] = big_gaps
    out = np.empty(d.size + 1, np.uint64)
    out[0] = np.int64(first).view(np.uint64)
    np.cumsum(d, out=out[1:])
    out[1:] += out[0]   # modulo 2^64
    return out.view(np.int64)


def pack_histogram(h: tuple) -> tuple:
    """A partition's (sorted values, counts or None) for the wire (pack_sorted; counts as
    uint32 when they fit)."""
    u, k = h
    if k is not None and k.size and int(k.max()) < (1 << 32):
        k = k.astype(np.uint32)
    return pack_sorted(u), k


def unpack_histogram(h: tuple) -> tuple:
    u, k = h
    return unpack_sorted(u), None if k is None else np.asarray(k, np.int64)


# ---------------------------------------------------------------- exact cuts from histograms

def value_cut(hists: Sequence[tuple], pct_lo: int, pct_hi: int) -> tuple:
    """[lo, hi]: the values of the members whose percentile floor(100 * below / N) lies in
    [pct_lo, pct_hi], N and below counted over every part ((sorted values, count of each or
    None for one each) per partition): the same two order statistics as
    behaviour._pct_mask on one machine, each found by merge_kernels.kth_of_histograms."""
    parts = [(np.asarray(u, np.int64), None if k is None else np.cumsum(np.asarray(k, np.int64)))
             for u, k in hists if len(u)]
    n = sum(int(u.size if cum is None else cum[-1]) for u, cum in parts)
    if n == 0 or pct_lo > pct_hi:
        return EMPTY
    b_lo = (pct_lo * n + 99) // 100               # pct >= lo  <=>  below >= ceil(lo N / 100)
    b_hi = ((pct_hi + 1) * n + 99) // 100 - 1     # pct <= hi  <=>  100 below < (hi + 1) N
    if b_lo > b_hi or b_lo >= n:
        return EMPTY
    values = np.concatenate([u for u, _ in parts])
    starts = np.zeros(len(parts) + 1, np.int64)
    np.cumsum([u.size for u, _ in parts], out=starts[1:])
    counted = [c for _, c in parts if c is not None]
    cum = np.concatenate(counted) if counted else np.zeros(0, np.int64)
    cum_at = np.full(len(parts), -1, np.int64)
    at = 0
    for p, (_, c) in enumerate(parts):
        if c is not None:
            cum_at[p], at = at, at + c.size
    vmin, vmax = min(int(u[0]) for u, _ in parts), max(int(u[-1]) for u, _ in parts)

    def kth(q: int) -> int:   # the (q + 1)-th smallest value
        return int(kth_of_histograms(values, cum, cum_at, starts, q, vmin, vmax))
    lo = kth(b_lo - 1) + 1 if b_lo >= 1 else INT64_MIN   # above the b_lo-th smallest
    hi = kth(b_hi) if b_hi < n - 1 else INT64_MAX        # at most the (b_hi + 1)-th
    return EMPTY if lo > hi else (lo, hi)


def ranked_values(c) -> list:
    """(Value, among) of each value a percentile or RFM condition ranks, in rfm_scores' order."""
    if isinstance(c, S.Percentile):
        return [(c.of, c.among)]
    return [(S.Value(key, c.filter, c.range), c.among) for key, _, _ in rfm_scores(c)]


def _bounds(c) -> list:
    if isinstance(c, S.Percentile):
        return [percentile_bounds(c.cmp)]
    return [(lo, hi) for _, lo, hi in rfm_scores(c)]


# ---------------------------------------------------------------- resolution of one call

class Resolver:
    """Resolves one segment of dataset `name` as of one instant for a ClusterEngine (see the
    module doc); `path`: the saved segments being evaluated around it (cycle check)."""

    def __init__(self, cluster, name: str, as_of, deadline: Optional[float], path: tuple = ()):
        self.cluster, self.name, self.as_of, self.deadline, self.path = cluster, name, as_of, deadline, path
        self._catalog = None
        self.definitions: Dict[str, S.Segment] = {}   # saved name -> its definition
        self.segments: Dict[str, S.Segment] = {}      # saved name -> what partitions evaluate
        self.groups: Dict[str, np.ndarray] = {}       # group (or SEGMENT_RESULT) name -> sorted ids
        self.ranked: list = []                        # percentile and rfm conditions, each once

    def resolve(self, seg: S.Segment) -> Optional[List[PartitionReferences]]:
        """Every partition's references for seg, or None when it needs none."""
        self._visit_segment(seg, self.path)
        if not (self.segments or self.groups or self.ranked):
            return None
        return self._given(self._rank())

    # ------------------------------------------------------------ references
    def _refs(self):
        if self._catalog is None:
            self._catalog = self.cluster.references(self.name)
        return self._catalog

    def _visit_segment(self, seg: S.Segment, path: tuple) -> None:
        for top in S.segment_conditions(seg):
            for c in S.walk(top):   # a percentile's among included
                if isinstance(c, S.InSegment):
                    self._in_segment(c.name, path)
                elif isinstance(c, S.InGroup):
                    if c.name not in self.groups:
                        self.groups[c.name] = np.sort(np.asarray(self._refs().group_members(c.name), np.int64))
                elif isinstance(c, RANKED) and c not in self.ranked:
                    self.ranked.append(c)

    def _in_segment(self, ref: str, path: tuple) -> None:
        """As one machine evaluates a reference (behaviour._in_segment): a name already on
        the path is a cycle, named by the path; the definition is evaluated inside it."""
        if ref in path:
            raise E.InvalidArgument("in_segment", "reference cycle: " + " -> ".join(path + (ref,)))
        seg = self.definitions.get(ref)
        if seg is None:
            seg = self.definitions[ref] = self._refs().segment(ref)
        if seg.limit is None:
            self.segments[ref] = seg
            self._visit_segment(seg, path + (ref,))
        elif ref not in self.segments:
            ids = self.cluster.result_ids(self.name, seg, self.as_of, self.deadline, path + (ref,))
            self.groups[SEGMENT_RESULT + ref] = np.sort(np.asarray(ids, np.int64))
            self.segments[ref] = S.Segment(S.InGroup(SEGMENT_RESULT + ref))

    # ------------------------------------------------------------ ranks
    def _ranked_inside(self, cond, seen: set) -> set:
        """The percentile and rfm conditions a condition's evaluation ranks first: in its
        tree and in the definitions it references that partitions evaluate."""
        out = set()
        for c in S.walk(cond):
            if isinstance(c, RANKED):
                out.add(c)
            elif isinstance(c, S.InSegment) and c.name not in seen and self.segments.get(c.name) is \
                    self.definitions.get(c.name):
                seen.add(c.name)
                for top in S.segment_conditions(self.segments[c.name]):
                    out |= self._ranked_inside(top, seen)
        return out

    def _rank(self) -> dict:
        """The value intervals of every ranked condition, innermost first (a round each level)."""
        cuts: dict = {}
        todo = list(self.ranked)
        while todo:
            ready = [c for c in todo if c.among is None or self._ranked_inside(c.among, set()) <= cuts.keys()]
            if not ready:
                raise E.InvalidArgument("among", "a percentile ranks a population that needs itself")
            items = list(dict.fromkeys(it for c in ready for it in ranked_values(c)))
            per_part = self.cluster.value_histograms(self.name, items, self.as_of, self.deadline,
                                                     self._given(cuts)) if items else []
            hist = {it: [answer[j] for answer in per_part] for j, it in enumerate(items)}
            for c in ready:
                cuts[c] = tuple(value_cut(hist[it], lo, hi) for it, (lo, hi) in zip(ranked_values(c), _bounds(c)))
            todo = [c for c in todo if c not in cuts]
        return cuts

    def _given(self, cuts: dict) -> List[PartitionReferences]:
        p = self.cluster.partitions
        shares: List[Dict[str, np.ndarray]] = [{} for _ in range(p)]
        for g, ids in self.groups.items():
            split = split_ids(ids, p)
            for q in range(p):
                shares[q][g] = split.get(q, ids[:0])
        return [PartitionReferences(self.segments, shares[q], cuts) for q in range(p)]
