"""Tracked segments: snapshots, diffs, incremental maintenance, midnight and DST.

Oracle: the engine's full evaluation (materialize) at the same state and instant, which the
maintenance's incremental path (touched customers only) and skipping never use for the
customers they leave alone; and, for the relative-range rollover, tests/naive.py over the
reference tables of tests/live_ref.LiveRef.
"""
from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from segments.engine.model import segment as S
from tests import datasets as D
from tests.live_ref import NEW_BRAND, NEW_TAG, ChangeGen, LiveRef

CUSTOMERS = 1500


def F(**fields):
    return S.ProductFilter(tuple(sorted((k, tuple(v)) for k, v in fields.items())))


def R(kind, n=None):
    return S.TimeRange(kind, n=n)


SEGMENTS = {
    "buyers30": S.Segment(S.Bought(S.NO_FILTER, R("last_n_days", 30))),
    "new_brand": S.Segment(S.Bought(F(brand=(NEW_BRAND,)))),
    "spend_today": S.Segment(S.Spend(S.Cmp(">", 0), S.NO_FILTER, R("today"))),
    "vip_or_tag": S.Segment(S.Tags(("VIP", NEW_TAG))),
    "visited_not_email": S.Segment(S.Visited(), exclude=S.Reachable("has_email")),
    "points": S.Segment(S.LoyaltyPoints(S.Cmp(">=", 500))),
    "overdue": S.Segment(S.OverdueLayby()),
    "upcoming": S.Segment(S.UpcomingAppointment()),
    "top_spend": S.Segment(S.Bought(), order_by=S.OrderBy("spend"), limit=40),
    "points_top": S.Segment(S.All(), order_by=S.OrderBy("loyalty_points"), limit=25),
    "quiet60": S.Segment(S.AllOf((S.Bought(), S.Not(S.Bought(S.NO_FILTER, R("last_n_days", 60)))))),
}


class FakeClock:
    def __init__(self, t: dt.datetime):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory):
    from segments.bench.generate import generate
    folder = tmp_path_factory.mktemp("aud_base")
    generate(folder, customers=CUSTOMERS, seed=41, fmt="parquet")
    return folder


def _setup(tmp_path, base_folder, tz, clock, name="aud", **engine_kw):
    from segments.engine.api import Engine
    from segments.engine.catalog.catalog import Catalog
    from segments.engine.catalog.maintain import Maintainer
    eng = Engine(tmp_path / "data", **engine_kw)
    eng.create_dataset(name, tz, shard_bits=10)
    eng.ingest(name, base_folder)
    cat = Catalog(eng, clock=clock)
    for k, seg in SEGMENTS.items():
        cat.create_segment(name, k, seg)
        cat.audiences.track(name, k, keep=1000)
    return eng, cat, Maintainer(eng, cat, clock=clock)


def _full(eng, name, seg, at) -> set:
    return set(int(x) for x in eng.materialize(name, seg, as_of=at).customer_ids)


def test_evaluation_scope_rule():
    from segments.engine.catalog.maintain import evaluation_scope

    assert evaluation_scope(SEGMENTS["buyers30"]).per_customer
    assert evaluation_scope(SEGMENTS["buyers30"]).tables == {"customers", "deleted", "purchases"}
    assert evaluation_scope(SEGMENTS["visited_not_email"]).tables == {"customers", "deleted", "visits"}
    assert not evaluation_scope(SEGMENTS["top_spend"]).per_customer      # limit
    assert evaluation_scope(SEGMENTS["upcoming"]).instant

    class Percentile(S.Condition):  # a kind this module does not know: full, every table
        pass

    sc = evaluation_scope(S.Segment(S.AllOf((S.Tags(("VIP",)), Percentile()))))
    assert not sc.per_customer and "purchases" in sc.tables

    class Declared(S.Condition):
        per_customer = False

    assert not evaluation_scope(S.Segment(S.Not(Declared()))).per_customer


