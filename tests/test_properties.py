"""Random condition trees and segments (hypothesis) evaluated by the engine vs DuckPeer.

A tree spec is a CATALOG name (a leaf) or ("all_of" | "any_of", [specs]) or ("not", spec);
a segment spec adds exclude, appends, a ranking and a limit. build_* turn specs into
engine conditions for one dataset's Values; test_oracle_self.py reuses them with random.Random.
"""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments.engine.model import segment as S
from tests.test_conditions import CATALOG, F, RANGES, values_of

# A pool of representative leaves: every kind, cheap and expensive, small and large sets.
LEAVES = (
    "all", "customers", "search/all/an", "search/phone/formatted", "surname/Smith",
    "birth/this_month", "birth/next30", "anniversary/month2", "married_today", "age/between",
    "joined/months12", "loyalty_member", "points/>=", "in/city/2", "in/gender/1", "tags/any",
    "tags/all", "reachable/has_email", "reachable/sms_opt_in", "balance/>", "overdue_layby",
    "bought/months6", "bought/dept_metal", "bought/last_week", "spend/>=", "spend/<=",
    "spend/between/beads_charms", "count/>=", "count/==", "visited", "visited/>=3/months12",
    "visited/shops", "upcoming",
)
ORDERS = {
    "spend": lambda v: S.OrderBy("spend"),
    "spend/dept/months6": lambda v: S.OrderBy("spend", F(department=v("purchases.department")), RANGES["months6"]),
    "count/months12": lambda v: S.OrderBy("purchase_count", S.NO_FILTER, RANGES["months12"]),
    "count": lambda v: S.OrderBy("purchase_count"),
    "points": lambda v: S.OrderBy("loyalty_points"),
    "last": lambda v: S.OrderBy("last_purchase"),
    "last/dept/ytd": lambda v: S.OrderBy("last_purchase", F(department=v("purchases.department")),
                                         RANGES["year_to_date"]),
}


def build_tree(spec, v) -> S.Condition:
    if isinstance(spec, str):
        return CATALOG[spec](v)
    op, arg = spec
    if op == "not":
        return S.Not(build_tree(arg, v))
    kids = tuple(build_tree(x, v) for x in arg)
    return S.AllOf(kids) if op == "all_of" else S.AnyOf(kids)


def build_segment(spec, v) -> S.Segment:
    include, exclude, append, order, descending, limit = spec
    ob = None
    if order is not None:
        o = ORDERS[order](v)
        ob = S.OrderBy(o.key, o.filter, o.range, descending)
    return S.Segment(build_tree(include, v), None if exclude is None else build_tree(exclude, v),
                     tuple(build_tree(a, v) for a in append), ob, limit)


# ---------------------------------------------------------------- random.Random generators (oracle self-test)

def random_tree(rng: random.Random, depth: int = 4):
    if depth == 0 or rng.random() < 0.4:
        return rng.choice(LEAVES)
    op = rng.choice(("all_of", "any_of", "not"))
    if op == "not":
        return ("not", random_tree(rng, depth - 1))
    return (op, [random_tree(rng, depth - 1) for _ in range(rng.randint(1, 3))])


def random_segment_spec(rng: random.Random):
    return (random_tree(rng, 3), random_tree(rng, 2) if rng.random() < 0.4 else None,
            [random_tree(rng, 1) for _ in range(rng.choice([0, 0, 1, 2]))],
            rng.choice([None, *ORDERS]), rng.random() < 0.6,
            rng.choice([None, 1, 7, 50, 400]))


# ---------------------------------------------------------------- hypothesis strategies

def trees(depth: int = 4):
    leaf = st.sampled_from(LEAVES)
    if depth == 0:
        return leaf
    sub = trees(depth - 1)
    return st.one_of(leaf, st.tuples(st.sampled_from(("all_of", "any_of")), st.lists(sub, min_size=1, max_size=3)),
                     st.tuples(st.just("not"), sub))


segment_specs = st.tuples(trees(3), st.none() | trees(2), st.lists(trees(1), max_size=2),
                          st.none() | st.sampled_from(sorted(ORDERS)), st.booleans(),
                          st.none() | st.sampled_from([1, 5, 50, 400]))

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _compare(ds, seg, as_of):
    from segments.engine.model.segment_json import dumps
    want = ds.peer.result(seg, as_of)
    got = [int(x) for x in ds.engine.materialize(ds.name, seg, as_of=as_of).customer_ids]
    assert got == want, f"ids differ for {dumps(seg)} as of {as_of.isoformat()}: " \
                        f"{len(got)} vs {len(want)} engine-only {sorted(set(got) - set(want))[:5]} " \
                        f"peer-only {sorted(set(want) - set(got))[:5]}"
    c = ds.engine.count(ds.name, seg, as_of=as_of)
    assert (c.count, c.email_reachable, c.sms_reachable) == ds.peer.count(seg, as_of), dumps(seg)


@pytest.mark.parametrize("key", ["gen1", "edge_ny"])
@SETTINGS
@given(spec=trees(4), pick=st.integers(0, 7))
def test_random_trees(get_dataset, key, spec, pick):
    ds = get_dataset(key)
    _compare(ds, S.Segment(build_tree(spec, values_of(ds))), ds.as_ofs[pick % len(ds.as_ofs)])


@pytest.mark.parametrize("key", ["gen2", "edge_akl"])
@SETTINGS
@given(spec=segment_specs, pick=st.integers(0, 7))
def test_random_segments(get_dataset, key, spec, pick):
    ds = get_dataset(key)
    _compare(ds, build_segment(spec, values_of(ds)), ds.as_ofs[pick % len(ds.as_ofs)])
