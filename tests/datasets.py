"""Small datasets built by hand for the correctness tests (pyarrow tables in canonical types).

random_tables(seed, n): dense, adversarial random data (accents, nulls, refunds, ties,
sparse ids in any order) for the oracle self-test and the engine tests.
edge_tables(): random filler (> 1024 customers, so shard_bits=10 gives two shards) plus
hand-made customers for each edge case of conditions.md; EDGE_* name them.
"""
from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

UTC = dt.timezone.utc
TS = pa.timestamp("us", tz="UTC")

CUSTOMER_SCHEMA = pa.schema([
    ("customer_id", pa.int64()), ("first_name", pa.string()), ("last_name", pa.string()),
    ("email", pa.string()), ("phone", pa.string()), ("address", pa.string()),
    ("city", pa.string()), ("postal_code", pa.string()), ("gender", pa.string()),
    ("marital_status", pa.string()), ("birth_date", pa.date32()),
    ("anniversary_date", pa.date32()), ("wedding_date", pa.date32()), ("joined_on", pa.date32()),
    ("loyalty_member", pa.bool_()), ("loyalty_points", pa.int64()), ("origin_shop", pa.string()),
    ("tags", pa.list_(pa.string())), ("email_opt_in", pa.bool_()), ("sms_opt_in", pa.bool_()),
    ("account_balance", pa.int64()), ("active", pa.bool_()),
])
PURCHASE_SCHEMA = pa.schema([
    ("customer_id", pa.int64()), ("purchased_at", TS), ("amount", pa.int64()),
    ("quantity", pa.int32()), ("shop", pa.string()), ("department", pa.string()),
    ("metal", pa.string()), ("brand", pa.string()), ("strain", pa.string()),
    ("inventory_group", pa.string()), ("inventory_type", pa.string()), ("product", pa.string()),
    ("order_id", pa.string()),
])
VISIT_SCHEMA = pa.schema([("customer_id", pa.int64()), ("starts_at", TS),
                          ("status", pa.string()), ("shop", pa.string())])
LAYBY_SCHEMA = pa.schema([("customer_id", pa.int64()), ("opened_on", pa.date32()),
                          ("due_on", pa.date32()), ("balance", pa.int64()), ("status", pa.string())])
SCHEMAS = {"customers": CUSTOMER_SCHEMA, "purchases": PURCHASE_SCHEMA,
           "visits": VISIT_SCHEMA, "laybys": LAYBY_SCHEMA}

FIRST = ["José", "JOSE", "Zoë", "Łukasz", "Ærin", "Ana", "Anaïs", "Mary", "Jean-Luc", "Ñuño", "Li", "O'Brien", "Renée"]
LAST = ["Smith", "Smithson", "SMITH", "Smíth", "Müller", "Mueller", "García", "Garcia", "Nguyễn",
        "O'Neil", "de la Cruz", "Blacksmith", "Nun\u0303ez", "Nuñez", "Dvořák", "Ærø", "田中", "Sørensen", "SØRENSEN"]
STREETS = ["Rue Saint-André", "Main St", "Königsallee", "Hauptstraße", "Østerbro"]
CITIES = ["Montréal", "Montreal", "São Paulo", "Zürich", "Auckland", "New York", "Köln"]
SHOPS = ["Main St", "Mall", "Airport", "Online"]
DEPTS = ["diamond", "charms", "beads", "rings", "watches"]
METALS = ["gold", "silver", "platinum"]
BRANDS = ["Acme", "Brandé", "Zed"]
STRAINS = ["indica", "sativa", "hybrid"]
GROUPS = ["flower", "edible"]
TYPES = ["retail", "medical"]
TAGS = ["VIP", "staff", "wholesale", "vip"]
START = dt.datetime(2025, 1, 1, tzinfo=UTC)
SPAN_S = int((dt.datetime(2028, 4, 1, tzinfo=UTC) - START).total_seconds())


def _maybe(rng, value, p_null=0.15):
    return None if rng.random() < p_null else value


