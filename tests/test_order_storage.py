"""Stored orders (engine/storage/orders.py): each purchases run keeps its orders (one row per
order by day, per-customer sums up to the aggregates' cutoff) and order_count /
average_order_value without a filter read them where they answer exactly. Checked: the
summaries against a grouping by hand; the conditions against the naive reference and a
forced read of the lines, on a dataset with orders keyed and by instant, refunds, orders
across local midnight and across the as-of instant, before and after live lines (new orders,
lines joining stored orders), after compaction and after erasure; and that the stored
orders are what is read when they can be."""
from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest

from segments.engine.evaluation import behaviour_kernels as BK
from segments.engine.evaluation import line_kernels as LK
from segments.engine.evaluation.evaluate import Context
from segments.engine.model import segment as S
from segments.engine.storage.orders import NO_MICROS, order_summaries
from tests import datasets as D
from tests.naive import Naive

UTC = dt.timezone.utc
NY = ZoneInfo(D.NY)


# ---------------------------------------------------------------- the summaries by hand

@pytest.mark.parametrize("seed", range(3))
def test_order_summaries_are_the_runs_orders(seed):
    rng = np.random.default_rng(seed)
    m, n = [5000, 300, 9000][seed], 50
    cust = rng.integers(0, n, m).astype(np.uint16)
    day = rng.integers(100, 140, m).astype(np.int32)
    ts = day.astype(np.int64) * 86_400_000_000 + rng.integers(0, 3, m) * 3_600_000_000   # shared instants
    amount = rng.integers(-2000, 9000, m).astype(np.int64)
    key = np.where(rng.random(m) < 0.5, rng.integers(1, 40, m), 0).astype(np.int64)      # keys span days
    order = np.lexsort((ts, day))
    cols = {"cust": cust[order], "day": day[order], "ts": ts[order], "amount": amount[order], "order": key[order]}
    cutoff = 130
    got = order_summaries(cols, n, cutoff)
    orders = defaultdict(list)
    for i in range(m):
        ident = ("k", int(key[i])) if key[i] else ("t", int(ts[i]))
        orders[(int(cust[i]), ident)].append(i)
    rows = []
    for (c, ident), idx in orders.items():
        first = min(idx, key=lambda i: (ts[i], day[i]))
        lastline = max(idx, key=lambda i: (ts[i], day[i]))
        rows.append((int(day[first]), int(ts[first]), c, int(amount[idx].sum()), int((amount[idx] >= 0).any()),
                     int(ts[lastline]), int(day[lastline]), ident[0] == "t"))
    rows.sort(key=lambda r: (r[0], r[1]))
    have = sorted(zip(got["o.day"].tolist(), got["o.ts"].tolist(), got["o.cust"].tolist(), got["o.net"].tolist(),
                      got["o.sale"].tolist(), got["o.last"].tolist()))
    assert have == sorted(r[:6] for r in rows)
    assert np.all(np.diff(got["o.day"]) >= 0)
    dense = [r for r in rows if r[6] <= cutoff]
    num, net, sale = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for r in dense:
        num[r[2]] += 1
        net[r[2]] += r[3]
        sale[r[2]] += r[4]
    if m >= 4096:
        assert got["o.all.num"].tolist() == num.tolist() and got["o.all.net"].tolist() == net.tolist()
        assert got["o.all.sale"].tolist() == sale.tolist()
        assert got["o.tail"].size == len(rows) - len(dense)
        assert got["o.meta"][0] == cutoff and got["o.meta"][1] == max(r[5] for r in dense)
    else:   # small runs keep no per-customer sums: every order is in the tail
        assert "o.all.num" not in got and got["o.tail"].size == len(rows) and got["o.meta"][1] == NO_MICROS
    assert got["o.spread"].size == sum(r[5] != r[1] for r in rows)
    assert got["o.keys"].tolist() == sorted({int(k) for k in key if k})
    nulls = [r for r in rows if r[7]]
    assert got["o.meta"][2] == min(r[1] for r in nulls) and got["o.meta"][3] == max(r[1] for r in nulls)


# ---------------------------------------------------------------- a dataset with orders

AS_OF = dt.datetime(2027, 1, 10, 17, tzinfo=UTC)
N_CUSTOMERS = 120