@pytest.mark.parametrize("seed,tz", [(7, D.NY), (8, D.AKL)])
def test_entered_exited_match_full_evaluations(seed, tz, base_folder, tmp_path):
    """Random change batches, one to three between rounds (coalesced): each round's new
    snapshot equals the full evaluation at that state and instant, and its recorded
    entered / exited equal the set differences of consecutive full evaluations."""
    from segments.bench.duck import read_tables
    at = dt.datetime(2026, 11, 20, 18, 0, tzinfo=ZoneInfo(tz))
    clock = FakeClock(at)
    eng, cat, m = _setup(tmp_path, base_folder, tz, clock)
    name = "aud"
    aud = cat.audiences
    ref = LiveRef(read_tables(base_folder), tz)
    gen = ChangeGen(seed, ref)
    rng = random.Random(seed)
    m.run_once()
    prev = {k: _full(eng, name, seg, at) for k, seg in SEGMENTS.items()}
    for k in SEGMENTS:
        assert aud.latest(name, k).number == 1
        assert set(aud.diff(name, k, 1, 1).entered_ids.tolist()) == set()
    modes = {"incremental": 0, "full": 0}
    erased_seen = set()
    for rnd in range(7):
        for _ in range(rng.randint(1, 3)):
            b = gen.next()
            ref.apply(b)
            eng.apply_changes(name, **b.kwargs())
            erased_seen |= set(b.delete)
        if rnd == 3:
            eng.compact(name)   # a new version: the next round evaluates fully, diffing against the last snapshot
        clock.t = at + dt.timedelta(minutes=rnd + 1)  # the same local day
        before = {k: (aud.latest(name, k).number) for k in SEGMENTS}
        m.run_once()
        now = {k: _full(eng, name, seg, clock.t) for k, seg in SEGMENTS.items()}
        seq = eng.info(name)["live"]["sequence"]
        for k in SEGMENTS:
            snap = aud.latest(name, k)
            got = set(aud.members(name, k, snap.number))
            assert got == now[k], (k, rnd, sorted(got ^ now[k])[:10])
            if now[k] == prev[k]:
                assert snap.number == before[k], (k, "no change, no snapshot")
                continue
            assert snap.number == before[k] + 1 and snap.sequence == seq and snap.as_of == clock.t
            modes[snap.evaluation] += 1
            d = aud.diff(name, k, before[k], snap.number, fields=("email",))
            assert set(d.entered_ids.tolist()) == now[k] - prev[k]
            assert set(d.exited_ids.tolist()) == prev[k] - now[k]
            assert (snap.entered, snap.exited) == (len(now[k] - prev[k]), len(prev[k] - now[k]))
            assert set(d.entered.customer_ids.tolist()) <= set(d.entered_ids.tolist())
            assert "email" in d.entered.columns
        prev = now
    assert modes["incremental"] > 0 and modes["full"] > 0, modes
    # an erased customer that was a member exits, with its id
    gone = [c for c in erased_seen if c not in ref.ids()]
    first = {k: set(aud.members(name, k, 1)) for k in SEGMENTS}
    exits = set()
    for k in SEGMENTS:
        exits |= set(aud.diff(name, k, 1).exited_ids.tolist()) & set(gone)
    assert exits == {c for c in gone if any(c in first[k] for k in SEGMENTS)}
    eng.close()