def _rand_date(rng, lo: dt.date, hi: dt.date) -> dt.date:
    return lo + dt.timedelta(days=rng.randrange((hi - lo).days + 1))


def _rand_customer(rng, cid: int) -> dict:
    birth = _maybe(rng, _rand_date(rng, dt.date(1940, 1, 1), dt.date(2010, 12, 31)))
    if birth is not None and rng.random() < 0.03:
        birth = dt.date(rng.choice([1992, 1996, 2000, 2004]), 2, 29)
    phone = _maybe(rng, rng.choice(["+1 (212) 555-%04d", "021.555.%04d", "%04d", "  ", ""])
                   .replace("%04d", f"{rng.randrange(10000):04d}"))
    return {
        "customer_id": cid,
        "first_name": _maybe(rng, rng.choice(FIRST)),
        "last_name": _maybe(rng, rng.choice(LAST)),
        "email": _maybe(rng, rng.choice(["Ana.Lopez%d@Example.com", "jose%d@müller.de", "", " ",
                                         "smith%d@mail.com"]).replace("%d", str(rng.randrange(50)))),
        "phone": phone,
        "address": _maybe(rng, f"{rng.randrange(1, 999)} {rng.choice(STREETS)}"),
        "city": _maybe(rng, rng.choice(CITIES)),
        "postal_code": _maybe(rng, rng.choice(["H2X 1Y4", "10001", "8001", "02134", "sw1a 1aa"])),
        "gender": _maybe(rng, rng.choice(["female", "male", "other"])),
        "marital_status": _maybe(rng, rng.choice(["single", "married", "divorced"])),
        "birth_date": birth,
        "anniversary_date": _maybe(rng, _rand_date(rng, dt.date(1980, 1, 1), dt.date(2026, 12, 31)), 0.5),
        "wedding_date": _maybe(rng, _rand_date(rng, dt.date(2026, 1, 1), dt.date(2028, 6, 30)), 0.6),
        "joined_on": _maybe(rng, _rand_date(rng, dt.date(2015, 1, 1), dt.date(2028, 3, 1))),
        "loyalty_member": _maybe(rng, rng.random() < 0.5),
        "loyalty_points": _maybe(rng, rng.choice([0, 100, 250, rng.randrange(0, 5000)])),
        "origin_shop": _maybe(rng, rng.choice(SHOPS)),
        "tags": _maybe(rng, rng.sample(TAGS, rng.randrange(0, 3))),
        "email_opt_in": _maybe(rng, rng.random() < 0.6),
        "sms_opt_in": _maybe(rng, rng.random() < 0.4),
        "account_balance": _maybe(rng, rng.choice([0, 0, -500, 1500, rng.randrange(0, 100000)])),
        "active": rng.choice([True] * 8 + [False, None]),
    }


def _rand_purchase(rng, cid: int) -> dict:
    at = START + dt.timedelta(seconds=rng.randrange(SPAN_S))
    amount = rng.choice([1000, 2500, 5000, 10000, rng.randrange(0, 200000)])
    if rng.random() < 0.12:
        amount = -amount
    return {
        "customer_id": cid, "purchased_at": at, "amount": amount,
        "quantity": rng.randrange(1, 4), "shop": _maybe(rng, rng.choice(SHOPS), 0.05),
        "department": _maybe(rng, rng.choice(DEPTS), 0.05), "metal": _maybe(rng, rng.choice(METALS), 0.3),
        "brand": _maybe(rng, rng.choice(BRANDS), 0.3), "strain": _maybe(rng, rng.choice(STRAINS), 0.5),
        "inventory_group": _maybe(rng, rng.choice(GROUPS), 0.5),
        "inventory_type": _maybe(rng, rng.choice(TYPES), 0.5), "product": f"SKU{rng.randrange(8)}",
    }


def _rand_visit(rng, cid: int) -> dict:
    return {"customer_id": cid, "starts_at": START + dt.timedelta(seconds=rng.randrange(SPAN_S)),
            "status": rng.choice(["completed", "completed", "booked", "cancelled", "no_show"]),
            "shop": _maybe(rng, rng.choice(SHOPS), 0.1)}


