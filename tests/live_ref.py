"""Reference model of live updates (docs/live-updates.md) and a seeded change-batch generator.

LiveRef holds a dataset's four tables as canonical pyarrow tables and applies change
batches with the documented semantics, in plain Python / pyarrow, without engine code:
  * deletes first: the customer row and every line of the customer so far are dropped
    (erasure; deleting an unknown id changes nothing and is reported as not found);
  * then customer upserts: a row for an existing customer_id replaces the whole row
    (columns not given become null, `active` null means true); its lines stay;
  * then the appended lines (each must name a customer existing after the above).
A customer_id deleted and later upserted again is a new customer with no history.
`peer()` gives a bench.duck.DuckPeer over the current tables.

ChangeGen(seed, ref, anchor, timezone).next() draws the next Batch from the reference's
current state: new customers (ids below, between and above the existing ones), upserts of
existing customers (full and sparse rows; some customers upserted in several batches),
purchases with known and never-seen product values, refunds, lines dated long ago and
after the as-of instant, visits (booked ahead / completed), laybys, deletes (one customer
deleted and re-created later, some deleted and re-created within one batch, unknown ids).
A Batch is sent to the engine as Python objects, a pyarrow Table or CSV-convention text.
"""
from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from segments.bench.generate import vocab as V
from segments.engine.storage.ingest_read import canonical_schema

TABLES = ("customers", "purchases", "visits", "laybys")
LINE_TABLES = ("purchases", "visits", "laybys")
UTC = dt.timezone.utc

# Values the generated base data never holds (engine.generate_vocab has none of them).
NEW_BRAND = "Nébula Gems"
NEW_DEPARTMENT = "holograms"
NEW_METAL = "titanium"
NEW_SHOP = "Pop-up Störe"
NEW_PRODUCT_PREFIX = "SKU-LIVE-"
NEW_CITY = "Reykjavík"
NEW_TAG = "gold-club"
MARK_LAST = ("Zyxwright", "ZŸXWRIGHT", "Zyxwright-Ólafs")   # names given by upserts
MARK_FIRST = ("Quorra", "Quörra")
NEW_EMAIL_DOMAIN = "newmail.example"

# Three instants the oracle evaluates at (see as_ofs()).
ANCHOR = dt.date(2026, 11, 20)       # engine.generate's DEFAULT_ANCHOR: "today" of the data


def as_ofs(timezone: str) -> dict:
    """end: the anchor day's last second; mid: 15 days earlier (before the newest appended
    lines); future: 28 Feb 2027 noon (non-leap: 29 Feb birthdays count, every appended
    future line visible, some booked visits still ahead)."""
    z = ZoneInfo(timezone)
    return {"end": dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=z),
            "mid": dt.datetime(2026, 11, 5, 12, 0, tzinfo=z),
            "future": dt.datetime(2027, 2, 28, 12, 0, tzinfo=z)}


# ---------------------------------------------------------------- canonical tables

def canonical(table: str, rows) -> pa.Table:
    """Rows (list of dicts of Python objects, or a pa.Table) as a canonical table of
    `table`: every column in schema order, absent columns null, `active` null -> true."""
    schema = canonical_schema(table)
    if isinstance(rows, pa.Table):
        cols = {}
        for f in schema:
            cols[f.name] = rows[f.name].cast(f.type) if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
        t = pa.table(cols, schema=schema)
    else:
        t = pa.Table.from_pylist([{f.name: _utc(r.get(f.name)) for f in schema} for r in rows], schema=schema)
    if table == "customers":
        i = t.column_names.index("active")
        t = t.set_column(i, "active", pc.fill_null(t["active"], True))
    return t


def _utc(v):
    if isinstance(v, dt.datetime):
        return v.astimezone(UTC)
    return v


def empty(table: str) -> pa.Table:
    return canonical_schema(table).empty_table()


# ---------------------------------------------------------------- a change batch