def test_full_lane_is_paced_and_catches_up(base_folder, tmp_path):
    """The background rounds (paced): per-customer segments are recorded first, every round;
    segments not per customer (limit, instant-bound) wait while their lane ran recently,
    and once it runs they equal full evaluations of the state it read (never a mix)."""
    import time as _time

    from segments.engine.catalog.maintain import evaluation_scope
    from segments.bench.duck import read_tables
    at = dt.datetime(2026, 11, 20, 18, 0, tzinfo=ZoneInfo(D.NY))
    clock = FakeClock(at)
    eng, cat, m = _setup(tmp_path, base_folder, D.NY, clock)
    phases = []
    m.on_round = phases.append
    aud, name = cat.audiences, "aud"
    ref = LiveRef(read_tables(base_folder), D.NY)
    gen = ChangeGen(17, ref)
    m.run_once(paced=True)   # a first round evaluates everything at once
    lane = {k for k, seg in SEGMENTS.items() if not evaluation_scope(seg).per_customer or evaluation_scope(seg).instant}
    assert lane and phases[-1]["settled"] == 0 and phases[-1]["phase"] == "per_customer"
    for k in SEGMENTS:
        assert aud.latest(name, k) is not None
    m._lane[name] = (_time.monotonic(), 3600.0)   # the lane just ran and took an hour: it waits
    for _ in range(2):
        b = gen.next()
        ref.apply(b)
        eng.apply_changes(name, **b.kwargs())
    seq = eng.info(name)["live"]["sequence"]
    clock.t = at + dt.timedelta(minutes=1)
    phases.clear()
    m.run_once(paced=True)
    assert [p["phase"] for p in phases] == ["per_customer"] and phases[0]["deferred"] == len(lane)
    assert phases[0]["settled"] < seq
    for k, seg in SEGMENTS.items():
        newest = aud.latest(name, k)
        if k not in lane:
            assert set(aud.members(name, k, newest.number)) == _full(eng, name, seg, clock.t), k
        else:
            assert newest.sequence < seq, (k, "deferred")
    m._lane[name] = (_time.monotonic() - 10.0, 0.0)   # due again
    phases.clear()
    m.run_once(paced=True)
    assert [p["phase"] for p in phases] == ["per_customer", "full"] and phases[-1]["settled"] == seq
    for k, seg in SEGMENTS.items():
        assert set(aud.members(name, k, aud.latest(name, k).number)) == _full(eng, name, seg, clock.t), k
    eng.close()


def test_full_lane_thread_catches_up(base_folder, tmp_path):
    """In the background the full lane has its own thread: batches applied while both run
    end with every tracked segment's newest snapshot equal to a full evaluation."""
    import threading
    import time as _time

    from segments.bench.duck import read_tables
    at = dt.datetime(2026, 11, 20, 18, 0, tzinfo=ZoneInfo(D.NY))
    clock = FakeClock(at)
    eng, cat, m = _setup(tmp_path, base_folder, D.NY, clock)
    name, aud = "aud", cat.audiences
    phases, lock = [], threading.Lock()

    def on_round(stats):
        with lock:
            phases.append((threading.current_thread().name, stats))
    m.on_round, m.poll = on_round, 0.05
    m.run_once()
    ref = LiveRef(read_tables(base_folder), D.NY)
    gen = ChangeGen(23, ref)
    m.start()
    try:
        for _ in range(4):
            b = gen.next()
            ref.apply(b)
            eng.apply_changes(name, **b.kwargs())
        seq = eng.info(name)["live"]["sequence"]
        deadline = _time.monotonic() + 120
        while not any(st["settled"] >= seq for _, st in list(phases)):
            assert _time.monotonic() < deadline, phases[-3:]
            _time.sleep(0.05)
    finally:
        m.stop()
    assert any(t == "audiences-lane" and st["phase"] == "full" for t, st in phases)
    for k, seg in SEGMENTS.items():
        assert set(aud.members(name, k, aud.latest(name, k).number)) == _full(eng, name, seg, clock.t), k
    eng.close()


def test_diff_to_now_and_retention(base_folder, tmp_path):
    from segments.engine.errors import FailedPrecondition, NotFound
    at = dt.datetime(2026, 11, 20, 18, 0, tzinfo=ZoneInfo(D.NY))
    clock = FakeClock(at)
    eng, cat, m = _setup(tmp_path, base_folder, D.NY, clock)
    aud = cat.audiences
    aud.track("aud", "points", keep=2, keep_days=1)
    m.run_once()
    ids = eng.materialize("aud", S.Segment(S.All()), as_of=at).customer_ids[:30].tolist()
    numbers = []
    for i in range(4):  # each round moves 5 customers above / below the points threshold
        rows = [{"customer_id": c, "loyalty_points": 900 if (j + i) % 2 else 10} for j, c in enumerate(ids[5 * i:5 * i + 10])]
        eng.upsert_customers("aud", rows)
        clock.t += dt.timedelta(hours=1)
        m.run_once(["aud"])
        numbers.append(aud.latest("aud", "points").number)
    kept = [s.number for s in aud.snapshots("aud", "points")]
    assert kept == numbers[-2:]
    with pytest.raises(NotFound) as e:
        aud.members("aud", "points", 1)
    assert e.value.reason == "SNAPSHOT_NOT_FOUND"
    d = aud.diff("aud", "points", kept[0])  # to now: a fresh full evaluation
    full = _full(eng, "aud", SEGMENTS["points"], clock.t)
    old = set(aud.members("aud", "points", kept[0]))
    assert set(d.entered_ids.tolist()) == full - old and set(d.exited_ids.tolist()) == old - full
    clock.t += dt.timedelta(days=2)  # age: every snapshot but the newest goes
    aud.track("aud", "points", keep=2, keep_days=1)
    assert [s.number for s in aud.snapshots("aud", "points")] == numbers[-1:]
    cat.create_segment("aud", "untracked", S.Segment(S.All()))
    with pytest.raises(FailedPrecondition):
        aud.diff("aud", "untracked", 1)
    cat.delete_segment("aud", "points")
    assert "points" not in aud.tracked("aud")
    eng.close()


