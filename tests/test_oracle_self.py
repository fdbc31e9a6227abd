"""The oracle checks itself: DuckPeer and the naive reference agree on small data.

Every CATALOG condition and random trees / segments at two seeds, on random adversarial
tables (two seeds, two zones) and on the hand-made edge tables; plus a few hand-computed
answers so that both references cannot share one misreading of the spec. No engine needed.
"""
from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest

from segments.bench.duck import DuckPeer, month_shift, range_dates
from segments.engine.model import segment as S
from tests import datasets as D
from tests.naive import Naive, add_months, date_range, normalise
from tests.test_conditions import CATALOG, RANGES, as_ofs_for, cmp, custom, dataset_values
from tests.test_properties import build_segment, build_tree, random_segment_spec, random_tree

UTC = dt.timezone.utc
RANDOM_AS_OFS = [dt.datetime(2026, 3, 8, 17, 0, tzinfo=UTC), dt.datetime(2027, 2, 28, 18, 0, tzinfo=UTC),
                 dt.datetime(2028, 2, 29, 20, 0, tzinfo=UTC), dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC)]
SOURCES = {"rand1": (1, D.NY), "rand2": (2, D.AKL), "edge_ny": (None, D.NY), "edge_akl": (None, D.AKL)}


class Pair:
    def __init__(self, tables, tz, as_ofs):
        self.peer, self.naive, self.as_ofs = DuckPeer(tables, tz, threads=2), Naive(tables, tz), as_ofs
        self.values = dataset_values(self.peer)


@pytest.fixture(scope="module", params=list(SOURCES))
def pair(request):
    seed, tz = SOURCES[request.param]
    if seed is None:
        return Pair(D.edge_tables(), tz, D.EDGE_AS_OFS_BY_ZONE[tz][:5])
    return Pair(D.random_tables(seed), tz, RANDOM_AS_OFS)


