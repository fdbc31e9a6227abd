"""Evaluating some customers alone (engine/evaluation/subset.py) equals a full evaluation
restricted to them, for every condition kind whose membership is per customer.

Oracle: the engine's full evaluation of the same view at the same instant (itself checked
against DuckDB and tests/naive.py by tests/test_live_oracle.py and tests/test_conditions.py).
The dataset has three shards (shard_bits=10) and a live overlay over a compacted version:
appended purchases, visits and laybys, customers upserted, created and erased. The subsets
are random customers with every shard's first and last rows, the customers created since the
version, the erased ones, one shard alone, one customer, and the customers the last batches
touched (what maintenance evaluates); each is evaluated at three instants (the appended
lines' day, 15 days earlier, months later).
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from segments.engine.errors import InvalidArgument
from segments.engine.model import kinds
from segments.engine.model import segment as S
from tests import datasets as D
from tests.live_ref import NEW_BRAND, NEW_TAG, ChangeGen, LiveRef, as_ofs
from tests.test_live_oracle import conditions

CUSTOMERS = 2100
GROUP = "picked"


class _Refs:
    """in_group's customers (a frozen list of customer_ids); no saved segments."""

    def __init__(self, ids):
        self.ids = ids

    def group_members(self, name):
        assert name == GROUP
        return self.ids

    def segment(self, name):
        raise AssertionError("in_segment is not per customer")


@pytest.fixture(scope="module")
def live_dataset(tmp_path_factory):
    """(engine, name, gen, state before the last batches): a version compacted after some
    batches, then more batches appended live."""
    from segments.bench.duck import read_tables
    from segments.bench.generate import generate
    from segments.engine.api import Engine
    folder = tmp_path_factory.mktemp("subset_base")
    generate(folder, customers=CUSTOMERS, seed=61, fmt="parquet")
    eng = Engine(tmp_path_factory.mktemp("subset_data"), auto_compact=False)
    name = "sub"
    eng.create_dataset(name, D.NY, shard_bits=10)
    eng.ingest(name, folder)
    ref = LiveRef(read_tables(folder), D.NY)
    gen = ChangeGen(61, ref)
    for i in range(10):
        b = gen.next()
        ref.apply(b)
        eng.apply_changes(name, **b.kwargs())
        if i == 4:
            eng.compact(name)
    _, before, _ = eng.dataset(name).reading()
    for _ in range(3):
        b = gen.next()
        ref.apply(b)
        eng.apply_changes(name, **b.kwargs())
    yield eng, name, gen, before
    eng.close()


def _per_customer_segments(gen, group_ids) -> dict:
    from segments.engine.catalog.maintain import evaluation_scope
    c = dict(conditions(gen))
    c["in_group"] = S.InGroup(GROUP)
    c["in_group/and_bought"] = S.AllOf((S.InGroup(GROUP), S.Bought(S.NO_FILTER, S.TimeRange("last_n_days", 30))))
    segs = {k: S.Segment(v) for k, v in c.items()}
    segs["exclude_append"] = S.Segment(S.Visited(), exclude=S.Reachable("has_email"),
                                       append=(S.Bought(S.ProductFilter((("brand", (NEW_BRAND,)),))),
                                               S.Tags((NEW_TAG,))))
    return {k: s for k, s in segs.items() if evaluation_scope(s).per_customer}