@dataclass
class Batch:
    """One change batch in Python objects (the reference's view), and how to send it."""
    customers: Optional[list] = None
    purchases: Optional[list] = None
    visits: Optional[list] = None
    laybys: Optional[list] = None
    delete: tuple = ()
    batch_id: Optional[str] = None
    fmt: str = "objects"             # objects | arrow | text

    def rows(self, table: str) -> list:
        return getattr(self, table) or []

    def kwargs(self) -> dict:
        """Keyword arguments of Engine.apply_changes for this batch in its format."""
        kw = {}
        for t in TABLES:
            rows = getattr(self, t)
            if rows is None:
                continue
            if self.fmt == "arrow":
                kw[t] = _arrow_rows(t, rows)
            elif self.fmt == "text":
                kw[t] = [{k: _text(v) for k, v in r.items()} for r in rows]
            else:
                kw[t] = [dict(r) for r in rows]
        if self.delete:
            kw["delete"] = list(self.delete)
        if self.batch_id is not None:
            kw["batch_id"] = self.batch_id
        return kw

    def summary(self) -> str:
        return (f"Batch(fmt={self.fmt}, customers={len(self.rows('customers'))}, "
                f"purchases={len(self.rows('purchases'))}, visits={len(self.rows('visits'))}, "
                f"laybys={len(self.rows('laybys'))}, delete={list(self.delete)})")


def _arrow_rows(table: str, rows: list) -> pa.Table:
    """Only the columns some row names, in canonical types (a sparse upsert stays sparse)."""
    schema = canonical_schema(table)
    names = [f.name for f in schema if any(f.name in r for r in rows)]
    return pa.Table.from_pylist([{n: _utc(r.get(n)) for n in names} for r in rows],
                                schema=pa.schema([schema.field(n) for n in names]))


def _text(v):
    """A value in the CSV conventions of docs/live-updates.md."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, list):
        return ";".join(v)
    raise TypeError(v)


# ---------------------------------------------------------------- the reference model

class LiveRef:
    """The dataset's tables after each applied batch, by the documented semantics."""

    def __init__(self, tables: dict, timezone: str):
        self.timezone = timezone
        self.t = {name: canonical(name, tables[name]) if name in tables else empty(name) for name in TABLES}
        self._ids = set(self.t["customers"]["customer_id"].to_pylist())
        assert len(self._ids) == self.t["customers"].num_rows, "duplicate customer_id in base data"
        self.sequence = 0
        self._rows_cache = None

    # ------------------------------------------------------------ state
    def ids(self) -> set:
        return set(self._ids)

    def tables(self) -> dict:
        return dict(self.t)

    def peer(self, threads: int = 2):
        from segments.bench.duck import DuckPeer
        return DuckPeer(self.tables(), self.timezone, threads=threads)

    def customer_rows(self) -> dict:
        """customer_id -> row dict (cached until the next apply)."""
        if self._rows_cache is None:
            self._rows_cache = {r["customer_id"]: r for r in self.t["customers"].to_pylist()}
        return self._rows_cache

    def row(self, cid: int) -> Optional[dict]:
        return self.customer_rows().get(cid)

    def lines_of(self, table: str, cid: int) -> int:
        t = self.t[table]
        return int(pc.sum(pc.equal(t["customer_id"], cid)).as_py() or 0)

    # ------------------------------------------------------------ changes
    def apply(self, b: Batch) -> dict:
        """Apply one batch; return the expected rows / not_found of the engine's answer."""
        dels = list(dict.fromkeys(int(i) for i in b.delete))
        found = [i for i in dels if i in self._ids]
        not_found = [i for i in dels if i not in self._ids]
        if found:
            gone = pa.array(found, pa.int64())
            for name in TABLES:
                t = self.t[name]
                self.t[name] = t.filter(pc.invert(pc.is_in(t["customer_id"], value_set=gone)))
            self._ids -= set(found)
        ups = b.rows("customers")
        if ups:
            new = canonical("customers", ups)
            up_ids = new["customer_id"].to_pylist()
            assert len(set(up_ids)) == len(up_ids), "generator made a duplicate customer_id"
            t = self.t["customers"]
            keep = t.filter(pc.invert(pc.is_in(t["customer_id"], value_set=pa.array(up_ids, pa.int64()))))
            self.t["customers"] = pa.concat_tables([keep, new])
            self._ids |= set(up_ids)
        for name in LINE_TABLES:
            rows = b.rows(name)
            if rows:
                new = canonical(name, rows)
                unknown = set(new["customer_id"].to_pylist()) - self._ids
                assert not unknown, f"generator made {name} lines of unknown customers {unknown}"
                self.t[name] = pa.concat_tables([self.t[name], new])
        self.sequence += 1
        self._rows_cache = None
        return {"rows": {"customers": len(ups), "purchases": len(b.rows("purchases")),
                         "visits": len(b.rows("visits")), "laybys": len(b.rows("laybys")),
                         "deleted": len(found)},
                "not_found": not_found}


# ---------------------------------------------------------------- the batch generator

ID_LOW, ID_HIGH = 10**9, 9 * 10**15       # engine.generate's id range


