"""Self-tests of the live-update reference model and batch generator (tests/live_ref.py).

No Engine here: the reference is checked against hand-worked answers and a second, naive
dict-of-rows model; the generator for determinism and the scenarios it promises; each
batch format against the bulk loader's row converter (engine.ingest_read.rows_table)."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from segments.engine.model import segment as S
from tests import datasets as D
from tests.live_ref import (ANCHOR, LINE_TABLES, TABLES, Batch, ChangeGen, LiveRef, as_ofs, canonical)

UTC = dt.timezone.utc
FAR = dt.datetime(2030, 1, 1, tzinfo=UTC)


def _small():
    cs = [D._blank(i, first_name=f"n{i}", last_name="Old", loyalty_points=i) for i in (10, 20, 30)]
    ps = [D._line(10, dt.datetime(2026, 1, 1, 12, tzinfo=UTC), 1000),
          D._line(20, dt.datetime(2026, 1, 2, 12, tzinfo=UTC), 2000),
          D._line(20, dt.datetime(2026, 1, 3, 12, tzinfo=UTC), -500)]
    vs = [{"customer_id": 30, "starts_at": dt.datetime(2026, 2, 1, tzinfo=UTC), "status": "completed", "shop": "Mall"}]
    return D._tables(cs, ps, vs, [])


def spend(peer, cid):
    seg = S.Segment(S.Customers((cid,)), order_by=S.OrderBy("spend"))
    r = peer.ranked(seg, FAR)
    return r[0][1] if r else None


def test_reference_semantics_by_hand():
    ref = LiveRef(_small(), D.NY)
    line = lambda cid, amt: D._line(cid, dt.datetime(2026, 3, 1, tzinfo=UTC), amt)  # noqa: E731
    # delete 20 (its lines go), upsert 10 sparsely (row replaced, lines kept), new 5, line for 5
    got = ref.apply(Batch(customers=[{"customer_id": 10, "last_name": "New"}, {"customer_id": 5}],
                          purchases=[line(5, 700), line(10, 1)], delete=(20, 99)))
    assert got["not_found"] == [99]
    assert got["rows"] == {"customers": 2, "purchases": 2, "visits": 0, "laybys": 0, "deleted": 1}
    assert ref.ids() == {5, 10, 30}
    assert ref.row(10)["last_name"] == "New" and ref.row(10)["first_name"] is None
    assert ref.row(10)["loyalty_points"] is None and ref.row(10)["active"] is True
    p = ref.peer()
    assert spend(p, 10) == 1001 and spend(p, 5) == 700 and p.result(S.Segment(S.Customers((20,))), FAR) == []
    assert p.result(S.Segment(S.Surname("old")), FAR) == [30]
    # 20 comes back: a new customer without its erased history; 30 deleted and re-created in one batch
    ref.apply(Batch(customers=[{"customer_id": 20, "first_name": "again"}, {"customer_id": 30}],
                    purchases=[line(30, 42)], delete=(30,)))
    p = ref.peer()
    assert spend(p, 20) == 0 and spend(p, 30) == 42
    assert p.result(S.Segment(S.Visited()), FAR) == []
    assert ref.lines_of("purchases", 20) == 0 and ref.lines_of("visits", 30) == 0


class Naive:
    """A second model: customers dict and lists of line dicts."""

    def __init__(self, tables):
        self.c = {r["customer_id"]: {**r, "active": r["active"] is not False}
                  for r in tables["customers"].to_pylist()}
        self.lines = {t: tables[t].to_pylist() for t in LINE_TABLES}

    def apply(self, b: Batch):
        for cid in b.delete:
            if self.c.pop(cid, None) is not None:
                for t in LINE_TABLES:
                    self.lines[t] = [x for x in self.lines[t] if x["customer_id"] != cid]
        for r in canonical("customers", b.rows("customers")).to_pylist() if b.customers else []:
            self.c[r["customer_id"]] = r
        for t in LINE_TABLES:
            if b.rows(t):
                self.lines[t] += canonical(t, b.rows(t)).to_pylist()


def _key(row):
    return repr(sorted(row.items()))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generator_against_naive_model(seed):
    base = D.random_tables(seed, 300)
    ref, naive = LiveRef(base, D.NY), Naive(base)
    gen = ChangeGen(seed, ref)
    appended = {}                                    # customer_id -> purchase lines since its (re)creation
    for _ in range(12):
        b = gen.next()
        before = ref.ids()
        got = ref.apply(b)
        naive.apply(b)
        assert set(got["not_found"]) == {i for i in b.delete if i not in before}
        for cid in b.delete:
            appended.pop(cid, None)
        for r in b.rows("purchases"):
            appended[r["customer_id"]] = appended.get(r["customer_id"], 0) + 1
        assert sorted(ref.t["customers"].to_pylist(), key=lambda r: r["customer_id"]) == \
            sorted(naive.c.values(), key=lambda r: r["customer_id"])
        for t in LINE_TABLES:
            assert sorted(map(_key, ref.t[t].to_pylist())) == sorted(map(_key, naive.lines[t]))
            assert set(ref.t[t]["customer_id"].to_pylist()) <= ref.ids()
    # re-created customers hold only the lines appended since
    assert gen.notes["recreated"]
    for cid in gen.notes["recreated"] & ref.ids():
        assert ref.lines_of("purchases", cid) == appended.get(cid, 0)
    # the scenarios the generator promises
    n = gen.notes
    assert n["new"] and n["upserted_twice"] and n["renamed"] and n["sparse"] and n["future_buyers"]
    assert any(i < min(base["customers"]["customer_id"].to_pylist()) for i in n["new"])
    assert any(i > max(base["customers"]["customer_id"].to_pylist()) for i in n["new"])
    assert n["deleted"] - ref.ids()
    # new product values and past / future lines were appended
    p = ref.peer()
    as_of = as_ofs(D.NY)["end"]
    from tests.live_ref import NEW_BRAND, NEW_DEPARTMENT
    assert p.result(S.Segment(S.Bought(S.ProductFilter((("brand", (NEW_BRAND,)),)))), as_of)
    assert p.result(S.Segment(S.Bought(S.ProductFilter((("department", (NEW_DEPARTMENT,)),)))), as_of)
    assert p.result(S.Segment(S.Search("zyxwright", ("last_name",))), as_of)


def test_generator_is_deterministic():
    def run(seed):
        ref = LiveRef(D.random_tables(4, 200), D.AKL)
        gen = ChangeGen(seed, ref)
        out = []
        for _ in range(5):
            b = gen.next()
            out.append(b.kwargs())
            ref.apply(b)
        return repr(out)
    assert run(9) == run(9)
    assert run(9) != run(10)


@pytest.mark.parametrize("fmt", ["objects", "arrow", "text"])
def test_batch_formats_convert_to_the_reference_rows(fmt):
    """Every format of a batch, read by the bulk loader's row converter, gives the rows the
    reference applies (so a later mismatch is the engine's, not the format's)."""
    from segments.engine.storage.ingest_read import rows_table
    ref = LiveRef(D.random_tables(5, 300), D.NY)
    gen = ChangeGen(5, ref, formats=(fmt,))
    for _ in range(6):
        b = gen.next()
        assert b.fmt == fmt
        kw = b.kwargs()
        for t in TABLES:
            if b.rows(t):
                got = rows_table(t, kw[t])
                want = canonical(t, b.rows(t))
                assert got.to_pylist() == want.to_pylist(), (fmt, t)
        ref.apply(b)


def test_as_ofs_straddle_the_appended_lines():
    ref = LiveRef(D.random_tables(6, 300), D.NY)
    gen = ChangeGen(6, ref)
    for _ in range(6):
        ref.apply(gen.next())
    a = as_ofs(D.NY)
    assert a["end"].date() == ANCHOR
    ts = [r["purchased_at"] for r in ref.t["purchases"].to_pylist()]
    assert any(a["mid"] < t <= a["end"] for t in ts)
    assert any(a["end"] < t <= a["future"] for t in ts)
    assert any(t < a["end"] - dt.timedelta(days=400) for t in ts)
    assert pa.types.is_timestamp(ref.t["purchases"]["purchased_at"].type)
