"""Whole segments through the Engine API vs DuckPeer: the seed examples of conditions.md
(as JSON), include / exclude / append, every ranking key both ways with a limit (preview and
materialize order and values), reachability counts, missing ids, empty and full results."""
from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from segments.engine.model import segment as S
from segments.engine.model.segment_json import dumps, loads
from tests import datasets as D
from tests.test_conditions import F, RANGES, check_condition, cmp, values_of
from tests.test_properties import ORDERS

SEED_EXAMPLES = {
    "best50_diamonds": {
        "include": {"bought": {"filter": {"department": ["diamond"]}, "range": {"last_n_months": 6}}},
        "order_by": {"key": "spend", "filter": {"department": ["diamond"]}, "range": {"last_n_months": 6},
                     "direction": "desc"},
        "limit": 50},
    "top100_beads_charms_gold_charm": {
        "include": {"all_of": [
            {"spend": {"filter": {"department": ["beads", "charms"]}, "range": "ever",
                       "cmp": {"between": [50000, 100000]}}},
            {"bought": {"filter": {"metal": ["gold"], "department": ["charms"]}}}]},
        "order_by": {"key": "spend", "filter": {"department": ["beads", "charms"]}, "range": "ever"},
        "limit": 100},
    "lapsing_regulars": {"include": {"all_of": [
        {"visited": {"range": {"last_n_months": 12}, "cmp": {">=": 3}}},
        {"not": {"visited": {"range": {"last_n_months": 2}}}},
        {"not": "upcoming_appointment"}]}},
    "first_visit_followups": {"include": {"all_of": [
        {"visited": {"range": "ever", "cmp": {"==": 1}}},
        {"visited": {"range": {"last_n_days": 30}, "cmp": {">=": 1}}},
        {"not": {"upcoming_appointment": {}}}]}},
    "married_today": {"include": "married_today"},
    "birthday_today": {"include": {"birthday": "today"}},
    "birthday_month_members": {"include": {"all_of": [{"birthday": {"mode": "this_month"}}, "loyalty_member"]}},
    "december_sales_200": {"include": {"spend": {
        "range": {"custom": {"start": "2025-12-01", "end": "2025-12-31"}}, "cmp": {">=": 20000}}}},
    "december_sales_offsets": {"include": {"spend": {
        "range": {"custom": {"start": {"months": -12}, "end": {"months": -11, "days": -1}}}, "cmp": {">=": 20000}}}},
    "age_30_59_diamonds_3000": {"include": {"all_of": [
        {"age": {"between": [30, 59]}},
        {"spend": {"filter": {"department": ["diamond"]}, "cmp": {">": 300000}}}]}},
    "vip_not_staff_plus_append": {
        "include": {"tags": {"any": ["VIP"]}}, "exclude": {"tags": {"any": ["staff"]}},
        "append": [{"account_balance": {">": 0}}, {"customers": [1, 2, 3]}],
        "order_by": {"key": "loyalty_points", "direction": "asc"}, "limit": 20},
    "suppressed_append": {
        "include": {"bought": {"range": {"last_n_days": 90}}}, "exclude": {"reachable": "has_email"},
        "append": [{"reachable": "sms_opt_in"}], "limit": 10},
}


def _json(seg: S.Segment) -> str:
    return dumps(seg)