def _rand_layby(rng, cid: int) -> dict:
    opened = _rand_date(rng, dt.date(2025, 1, 1), dt.date(2028, 3, 1))
    return {"customer_id": cid, "opened_on": opened, "due_on": opened + dt.timedelta(days=rng.randrange(0, 120)),
            "balance": rng.choice([0, 500, 25000]), "status": rng.choice(["open", "open", "closed"])}


def with_orders(purchases: list, seed: int) -> list:
    """Orders among the lines (shared/spec behaviour.md), drawn by their own generator so the
    other columns stay as they were: some lines get an order_id shared with other lines of
    the customer (at other instants too; the same ids recur across customers), some get a
    sibling line at the same instant (one order by instant when both have no order_id)."""
    rng = random.Random(seed * 7919 + 13)
    out = []
    for p in purchases:
        p = dict(p)
        p.setdefault("order_id", None)
        roll = rng.random()
        if roll < 0.35:
            p["order_id"] = rng.choice(["A-1", "A-2", "1001", "1002", "x"])
        out.append(p)
        if roll > 0.8:   # a second line of the same order (same instant, same order_id or none)
            q = dict(p, amount=rng.choice([500, 1500, -500]), department=rng.choice(DEPTS))
            out.append(q)
    return out


def _tables(customers, purchases, visits, laybys) -> dict:
    rows = {"customers": customers, "purchases": purchases, "visits": visits, "laybys": laybys}
    return {k: pa.Table.from_pylist(v, schema=SCHEMAS[k]) for k, v in rows.items()}


def _random_rows(seed: int, n: int, id_base: int, taken=frozenset()):
    rng = random.Random(seed)
    ids = [i for i in rng.sample(range(id_base, id_base + 50 * n), n) if i not in taken]  # sparse, any order
    customers, purchases, visits, laybys = [], [], [], []
    for cid in ids:
        customers.append(_rand_customer(rng, cid))
        for _ in range(rng.choice([0, 0, 1, 2, 3, 5, 8, 13])):
            purchases.append(_rand_purchase(rng, cid))
        for _ in range(rng.choice([0, 1, 2, 4])):
            visits.append(_rand_visit(rng, cid))
        if rng.random() < 0.15:
            laybys.append(_rand_layby(rng, cid))
    rng.shuffle(purchases)
    return customers, purchases, visits, laybys


def random_tables(seed: int, n: int = 400) -> dict:
    """Random adversarial tables of n customers."""
    cs, ps, vs, ls = _random_rows(seed, n, 10_000_000_000)
    return _tables(cs, with_orders(ps, seed), vs, ls)


# ---------------------------------------------------------------- hand-made edge cases

NY, AKL = "America/New_York", "Pacific/Auckland"
EDGE_REFUND = 9_000_000_001          # net negative spend
EDGE_NULLS = 9_000_000_002           # every nullable field null
EDGE_FEB29 = 9_000_000_003           # born and married on 29 Feb
EDGE_DST = 9_000_000_004             # purchases around local midnights of DST days
EDGE_FUTURE = 9_000_000_005          # lines at as_of and 1 s after
EDGE_INACTIVE = 9_000_000_006        # inactive with purchases
EDGE_IDLE = 9_000_000_007            # no activity at all
EDGE_TIES = (9_000_000_010, 9_000_000_011, 9_000_000_012)   # same spend, points, last date
EDGE_SMITH, EDGE_SMITHSON, EDGE_SMITH_ACCENT = 9_000_000_020, 9_000_000_021, 9_000_000_022
EDGE_DST_AKL = 9_000_000_030         # purchases around Auckland local midnights
FUTURE_AS_OF = dt.datetime(2027, 3, 1, 12, 0, 0, tzinfo=UTC)
# Local days around DST changes: purchases 1 s before, at and 1 s after their local midnight.
DST_DAYS = {NY: [dt.date(2026, 3, 8), dt.date(2026, 3, 9), dt.date(2026, 11, 1), dt.date(2026, 11, 2)],
            AKL: [dt.date(2026, 4, 5), dt.date(2026, 4, 6), dt.date(2026, 9, 27), dt.date(2026, 9, 28)]}