def test_midnight_rollover_relative_ranges(base_folder, tmp_path):
    """No batch: the same local day re-evaluates nothing; the first round after local
    midnight re-evaluates fully, and relative ranges ("last 30 days", "not in the last 60
    days", "today") move: entered / exited equal tests/naive.py's set differences between
    the two instants."""
    from segments.bench.duck import read_tables
    from tests.naive import Naive
    zone = ZoneInfo(D.NY)
    before = dt.datetime(2026, 11, 20, 23, 59, 30, tzinfo=zone)
    clock = FakeClock(before)
    eng, cat, m = _setup(tmp_path, base_folder, D.NY, clock)
    aud = cat.audiences
    naive = Naive(read_tables(base_folder), D.NY)
    m.run_once()
    clock.t = before + dt.timedelta(seconds=20)       # still 20 November
    assert m.run_once() == []
    clock.t = dt.datetime(2026, 11, 21, 0, 0, 5, tzinfo=zone)
    recorded = {name: snap for _, name, snap in m.run_once()}
    moved = 0
    for k in ("buyers30", "quiet60", "spend_today", "points"):
        was, now = set(naive.result(SEGMENTS[k], before)), set(naive.result(SEGMENTS[k], clock.t))
        snap = aud.latest("aud", k)
        assert set(aud.members("aud", k, snap.number)) == now, k
        if was == now:
            assert k not in recorded
            continue
        moved += 1
        assert recorded[k].evaluation == "full" and recorded[k].as_of == clock.t
        d = aud.diff("aud", k, snap.number - 1, snap.number)
        assert set(d.entered_ids.tolist()) == now - was and set(d.exited_ids.tolist()) == was - now, k
    assert moved >= 2  # the data has customers whose 30 / 60 days run out at this midnight
    eng.close()


def test_midnight_in_the_background_thread_and_dst(base_folder, tmp_path):
    """The background thread notices a batch (listener) and local midnight on its own;
    next_midnight follows DST (Santiago skips 00:00 on 6 September 2026)."""
    import time
    from segments.engine.catalog.maintain import next_midnight
    z = ZoneInfo("America/Santiago")
    assert next_midnight(dt.datetime(2026, 9, 5, 12, tzinfo=z), z) == dt.datetime(2026, 9, 6, 1, tzinfo=z)
    ny = ZoneInfo(D.NY)
    assert next_midnight(dt.datetime(2026, 11, 1, 0, 30, tzinfo=ny), ny) == dt.datetime(2026, 11, 2, tzinfo=ny)

    clock = FakeClock(dt.datetime(2026, 11, 20, 23, 0, tzinfo=ny))
    eng, cat, m = _setup(tmp_path, base_folder, D.NY, clock)
    m.poll = 0.05
    m.start()
    try:
        aud = cat.audiences

        def wait(pred, what):
            end = time.monotonic() + 30
            while not pred():
                assert time.monotonic() < end, what
                time.sleep(0.02)
        wait(lambda: all(aud.latest("aud", k) is not None for k in SEGMENTS), "first snapshots")
        n0 = aud.latest("aud", "points").number
        cid = int(eng.materialize("aud", S.Segment(S.Not(SEGMENTS["points"].include))).customer_ids[0])
        eng.upsert_customers("aud", [{"customer_id": cid, "loyalty_points": 10_000}])
        wait(lambda: aud.latest("aud", "points").number == n0 + 1, "a snapshot after the batch")
        assert aud.diff("aud", "points", n0, n0 + 1).entered_ids.tolist() == [cid]
        n30 = aud.latest("aud", "buyers30").number
        clock.t = dt.datetime(2026, 11, 21, 0, 0, 1, tzinfo=ny)
        wait(lambda: aud.latest("aud", "buyers30").number == n30 + 1, "a snapshot at midnight")
        assert aud.latest("aud", "buyers30").evaluation == "full"
    finally:
        m.stop()
        eng.close()