def check_segment(ds, seg: S.Segment, as_of, n: int = 30) -> list:
    """Engine count, preview (order, values, total) and materialize (order, values) vs the peer."""
    problems = []
    want = ds.peer.ranked(seg, as_of)
    want_ids = [i for i, _ in want]
    where = f"[{ds.key} as_of={as_of.isoformat()}] {_json(seg)}"
    c = ds.engine.count(ds.name, seg, as_of=as_of)
    if (c.count, c.email_reachable, c.sms_reachable) != ds.peer.count(seg, as_of):
        got = (c.count, c.email_reachable, c.sms_reachable)
        problems.append(f"{where}: count {got} != {ds.peer.count(seg, as_of)}")
    p = ds.engine.preview(ds.name, seg, n=n, as_of=as_of)
    if [r["customer_id"] for r in p.rows] != want_ids[:n]:
        problems.append(f"{where}: preview order {[r['customer_id'] for r in p.rows][:6]}.. != {want_ids[:6]}..")
    if p.total != len(want):
        problems.append(f"{where}: preview total {p.total} != {len(want)}")
    if seg.order_by is not None:
        got_v = [r.get("rank_value") for r in p.rows]
        if got_v != [v for _, v in want[:n]]:
            problems.append(f"{where}: preview rank values {got_v[:6]} != {[v for _, v in want[:6]]}")
    m = ds.engine.materialize(ds.name, seg, as_of=as_of)
    got_ids = [int(x) for x in m.customer_ids]
    if got_ids != want_ids:
        problems.append(f"{where}: materialize order ({len(got_ids)} vs {len(want_ids)}) "
                        f"first diff at {next((k for k, (a, b) in enumerate(zip(got_ids, want_ids)) if a != b), None)}")
    if seg.order_by is not None and got_ids == want_ids:
        key = seg.order_by.key
        if m.rank_values is None:
            problems.append(f"{where}: materialize has no rank_values")
        elif key in ("spend", "purchase_count"):
            if [int(x) for x in m.rank_values] != [v for _, v in want]:
                problems.append(f"{where}: materialize rank values differ")
        else:
            absent = [math.isnan(x) for x in m.rank_values.astype(float)]
            if absent != [v is None for _, v in want]:
                problems.append(f"{where}: materialize absent rank values differ")
            if key == "loyalty_points" and [None if a else int(x) for a, x in zip(absent, m.rank_values)] != \
                    [v for _, v in want]:
                problems.append(f"{where}: materialize points differ")
    return problems


@pytest.mark.parametrize("name", list(SEED_EXAMPLES))
def test_seed_example(ds, name):
    seg = loads(json.dumps(SEED_EXAMPLES[name]))
    problems = []
    for as_of in ds.as_ofs[:2]:
        problems += check_segment(ds, seg, as_of)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("order", sorted(ORDERS))
@pytest.mark.parametrize("descending", [True, False], ids=["desc", "asc"])
def test_order_by(ds, order, descending):
    v = values_of(ds)
    o = ORDERS[order](v)
    ob = S.OrderBy(o.key, o.filter, o.range, descending)
    segs = [S.Segment(S.All(), order_by=ob, limit=25),
            S.Segment(S.AnyOf((S.InValues("city", v("customers.city", 2)),
                               S.Bought(F(department=v("purchases.department"))))),
                      exclude=S.Reachable("has_phone"), append=(S.Tags(v("tags", 1)),), order_by=ob, limit=40),
            S.Segment(S.Bought(S.NO_FILTER, RANGES["months12"]), order_by=ob)]
    problems = []
    for seg in segs:
        for as_of in ds.as_ofs[:2]:
            problems += check_segment(ds, seg, as_of)
    assert not problems, "\n".join(problems)


def test_limit_without_ranking_and_empty_full(ds):
    as_of = ds.as_ofs[0]
    problems = []
    for seg in (S.Segment(S.All()), S.Segment(S.All(), limit=7),
                S.Segment(S.Customers((-1,))), S.Segment(S.Surname("no such surname")),
                S.Segment(S.All(), exclude=S.All()), S.Segment(S.Not(S.All()), append=(S.LoyaltyMember(),))):
        problems += check_segment(ds, seg, as_of)
    full = ds.peer.count(S.Segment(S.All()), as_of)[0]
    assert full == ds.peer.con.execute("SELECT COUNT(*) FROM customers WHERE _active").fetchone()[0]
    empty = ds.engine.materialize(ds.name, S.Segment(S.Customers((-1,))), as_of=as_of)
    assert len(empty.customer_ids) == 0
    assert ds.engine.preview(ds.name, S.Segment(S.Customers((-1,))), as_of=as_of).rows == []
    assert not problems, "\n".join(problems)