def local(d: dt.date, hh=12, mm=0):
    return dt.datetime(d.year, d.month, d.day, hh, mm, tzinfo=NY).astimezone(UTC)


def _lines(rng: random.Random, cids, start: dt.date, days: int, tag: str) -> list:
    out = []
    for cid in cids:
        for j in range(rng.choice([0, 1, 2, 4, 7, 12])):
            d = start + dt.timedelta(days=rng.randrange(days))
            at = local(d, rng.choice([0, 9, 12, 23]), rng.choice([0, 30, 59]))
            kind = rng.random()
            if kind < 0.35:      # an order of several lines across local midnight, a refund in it
                oid = f"{tag}-{cid}-{j}"
                out.append(D._line(cid, at, rng.randrange(1000, 30000), order_id=oid))
                out.append(D._line(cid, at + dt.timedelta(hours=rng.choice([1, 13, 30])),
                                   rng.choice([-500, 2500]), order_id=oid, department="charms"))
            elif kind < 0.6:     # lines at one instant without order_id: one order
                out += [D._line(cid, at, rng.randrange(-3000, 20000)) for _ in range(rng.choice([1, 2, 3]))]
            else:
                out.append(D._line(cid, at, rng.randrange(0, 40000), department=rng.choice(["rings", "charms"])))
    return out


CONDITIONS = {
    "count/ever/>=2": S.OrderCount(S.Cmp(">=", 2)),
    "count/ever/==0": S.OrderCount(S.Cmp("==", 0)),
    "count/months12/>=3": S.OrderCount(S.Cmp(">=", 3), range=S.TimeRange("last_n_months", 12)),
    "count/days10/>=1": S.OrderCount(S.Cmp(">=", 1), range=S.TimeRange("last_n_days", 10)),
    "count/prev_month/==1": S.OrderCount(S.Cmp("==", 1), range=S.TimeRange("previous_month")),
    "count/charms/>=1": S.OrderCount(S.Cmp(">=", 1), S.ProductFilter((("department", ("charms",)),))),
    "aov/ever/>=10000": S.AverageOrderValue(S.Cmp(">=", 10000)),
    "aov/ever/<2000": S.AverageOrderValue(S.Cmp("<", 2000)),
    "aov/ytd/between": S.AverageOrderValue(S.Cmp("between", 3000, 15000), S.TimeRange("year_to_date")),
    "aov/days40/>0": S.AverageOrderValue(S.Cmp(">", 0), S.TimeRange("last_n_days", 40)),
}
AS_OFS = [AS_OF, AS_OF + dt.timedelta(days=3), dt.datetime(2027, 1, 8, 5, 10, tzinfo=UTC),
          dt.datetime(2026, 12, 31, 23, 0, tzinfo=UTC), dt.datetime(2026, 8, 1, tzinfo=UTC)]


def _ids(eng, name, cond, as_of, paths, monkeypatch) -> set:
    with monkeypatch.context() as m:
        init = Context.__init__

        def patched(self, *a, **k):
            init(self, *a, **k)
            self.access_paths = paths
        m.setattr(Context, "__init__", patched)
        return {int(x) for x in eng.materialize(name, S.Segment(cond), as_of=as_of).customer_ids}


def _check(eng, name, tables, monkeypatch, as_ofs=AS_OFS):
    naive = Naive(tables, D.NY)
    for as_of in as_ofs:
        for label, cond in CONDITIONS.items():
            want = naive.ids(cond, as_of)
            assert _ids(eng, name, cond, as_of, LK.ALL_PATHS, monkeypatch) == want, (label, as_of)
            assert _ids(eng, name, cond, as_of, 0, monkeypatch) == want, (label, as_of, "lines")