def _blank(cid: int, **kw) -> dict:
    row = {f.name: None for f in CUSTOMER_SCHEMA}
    row.update(customer_id=cid, active=True)
    row.update(kw)
    return row


def _line(cid, at, amount, **kw) -> dict:
    row = {f.name: None for f in PURCHASE_SCHEMA}
    row.update(customer_id=cid, purchased_at=at, amount=amount, quantity=1, shop="Main St",
               department="diamond", metal="gold", product="SKU1")
    row.update(kw)
    return row


def midnight_lines(cid: int, zone: str) -> list:
    """Lines 1 s before, at and 1 s after local midnight of each DST day (amounts tell them apart)."""
    out = []
    for i, day in enumerate(DST_DAYS[zone]):
        m = dt.datetime.combine(day, dt.time(0), ZoneInfo(zone)).astimezone(UTC)
        for j, delta in enumerate((-1, 0, 1)):
            out.append(_line(cid, m + dt.timedelta(seconds=delta), 100 * (i * 3 + j + 1),
                             department="rings"))
    return out


def edge_rows():
    """Hand-made customers, lines, visits and laybys (see EDGE_*)."""
    d = dt.date
    t = lambda *a: dt.datetime(*a, tzinfo=UTC)  # noqa: E731
    cs = [
        _blank(EDGE_REFUND, first_name="Rita", last_name="Refund", email="rita@example.com",
               email_opt_in=True, loyalty_points=100),
        _blank(EDGE_NULLS, active=None),
        _blank(EDGE_FEB29, first_name="Leap", birth_date=d(2000, 2, 29), anniversary_date=d(2012, 2, 29),
               wedding_date=d(2027, 2, 28), phone="+64 21 555 0229", sms_opt_in=True),
        _blank(EDGE_DST, first_name="Dee", phone="(212) 555-0101", email="  ", email_opt_in=True),
        _blank(EDGE_FUTURE, first_name="Fay"),
        _blank(EDGE_INACTIVE, first_name="Ivan", active=False, loyalty_points=99999,
               email="ivan@example.com", email_opt_in=True),
        _blank(EDGE_IDLE, first_name="Idle", loyalty_points=0, account_balance=0),
        *[_blank(i, first_name="Tie", loyalty_points=777, last_name="Tie") for i in EDGE_TIES],
        _blank(EDGE_SMITH, first_name="John", last_name="Smith", email="JOHN.SMITH@EXAMPLE.COM",
               email_opt_in=True, phone="555 0000", sms_opt_in=True, tags=["VIP", "staff"]),
        _blank(EDGE_SMITHSON, first_name="Jane", last_name="Smithson", tags=["VIP"]),
        _blank(EDGE_SMITH_ACCENT, first_name="Jösé", last_name="SMÍTH", city="Montréal", tags=[]),
        _blank(EDGE_DST_AKL, first_name="Aroha", city="Auckland"),
    ]
    ps = [
        _line(EDGE_REFUND, t(2026, 5, 1, 15), 5000),
        _line(EDGE_REFUND, t(2026, 5, 2, 15), -8000),
        *midnight_lines(EDGE_DST, NY),
        *midnight_lines(EDGE_DST_AKL, AKL),
        _line(EDGE_FUTURE, FUTURE_AS_OF - dt.timedelta(seconds=1), 1111),
        _line(EDGE_FUTURE, FUTURE_AS_OF, 2222),
        _line(EDGE_FUTURE, FUTURE_AS_OF + dt.timedelta(seconds=1), 4444),
        _line(EDGE_FUTURE, FUTURE_AS_OF + dt.timedelta(microseconds=1), 8888, department="beads"),
        _line(EDGE_INACTIVE, t(2026, 6, 1, 12), 50000),
        *[_line(i, t(2026, 7, 4, 16), 10000) for i in EDGE_TIES],
        _line(EDGE_SMITH, t(2026, 8, 1, 12), 10000, department="charms", metal="gold"),
        _line(EDGE_SMITH, t(2026, 8, 1, 12), 3000, department="beads", metal="silver"),
        _line(EDGE_SMITHSON, t(2026, 8, 1, 12), 3000, department="charms", metal="silver"),
        _line(EDGE_SMITHSON, t(2026, 8, 1, 12), 3000, department="beads", metal="gold"),
    ]
    vs = [
        {"customer_id": EDGE_FUTURE, "starts_at": FUTURE_AS_OF, "status": "completed", "shop": "Mall"},
        {"customer_id": EDGE_FUTURE, "starts_at": FUTURE_AS_OF + dt.timedelta(seconds=1),
         "status": "booked", "shop": "Mall"},
        {"customer_id": EDGE_FUTURE, "starts_at": FUTURE_AS_OF + dt.timedelta(seconds=2),
         "status": "completed", "shop": "Mall"},
        {"customer_id": EDGE_INACTIVE, "starts_at": t(2026, 6, 1), "status": "completed", "shop": "Mall"},
        {"customer_id": EDGE_DST, "starts_at": midnight_lines(EDGE_DST, NY)[1]["purchased_at"],
         "status": "completed", "shop": "Airport"},
    ]
    ls = [
        {"customer_id": EDGE_FUTURE, "opened_on": d(2027, 1, 1), "due_on": d(2027, 2, 28),
         "balance": 100, "status": "open"},                    # overdue from 1 Mar 2027
        {"customer_id": EDGE_IDLE, "opened_on": d(2027, 3, 2), "due_on": d(2027, 2, 1),
         "balance": 100, "status": "open"},                    # opened after some todays
        {"customer_id": EDGE_REFUND, "opened_on": d(2026, 1, 1), "due_on": d(2026, 2, 1),
         "balance": 0, "status": "open"},                      # nothing owed
        {"customer_id": EDGE_SMITH, "opened_on": d(2026, 1, 1), "due_on": d(2026, 2, 1),
         "balance": 900, "status": "closed"},
    ]
    return cs, ps, vs, ls


