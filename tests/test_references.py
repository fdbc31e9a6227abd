"""in_segment and in_group (shared/spec behaviour.md, References): evaluated against the
catalog of the engine, checked against DuckDB and the naive reference given the same saved
segments and frozen groups; cycles, unknown names, inactive segments and expired groups."""
from __future__ import annotations

import datetime as dt

import pytest

from segments.bench.duck import DuckPeer
from segments.engine.errors import FailedPrecondition, InvalidArgument, NotFound
from segments.engine.model import segment as S
from tests import datasets as D
from tests.naive import Naive

UTC = dt.timezone.utc
AS_OFS = [dt.datetime(2027, 2, 28, 18, tzinfo=UTC), dt.datetime(2026, 6, 1, 12, tzinfo=UTC)]
SAVED = {
    "vip": S.Segment(S.Spend(S.Cmp(">=", 10000)), order_by=S.OrderBy("spend"), limit=25),
    "members": S.Segment(S.LoyaltyMember(), exclude=S.Bought(range=S.TimeRange("last_n_months", n=1)),
                         append=(S.Tags(("VIP",)),)),
    "nested": S.Segment(S.AllOf((S.InSegment("vip"), S.Not(S.InSegment("members"))))),
}
GROUP_SOURCE = S.Segment(S.PurchaseCount(S.Cmp(">=", 3)))
CASES = {
    "in_segment/vip": S.InSegment("vip"),
    "in_segment/members": S.InSegment("members"),
    "in_segment/nested": S.InSegment("nested"),
    "not_in_segment": S.Not(S.InSegment("vip")),
    "in_group": S.InGroup("buyers"),
    "in_group/and": S.AllOf((S.InGroup("buyers"), S.Bought(range=S.TimeRange("last_n_months", n=12)))),
    "percentile/among_segment": S.Percentile(S.Value("spend"), S.Cmp(">=", 50), S.InSegment("members")),
}


class Clock:
    def __init__(self):
        self.shift = dt.timedelta(0)

    def __call__(self):
        return dt.datetime.now(UTC) + self.shift


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from segments.engine.api import Engine
    from segments.engine.catalog.catalog import Catalog
    tables = D.random_tables(3, 300)
    folder = D.write_folder(tables, tmp_path_factory.mktemp("refs-in"))
    eng = Engine(tmp_path_factory.mktemp("refs-data"), auto_compact=False)
    eng.create_dataset("r", D.NY, shard_bits=8)
    eng.ingest("r", folder)
    clock = Clock()
    cat = Catalog(eng, clock=clock)
    for name, seg in SAVED.items():
        cat.create_segment("r", name, seg)
    cat.create_group("r", "buyers", GROUP_SOURCE, as_of=AS_OFS[0])
    peer, naive = DuckPeer(tables, D.NY, threads=2), Naive(tables, D.NY)
    members = {int(x) for x in cat.group_members("r", "buyers")}
    for ref in (peer, naive):
        ref.saved_segments.update(SAVED)
        ref.groups["buyers"] = members
    yield eng, cat, clock, peer, naive
    eng.close()


@pytest.mark.parametrize("name", list(CASES))
def test_against_both_oracles(world, name):
    eng, _, _, peer, naive = world
    cond = CASES[name]
    for as_of in AS_OFS:
        got = [int(x) for x in eng.materialize("r", S.Segment(cond), as_of=as_of).customer_ids]
        want = peer.result(S.Segment(cond), as_of)
        assert got == want, f"{name} @ {as_of}"
        assert naive.ids(cond, as_of) == set(want), f"naive vs peer: {name} @ {as_of}"
    assert want, f"{name}: an empty answer proves little"


def test_group_members_must_still_be_active(world):
    eng, cat, _, _, _ = world
    members = sorted(int(x) for x in cat.group_members("r", "buyers"))
    seg = S.Segment(S.InGroup("buyers"))
    before = [int(x) for x in eng.materialize("r", seg, as_of=AS_OFS[0]).customer_ids]
    eng.delete_customers("r", members[:2])
    after = [int(x) for x in eng.materialize("r", seg, as_of=AS_OFS[0]).customer_ids]
    assert after == [i for i in before if i not in members[:2]]


def test_unknown_names_are_not_found(world):
    eng = world[0]
    with pytest.raises(NotFound) as e:
        eng.count("r", S.Segment(S.InSegment("no-such")))
    assert e.value.path == "in_segment"
    with pytest.raises(NotFound) as e:
        eng.count("r", S.Segment(S.InGroup("no-such")))
    assert e.value.path == "in_group"


def test_a_reference_cycle_is_refused_naming_the_path(world):
    _, cat, _, _, _ = world
    cat.create_segment("r", "cyc-a", S.Segment(S.InSegment("cyc-b")))   # cyc-b does not exist yet
    with pytest.raises(InvalidArgument) as e:
        cat.create_segment("r", "cyc-b", S.Segment(S.LoyaltyMember(), append=(S.AnyOf((S.All(), S.InSegment("cyc-a"))),)))
    assert e.value.path == "append[0].any_of[1].in_segment"
    assert "cyc-b -> cyc-a -> cyc-b" in e.value.message
    with pytest.raises(InvalidArgument):
        cat.create_segment("r", "cyc-self", S.Segment(S.InSegment("cyc-self")))
    cat.create_segment("r", "cyc-c", S.Segment(S.All()))
    with pytest.raises(InvalidArgument):
        cat.update_segment("r", "cyc-c", segment=S.Segment(
            S.Percentile(S.Value("spend"), S.Cmp(">", 1), S.InSegment("cyc-c"))))


def test_inactive_segment_and_expired_group(world):
    eng, cat, clock, _, _ = world
    cat.create_segment("r", "off", S.Segment(S.All()), active=False)
    with pytest.raises(FailedPrecondition):
        eng.count("r", S.Segment(S.InSegment("off")))
    clock.shift = dt.timedelta(days=181)
    try:
        with pytest.raises(FailedPrecondition) as e:
            eng.count("r", S.Segment(S.InGroup("buyers")))
        assert e.value.path == "in_group"
    finally:
        clock.shift = dt.timedelta(0)