def _exact_shards(eng, name, as_of) -> int:
    """Shards whose stored orders answer exactly as of as_of (the fast path)."""
    snap = eng.dataset(name).snapshot()
    ctx = Context(snap, as_of)
    ps, ot = snap.pieces("p"), snap.order_pieces()
    d = ctx.delta("p")
    lines = snap.state.lines("p") if ctx.live and d is not None else []
    where = {int(s): j for j, (s, _) in enumerate(lines)}
    daddr, dsize = (d.addr, d.size) if d is not None else (np.zeros((6, 0), np.uint64), np.zeros((6, 0), np.int64))
    micros = ctx.asof.micros
    return sum(BK._stored_orders_exact(ot.addr, ot.size, int(ps.shard_ptr[k]), int(ps.shard_ptr[k + 1]), daddr, dsize,
                                       where.get(int(ps.shard[k]), -1), int(ps.base[k]), micros)
               for k in range(ps.n_shards))


def _table(rows):
    return pa.Table.from_pylist(rows, schema=D.SCHEMAS["purchases"])


def test_stored_orders_over_live_lines_compaction_and_erasure(tmp_path, monkeypatch):
    from segments.engine.api import Engine
    rng = random.Random(7)
    cids = list(range(1, N_CUSTOMERS + 1))
    customers = [D._blank(c) for c in cids]
    purchases = _lines(rng, cids, dt.date(2025, 11, 1), 430, "A")
    purchases.append(D._line(3, local(dt.date(2027, 1, 10), 11), 4000, order_id="X"))   # across the as-of:
    purchases.append(D._line(3, local(dt.date(2027, 1, 10), 14), -900, order_id="X"))   # partly visible
    tables = D._tables(customers, purchases, [], [])
    eng = Engine(tmp_path / "data", auto_compact=False)
    try:
        eng.create_dataset("o", D.NY, shard_bits=5)
        eng.ingest("o", D.write_folder(tables, tmp_path / "in"))
        # the partly visible order keeps its shard on the lines; the other shards read stored orders
        n_shards = eng.dataset("o").snapshot().pieces("p").n_shards
        assert 0 < _exact_shards(eng, "o", AS_OF) < n_shards
        assert _exact_shards(eng, "o", AS_OF + dt.timedelta(days=3)) == n_shards
        _check(eng, "o", tables, monkeypatch)

        # live: new orders after the stored ones (still exact), then lines joining stored orders
        fresh = _lines(rng, cids[::3], dt.date(2027, 1, 9), 1, "B")
        eng.append("o", "purchases", fresh)
        tables = D._tables(customers, purchases + fresh, [], [])
        assert _exact_shards(eng, "o", AS_OF + dt.timedelta(days=3)) == n_shards
        _check(eng, "o", tables, monkeypatch, AS_OFS[:2])
        # lines without order_id inside the stored orders' span, but at no stored order of
        # their customer's instant (another customer's instant, a second later): still exact
        unkeyed = [p for p in purchases if not p["order_id"]]
        mine = {(p["customer_id"], p["purchased_at"]) for p in purchases}
        beside = [D._line(c, p["purchased_at"], 321) for p in unkeyed[:40:4] for c in (p["customer_id"] % N_CUSTOMERS + 1,)
                  if (c, p["purchased_at"]) not in mine]
        beside += [D._line(p["customer_id"], p["purchased_at"] + dt.timedelta(seconds=1), 654) for p in unkeyed[1:40:4]
                   if (p["customer_id"], p["purchased_at"] + dt.timedelta(seconds=1)) not in mine]
        assert beside
        eng.append("o", "purchases", beside)
        purchases = purchases + fresh + beside
        tables = D._tables(customers, purchases, [], [])
        assert _exact_shards(eng, "o", AS_OF + dt.timedelta(days=3)) == n_shards
        _check(eng, "o", tables, monkeypatch, AS_OFS[:2])
        # a line without order_id at the instant of a stored order of its customer joins it:
        # that shard reads its lines
        same = [D._line(p["customer_id"], p["purchased_at"], 777) for p in unkeyed[2:3] if p["purchased_at"] <= AS_OF]
        assert same
        eng.append("o", "purchases", same)
        purchases = purchases + same
        tables = D._tables(customers, purchases, [], [])
        assert _exact_shards(eng, "o", AS_OF + dt.timedelta(days=3)) == n_shards - 1
        _check(eng, "o", tables, monkeypatch, AS_OFS[:2])
        keyed = [p for p in purchases if p["order_id"] and p["order_id"].startswith("A-")]
        joining = [D._line(p["customer_id"], p["purchased_at"] + dt.timedelta(days=2), -1000, order_id=p["order_id"])
                   for p in keyed[:5]]
        joining.append(D._line(purchases[0]["customer_id"], purchases[0]["purchased_at"], 777))   # same instant
        joining = [p for p in joining if p["purchased_at"] <= AS_OF]
        eng.append("o", "purchases", joining)
        purchases = purchases + joining
        tables = D._tables(customers, purchases, [], [])
        assert _exact_shards(eng, "o", AS_OF + dt.timedelta(days=3)) < n_shards
        _check(eng, "o", tables, monkeypatch, AS_OFS[:3])

        # compaction folds them into new runs (orders joined across runs are caught when read)
        eng.compact("o")
        _check(eng, "o", tables, monkeypatch)
        more = _lines(rng, cids[1::4], dt.date(2027, 1, 10), 1, "C")
        eng.append("o", "purchases", more)
        eng.compact("o")
        purchases += more
        tables = D._tables(customers, purchases, [], [])
        _check(eng, "o", tables, monkeypatch, AS_OFS[:2])

        # erasure rewrites a shard's runs (and their orders) without the customer
        gone = [c for c in cids if c % 17 == 0]
        eng.apply_changes("o", delete=gone)
        eng.compact("o")
        customers = [c for c in customers if c["customer_id"] not in gone]
        tables = D._tables(customers, [p for p in purchases if p["customer_id"] not in gone], [], [])
        _check(eng, "o", tables, monkeypatch, AS_OFS[:2])
    finally:
        eng.close()


