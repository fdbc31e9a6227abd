"""engine.catalog: saved segments (dynamic, active flag) and customer groups (frozen, expiring)."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segments.engine.model import segment as S
from segments.engine.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tests.grpc_support import Clock, grpc_env  # noqa: F401  (fixture)

MEMBERS = S.Segment(S.LoyaltyMember())
LAPSING = S.Segment(S.AllOf((S.Visited(S.Cmp(">=", 3), range=S.TimeRange("last_n_months", n=12)),
                             S.Not(S.Visited(range=S.TimeRange("last_n_months", n=2))),
                             S.Not(S.UpcomingAppointment()))))


@pytest.fixture()
def cat(grpc_env):
    from segments.engine.catalog.catalog import Catalog
    return Catalog(grpc_env.engine, clock=Clock())


def test_saved_segments_crud(cat):
    s = cat.create_segment("shop", "cat-members", MEMBERS, "loyalty members")
    assert (s.name, s.segment, s.active, s.description) == ("cat-members", MEMBERS, True, "loyalty members")
    with pytest.raises(AlreadyExists):
        cat.create_segment("shop", "cat-members", MEMBERS)
    assert cat.get_segment("shop", "cat-members") == s
    assert "cat-members" in [x.name for x in cat.list_segments("shop")]
    u = cat.update_segment("shop", "cat-members", segment=LAPSING, description="lapsing")
    assert (u.segment, u.description, u.created_at) == (LAPSING, "lapsing", s.created_at)
    assert u.updated_at >= s.updated_at
    cat.delete_segment("shop", "cat-members")
    with pytest.raises(NotFound):
        cat.get_segment("shop", "cat-members")
    with pytest.raises(NotFound):
        cat.delete_segment("shop", "cat-members")


def test_saved_segments_persist_and_are_evaluated_fresh(cat, grpc_env):
    from segments.engine.catalog.catalog import Catalog
    cat.create_segment("shop", "cat-fresh", MEMBERS)
    again = Catalog(grpc_env.engine)  # a new process would see the same files
    assert again.resolve("shop", "cat-fresh") == MEMBERS
    cat.update_segment("shop", "cat-fresh", segment=LAPSING)
    assert again.resolve("shop", "cat-fresh") == LAPSING


def test_an_inactive_saved_segment_cannot_be_used(cat):
    cat.create_segment("shop", "cat-off", MEMBERS, active=False)
    with pytest.raises(FailedPrecondition) as e:
        cat.resolve("shop", "cat-off")
    assert e.value.path == "saved_segment"
    with pytest.raises(FailedPrecondition):
        cat.create_group("shop", "cat-off-group", saved_segment="cat-off")
    cat.update_segment("shop", "cat-off", active=True)
    assert cat.resolve("shop", "cat-off") == MEMBERS


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "x" * 200, "a..b"])
def test_names_cannot_be_paths(cat, name):
    with pytest.raises(InvalidArgument) as e:
        cat.create_segment("shop", name, MEMBERS)
    assert e.value.path == "name"


def test_unknown_dataset_is_not_found(cat):
    with pytest.raises(NotFound):
        cat.list_segments("no-such-dataset")
    with pytest.raises(NotFound):
        cat.create_group("no-such-dataset", "g", MEMBERS)


def test_group_freezes_members_and_count(cat, grpc_env, tmp_path):
    eng = grpc_env.engine
    want = np.sort(eng.materialize("other", MEMBERS).customer_ids)
    g = cat.create_group("other", "cat-frozen", MEMBERS, description="members then")
    assert g.count == len(want) > 2
    assert g.expires_at - g.created_at == dt.timedelta(days=180)
    assert np.array_equal(cat.group_members("other", "cat-frozen"), want)

    # a later load: one member leaves (inactive), a new member joins
    gone, new_id = int(want[0]), int(want.max()) + 12345
    pq.write_table(pa.table({"customer_id": pa.array([gone, new_id], pa.int64()),
                             "loyalty_member": [True, True], "active": [False, True]}), tmp_path / "customers.parquet")
    eng.ingest("other", tmp_path)
    now = eng.materialize("other", MEMBERS).customer_ids
    assert new_id in now and gone not in now
    assert cat.get_group("other", "cat-frozen").count == g.count          # frozen
    assert np.array_equal(cat.group_members("other", "cat-frozen"), want)
    m = cat.materialize_group("other", "cat-frozen", ["email"])
    assert np.array_equal(m.customer_ids, want)      # inactive since: still a member (not erased)
    assert new_id not in m.customer_ids and m.missing_ids == ()
    assert "email" in m.columns


def test_groups_expire_and_deletion_is_permanent(cat):
    g = cat.create_group("shop", "cat-expiring", MEMBERS, ttl_days=1)
    assert g.expires_at - g.created_at == dt.timedelta(days=1)
    cat.clock.shift = dt.timedelta(days=1, seconds=1)
    for call in (lambda: cat.get_group("shop", "cat-expiring"),
                 lambda: cat.group_members("shop", "cat-expiring"),
                 lambda: cat.materialize_group("shop", "cat-expiring")):
        with pytest.raises(FailedPrecondition):
            call()
    listed = {x.name: x for x in cat.list_groups("shop")}
    assert listed["cat-expiring"].expired(cat.clock())
    cat.delete_group("shop", "cat-expiring")
    with pytest.raises(NotFound):
        cat.get_group("shop", "cat-expiring")
    with pytest.raises(NotFound):
        cat.delete_group("shop", "cat-expiring")
    g2 = cat.create_group("shop", "cat-expiring", LAPSING)  # the name is free again
    assert g2.count == len(cat.group_members("shop", "cat-expiring"))


def test_group_from_a_saved_segment_and_bad_requests(cat):
    cat.create_segment("shop", "cat-src", LAPSING)
    g = cat.create_group("shop", "cat-from-saved", saved_segment="cat-src",
                         as_of=dt.datetime(2026, 11, 20, 17, tzinfo=dt.timezone.utc))
    assert g.saved_segment == "cat-src" and g.count > 0
    with pytest.raises(AlreadyExists):
        cat.create_group("shop", "cat-from-saved", LAPSING)
    with pytest.raises(InvalidArgument) as e:
        cat.create_group("shop", "cat-bad-ttl", LAPSING, ttl_days=0)
    assert e.value.path == "ttl_days"
    with pytest.raises(InvalidArgument):
        cat.create_group("shop", "cat-neither")
    with pytest.raises(NotFound):
        cat.create_group("shop", "cat-x", saved_segment="cat-no-such")


def test_catalog_files_are_written_whole(cat, grpc_env):
    cat.create_segment("shop", "cat-files", MEMBERS)
    cat.create_group("shop", "cat-files-g", MEMBERS)
    d = grpc_env.root / "shop" / "catalog"
    assert (d / "segments" / "cat-files.json").exists()
    assert (d / "groups" / "cat-files-g.json").exists() and (d / "groups" / "cat-files-g.npy").exists()
    assert not list(d.rglob("*.tmp"))