class ChangeGen:
    """Seeded random change batches drawn against a LiveRef's current state.

    notes (id sets, for segments that single them out): new, deleted, recreated (deleted
    and upserted again, in the same or a later batch), upserted, upserted_twice, sparse
    (upserted with a sparse row), renamed (given a MARK_LAST surname), old_names
    (surnames before a rename), future_buyers, unknown_deleted.
    """

    def __init__(self, seed: int, ref: LiveRef, anchor: dt.date = ANCHOR, formats=("objects", "objects",
                                                                                     "objects", "arrow", "text")):
        self.rng = random.Random(seed)
        self.seed = seed
        self.ref = ref
        self.zone = ZoneInfo(ref.timezone)
        self.anchor = anchor
        self.end = dt.datetime.combine(anchor, dt.time(23, 59, 59), self.zone)
        self.formats = formats
        self.n = 0
        self.notes = defaultdict(set)
        self.old_names = set()
        self._recreate = {}              # id -> batch number at which it comes back
        self._sku = 0
        self._orders = random.Random(seed * 31 + 7)   # order ids: their own draws, the rest unchanged

    # ------------------------------------------------------------ values
    def _pick_ts(self, kind: str) -> dt.datetime:
        r = self.rng
        if kind == "recent":            # the 30 days up to the anchor's last second
            t = self.end - dt.timedelta(seconds=r.randrange(30 * 86400))
        elif kind == "old":             # more than a year before
            t = self.end - dt.timedelta(days=r.randrange(400, 1100), seconds=r.randrange(86400))
        elif kind == "future":          # after the anchor, before the "future" as-of
            t = self.end + dt.timedelta(seconds=r.randrange(1, 60 * 86400))
        else:                           # the day of the anchor itself
            t = dt.datetime.combine(self.anchor, dt.time(0), self.zone) + dt.timedelta(seconds=r.randrange(86400))
        t = t.replace(microsecond=0)
        zone = r.choice([UTC, self.zone, dt.timezone(dt.timedelta(hours=-5)), dt.timezone(dt.timedelta(hours=13))])
        return t.astimezone(zone)

    def _date(self, lo: dt.date, hi: dt.date) -> dt.date:
        return lo + dt.timedelta(days=self.rng.randrange((hi - lo).days + 1))

    def _birth(self) -> Optional[dt.date]:
        r = self.rng.random()
        if r < 0.2:
            return dt.date(self.rng.choice([1996, 2000, 1984]), 2, 29)
        if r < 0.35:                    # celebrates on an as-of day
            d = self.rng.choice([dt.date(1990, 11, 20), dt.date(1975, 2, 28), dt.date(2001, 11, 5),
                                 dt.date(1999, 11, 21), dt.date(1980, 3, 1)])
            return d
        if r < 0.45:
            return None
        return self._date(dt.date(1940, 1, 1), dt.date(2010, 12, 31))

    def _profile(self, cid: int) -> dict:
        r = self.rng
        first = r.choice([f for f, _ in V.FIRST_NAMES] + list(MARK_FIRST))
        last = r.choice([n for n, _ in V.LAST_NAMES])
        city, postal = r.choice(V.PLACES + ((NEW_CITY, "101"),))
        tags = r.sample([t for t, _ in V.TAGS] + [NEW_TAG], r.randrange(0, 3))
        return {
            "customer_id": cid,
            "first_name": first, "last_name": last,
            "email": r.choice([f"{first.lower()}.{cid % 1000}@{NEW_EMAIL_DOMAIN}", None, "", f"x{cid % 97}@gmail.com"]),
            "phone": r.choice([None, f"+1 (212) 555-{r.randrange(10000):04d}", "  "]),
            "address": r.choice([None, f"{r.randrange(1, 300)} {r.choice(V.STREETS)}"]),
            "city": city, "postal_code": postal,
            "gender": r.choice(V.GENDERS + (None,)),
            "marital_status": r.choice(V.MARITAL + (None,)),
            "birth_date": self._birth(),
            "anniversary_date": r.choice([None, dt.date(2012, 2, 29), dt.date(2010, 11, 20), dt.date(2015, 2, 14)]),
            "wedding_date": r.choice([None, None, dt.date(2026, 11, 20), dt.date(2027, 2, 28), dt.date(2026, 11, 5)]),
            "joined_on": r.choice([None, self._date(dt.date(2015, 1, 1), self.anchor), self.anchor]),
            "loyalty_member": r.choice([True, False, None]),
            "loyalty_points": r.choice([None, 0, 250, r.randrange(0, 20000)]),
            "origin_shop": r.choice(V.SHOPS + (NEW_SHOP, None)),
            "tags": tags if tags or r.random() < 0.5 else None,
            "email_opt_in": r.choice([True, False, None]),
            "sms_opt_in": r.choice([True, False, None]),
            "account_balance": r.choice([None, 0, 1500, -300]),
            "active": r.choice([True, True, True, None, False]),
        }

    def _modify(self, row: dict) -> dict:
        """An upsert of an existing customer: its current row with a few fields changed."""
        r = self.rng
        row = dict(row)
        for f in r.sample(["city", "tags", "birth_date", "email", "opt_in", "points", "active", "names",
                           "wedding", "joined", "phone", "balance"], r.randint(1, 4)):
            if f == "city":
                row["city"] = r.choice([NEW_CITY, "Boston", None, "Zürich"])
            elif f == "tags":
                row["tags"] = r.choice([[NEW_TAG], ["VIP", NEW_TAG], [], None, ["staff"]])
            elif f == "birth_date":
                row["birth_date"] = self._birth()
            elif f == "email":
                row["email"] = r.choice([None, "", f"changed{row['customer_id'] % 1000}@{NEW_EMAIL_DOMAIN}"])
            elif f == "opt_in":
                row["email_opt_in"] = not row.get("email_opt_in")
                row["sms_opt_in"] = r.choice([True, False, None])
            elif f == "points":
                row["loyalty_points"] = r.choice([0, 99999, None, r.randrange(0, 5000)])
            elif f == "active":
                row["active"] = not (row.get("active") is not False)
            elif f == "names":
                if row.get("last_name"):
                    self.old_names.add(row["last_name"])
                row["last_name"] = r.choice(MARK_LAST)
                row["first_name"] = r.choice(MARK_FIRST + (None,))
                self.notes["renamed"].add(row["customer_id"])
            elif f == "wedding":
                row["wedding_date"] = r.choice([dt.date(2026, 11, 20), dt.date(2027, 2, 28), None])
            elif f == "joined":
                row["joined_on"] = r.choice([self.anchor, dt.date(2026, 11, 1), None])
            elif f == "phone":
                row["phone"] = r.choice([None, "", "021.555.0199"])
            elif f == "balance":
                row["account_balance"] = r.choice([0, 2500, None])
        if self.rng.random() < 0.5 and "tags" in row and row["tags"] == []:
            row["tags"] = None
        return row

    def _sparse(self, cid: int) -> dict:
        """A sparse upsert: only a few columns; every other one becomes null."""
        r = self.rng
        row = {"customer_id": cid, "first_name": r.choice(MARK_FIRST), "loyalty_points": r.randrange(0, 3000)}
        if r.random() < 0.5:
            row["tags"] = [NEW_TAG]
        self.notes["sparse"].add(cid)
        return row

    def _new_id(self, taken: set) -> int:
        r = self.rng
        while True:
            kind = r.random()
            if kind < 0.35:
                cid = r.randrange(1, ID_LOW)                  # below every generated id
            elif kind < 0.6:
                cid = r.randrange(ID_HIGH, 2**62)             # above them
            else:
                cid = r.randrange(ID_LOW, ID_HIGH)            # between them
            if cid not in taken:
                return cid

    def _purchase(self, cid: int) -> dict:
        r = self.rng
        kind = r.choice(["recent", "recent", "recent", "anchor", "old", "future", "future"])
        new_product = r.random() < 0.3
        amount = r.choice([1000, 2500, 5000, 12000, r.randrange(0, 300000)])
        if r.random() < 0.12:
            amount = -amount
        if new_product:
            self._sku += 1
            line = {"department": r.choice([NEW_DEPARTMENT, "rings"]), "metal": r.choice([NEW_METAL, "gold", None]),
                    "brand": NEW_BRAND, "product": f"{NEW_PRODUCT_PREFIX}{self._sku % 7}",
                    "shop": r.choice([NEW_SHOP, "Online"])}
        else:
            dept = r.choice([d for d, *_ in V.DEPARTMENTS])
            line = {"department": dept, "metal": r.choice(V.METALS + (None,)),
                    "brand": r.choice(V.JEWELLERY_BRANDS + (None,)), "product": f"SKU-{r.randrange(20):06d}",
                    "shop": r.choice(V.SHOPS)}
            if r.random() < 0.2:
                line.update(brand=r.choice(V.DISPENSARY_BRANDS), strain=r.choice(V.STRAINS),
                            inventory_group=r.choice(V.INVENTORY_GROUPS),
                            inventory_type=r.choice(V.INVENTORY_TYPES), department=None, metal=None)
        if kind == "future":
            self.notes["future_buyers"].add(cid)
        row = {"customer_id": cid, "purchased_at": self._pick_ts(kind), "amount": amount,
               "quantity": r.choice([1, 1, 2, None]),
               "order_id": self._orders.choice([None, None, None, "L-1", "L-2", "900"])}
        row.update(line)
        return row

    def _visit(self, cid: int) -> dict:
        r = self.rng
        status = r.choice(["completed", "completed", "booked", "booked", "cancelled", "no_show"])
        if status == "booked":
            kind = r.choice(["future", "future", "recent"])
            ts = self._pick_ts(kind)
            if r.random() < 0.3:      # beyond the "future" as-of
                ts = self.end + dt.timedelta(days=r.randrange(101, 140))
        else:
            ts = self._pick_ts(r.choice(["recent", "recent", "old", "anchor", "future"]))
        return {"customer_id": cid, "starts_at": ts, "status": status,
                "shop": r.choice(V.SHOPS + (NEW_SHOP, None))}

    def _layby(self, cid: int) -> dict:
        r = self.rng
        opened = self._date(dt.date(2026, 6, 1), dt.date(2027, 1, 31))
        return {"customer_id": cid, "opened_on": opened,
                "due_on": opened + dt.timedelta(days=r.randrange(0, 150)),
                "balance": r.choice([0, 500, 25000]), "status": r.choice(["open", "open", "closed"])}

    # ------------------------------------------------------------ batches
    def next(self) -> Batch:
        """The next batch, drawn against the reference's current state (apply it before the next call)."""
        r = self.rng
        ref = self.ref
        n = self.n
        self.n += 1
        existing = sorted(ref.ids())
        rows = ref.customer_rows()
        fmt = r.choice(self.formats)

        # deletes
        deleted = set(r.sample(existing, r.choice([0, 1, 2, 3])))
        if n == 0:                       # a buyer deleted now, re-created two batches later
            buyers = sorted(set(ref.t["purchases"]["customer_id"].to_pylist()) & set(existing))
            victim = r.choice(buyers)
            deleted.add(victim)
            self._recreate[victim] = 2
        same_batch = set()
        if r.random() < 0.4 or n == 1:   # deleted and re-created within this batch
            same_batch = set(r.sample([i for i in existing if i not in deleted], 1))
            deleted |= same_batch
        unknown = []
        if r.random() < 0.3:
            unknown = [self._new_id(set(existing))]
            self.notes["unknown_deleted"].update(unknown)
        self.notes["deleted"] |= deleted
        delete = tuple(sorted(deleted)) + tuple(unknown)
        if r.random() < 0.5:
            delete = tuple(r.sample(delete, len(delete)))
        after = set(existing) - deleted

        # upserts of existing customers (some already upserted before)
        ups = {}
        pool = [i for i in existing if i not in deleted]
        for cid in r.sample(pool, r.randint(3, 10)):
            ups[cid] = self._modify(rows[cid]) if r.random() < 0.8 else self._sparse(cid)
        again = sorted(self.notes["upserted"] & after)
        for cid in r.sample(again, min(len(again), 2)):
            ups[cid] = self._modify(rows[cid])
            self.notes["upserted_twice"].add(cid)
        self.notes["upserted"] |= set(ups)

        # new customers, re-created ones
        taken = set(existing) | self.notes["deleted"] | set(unknown)
        for _ in range(r.randint(2, 7)):
            cid = self._new_id(taken | set(ups))
            ups[cid] = self._profile(cid)
            self.notes["new"].add(cid)
        for cid in same_batch | {c for c, at in self._recreate.items() if at == n}:
            ups[cid] = self._profile(cid)
            self.notes["recreated"].add(cid)
        after |= set(ups)

        # lines
        targets = sorted(after)
        favoured = sorted(set(ups))
        def who():
            return r.choice(favoured) if favoured and r.random() < 0.5 else r.choice(targets)
        purchases = [self._purchase(who()) for _ in range(r.randint(5, 40))]
        visits = [self._visit(who()) for _ in range(r.randint(0, 12))]
        laybys = [self._layby(who()) for _ in range(r.randint(0, 3))]

        order = list(ups.values())
        r.shuffle(order)
        if fmt == "text":                # CSV conventions: an empty tag list is written as null
            for row in order:
                if row.get("tags") == []:
                    row["tags"] = None
        return Batch(customers=order or None, purchases=purchases or None, visits=visits or None,
                     laybys=laybys or None, delete=delete,
                     batch_id=f"seed{self.seed}-batch{n}" if r.random() < 0.5 else None, fmt=fmt)