def test_empty_ranges_and_no_orders(tmp_path, monkeypatch):
    """A range with no days, a dataset whose customers bought nothing, an as-of before any line."""
    from segments.engine.api import Engine
    customers = [D._blank(c) for c in (1, 2, 3)]
    purchases = [D._line(1, local(dt.date(2026, 5, 1)), 500)]
    tables = D._tables(customers, purchases, [], [])
    eng = Engine(tmp_path / "data", auto_compact=False)
    try:
        eng.create_dataset("e", D.NY, shard_bits=4)
        eng.ingest("e", D.write_folder(tables, tmp_path / "in"))
        empty = S.TimeRange("custom", start=dt.date(2027, 2, 1), end=dt.date(2027, 1, 1))
        for cond, want in ((S.OrderCount(S.Cmp("==", 0), range=empty), {1, 2, 3}),
                           (S.AverageOrderValue(S.Cmp(">=", 0), empty), set()),
                           (S.OrderCount(S.Cmp("==", 1)), {1}), (S.AverageOrderValue(S.Cmp("==", 500)), {1})):
            assert _ids(eng, "e", cond, AS_OF, LK.ALL_PATHS, monkeypatch) == want
            assert Naive(tables, D.NY).ids(cond, AS_OF) == want
        assert _ids(eng, "e", S.OrderCount(S.Cmp("==", 0)), dt.datetime(2026, 1, 1, tzinfo=UTC), LK.ALL_PATHS,
                    monkeypatch) == {1, 2, 3}
    finally:
        eng.close()


def test_stored_order_lookup_where_the_clock_goes_back_over_midnight():
    """A run's orders are sorted by (local day, instant); where a zone's clock goes back over
    midnight, a later day holds earlier instants. The lookup of a stored order at an
    appended line's instant (its customer's, without order_id) searches within the line's
    day, so it finds the order there too."""
    from segments.engine.storage.orders import ORDER_COLUMNS
    from segments.engine.storage.views import PieceTable
    cols = {"o.day": np.asarray([10, 11, 11, 11], np.int32), "o.ts": np.asarray([500, 400, 450, 450], np.int64),
            "o.cust": np.asarray([1, 2, 3, 4], np.uint16)}
    pt = PieceTable(tuple(ORDER_COLUMNS), 1)
    for name, a in cols.items():
        pt.set(name, 0, a)
    for day, t, c, want in ((11, 400, 2, True), (11, 450, 4, True), (11, 450, 2, False), (10, 500, 1, True),
                            (10, 400, 2, False), (11, 500, 1, False)):
        assert BK._stored_at(pt.addr, pt.size, 0, day, t, c) == want, (day, t, c)
