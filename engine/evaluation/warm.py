"""Warm-up: a fixed set of segments that runs every kernel family, and a tiny dataset to run
them on.

A process pays once, on its first evaluations, for loading the compiled kernels from numba's
cache (compiling them when there is none) and per snapshot for its lazy state (arrays,
bitmaps, the profile table, the text columns and indexes). `Engine.warm` runs this set on a
tiny synthetic dataset with live changes (kernels and appended-line paths, process-wide) and
on the served datasets (their lazy state), so that the first real call costs what a warm one
does. Some kernels run only for some data shapes (a rare search trigram, a batch of many
shards), so the set takes its values from each dataset. A new condition kind belongs in
`warm_definitions` too: tests/test_warm.py fails when a suite segment compiles after warm().
"""
from __future__ import annotations

import datetime as dt
from typing import List, Optional

import pyarrow as pa

from ..model import segment as S
from ..model.segment_json import parse_segment

SYNTHETIC_CUSTOMERS = 48
SYNTHETIC_SHARD_BITS = 4   # 16 customers per shard: several shards, as a real dataset has


def _first(snap, dictionary: str, default: str) -> str:
    values = snap.dictionary(dictionary) if snap is not None else []
    return values[0] if values else default


def _sample_text(snap, field: str, length: int, default: str) -> str:
    """The first `length` characters of the first row of a normalised search column, so an
    indexed search finds its trigrams and runs to the end instead of stopping early."""
    try:
        data, offsets = snap.text_column(field)[:2]
        for r in range(min(len(offsets) - 1, 1000)):
            text = bytes(data[offsets[r]:offsets[r + 1]]).decode("utf-8", "ignore")
            if len(text) >= length:
                return text[:length]
    except Exception:  # noqa: BLE001 - any snapshot without the column: the default will do
        pass
    return default


def warm_definitions(snap=None) -> List[dict]:
    """JSON segment definitions covering every kernel family: profile bitmaps, dense
    customer columns, dates, text search, customer lists, purchase lines (rollups, scans,
    shared scans, last-sale ranking), visits, appointments, laybys, every ranking key, and
    include / exclude / append / not. Filter values are taken from the snapshot's own
    dictionaries so the kernels run over real lines instead of stopping at an unknown value."""
    dept = _first(snap, "department", "rings")
    metal = _first(snap, "metal", "gold")
    product = _first(snap, "product", "ring")
    shop = _first(snap, "shop", "main")
    gender = _first(snap, "gender", "f")
    tag = _first(snap, "tag", "vip")
    year = {"last_n_months": 12}
    name3 = _sample_text(snap, "first_name", 3, "ann") if snap is not None else "ann"
    email6 = _sample_text(snap, "email", 6, "ann@ex") if snap is not None else "ann@ex"
    # a whole address is rare: its short posting lists take the indexed search's other paths
    email = _sample_text(snap, "email", 14, "ann@example.c") if snap is not None else "ann@example.c"
    ranged = {"department": [dept]}
    return [
        {"include": {"all_of": [{"loyalty_member": {}}, {"gender": {"values": [gender]}},
                                {"tags": {"any": [tag]}}, {"reachable": "has_email"}]},
         "exclude": {"reachable": "sms_opt_in"}},
        {"include": {"any_of": [{"age": {"between": [30, 59]}}, {"loyalty_points": {">=": 100}},
                                {"account_balance": {">": 0}}, {"joined": {"range": year}},
                                {"married_today": {}}, {"birthday": {"mode": "today"}},
                                {"birthday": {"mode": "next_days", "days": 7}},
                                {"anniversary": {"mode": "this_month"}}]}},
        {"include": {"any_of": [{"search": {"text": "an"}}, {"search": {"text": name3}},
                                {"search": {"text": email6, "fields": ["first_name", "email"]}},
                                {"search": {"text": email, "fields": ["email"]}},
                                {"search": {"text": "555-01", "fields": ["phone"]}}, {"surname": "smith"}]}},
        {"include": {"customers": {"ids": [1]}}, "append": [{"all": {}}], "limit": 3},
        {"include": {"bought": {"filter": ranged}},
         "order_by": {"key": "spend", "filter": ranged}, "limit": 10},
        {"include": {"all_of": [{"bought": {"filter": {"department": [dept], "metal": [metal]}}},
                                {"spend": {"filter": ranged, "range": year, "cmp": {">=": 1}}},
                                {"purchase_count": {"filter": ranged, "range": year, "cmp": {">=": 1}}}]},
         "order_by": {"key": "purchase_count", "filter": ranged, "range": year}, "limit": 10},
        {"include": {"all_of": [{"bought": {"filter": {"product": [product]}, "range": {"last_n_days": 400}}},
                                {"not": {"spend": {"range": "month_to_date", "cmp": {">": 10**9}}}}]},
         "order_by": {"key": "last_purchase", "range": year, "direction": "asc"}, "limit": 10},
        {"include": {"all": {}}, "order_by": {"key": "last_purchase"}, "limit": 10},
        {"include": {"any_of": [{"visited": {"range": year, "cmp": {">=": 1}}},
                                {"visited": {"shops": [shop], "range": "last_week"}},
                                {"upcoming_appointment": {}}, {"upcoming_appointment": {"shops": [shop]}},
                                {"overdue_layby": {}}]},
         "order_by": {"key": "loyalty_points"}, "limit": 10},
        # behaviour kernels (engine/evaluation/behaviour_kernels.py)
        {"include": {"any_of": [
            {"first_purchase": {"range": "month_to_date"}}, {"last_purchase": {"range": year}},
            {"regularly": {"event": {"bought": {}}, "period": "month", "periods": 12, "min_periods": 2}},
            {"regularly": {"event": {"visited": {}}, "period": "week", "periods": 8, "min_periods": 1}},
            {"sequence": {"first": {"bought": {"filter": ranged}}, "then": {"bought": {}}, "within_days": 180}},
            {"sequence": {"first": {"visited": {}}, "then_not": {"bought": {}}, "within_days": 7,
                          "range": {"last_n_days": 30}}},
            {"order_count": {"range": year, "cmp": {">=": 2}}},
            {"average_order_value": {"cmp": {">=": 5000}}},
            {"percentile": {"of": {"spend": {"range": year}}, "among": "loyalty_member", "cmp": {">=": 80}}},
            {"rfm": {"range": year, "r": {">=": 4}, "f": {">=": 4}, "m": {">=": 4}}}]},
         "exclude": {"random_bucket": {"salt": "warm", "cmp": {"<": 1000}}},
         "order_by": {"key": "order_count", "range": year}, "limit": 10},
        {"include": {"all": {}}, "order_by": {"key": "average_order_value"}, "limit": 10},
    ]