def test_snapshots_store_changes_and_checkpoints(tmp_path, base_folder, monkeypatch):
    """Random memberships recorded one after another: every retained snapshot's members
    (checkpoint + changes) and changes equal what was recorded, also after pruning."""
    from segments.engine.catalog import audiences as A
    monkeypatch.setattr(A, "CHECKPOINT_EVERY", 4)
    clock = FakeClock(dt.datetime(2026, 11, 20, 12, tzinfo=dt.timezone.utc))
    eng, cat, _ = _setup(tmp_path, base_folder, D.NY, clock)
    aud = cat.audiences
    aud.track("aud", "points", keep=7)
    rng = np.random.default_rng(1)
    sets, prev = {}, None
    for n in range(1, 20):
        cur = np.unique(rng.choice(np.concatenate([rng.integers(0, 2**62, 50), np.arange(100)]), 80))
        s = aud.record("aud", "points", cur, prev, clock.t, n, "full")
        assert s.number == n and (s.entered, s.exited) == (len(set(cur) - set(prev if prev is not None else [])),
                                                             len(set(prev if prev is not None else []) - set(cur)))
        sets[n], prev = cur, cur
    kept = [s.number for s in aud.snapshots("aud", "points")]
    assert kept == list(range(13, 20))
    for n in kept:
        assert np.array_equal(aud.members("aud", "points", n), sets[n]), n
        if n > kept[0]:
            e, x = aud.delta("aud", "points", n)
            assert set(e.tolist()) == set(sets[n]) - set(sets[n - 1]) and set(x.tolist()) == set(sets[n - 1]) - set(sets[n])
    eng.close()


def test_one_process_maintains_a_data_directory(base_folder, tmp_path):
    """Two maintainers over one data directory (as server processes sharing it): only the
    one holding the lock records; the other takes over once it stops."""
    from segments.engine.catalog.catalog import Catalog
    from segments.engine.catalog.maintain import Maintainer
    at = dt.datetime(2026, 11, 20, 18, 0, tzinfo=ZoneInfo(D.NY))
    eng, cat, first = _setup(tmp_path, base_folder, D.NY, FakeClock(at))
    second = Maintainer(eng, Catalog(eng, clock=FakeClock(at)), clock=FakeClock(at))
    assert len(first.run_once()) == len(SEGMENTS)
    assert second.run_once() == [] and not second.leader()
    first.stop()
    assert second.leader()
    assert second.run_once() == []   # nothing changed: the newest snapshots are taken over as they are
    second.stop()
    eng.close()


def test_maintainer_taking_the_lock_back_reads_what_another_recorded(base_folder, tmp_path):
    """A maintainer that gave the data directory up and takes it back starts from the
    snapshots recorded meanwhile by another (not from those it recorded itself): after A, B,
    then A again, each with its own batches, every newest snapshot equals a full evaluation
    and its entered / exited the differences of consecutive ones."""
    from segments.bench.duck import read_tables
    from segments.engine.catalog.catalog import Catalog
    from segments.engine.catalog.maintain import Maintainer
    at = dt.datetime(2026, 11, 20, 18, 0, tzinfo=ZoneInfo(D.NY))
    clock = FakeClock(at)
    eng, cat, a = _setup(tmp_path, base_folder, D.NY, clock)
    b = Maintainer(eng, Catalog(eng, clock=clock), clock=clock)
    gen = ChangeGen(3, LiveRef(read_tables(base_folder), D.NY))
    aud = cat.audiences
    prev = None
    for rnd, (runs, other) in enumerate(((a, b), (b, a), (a, b), (b, a), (a, b))):
        for _ in range(2):
            batch = gen.next()
            gen.ref.apply(batch)
            eng.apply_changes("aud", **batch.kwargs())
        clock.t = at + dt.timedelta(minutes=rnd)
        runs.run_once()
        now = {k: _full(eng, "aud", seg, clock.t) for k, seg in SEGMENTS.items()}
        for k in SEGMENTS:
            snap = aud.latest("aud", k)
            assert set(aud.members("aud", k, snap.number)) == now[k], (rnd, k)
            if prev is not None and snap.number > 1 and now[k] != prev[k]:
                d = aud.diff("aud", k, snap.number - 1, snap.number)
                assert set(d.entered_ids.tolist()) == now[k] - prev[k], (rnd, k)
                assert set(d.exited_ids.tolist()) == prev[k] - now[k], (rnd, k)
        prev = now
        runs.stop()
    eng.close()


