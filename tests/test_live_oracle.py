"""Live updates vs the reference model: random change batches applied to the engine and to
tests/live_ref.LiveRef, then a broad list of segments (every condition kind of
shared/spec/conditions.md) answered by the engine and by DuckPeer over the reference tables.

Per seed: a generated dataset (2100 customers, shard_bits=10: three shards) in its own
data directory; 12 batches (objects / arrow / text rows, one batch through the convenience
calls). Checked vs the peer after batch 4 (half the segments, end of the anchor day),
batch 8 (the other half, 15 days earlier: before the newest appended lines) and batch 12
(all at the anchor day; halves 15 days earlier and on 28 Feb 2027). Then reopened (log
replay) and compacted: the engine must repeat the answers it gave (and that were checked)
before; then two more batches (checked vs the peer) and reopened again (repeat).
Seed 303's engine also compacts in the background every few batches.
Compared: count with reachable counts, materialized customer_ids in order, rank values,
preview of ranked segments, rows_of / preview profile fields of changed customers.
"""
from __future__ import annotations

import datetime as dt
import math

import pytest

from segments.engine.model import segment as S
from segments.engine.model.schema import PROFILE_FIELDS
from tests import datasets as D
from tests.live_ref import (MARK_LAST, NEW_BRAND, NEW_CITY, NEW_DEPARTMENT, NEW_METAL, NEW_PRODUCT_PREFIX,
                            NEW_SHOP, NEW_TAG, ChangeGen, LiveRef, as_ofs)

# seed -> (timezone, Engine options): 303 compacts in the background every few batches
SEEDS = {101: (D.NY, {}), 202: (D.AKL, {"auto_compact": False}),
         303: (D.NY, {"compact_after_lines": 150, "compact_after_customers": 60})}
N_BATCHES = 12
CHECK_EVERY = 4
CUSTOMERS = 2100


def F(**fields):
    return S.ProductFilter(tuple(sorted((k, tuple(v)) for k, v in fields.items())))


def R(kind, n=None):
    return S.TimeRange(kind, n=n)


def custom(start=None, end=None):
    return S.TimeRange("custom", start=start, end=end)


def cmp(op, a, b=None):
    return S.Cmp(op, a, b)


EVER = S.EVER