def edge_tables(filler: int = 1200, seed: int = 7) -> dict:
    """Hand-made edge cases plus random filler customers (ids interleave with the edge ids)."""
    cs, ps, vs, ls = edge_rows()
    fc, fp, fv, fl = _random_rows(seed, filler, 8_999_990_000, {c["customer_id"] for c in cs})
    return _tables(fc[:600] + cs + fc[600:], with_orders(fp, seed) + ps, fv + vs, fl + ls)


def write_folder(tables: dict, folder) -> Path:
    """Write <table>.parquet files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, t in tables.items():
        pq.write_table(t, folder / f"{name}.parquet")
    return folder


# As-of instants for the edge dataset: leap-day birthdays, the one-second-visibility instant,
# a DST day of the dataset's zone, and a day before data starts or after it ends.
_EDGE_COMMON = [
    dt.datetime(2027, 2, 28, 18, 0, tzinfo=UTC),
    FUTURE_AS_OF,
    dt.datetime(2028, 2, 29, 20, 0, tzinfo=UTC),
]
EDGE_AS_OFS_BY_ZONE = {
    NY: _EDGE_COMMON + [dt.datetime(2026, 3, 9, 4, 59, 59, tzinfo=UTC),    # 23:59:59 NY on 8 Mar
                        dt.datetime(2026, 11, 2, 5, 0, 0, tzinfo=UTC),     # 00:00 NY on 2 Nov
                        dt.datetime(2024, 6, 1, tzinfo=UTC)],              # before any data
    AKL: _EDGE_COMMON + [dt.datetime(2026, 9, 27, 11, 30, tzinfo=UTC),     # 00:30 Auckland on 28 Sep
                         dt.datetime(2026, 4, 4, 11, 0, tzinfo=UTC),       # 00:00 Auckland on 5 Apr
                         dt.datetime(2029, 1, 1, tzinfo=UTC)],             # after all data
}