def _subsets(view, before, eng, name, rng) -> dict:
    n, bits = view.n, view.shard_bits
    base_n = view.base.n
    dead = np.asarray(view.ov.dead.to_array(), np.int64)
    edges = [x for s in range((n + (1 << bits) - 1) >> bits)
             for x in (s << bits, (s << bits) + 1, min(n, (s + 1) << bits) - 1)]
    mixed = set(rng.sample(range(n), n // 7)) | set(edges) | set(range(base_n, n)) | set(dead.tolist())
    touched, _ = eng.dataset(name).touched(before, view.state)
    assert base_n < n and dead.size and touched.size, "the overlay has new, erased and touched customers"
    return {"mixed": sorted(mixed), "shard1": list(range(1 << bits, 2 << bits)), "one": [edges[4]],
            "touched": touched.tolist(), "everyone": list(range(n))}


def test_subset_evaluation_equals_full_evaluation(live_dataset):
    from segments.engine.evaluation import output
    from segments.engine.evaluation.evaluate import Context
    from segments.engine.evaluation.subset import Subset, SubsetContext
    eng, name, gen, before = live_dataset
    _, _, view = eng.dataset(name).reading()
    ext = view.ext_ids()
    alive = np.asarray(view.alive.to_array(), np.int64)
    rng = random.Random(5)
    refs = _Refs(sorted(int(x) for x in rng.sample(ext[alive].tolist(), 300)))
    segs = _per_customer_segments(gen, refs.ids)
    shops = tuple(view.dictionary("shop")[:2])   # visits at some shops (the subset gathers shops when named)
    at_shops = S.Event("visited", shops=shops)
    segs.update({"visited/shops": S.Segment(S.Visited(shops=shops)),
                 "upcoming/shops": S.Segment(S.UpcomingAppointment(shops=shops)),
                 "sequence/shops": S.Segment(S.Sequence(S.BOUGHT, at_shops, 60)),
                 "regularly/shops": S.Segment(S.Regularly(at_shops, "month", 6, 2))})
    covered = {type(c) for s in segs.values() for top in S.segment_conditions(s) for c in S.walk(top)}
    missing = {k.name for k in kinds.KINDS if k.per_customer and k.cls not in covered}
    assert not missing, f"per-customer kinds without a case here: {sorted(missing)}"
    subsets = _subsets(view, before, eng, name, rng)
    wrong = []
    for label, at in as_ofs(D.NY).items():
        whole = Context(view, at)
        full = {k: set(output.evaluate(view, s, at, None, ctx=whole, references=refs).members) for k, s in segs.items()}
        for which, ids in subsets.items():
            sub = Subset(view, np.asarray(ids, np.int64))
            assert sorted(sub.to_view(sub.ids).tolist()) == sorted(set(ids))
            ctx = SubsetContext(sub, Context(view, at))
            for k, s in segs.items():
                got = output.evaluate(sub, s, at, None, ctx=ctx, references=refs).members
                got = set(sub.to_view(np.asarray(got.to_array(), np.int64)).tolist())
                want = full[k] & set(ids)
                if got != want:
                    wrong.append((label, which, k, sorted(got ^ want)[:5]))
    assert not wrong, wrong[:10]


def test_subset_holds_only_its_customers_lines(live_dataset):
    """The subset's runs and appended lines are exactly its customers' lines (what a
    restricted evaluation reads is theirs alone), in the runs' order, every column equal to
    the run's at those lines (customers renumbered), a column the run lacks left empty; the
    lazy columns empty until asked for, then gathered into the same runs."""
    from segments.engine.evaluation.subset import LAZY_COLUMNS, Subset
    from segments.engine.storage import layout as LY
    from segments.engine.storage.runs import LINE_COLUMNS
    eng, name, _, _ = live_dataset
    _, _, view = eng.dataset(name).reading()
    ids = np.asarray(sorted(random.Random(9).sample(range(view.n), view.n // 5)), np.int64)
    sub = Subset(view, ids)
    for prefix, col, day in (("p", LY.P_CUST, LY.P_DAY), ("v", LY.V_CUST, LY.V_DAY), ("l", LY.L_CUST, None)):
        ps, mine = view.pieces(prefix), sub.pieces(prefix)
        for cname in LAZY_COLUMNS.get(prefix, ()):   # gathered once a leaf asks for them
            assert not mine.size[ps.table.columns[cname]].any(), cname
        sub.want(prefix, LINE_COLUMNS[prefix])
        assert mine.runs == [ps.runs[p] for k in range(ps.n_shards) if int(ps.shard[k]) in set(sub.shards.tolist())
                             for p in range(int(ps.shard_ptr[k]), int(ps.shard_ptr[k + 1]))]
        q = 0
        for k in range(ps.n_shards):
            lo, n = int(ps.base[k]), int(ps.n[k])
            inside = ids[(ids >= lo) & (ids < lo + n)] - lo
            if int(ps.shard[k]) not in set(sub.shards.tolist()):
                continue
            for p in range(int(ps.shard_ptr[k]), int(ps.shard_ptr[k + 1])):
                rows = int(ps.meta[p, LY.M_ROWS])
                at = np.isin(_col(ps, col, p, np.uint16), inside)
                assert int(mine.meta[q, LY.M_ROWS]) == int(at.sum())
                for cname, dtype in LINE_COLUMNS[prefix].items():
                    c = ps.table.columns[cname]
                    got = _col(mine, c, q, dtype)
                    if cname == "cust":
                        want = np.searchsorted(inside, _col(ps, c, p, dtype)[at])   # ranks in the shard
                    elif int(ps.size[c, p]) != rows:
                        want = np.zeros(0, dtype)
                    else:
                        want = _col(ps, c, p, dtype)[at]
                    if not at.any():
                        want = want[:0]
                    assert np.array_equal(got, want), (prefix, cname, p)
                if day is not None:   # purchase and visit runs are sorted by day (laybys are not)
                    assert np.all(np.diff(_col(mine, day, q, np.int32)) >= 0), "a subset run keeps its run's order"
                q += 1
        assert q == int(mine.shard_ptr[-1])
        appended = view.state.lines(prefix) or []
        want_d = sum(int(np.isin(cols["iid"], ids).sum()) for _, cols in appended)
        got_d = sum(cols["iid"].size for _, cols in (sub.state.lines(prefix) or []))
        assert got_d == want_d, (prefix, got_d, want_d)


def _col(ps, col, p, dtype):
    """Column `col` of piece p (a copy)."""
    import ctypes
    dtype = np.dtype(dtype)
    n = int(ps.size[col, p])
    if n == 0:
        return np.zeros(0, dtype)
    return np.frombuffer((ctypes.c_char * (n * dtype.itemsize)).from_address(int(ps.addr[col, p])), dtype).copy()


def test_subset_refuses_kinds_that_compare_customers(live_dataset):
    from segments.engine.evaluation import output
    from segments.engine.evaluation.evaluate import Context
    from segments.engine.evaluation.subset import Subset, SubsetContext
    eng, name, _, _ = live_dataset
    _, _, view = eng.dataset(name).reading()
    at = as_ofs(D.NY)["end"]
    sub = Subset(view, np.arange(0, view.n, 3))
    seg = S.Segment(S.Percentile(S.Value("spend"), S.Cmp(">=", 80)))
    with pytest.raises(InvalidArgument, match="compares customers"):
        output.evaluate(sub, seg, at, None, ctx=SubsetContext(sub, Context(view, at)))