def conditions(gen) -> dict:
    """name -> condition; ids and old names come from the generator's notes."""
    n = gen.notes
    picked = sorted(n["new"])[:8] + sorted(n["deleted"])[:6] + sorted(n["recreated"])[:4] + \
        sorted(n["upserted_twice"])[:6] + sorted(n["sparse"])[:4] + sorted(n["unknown_deleted"])[:2]
    old = sorted(gen.old_names - set(MARK_LAST)) or ["Smith"]
    c = {
        "all": S.All(),
        "customers/notes": S.Customers(tuple(picked) or (-1,)),
        # text: names changed by upserts are found by their new text, not their old
        "search/last/mark": S.Search("zyxwright", ("last_name",)),
        "search/first/quorra": S.Search("QUORRA", ("first_name",)),
        "search/all/mark_accent": S.Search("zÿxwr"),
        "search/all/olafs": S.Search("olafs"),
        "search/email/newmail": S.Search("NEWMAIL.example", ("email",)),
        "search/phone": S.Search("555-01", ("phone",)),
        "search/phone/dots": S.Search("021.555", ("phone",)),
        "search/city/reykjavik": S.Search("reykjavik", ("city", "address")),
        "search/last/old0": S.Search(old[0][:5], ("last_name",)),
        "search/last/old1": S.Search(old[-1], ("last_name", "first_name")),
        "surname/mark": S.Surname("zyxwright"),
        "surname/smith": S.Surname("Smith"),
        "surname/old0": S.Surname(old[0]),
        "surname/old_mid": S.Surname(old[len(old) // 2]),
        # calendar profile
        "birth/today": S.Birthday("birth", "today"),
        "birth/this_month": S.Birthday("birth", "this_month"),
        "birth/month2": S.Birthday("birth", "month", month=2),
        "birth/next30": S.Birthday("birth", "next_days", days=30),
        "birth/next2": S.Birthday("birth", "next_days", days=2),
        "anniversary/today": S.Birthday("anniversary", "today"),
        "anniversary/month2": S.Birthday("anniversary", "month", month=2),
        "married_today": S.MarriedToday(),
        "age/between": S.Age(cmp("between", 30, 59)),
        "age/==26": S.Age(cmp("==", 26)),
        "age/<20": S.Age(cmp("<", 20)),
        "age/>=42": S.Age(cmp(">=", 42)),
        "joined/months12": S.Joined(R("last_n_months", 12)),
        "joined/today": S.Joined(R("today")),
        "joined/custom": S.Joined(custom(dt.date(2026, 11, 1), None)),
        # profile values
        "loyalty_member": S.LoyaltyMember(),
        "points/>1000": S.LoyaltyPoints(cmp(">", 1000)),
        "points/between": S.LoyaltyPoints(cmp("between", 0, 250)),
        "points/==0": S.LoyaltyPoints(cmp("==", 0)),
        "in/city": S.InValues("city", (NEW_CITY, "Boston")),
        "in/origin_shop": S.InValues("origin_shop", (NEW_SHOP, "Online")),
        "in/gender": S.InValues("gender", ("other",)),
        "in/postal": S.InValues("postal_code", ("101", "10001")),
        "tags/any_new": S.Tags((NEW_TAG,), "any"),
        "tags/all_vip_new": S.Tags(("VIP", NEW_TAG), "all"),
        "tags/any_vip_staff": S.Tags(("VIP", "staff"), "any"),
        **{f"reachable/{ch}": S.Reachable(ch) for ch in S.REACHABLE_CHANNELS},
        "balance/>0": S.AccountBalance(cmp(">", 0)),
        "balance/<0": S.AccountBalance(cmp("<", 0)),
        "overdue_layby": S.OverdueLayby(),
        # purchases
        "bought/ever": S.Bought(),
        "bought/days30": S.Bought(S.NO_FILTER, R("last_n_days", 30)),
        "bought/today": S.Bought(S.NO_FILTER, R("today")),
        "bought/mtd": S.Bought(S.NO_FILTER, R("month_to_date")),
        "bought/old": S.Bought(S.NO_FILTER, custom(dt.date(2023, 1, 1), dt.date(2025, 10, 31))),
        "bought/new_dept": S.Bought(F(department=(NEW_DEPARTMENT,))),
        "bought/new_brand/months1": S.Bought(F(brand=(NEW_BRAND,)), R("last_n_months", 1)),
        "bought/new_product": S.Bought(F(product=tuple(f"{NEW_PRODUCT_PREFIX}{i}" for i in range(3)))),
        "bought/rings_titanium": S.Bought(F(department=("rings",), metal=(NEW_METAL, "gold"))),
        "bought/new_shop/ytd": S.Bought(F(shop=(NEW_SHOP,)), R("year_to_date")),
        "bought/dispensary": S.Bought(F(strain=("OG Kush", "Gelato"), inventory_type=("indica", "hybrid"))),
        "bought/diamond/months6": S.Bought(F(department=("diamond",)), R("last_n_months", 6)),
        "spend/ever>=100000": S.Spend(cmp(">=", 100000)),
        "spend/ever<0": S.Spend(cmp("<", 0)),
        "spend/ever==0": S.Spend(cmp("==", 0)),
        "spend/months12/between": S.Spend(cmp("between", 10000, 50000), S.NO_FILTER, R("last_n_months", 12)),
        "spend/new_brand/ever": S.Spend(cmp(">=", 1), F(brand=(NEW_BRAND,))),
        "spend/new_brand/<0": S.Spend(cmp("<", 0), F(brand=(NEW_BRAND,))),
        "spend/days30>5000": S.Spend(cmp(">", 5000), S.NO_FILTER, R("last_n_days", 30)),
        "spend/diamond/ytd": S.Spend(cmp(">", 0), F(department=("diamond",)), R("year_to_date")),
        "spend/prev_month": S.Spend(cmp(">", 0), S.NO_FILTER, R("previous_month")),
        "count/ever>=5": S.PurchaseCount(cmp(">=", 5)),
        "count/ever==0": S.PurchaseCount(cmp("==", 0)),
        "count/months6/between": S.PurchaseCount(cmp("between", 1, 3), S.NO_FILTER, R("last_n_months", 6)),
        "count/new_product": S.PurchaseCount(cmp(">=", 1), F(product=tuple(f"{NEW_PRODUCT_PREFIX}{i}" for i in range(7)))),
        "count/last_week": S.PurchaseCount(cmp(">=", 1), S.NO_FILTER, R("last_week")),
        # visits
        "visited/ever": S.Visited(),
        "visited/==0": S.Visited(cmp("==", 0)),
        "visited/months12>=3": S.Visited(cmp(">=", 3), (), R("last_n_months", 12)),
        "visited/new_shop": S.Visited(S.AT_LEAST_ONE, (NEW_SHOP,)),
        "visited/days30": S.Visited(S.AT_LEAST_ONE, (), R("last_n_days", 30)),
        "upcoming": S.UpcomingAppointment(),
        "upcoming/shop": S.UpcomingAppointment((NEW_SHOP, "Online")),
        # behaviour (shared/spec behaviour.md): values that depend on appended lines
        "first_purchase/days30": S.FirstPurchase(S.NO_FILTER, R("last_n_days", 30)),
        "first_purchase/new_brand": S.FirstPurchase(F(brand=(NEW_BRAND,)), R("last_n_months", 1)),
        "last_purchase/lapsed60": S.LastPurchase(S.NO_FILTER, custom(None, S.Offset(days=-60))),
        "last_purchase/today": S.LastPurchase(S.NO_FILTER, R("today")),
        "regularly/month/6/2": S.Regularly(S.Event(), "month", 6, 2),
        "regularly/week/visits": S.Regularly(S.Event("visited"), "week", 8, 1),
        "sequence/then/30": S.Sequence(S.Event(), S.Event("bought", F(brand=(NEW_BRAND,))), 30),
        "sequence/then_not/visit/7": S.Sequence(S.Event("visited"), S.Event(), 7, True, R("last_n_days", 60)),
        "order_count/>=2": S.OrderCount(cmp(">=", 2)),
        "order_count/new_dept/months1": S.OrderCount(cmp(">=", 1), F(department=(NEW_DEPARTMENT,)), R("last_n_months", 1)),
        "aov/>20000": S.AverageOrderValue(cmp(">", 20000)),
        "aov/days30/<=5000": S.AverageOrderValue(cmp("<=", 5000), R("last_n_days", 30)),
        "percentile/spend/top20": S.Percentile(S.Value("spend", S.NO_FILTER, R("last_n_months", 12)), cmp(">=", 80)),
        "percentile/orders/among_new_tag": S.Percentile(S.Value("order_count"), cmp("<", 50), S.Tags((NEW_TAG,))),
        "rfm/champions": S.Rfm(S.NO_FILTER, R("last_n_months", 12), None, cmp(">=", 4), cmp(">=", 4), cmp(">=", 4)),
        "random_bucket": S.RandomBucket("spring-2027", cmp("<", 1000)),
        # combinators
        "not/bought": S.Not(S.Bought()),
        "all_of/new_tag_no_email": S.AllOf((S.Tags((NEW_TAG,)), S.Not(S.Reachable("has_email")))),
        "any_of/mark_refund": S.AnyOf((S.Surname("zyxwright"), S.Spend(cmp("<", 0), S.NO_FILTER, R("last_n_days", 30)))),
        "lapsing": S.AllOf((S.Visited(cmp(">=", 3), (), R("last_n_months", 12)),
                            S.Not(S.Visited(S.AT_LEAST_ONE, (), R("last_n_months", 2))),
                            S.Not(S.UpcomingAppointment()))),
        "nested": S.AnyOf((S.AllOf((S.Bought(F(brand=(NEW_BRAND,))), S.Not(S.LoyaltyMember()))),
                           S.Not(S.AnyOf((S.Visited(), S.Bought(), S.Tags((NEW_TAG,))))))),
    }
    return c


def segments(gen) -> dict:
    c = conditions(gen)
    out = {f"c:{k}": S.Segment(v) for k, v in c.items()}
    new = tuple(sorted(gen.notes["new"])[:10]) or (-1,)
    out.update({
        "best50_spend": S.Segment(S.Bought(), order_by=S.OrderBy("spend"), limit=50),
        "order_count_desc": S.Segment(S.Bought(), order_by=S.OrderBy("order_count", S.NO_FILTER, R("last_n_months", 12)),
                                      limit=40),
        "aov_asc": S.Segment(S.All(), order_by=S.OrderBy("average_order_value", descending=False), limit=40),
        "new_brand_spend_ties": S.Segment(S.All(), order_by=S.OrderBy("spend", F(brand=(NEW_BRAND,))), limit=30),
        "count_asc_months12": S.Segment(S.Bought(S.NO_FILTER, R("last_n_months", 12)),
                                        order_by=S.OrderBy("purchase_count", S.NO_FILTER, R("last_n_months", 12),
                                                           descending=False), limit=40),
        "points_desc_excl_vip": S.Segment(S.All(), exclude=S.Tags(("VIP",)),
                                          order_by=S.OrderBy("loyalty_points"), limit=60),
        "points_asc": S.Segment(S.Tags((NEW_TAG, "VIP")), order_by=S.OrderBy("loyalty_points", descending=False),
                                limit=25),
        "last_purchase_append": S.Segment(S.Tags((NEW_TAG,)), append=(S.Surname("zyxwright"),),
                                          order_by=S.OrderBy("last_purchase"), limit=25),
        "spend_asc_excl_append": S.Segment(S.Visited(), exclude=S.Reachable("has_email"),
                                           append=(S.Customers(new), S.Bought(F(department=(NEW_DEPARTMENT,)))),
                                           order_by=S.OrderBy("spend", S.NO_FILTER, R("last_n_days", 30), False),
                                           limit=20),
        "limit_unranked": S.Segment(S.All(), limit=15),
        "exclude_append_unranked": S.Segment(S.Bought(S.NO_FILTER, R("last_n_days", 30)),
                                             exclude=S.Tags(("staff",)), append=(S.Reachable("sms_opt_in"),)),
        "ranked_last_new_dept": S.Segment(S.All(), order_by=S.OrderBy("last_purchase", F(department=(NEW_DEPARTMENT,)),
                                                                        EVER, False), limit=35),
    })
    return out


# ---------------------------------------------------------------- comparison

def engine_answer(eng, name, seg, as_of) -> dict:
    """What the engine says about one segment: count triple, ids in order, rank values, preview."""
    c = eng.count(name, seg, as_of=as_of)
    m = eng.materialize(name, seg, as_of=as_of)
    out = {"count": (c.count, c.email_reachable, c.sms_reachable), "ids": [int(x) for x in m.customer_ids],
           "ranked": None, "preview": None}
    if seg.order_by is not None:
        if m.rank_values is None:
            out["ranked"] = "no rank_values"
        elif seg.order_by.key in ("spend", "purchase_count"):
            out["ranked"] = [int(x) for x in m.rank_values]
        else:
            out["ranked"] = [None if math.isnan(x) else (int(x) if seg.order_by.key == "loyalty_points" else "set")
                             for x in m.rank_values.astype(float)]
        p = eng.preview(name, seg, n=10, as_of=as_of)
        out["preview"] = [(r["customer_id"], r.get("rank_value")) for r in p.rows]
    return out


def expected_answer(peer, seg, as_of) -> dict:
    """The same from DuckPeer over the reference tables."""
    reach = reach_map(peer)
    want = peer.ranked(seg, as_of)
    ids = [i for i, _ in want]
    out = {"count": (len(ids), sum(reach[i][0] for i in ids), sum(reach[i][1] for i in ids)), "ids": ids,
           "ranked": None, "preview": None}
    if seg.order_by is not None:
        key = seg.order_by.key
        out["ranked"] = [v if key in ("spend", "purchase_count", "loyalty_points") else (None if v is None else "set")
                         for _, v in want]
        out["preview"] = want[:10]
    return out


def differences(w: str, got: dict, want: dict) -> list:
    problems = []
    if got["count"] != want["count"]:
        problems.append(f"{w}: count {got['count']} != {want['count']}")
    if got["ids"] != want["ids"]:
        gs, ws = set(got["ids"]), set(want["ids"])
        how = ("same set, order differs" if gs == ws else
               f"engine-only {sorted(gs - ws)[:6]} expected-only {sorted(ws - gs)[:6]}")
        problems.append(f"{w}: ids ({len(got['ids'])} vs {len(want['ids'])}) {how}")
    elif got["ranked"] != want["ranked"]:
        problems.append(f"{w}: rank values {str(got['ranked'])[:80]} != {str(want['ranked'])[:80]}")
    elif got["preview"] != want["preview"]:
        problems.append(f"{w}: preview {got['preview'][:4]} != {want['preview'][:4]}")
    return problems


def compare(eng, name, segs: dict, as_of, where: str, peer=None, recorded=None) -> tuple:
    """Engine answers vs the peer's (or vs answers recorded earlier); (problems, answers)."""
    problems, answers = [], {}
    for key, seg in segs.items():
        w = f"[{where} as_of={as_of.isoformat()}] {key}"
        try:
            got = engine_answer(eng, name, seg, as_of)
        except Exception as e:  # noqa: BLE001 - an engine error is a finding, keep going
            problems.append(f"{w}: {type(e).__name__}: {e}")
            continue
        answers[key] = got
        want = expected_answer(peer, seg, as_of) if recorded is None else recorded.get(key)
        if want is not None:
            problems += differences(w, got, want)
    return problems, answers


def reach_map(peer) -> dict:
    """customer_id -> (reachable by email, by SMS), as DuckPeer.count counts them."""
    if not hasattr(peer, "_reach"):
        peer._reach = {r[0]: (bool(r[1]), bool(r[2])) for r in peer.con.execute(
            "SELECT customer_id, _has_email AND COALESCE(email_opt_in, FALSE), "
            "_has_phone AND COALESCE(sms_opt_in, FALSE) FROM customers").fetchall()}
    return peer._reach


def _norm(f, v):
    if f == "tags":
        return list(v or [])
    return v


def compare_rows(eng, name, ref, gen, as_of) -> list:
    """rows_of and preview fields of changed, new, deleted and re-created customers."""
    n = gen.notes
    ids = sorted(n["upserted"] | n["new"] | n["deleted"] | n["recreated"] | n["sparse"] | n["unknown_deleted"])
    fields = tuple(PROFILE_FIELDS)
    problems = []
    m = eng.rows_of(name, ids, fields)
    got_ids = [int(x) for x in m.customer_ids]
    live = ref.ids()
    if sorted(got_ids) != sorted(i for i in ids if i in live):
        problems.append(f"rows_of ids: engine-only {sorted(set(got_ids) - live)[:5]} "
                        f"missing {sorted(set(ids) & live - set(got_ids))[:5]}")
    for f in fields:
        col = m.columns[f].to_pylist()
        for cid, v in zip(got_ids, col):
            row = ref.row(cid)
            if row is not None and _norm(f, v) != _norm(f, row[f]):
                problems.append(f"rows_of {cid}.{f}: {v!r} != {row[f]!r}")
    c = eng.count(name, S.Segment(S.Customers(tuple(ids))), as_of=as_of)
    if set(c.missing_ids) != set(ids) - live:
        problems.append(f"missing_ids: engine-only {sorted(set(c.missing_ids) - (set(ids) - live))[:5]} "
                        f"expected-only {sorted((set(ids) - live) - set(c.missing_ids))[:5]}")
    info_rows = eng.info(name)["rows"]
    want_rows = {t: ref.t[t].num_rows for t in ("customers", "purchases", "visits", "laybys")}
    if {t: info_rows.get(t) for t in want_rows} != want_rows:
        problems.append(f"info rows {info_rows} != {want_rows}")
    # preview of the same customers (active ones, ascending customer_id)
    seg = S.Segment(S.Customers(tuple(ids)))
    p = eng.preview(name, seg, n=len(ids), fields=fields, as_of=as_of)
    want = [i for i in ids if i in live and ref.row(i)["active"]]
    if [r["customer_id"] for r in p.rows] != want:
        problems.append(f"preview ids {[r['customer_id'] for r in p.rows][:5]} != {want[:5]}")
    for r in p.rows:
        row = ref.row(r["customer_id"])
        for f in fields:
            if row is not None and _norm(f, r.get(f)) != _norm(f, row[f]):
                problems.append(f"preview {r['customer_id']}.{f}: {r.get(f)!r} != {row[f]!r}")
    return problems[:40]


# ---------------------------------------------------------------- the test

def settle(eng, name):
    """Wait for a background compaction to finish (the engine's private lock) before closing:
    closing under one is tests/test_live_concurrency.py's subject, not this one's."""
    lock = getattr(eng.dataset(name), "_compacting", None)
    if lock is not None:
        with lock:
            pass


@pytest.fixture(scope="module")
def base_folders(tmp_path_factory):
    from segments.bench.generate import generate
    out = {}
    for seed in SEEDS:
        folder = tmp_path_factory.mktemp(f"live_base_{seed}")
        generate(folder, customers=CUSTOMERS, seed=seed, fmt="parquet")
        out[seed] = folder
    return out


def _apply(eng, name, ref, batch, i, problems):
    before = eng.info(name)["live"]["sequence"]
    want = ref.apply(batch)
    if i == 5:   # the convenience calls, in the batch order: deletes, upserts, lines
        kw = batch.kwargs()
        res = [eng.delete_customers(name, kw.get("delete", []))] if kw.get("delete") else []
        not_found = set(res[0]["not_found"]) if res else set()
        if "customers" in kw:
            res.append(eng.upsert_customers(name, kw["customers"]))
        for t in ("purchases", "visits", "laybys"):
            if t in kw:
                res.append(eng.append(name, t, kw[t]))
        rows = {k: sum(r["rows"][k] for r in res) for k in want["rows"]}
        seqs = [r["sequence"] for r in res]
        if seqs != sorted(set(seqs)) or seqs[0] <= before:
            problems.append(f"batch {i}: sequences {seqs} after {before}")
    else:
        r = eng.apply_changes(name, **batch.kwargs())
        rows, not_found = r["rows"], set(r["not_found"])
        if r["duplicate"] is not False or r["sequence"] <= before:
            problems.append(f"batch {i}: answer {r} after sequence {before}")
        seqs = [r["sequence"]]
    if rows != want["rows"] or not_found != set(want["not_found"]):
        problems.append(f"batch {i} {batch.summary()}: rows {rows} not_found {sorted(not_found)} != "
                        f"{want['rows']} {sorted(want['not_found'])}")
    live = eng.info(name)["live"]
    if live["sequence"] != seqs[-1]:
        problems.append(f"batch {i}: info sequence {live['sequence']} != {seqs[-1]}")


@pytest.mark.parametrize("seed", list(SEEDS))
def test_live_oracle(seed, base_folders, tmp_path):
    from segments.bench.duck import read_tables
    from segments.engine.api import Engine
    tz, options = SEEDS[seed]
    name = f"live{seed}"
    root = tmp_path / "data"
    eng = Engine(root, **options)
    eng.create_dataset(name, tz, shard_bits=10)
    eng.ingest(name, base_folders[seed])
    assert eng.info(name)["shards"] >= 3
    ref = LiveRef(read_tables(base_folders[seed]), tz)
    gen = ChangeGen(seed, ref)
    instants = as_ofs(tz)
    problems = []

    def check(label, which, rows=False, part=None):
        """Engine vs DuckPeer on the reference; part "A"/"B" takes every other segment."""
        peer = ref.peer(threads=1)
        segs = segments(gen)
        if part is not None:
            segs = {k: v for j, (k, v) in enumerate(segs.items()) if j % 2 == (part == "B")}
        answers = {}
        try:
            for k in which:
                found, answers[k] = compare(eng, name, segs, instants[k], f"seed {seed} {label}", peer=peer)
                problems.extend(found)
            if rows:
                problems.extend(f"[seed {seed} {label}] {p}"
                                for p in compare_rows(eng, name, ref, gen, instants["end"]))
        finally:
            peer.close()
        return answers

    def same_as(label, recorded, rows=True):
        """Engine vs its own answers recorded (and checked against the peer) earlier."""
        segs = segments(gen)
        for k, rec in recorded.items():
            problems.extend(compare(eng, name, segs, instants[k], f"seed {seed} {label}", recorded=rec)[0])
        if rows:
            problems.extend(f"[seed {seed} {label}] {p}" for p in compare_rows(eng, name, ref, gen, instants["end"]))

    try:
        for i in range(N_BATCHES):
            _apply(eng, name, ref, gen.next(), i, problems)
            if i + 1 == 4:
                check("after batch 3", ("end",), part="A")
            elif i + 1 == 8:
                check("after batch 7", ("mid",), part="B")
        recorded = check(f"after batch {N_BATCHES - 1}", ("end",), rows=True)
        check(f"after batch {N_BATCHES - 1}", ("mid",), part="A")
        check(f"after batch {N_BATCHES - 1}", ("future",), part="B")
        assert not problems, "\n".join(problems[:60])

        seq = eng.info(name)["live"]["sequence"]
        settle(eng, name)
        eng.close()                                    # reopen: the log is replayed
        eng = Engine(root, **options)
        assert eng.info(name)["live"]["sequence"] == seq
        same_as("reopened", recorded)

        eng.compact(name)                              # fold the changes into a version
        live = eng.info(name)["live"]
        assert live["sequence"] >= seq and not any(live["pending"].values()), live
        same_as("compacted", recorded)

        for i in range(N_BATCHES, N_BATCHES + 2):      # changes on top of the compacted version
            _apply(eng, name, ref, gen.next(), i, problems)
        recorded = check("compacted + 2 batches", ("end",))
        seq = eng.info(name)["live"]["sequence"]
        settle(eng, name)
        eng.close()
        eng = Engine(root, **options)
        assert eng.info(name)["live"]["sequence"] == seq
        same_as("compacted + 2 batches, reopened", recorded)
        assert not problems, "\n".join(problems[:60])
    finally:
        settle(eng, name)
        eng.close()