ORDERED_SEGMENTS = {
    "spend_band": S.Segment(S.Spend(S.Cmp("between", 30000, 90000), S.NO_FILTER, R("last_n_days", 30))),
    "aov_band": S.Segment(S.AverageOrderValue(S.Cmp("between", 2000, 9000))),
    "today_big": S.Segment(S.Spend(S.Cmp(">=", 20000), S.NO_FILTER, R("today"))),
}


def test_incremental_rounds_on_an_ordered_view_follow_customers_in_and_out(base_folder, tmp_path):
    """A view whose internal id order is customer_id order (no customer created since the
    load) keeps each membership as internal ids too, and finds which touched customers were
    members by one intersection. Purchases and refunds of a few customers, round after round,
    move them in and out of each segment and back: every snapshot equals the full evaluation
    and its entered / exited the differences of consecutive ones."""
    import pyarrow as pa
    from segments.engine.catalog.catalog import Catalog
    from segments.engine.catalog.maintain import Maintainer
    at = dt.datetime(2026, 11, 20, 18, 0, tzinfo=ZoneInfo(D.NY))
    clock = FakeClock(at)
    from segments.engine.api import Engine
    eng = Engine(tmp_path / "data")
    eng.create_dataset("o", D.NY, shard_bits=10)
    eng.ingest("o", base_folder)
    cat = Catalog(eng, clock=clock)
    for k, seg in ORDERED_SEGMENTS.items():
        cat.create_segment("o", k, seg)
        cat.audiences.track("o", k, keep=1000)
    m = Maintainer(eng, cat, clock=clock)
    m.run_once()
    aud = cat.audiences
    rng = np.random.default_rng(12)
    pool = rng.choice(eng.materialize("o", S.Segment(S.All()), as_of=at).customer_ids, 40, replace=False)
    prev = {k: _full(eng, "o", seg, at) for k, seg in ORDERED_SEGMENTS.items()}
    moves = {"in": 0, "out": 0}
    for rnd in range(12):
        for _ in range(int(rng.integers(1, 3))):
            n = int(rng.integers(5, 25))
            ts = int((at - dt.timedelta(hours=1)).timestamp() * 1e6) - rng.integers(0, 3_600_000_000, n)
            eng.apply_changes("o", purchases=pa.table({
                "customer_id": pa.array(rng.choice(pool, n), pa.int64()),
                "purchased_at": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "amount": pa.array(rng.choice([-15000, -4000, 3000, 12000, 25000], n), pa.int64())}))
        clock.t = at + dt.timedelta(seconds=rnd + 1)
        m.run_once()
        _, _, view = eng.dataset("o").reading()
        assert view.ordered
        now = {k: _full(eng, "o", seg, clock.t) for k, seg in ORDERED_SEGMENTS.items()}
        for k in ORDERED_SEGMENTS:
            assert m._seen[("o", k)].iids is not None, "an ordered view keeps the members' internal ids"
            snap = aud.latest("o", k)
            assert set(aud.members("o", k, snap.number)) == now[k], (rnd, k)
            if now[k] != prev[k]:
                assert snap.evaluation == "incremental"
                d = aud.diff("o", k, snap.number - 1, snap.number)
                assert set(d.entered_ids.tolist()) == now[k] - prev[k], (rnd, k)
                assert set(d.exited_ids.tolist()) == prev[k] - now[k], (rnd, k)
                moves["in"] += len(now[k] - prev[k])
                moves["out"] += len(prev[k] - now[k])
        prev = now
    assert moves["in"] >= 10 and moves["out"] >= 10, moves
    eng.close()