def test_every_condition(pair):
    bad = []
    for name, make in CATALOG.items():
        cond = make(pair.values)
        for as_of in as_ofs_for(name, pair.as_ofs):
            want, got = pair.naive.ids(cond, as_of), pair.peer.ids(cond, as_of)
            if want != got:
                bad.append(f"{name} @ {as_of}: naive-only {sorted(want - got)[:5]} peer-only {sorted(got - want)[:5]}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_trees(pair, seed):
    rng = random.Random(seed)
    for _ in range(25):
        spec = random_tree(rng)
        cond, as_of = build_tree(spec, pair.values), rng.choice(pair.as_ofs)
        assert pair.naive.ids(cond, as_of) == pair.peer.ids(cond, as_of), spec


@pytest.mark.parametrize("seed", [1, 2])
def test_random_segments(pair, seed):
    rng = random.Random(seed)
    for _ in range(25):
        spec = random_segment_spec(rng)
        seg, as_of = build_segment(spec, pair.values), rng.choice(pair.as_ofs)
        assert pair.naive.ranked(seg, as_of) == pair.peer.ranked(seg, as_of), spec
        assert pair.naive.count(seg, as_of) == pair.peer.count(seg, as_of), spec


@pytest.mark.parametrize("kind", ["disk", "parquet"])
@pytest.mark.parametrize("source", ["rand1", "edge_akl"])
def test_on_disk_peer_equals_in_memory_peer(source, kind, tmp_path):
    """The bench's peers for L (tables loaded by DuckDB from Parquet into a database file,
    or views over the Parquet files; local dates by DuckDB's time zones) answer every
    condition as the in-memory peer does, the file also when reopened."""
    seed, tz = SOURCES[source]
    tables = D.random_tables(seed) if seed is not None else D.edge_tables()
    as_ofs = RANDOM_AS_OFS if seed is not None else D.EDGE_AS_OFS_BY_ZONE[tz][:5]
    folder = D.write_folder(tables, tmp_path / "in")
    mem = DuckPeer(tables, tz, threads=2)
    values = dataset_values(mem)
    for attempt in range(2):
        if kind == "disk":
            disk = DuckPeer.on_disk(folder, tz, tmp_path / "peer.db", threads=2, memory_limit="1GB",
                                    log=lambda *a: None)
        else:
            disk = DuckPeer.over_parquet(folder, tz, threads=2, memory_limit="1GB", log=lambda *a: None)
        bad = []
        for name, make in CATALOG.items():
            cond = make(values)
            for as_of in as_ofs_for(name, as_ofs)[:2]:
                if mem.ids(cond, as_of) != disk.ids(cond, as_of):
                    bad.append(f"{name} @ {as_of}")
        disk.close()
        assert not bad, (attempt, bad)


# ---------------------------------------------------------------- hand-computed answers

def test_ranges_by_hand():
    today = dt.date(2027, 3, 31)   # a Wednesday
    want = {
        "today": (today, today), "yesterday": (dt.date(2027, 3, 30),) * 2,
        "last_week": (dt.date(2027, 3, 22), dt.date(2027, 3, 28)),
        "month_to_date": (dt.date(2027, 3, 1), today),
        "previous_month": (dt.date(2027, 2, 1), dt.date(2027, 2, 28)),
        "year_to_date": (dt.date(2027, 1, 1), today), "ever": (None, None),
        "days1": (today, today), "days30": (dt.date(2027, 3, 2), today),
        "months1": (dt.date(2027, 3, 1), today),            # 31 Mar - 1 month = 28 Feb, + 1 day
        "months6": (dt.date(2026, 10, 1), today),
        "off_12_6": (dt.date(2026, 3, 31), dt.date(2026, 9, 30)),
        "off_days": (dt.date(2027, 2, 25), dt.date(2027, 3, 30)),
        "mixed": (dt.date(2025, 12, 1), dt.date(2027, 2, 28)),
    }
    for name, (start, end) in want.items():
        assert range_dates(RANGES[name], today) == (start, end), name
        assert date_range(RANGES[name], today) == (start, end), name
    assert range_dates(RANGES["last_week"], dt.date(2027, 3, 29)) == (dt.date(2027, 3, 22), dt.date(2027, 3, 28))
    assert month_shift(dt.date(2028, 3, 31), -1) == add_months(dt.date(2028, 3, 31), -1) == dt.date(2028, 2, 29)
    leap_day = dt.date(2028, 2, 29)
    assert range_dates(S.TimeRange("last_n_months", 12), leap_day) == (dt.date(2027, 3, 1), leap_day)


def test_edge_answers_by_hand():
    """Known answers on the edge tables, in both zones."""
    t = D.edge_tables()
    ny, akl = DuckPeer(t, D.NY, threads=2), DuckPeer(t, D.AKL, threads=2)
    f29 = D.EDGE_FEB29
    bday = S.Birthday("birth", "today")

    def at(y, m, d):
        return dt.datetime(y, m, d, 12, tzinfo=ZoneInfo(D.NY))
    assert f29 in ny.ids(bday, at(2027, 2, 28))
    assert f29 not in ny.ids(bday, at(2027, 3, 1))
    assert f29 in ny.ids(bday, at(2028, 2, 29))
    assert f29 not in ny.ids(bday, at(2028, 2, 28))
    assert f29 in ny.ids(S.Birthday("anniversary", "today"), at(2027, 2, 28))
    assert f29 in ny.ids(S.Birthday("birth", "next_days", days=1), at(2027, 2, 28))
    assert f29 not in ny.ids(S.Birthday("birth", "next_days", days=1), at(2027, 2, 27))
    assert f29 in ny.ids(S.Birthday("birth", "next_days", days=2), at(2027, 2, 27))
    assert f29 in ny.ids(S.MarriedToday(), at(2027, 2, 28))
    assert f29 in ny.ids(S.Age(cmp("==", 27)), at(2027, 2, 28))     # advances on 28 Feb
    assert f29 in ny.ids(S.Age(cmp("==", 26)), at(2027, 2, 27))
    assert f29 in ny.ids(S.Age(cmp("==", 27)), at(2028, 2, 28))     # leap year: not yet 28
    assert f29 in ny.ids(S.Age(cmp("==", 28)), at(2028, 2, 29))
    # wrap of the year: 28 Dec + 7 days reaches 3 Jan
    jan = ny.ids(S.Birthday("birth", "next_days", days=7), at(2026, 12, 28))
    assert jan == Naive(t, D.NY).ids(S.Birthday("birth", "next_days", days=7), at(2026, 12, 28))
    # refunds: net negative spend; inactive never; idle has spend 0 and count 0
    late = dt.datetime(2029, 1, 1, tzinfo=UTC)
    assert D.EDGE_REFUND in ny.ids(S.Spend(cmp("==", -3000)), late)
    assert D.EDGE_REFUND in ny.ids(S.Bought(), late)
    assert D.EDGE_INACTIVE not in ny.ids(S.All(), late)
    assert D.EDGE_INACTIVE not in ny.ids(S.Not(S.Bought()), late)
    assert D.EDGE_IDLE in ny.ids(S.AllOf((S.Spend(cmp("==", 0)), S.PurchaseCount(cmp("==", 0)),
                                          S.Visited(cmp("==", 0)))), late)
    assert D.EDGE_NULLS in ny.ids(S.All(), late)                     # null active = active
    nulls_hit = [c for c in (S.LoyaltyPoints(cmp("<=", 0)), S.AccountBalance(cmp("<=", 0)),
                             S.Reachable("has_email"), S.Age(cmp(">=", 0)), S.Tags(("VIP",), "any"))
                 if D.EDGE_NULLS in ny.ids(c, late)]
    assert nulls_hit == []
    # visibility: 1 s after as_of is invisible; a line exactly at as_of counts
    fa = D.FUTURE_AS_OF
    assert D.EDGE_FUTURE in ny.ids(S.Spend(cmp("==", 3333)), fa)
    assert D.EDGE_FUTURE in ny.ids(S.Visited(cmp("==", 1)), fa)
    assert D.EDGE_FUTURE in ny.ids(S.UpcomingAppointment(), fa)
    assert D.EDGE_FUTURE not in ny.ids(S.UpcomingAppointment(), fa + dt.timedelta(seconds=1))
    assert D.EDGE_FUTURE in ny.ids(S.OverdueLayby(), fa)
    assert D.EDGE_FUTURE not in ny.ids(S.OverdueLayby(), fa - dt.timedelta(days=1))
    # search / surname
    assert ny.ids(S.Surname("smith"), late) >= {D.EDGE_SMITH, D.EDGE_SMITH_ACCENT}
    assert D.EDGE_SMITHSON not in ny.ids(S.Surname("smith"), late)
    assert D.EDGE_SMITHSON in ny.ids(S.Search("smith", ("last_name",)), late)
    assert D.EDGE_SMITH_ACCENT in ny.ids(S.Search("JOSE", ("first_name",)), late)
    assert D.EDGE_SMITH_ACCENT in ny.ids(S.Search("montreal", ("city",)), late)
    assert D.EDGE_DST in ny.ids(S.Search("2125550101", ("phone",)), late)
    assert D.EDGE_DST in ny.ids(S.Search("555-0101", ("phone",)), late)
    assert D.EDGE_DST not in ny.ids(S.Reachable("has_email"), late)  # "  " is no email
    # gold charm on one line: Smith yes, Smithson (gold beads + silver charms) no
    gold_charm = S.Bought(S.ProductFilter((("department", ("charms",)), ("metal", ("gold",)))))
    got = ny.ids(gold_charm, late)
    assert D.EDGE_SMITH in got and D.EDGE_SMITHSON not in got
    # DST: local dates differ by zone
    day = custom(dt.date(2026, 3, 8), dt.date(2026, 3, 8))
    assert D.EDGE_DST in ny.ids(S.Spend(cmp("==", 900), S.NO_FILTER, day), late)
    day = custom(dt.date(2026, 4, 5), dt.date(2026, 4, 5))
    assert D.EDGE_DST_AKL in akl.ids(S.Spend(cmp("==", 900), S.NO_FILTER, day), late)
    # ties: ascending customer_id among equal values, absent values last both ways
    for desc in (True, False):
        seg = S.Segment(S.Customers(D.EDGE_TIES + (D.EDGE_IDLE, D.EDGE_NULLS)),
                        order_by=S.OrderBy("loyalty_points", descending=desc))
        order = ny.result(seg, late)
        assert order[-1] == D.EDGE_NULLS
        assert order[:-1] == ([*D.EDGE_TIES, D.EDGE_IDLE] if desc else [D.EDGE_IDLE, *D.EDGE_TIES])
        seg = S.Segment(S.Customers(D.EDGE_TIES + (D.EDGE_IDLE,)), order_by=S.OrderBy("last_purchase", descending=desc))
        assert ny.result(seg, late) == [*D.EDGE_TIES, D.EDGE_IDLE]
    assert ny.count(S.Segment(S.Customers((D.EDGE_SMITH, D.EDGE_FEB29, D.EDGE_INACTIVE))), late) == (2, 1, 2)


def test_normalisation_matches_python(pair):
    """DuckDB's strip_accents(lower()) equals the naive NFD-based normalisation on every value."""
    for f in ("first_name", "last_name", "email", "address", "city", "postal_code"):
        rows = pair.peer.con.execute(f"SELECT DISTINCT {f}, _n_{f} FROM customers WHERE {f} IS NOT NULL").fetchall()
        assert [x for x, n in rows if normalise(x) != n] == []


def test_csv_and_parquet_folders_read_alike(tmp_path):
    """DuckPeer.from_folder reads the generator's CSV exactly as its Parquet (same seed)."""
    from segments.bench.generate import generate
    peers = []
    for fmt in ("parquet", "csv"):
        generate(tmp_path / fmt, customers=400, seed=3, fmt=fmt)
        peers.append(DuckPeer.from_folder(tmp_path / fmt, D.AKL, threads=2))
    for table in ("customers", "purchases", "visits", "laybys"):
        q = f"SELECT md5(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR)), COUNT(*) FROM {table} t"
        a, b = (p.con.execute(q).fetchone() for p in peers)
        assert a == b and a[1] > 0, table
    v = dataset_values(peers[0])
    for name in ("search/all/an", "bought/months6", "spend/between/beads_charms", "tags/any", "birth/next30"):
        cond = CATALOG[name](v)
        assert peers[0].ids(cond, RANDOM_AS_OFS[1]) == peers[1].ids(cond, RANDOM_AS_OFS[1]), name