def test_missing_ids_reported(ds):
    v = values_of(ds)
    active = v.ids[:3]
    missing = (-7, 123_456_789_012_345_678)
    seg = S.Segment(S.AnyOf((S.Customers(tuple(active) + missing), S.Customers((-7, 42)))))
    as_of = ds.as_ofs[0]
    c = ds.engine.count(ds.name, seg, as_of=as_of)
    exists = {r[0] for r in ds.peer.con.execute("SELECT customer_id FROM customers WHERE customer_id = 42").fetchall()}
    assert set(c.missing_ids) == ({-7, 123_456_789_012_345_678, 42} - exists)
    assert c.count == len(ds.peer.result(seg, as_of))
    p = ds.engine.preview(ds.name, seg, as_of=as_of)
    assert set(p.missing_ids) == set(c.missing_ids)
    m = ds.engine.materialize(ds.name, seg, as_of=as_of)
    assert set(m.missing_ids) == set(c.missing_ids)
    # an id nobody asked about is not reported; ids that exist are not "missing"
    assert not set(active) & set(c.missing_ids)


def test_reachability_counts(ds):
    problems = []
    for cond in (S.All(), S.Reachable("has_email"), S.Reachable("sms_opt_in"),
                 S.AllOf((S.Reachable("email_opt_in"), S.Not(S.Reachable("has_email"))))):
        problems += check_condition(ds, cond, ds.as_ofs[:1])
    assert not problems, "\n".join(problems)


def test_preview_and_materialize_fields(ds):
    """Profile fields come back as stored: None for null, dates as date, tags as a list."""
    from segments.engine.model.schema import PROFILE_FIELDS
    fields = tuple(PROFILE_FIELDS)
    seg = S.Segment(S.All(), order_by=S.OrderBy("loyalty_points"), limit=60)
    as_of = ds.as_ofs[0]
    p = ds.engine.preview(ds.name, seg, n=60, fields=fields, as_of=as_of)
    ids = [r["customer_id"] for r in p.rows]
    cols = ", ".join(fields)
    rows = {r[0]: dict(zip(fields, r[1:])) for r in ds.peer.con.execute(
        f"SELECT customer_id, {cols} FROM customers WHERE customer_id IN ({', '.join(map(str, ids))})").fetchall()}
    bad = []
    for r in p.rows:
        want = rows[r["customer_id"]]
        for f in fields:
            got = r.get(f)
            if f == "tags":
                got, w = list(got or []), list(want[f] or [])
            else:
                w = want[f]
            if f == "active" and w is None:
                w = True                      # absent active = active
            if got != w:
                bad.append((r["customer_id"], f, got, w))
    assert not bad, bad[:10]
    m = ds.engine.materialize(ds.name, seg, fields=fields, as_of=as_of)
    assert [int(x) for x in m.customer_ids] == ids
    for f in ("first_name", "email", "birth_date", "loyalty_points"):
        assert m.columns[f].to_pylist() == [rows[i][f] for i in ids], f


def test_edge_ranking_ties(get_dataset):
    ds = get_dataset("edge_ny")
    late = dt.datetime(2029, 1, 1, tzinfo=dt.timezone.utc)
    problems = []
    for key in ("spend", "purchase_count", "loyalty_points", "last_purchase"):
        for desc in (True, False):
            seg = S.Segment(S.Customers(D.EDGE_TIES + (D.EDGE_IDLE, D.EDGE_NULLS, D.EDGE_REFUND)),
                            order_by=S.OrderBy(key, descending=desc), limit=4)
            problems += check_segment(ds, seg, late)
    assert not problems, "\n".join(problems)


def test_spend_ranking_with_refund_and_filter(get_dataset):
    ds = get_dataset("edge_akl")
    problems = []
    for as_of in ds.as_ofs:
        seg = S.Segment(S.Spend(cmp("<=", 0)),
                        order_by=S.OrderBy("spend", F(department=("diamond", "beads")), RANGES["months12"], False),
                        limit=15)
        problems += check_segment(ds, seg, as_of)
    assert not problems, "\n".join(problems)