def warm_segments(snap=None) -> List[S.Segment]:
    """warm_definitions parsed."""
    return [parse_segment(d) for d in warm_definitions(snap)]


def synthetic_tables(today: Optional[dt.date] = None) -> dict:
    """A tiny dataset (48 customers, a few lines each around `today`) with every column set
    somewhere, as pyarrow Tables keyed by table name."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    n = SYNTHETIC_CUSTOMERS
    ids = [1000 + 7 * i for i in range(n)]
    utc = dt.timezone.utc
    customers = pa.table({
        "customer_id": pa.array(ids, pa.int64()),
        "first_name": [f"Ann{i}" for i in range(n)],
        "last_name": ["Smith" if i % 3 == 0 else f"Jones{i}" for i in range(n)],
        "email": [f"c{i}@example.com" if i % 4 else None for i in range(n)],
        "phone": [f"555-01{i:02d}" if i % 5 else None for i in range(n)],
        "address": [f"{i} Main St" for i in range(n)],
        "city": ["Springfield" if i % 2 else "Shelbyville" for i in range(n)],
        "postal_code": [f"0{i % 9}000" for i in range(n)],
        "gender": ["f" if i % 2 else "m" for i in range(n)],
        "marital_status": ["married" if i % 3 else "single" for i in range(n)],
        "birth_date": pa.array([dt.date(1960 + i % 40, 1 + i % 12, 1 + i % 28) for i in range(n)], pa.date32()),
        "anniversary_date": pa.array([today.replace(year=2010) if i % 6 == 0 else None for i in range(n)],
                                     pa.date32()),
        "wedding_date": pa.array([today.replace(year=2012) if i % 8 == 0 else None for i in range(n)],
                                 pa.date32()),
        "joined_on": pa.array([today - dt.timedelta(days=30 * i) for i in range(n)], pa.date32()),
        "loyalty_member": [i % 2 == 0 for i in range(n)],
        "loyalty_points": pa.array([None if i % 7 == 0 else 50 * i for i in range(n)], pa.int64()),
        "origin_shop": ["north" if i % 2 else "south" for i in range(n)],
        "tags": [["vip"] if i % 5 == 0 else [] for i in range(n)],
        "email_opt_in": [i % 3 != 0 for i in range(n)],
        "sms_opt_in": [i % 4 == 0 for i in range(n)],
        "account_balance": pa.array([(i % 5 - 2) * 1000 for i in range(n)], pa.int64()),
        "active": [i != 5 for i in range(n)],
    })
    noon = dt.datetime.combine(today, dt.time(12), utc)
    p_ids, p_at, p_amount, p_dept, p_metal, p_product = [], [], [], [], [], []
    for i in range(n):
        for k in range(3):
            p_ids.append(ids[i])
            p_at.append(noon - dt.timedelta(days=(i * 13 + k * 97) % 700))
            p_amount.append(-500 if k == 2 and i % 4 == 0 else 1000 * (1 + (i + k) % 9))
            p_dept.append(("rings", "charms", "beads")[(i + k) % 3])
            p_metal.append(("gold", "silver")[k % 2])
            p_product.append(("ring", "charm", "bead")[(i + k) % 3])
    purchases = pa.table({
        "customer_id": pa.array(p_ids, pa.int64()), "purchased_at": pa.array(p_at, pa.timestamp("us", "UTC")),
        "amount": pa.array(p_amount, pa.int64()), "quantity": pa.array([1] * len(p_ids), pa.int32()),
        "shop": ["north" if k % 2 else "south" for k in range(len(p_ids))],
        "department": p_dept, "metal": p_metal, "product": p_product,
    })
    visits = pa.table({
        "customer_id": pa.array([ids[i] for i in range(n) for _ in range(2)], pa.int64()),
        "starts_at": pa.array([noon + dt.timedelta(days=(-40 * i if k == 0 else 3 + i % 5))
                               for i in range(n) for k in range(2)], pa.timestamp("us", "UTC")),
        "status": ["completed" if k == 0 else "booked" for _ in range(n) for k in range(2)],
        "shop": ["north" if i % 2 else "south" for i in range(n) for _ in range(2)],
    })
    laybys = pa.table({
        "customer_id": pa.array(ids[::4], pa.int64()),
        "opened_on": pa.array([today - dt.timedelta(days=90)] * len(ids[::4]), pa.date32()),
        "due_on": pa.array([today - dt.timedelta(days=10 - 20 * (j % 2)) for j in range(len(ids[::4]))],
                           pa.date32()),
        "balance": pa.array([2500] * len(ids[::4]), pa.int64()),
        "status": ["open"] * len(ids[::4]),
    })
    return {"customers": customers, "purchases": purchases, "visits": visits, "laybys": laybys}


def synthetic_changes(today: Optional[dt.date] = None) -> dict:
    """A change batch for the synthetic dataset (keyword arguments of apply_changes): an
    upsert, a new customer, appended purchases, visits and a layby, and an erasure, so that
    evaluation afterwards runs the appended-line paths."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    now = dt.datetime.combine(today, dt.time(9), dt.timezone.utc)
    return {
        "customers": [{"customer_id": 1007, "first_name": "Bo", "last_name": "Smith", "email": "bo@example.com",
                       "loyalty_member": True, "loyalty_points": 70, "tags": ["vip"]},
                      {"customer_id": 9999, "first_name": "New", "last_name": "Person", "phone": "555-9999"}],
        "purchases": [{"customer_id": 1014, "purchased_at": now, "amount": 4200, "department": "rings",
                       "metal": "gold", "product": "ring", "shop": "north"},
                      {"customer_id": 9999, "purchased_at": now, "amount": 1500, "department": "charms"}],
        "visits": [{"customer_id": 1021, "starts_at": now, "status": "completed", "shop": "north"},
                   {"customer_id": 9999, "starts_at": now + dt.timedelta(days=2), "status": "booked"}],
        "laybys": [{"customer_id": 1028, "opened_on": today - dt.timedelta(days=60),
                    "due_on": today - dt.timedelta(days=1), "balance": 900, "status": "open"}],
        "delete": [1035],
    }
