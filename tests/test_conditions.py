"""Every condition kind, several parameterisations each: engine count and materialized ids vs DuckPeer.

CATALOG maps a stable name to a function of the dataset's Values (common values read from
the data, so the conditions select something on any dataset) returning one condition.
test_oracle_self.py checks the same catalog DuckPeer vs the naive reference.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from segments.engine.model import segment as S

# ---------------------------------------------------------------- data-derived values

PROFILE_VALUE_FIELDS = ("origin_shop", "gender", "marital_status", "city", "postal_code")


@dataclass
class Values:
    """Frequent values of the dataset's columns (['__none__'] when a column is all null)."""
    top: dict          # "purchases.department" -> [most frequent, ...]
    ids: list          # a few customer_ids: first, middle, last (sorted), and an inactive one
    name_part: str     # part of a frequent last name, upper-cased
    phone_part: str    # a run of digits from a phone number, formatted
    email_part: str
    needles: dict = None   # search field -> upper-cased, accent-free part of a (preferably accented) value

    def __call__(self, col: str, k: int = 1) -> tuple:
        return tuple(self.top[col][:k])


def dataset_values(peer) -> Values:
    """Values of one DuckPeer dataset."""
    con = peer.con
    cols = [("purchases", f) for f in S.PRODUCT_FIELDS] + [("visits", "shop")] + \
        [("customers", f) for f in PROFILE_VALUE_FIELDS]
    top = {}
    for table, col in cols:
        rows = con.execute(f"SELECT {col} FROM {table} WHERE {col} IS NOT NULL "
                           f"GROUP BY 1 ORDER BY COUNT(*) DESC, 1 LIMIT 3").fetchall()
        top[f"{table}.{col}"] = [r[0] for r in rows] or ["__none__"]
    tags = con.execute("SELECT t FROM (SELECT unnest(tags) AS t FROM customers) WHERE t IS NOT NULL "
                       "GROUP BY 1 ORDER BY COUNT(*) DESC, 1 LIMIT 3").fetchall()
    top["tags"] = [r[0] for r in tags] or ["__none__"]
    ids = [r[0] for r in con.execute("SELECT customer_id FROM customers WHERE _active ORDER BY 1").fetchall()]
    inactive = con.execute("SELECT min(customer_id) FROM customers WHERE NOT _active").fetchone()[0]
    picked = [ids[0], ids[len(ids) // 2], ids[-1]] + ([inactive] if inactive is not None else [])
    name = con.execute("SELECT last_name FROM customers WHERE length(last_name) >= 4 "
                       "GROUP BY 1 ORDER BY COUNT(*) DESC, 1 LIMIT 1").fetchone()
    phone = con.execute("SELECT _n_phone FROM customers WHERE length(_n_phone) >= 7 "
                        "ORDER BY customer_id LIMIT 1").fetchone()
    email = con.execute("SELECT email FROM customers WHERE email LIKE '%@%' ORDER BY customer_id LIMIT 1").fetchone()
    ph = phone[0][-7:] if phone else "5550100"
    needles = {"phone": f"{ph[:3]}-{ph[3:]}"}
    for f in S.SEARCH_FIELDS:
        if f != "phone":
            row = con.execute(f"SELECT upper(substr(norm({f}), 2, 4)) FROM customers "
                              f"WHERE length({f}) >= 5 GROUP BY {f} "
                              f"ORDER BY ({f} <> strip_accents({f})) DESC, COUNT(*) DESC, {f} LIMIT 1").fetchone()
            needles[f] = row[0] if row else "MIT"
    return Values(top, picked, (name[0][1:4].upper() if name else "MIT"),
                  needles["phone"], (email[0].split("@")[1][:5].upper() if email else "EXAMP"), needles)


# ---------------------------------------------------------------- building blocks

def R(kind, n=None):
    return S.TimeRange(kind, n=n)


def custom(start=None, end=None):
    return S.TimeRange("custom", start=start, end=end)


O = S.Offset
RANGES = {
    **{p: R(p) for p in S.RANGE_PRESETS},
    "days1": R("last_n_days", 1), "days30": R("last_n_days", 30), "days365": R("last_n_days", 365),
    "months1": R("last_n_months", 1), "months6": R("last_n_months", 6), "months12": R("last_n_months", 12),
    "abs": custom(dt.date(2026, 1, 1), dt.date(2026, 6, 30)),
    "abs_from": custom(dt.date(2026, 7, 1), None),
    "abs_to": custom(None, dt.date(2026, 3, 8)),
    "off_12_6": custom(O(months=-12), O(months=-6)),
    "off_days": custom(O(months=-1, days=-3), O(days=-1)),
    "mixed": custom(dt.date(2025, 12, 1), O(months=-1)),
}
CMPS = {">": S.Cmp(">", 0), ">=": S.Cmp(">=", 0), "<": S.Cmp("<", 0), "<=": S.Cmp("<=", 0),
        "==": S.Cmp("==", 0), "between": S.Cmp("between", 0, 0)}


def cmp(op, a, b=None):
    return S.Cmp(op, a, b)


def F(**fields):
    return S.ProductFilter(tuple(sorted((k, tuple(v)) for k, v in fields.items())))


def _catalog() -> dict:
    c = {}
    c["all"] = lambda v: S.All()
    c["customers"] = lambda v: S.Customers(tuple(v.ids) + (-5, 123456789012345))
    c["customers/none_exist"] = lambda v: S.Customers((-1, -2))
    c["customers/dup_inactive"] = lambda v: S.Customers((v.ids[0], v.ids[0], v.ids[-1]))
    for f in S.SEARCH_FIELDS:
        c[f"search/{f}/data"] = lambda v, f=f: S.Search(v.needles[f], (f,))
    c["search/last_name/name"] = lambda v: S.Search(v.name_part, ("last_name",))
    c["search/first_name/zoe"] = lambda v: S.Search("ZOE", ("first_name",))
    c["search/city/zurich"] = lambda v: S.Search("zurich", ("city", "address"))
    c["search/all/aero"] = lambda v: S.Search("ÆRØ")
    c["search/all/lukasz"] = lambda v: S.Search("lukasz")
    c["surname/sorensen"] = lambda v: S.Surname("SORENSEN")
    c["search/first_name/jose"] = lambda v: S.Search("JOSE", ("first_name",))
    c["search/first_name/accent"] = lambda v: S.Search("jösé", ("first_name",))
    c["search/last_name/smith"] = lambda v: S.Search("Smith", ("last_name",))
    c["search/email/domain"] = lambda v: S.Search(v.email_part, ("email",))
    c["search/email/muller"] = lambda v: S.Search("MULLER", ("email",))
    c["search/phone/formatted"] = lambda v: S.Search(v.phone_part, ("phone",))
    c["search/phone/paren"] = lambda v: S.Search("(212) 555", ("phone",))
    c["search/phone/nodigits"] = lambda v: S.Search("abc", ("phone",))
    c["search/address/rue"] = lambda v: S.Search("rue saint-andre", ("address",))
    c["search/city/montreal"] = lambda v: S.Search("MONTREAL", ("city",))
    c["search/city/top"] = lambda v: S.Search(v("customers.city")[0][:4].lower(), ("city",))
    c["search/postal/h2x"] = lambda v: S.Search("h2x", ("postal_code",))
    c["search/postal/top"] = lambda v: S.Search(v("customers.postal_code")[0][:3], ("postal_code",))
    for label, text in (("dot", "."), ("percent", "%"), ("underscore", "_"), ("paren", "("),
                        ("apostrophe", "o'b"), ("backslash", "\\"), ("bracket", "[a]"), ("caret", "^j")):
        c[f"search/all/{label}"] = lambda v, text=text: S.Search(text)
    c["search/all/an"] = lambda v: S.Search("an")
    c["search/all/digits"] = lambda v: S.Search("555")
    for s in ("Smith", "smith", "SMÍTH", "Smithson", "Garcia", "García", "Muller", "NUNEZ"):
        c[f"surname/{s}"] = lambda v, s=s: S.Surname(s)
    c["surname/top"] = lambda v: S.Surname(v.name_part)  # a fragment: usually no exact match
    for which in ("birth", "anniversary"):
        c[f"{which}/today"] = lambda v, w=which: S.Birthday(w, "today")
        c[f"{which}/this_month"] = lambda v, w=which: S.Birthday(w, "this_month")
        for m in (2, 12):
            c[f"{which}/month{m}"] = lambda v, w=which, m=m: S.Birthday(w, "month", month=m)
        for n in (1, 7, 30, 366):
            c[f"{which}/next{n}"] = lambda v, w=which, n=n: S.Birthday(w, "next_days", days=n)
    c["married_today"] = lambda v: S.MarriedToday()
    for op, x in ((">", 30), (">=", 30), ("<", 25), ("<=", 25), ("==", 40)):
        c[f"age/{op}"] = lambda v, op=op, x=x: S.Age(cmp(op, x))
    c["age/between"] = lambda v: S.Age(cmp("between", 30, 59))
    for r in RANGES:
        c[f"joined/{r}"] = lambda v, r=r: S.Joined(RANGES[r])
    c["loyalty_member"] = lambda v: S.LoyaltyMember()
    for op, x in ((">", 100), (">=", 100), ("<", 250), ("<=", 250), ("==", 0)):
        c[f"points/{op}"] = lambda v, op=op, x=x: S.LoyaltyPoints(cmp(op, x))
    c["points/between"] = lambda v: S.LoyaltyPoints(cmp("between", 100, 2000))
    for f in PROFILE_VALUE_FIELDS:
        c[f"in/{f}/1"] = lambda v, f=f: S.InValues(f, v(f"customers.{f}", 1))
        c[f"in/{f}/2"] = lambda v, f=f: S.InValues(f, v(f"customers.{f}", 2) + ("no such",))
    c["tags/any"] = lambda v: S.Tags(v("tags", 2), "any")
    c["tags/all"] = lambda v: S.Tags(v("tags", 2), "all")
    c["tags/any_missing"] = lambda v: S.Tags(("no such tag",), "any")
    c["tags/all_one"] = lambda v: S.Tags(v("tags", 1), "all")
    c["tags/case"] = lambda v: S.Tags(("VIP",), "any")
    c["tags/all_dup"] = lambda v: S.Tags(v("tags", 1) * 2, "all")
    for ch in S.REACHABLE_CHANNELS:
        c[f"reachable/{ch}"] = lambda v, ch=ch: S.Reachable(ch)
    for op, x in ((">", 0), (">=", 0), ("<", 0), ("<=", 1500), ("==", 0)):
        c[f"balance/{op}"] = lambda v, op=op, x=x: S.AccountBalance(cmp(op, x))
    c["balance/between"] = lambda v: S.AccountBalance(cmp("between", 1, 50000))
    c["overdue_layby"] = lambda v: S.OverdueLayby()
    # purchases
    for r in RANGES:
        c[f"bought/{r}"] = lambda v, r=r: S.Bought(S.NO_FILTER, RANGES[r])
    c["bought/dept"] = lambda v: S.Bought(F(department=v("purchases.department")))
    c["bought/dept2/months6"] = lambda v: S.Bought(F(department=v("purchases.department", 2)), RANGES["months6"])
    c["bought/dept_metal"] = lambda v: S.Bought(F(department=v("purchases.department"), metal=v("purchases.metal")))
    c["bought/3fields"] = lambda v: S.Bought(F(department=v("purchases.department", 3),
                                               metal=v("purchases.metal", 2), shop=v("purchases.shop", 2)))
    for f in ("brand", "strain", "inventory_group", "inventory_type", "product", "shop"):
        c[f"bought/{f}"] = lambda v, f=f: S.Bought(F(**{f: v(f"purchases.{f}", 2)}), RANGES["year_to_date"])
    c["bought/cannabis"] = lambda v: S.Bought(F(brand=v("purchases.brand"), strain=v("purchases.strain", 2),
                                                inventory_type=v("purchases.inventory_type")))
    c["bought/none_value"] = lambda v: S.Bought(F(department=("no such dept",)))
    c["bought/unknown_and_known"] = lambda v: S.Bought(F(department=("no such dept",) + v("purchases.department")))
    c["bought/custom_open"] = lambda v: S.Bought(S.NO_FILTER, custom())
    c["bought/custom_empty"] = lambda v: S.Bought(S.NO_FILTER, custom(O(), O(days=-5)))
    c["bought/custom_start_offset"] = lambda v: S.Bought(S.NO_FILTER, custom(O(months=-1), None))
    c["spend/>max"] = lambda v: S.Spend(cmp(">", 2**63 - 1))
    c["spend/between_min_max"] = lambda v: S.Spend(cmp("between", -2**63, 2**63 - 1), S.NO_FILTER, RANGES["months1"])
    c["count/<=-1"] = lambda v: S.PurchaseCount(cmp("<=", -1))
    c["points/<min"] = lambda v: S.LoyaltyPoints(cmp("<", -2**63))
    for op, x in ((">", 50000), (">=", 10000), ("<", 0), ("<=", 0), ("==", 0)):
        c[f"spend/{op}"] = lambda v, op=op, x=x: S.Spend(cmp(op, x))
    c["spend/between/beads_charms"] = lambda v: S.Spend(cmp("between", 5000, 100000),
                                                        F(department=v("purchases.department", 2)))
    c["spend/months6/dept"] = lambda v: S.Spend(cmp(">=", 1), F(department=v("purchases.department")), RANGES["months6"])
    for r in ("today", "last_week", "previous_month", "off_12_6", "mixed"):
        c[f"spend/{r}"] = lambda v, r=r: S.Spend(cmp(">", 0), S.NO_FILTER, RANGES[r])
    c["spend/negative_refunds"] = lambda v: S.Spend(cmp("<", 0), S.NO_FILTER, RANGES["months12"])
    for op, x in ((">", 1), (">=", 3), ("<", 3), ("<=", 1), ("==", 0)):
        c[f"count/{op}"] = lambda v, op=op, x=x: S.PurchaseCount(cmp(op, x))
    c["count/between/months12"] = lambda v: S.PurchaseCount(cmp("between", 1, 3), S.NO_FILTER, RANGES["months12"])
    c["count/dept/ytd"] = lambda v: S.PurchaseCount(cmp(">=", 1), F(department=v("purchases.department")),
                                                    RANGES["year_to_date"])
    # visits
    c["visited"] = lambda v: S.Visited()
    c["visited/==0"] = lambda v: S.Visited(cmp("==", 0))
    c["visited/>=3/months12"] = lambda v: S.Visited(cmp(">=", 3), (), RANGES["months12"])
    c["visited/==1"] = lambda v: S.Visited(cmp("==", 1))
    c["visited/days30"] = lambda v: S.Visited(S.AT_LEAST_ONE, (), RANGES["days30"])
    c["visited/shops"] = lambda v: S.Visited(cmp(">=", 1), v("visits.shop", 2), RANGES["ever"])
    c["visited/between/mtd"] = lambda v: S.Visited(cmp("between", 1, 2), (), RANGES["month_to_date"])
    c["visited/>1"] = lambda v: S.Visited(cmp(">", 1))
    c["visited/<2/months12"] = lambda v: S.Visited(cmp("<", 2), (), RANGES["months12"])
    c["visited/<=1/shop"] = lambda v: S.Visited(cmp("<=", 1), v("visits.shop", 1), RANGES["year_to_date"])
    c["visited/today"] = lambda v: S.Visited(S.AT_LEAST_ONE, (), RANGES["today"])
    c["visited/shop_unknown"] = lambda v: S.Visited(S.AT_LEAST_ONE, ("no such shop",))
    c["upcoming"] = lambda v: S.UpcomingAppointment()
    c["upcoming/shop"] = lambda v: S.UpcomingAppointment(v("visits.shop", 1))
    # behaviour (shared/spec behaviour.md)
    B, V = S.Event(), S.Event("visited")
    dept = lambda v: F(department=v("purchases.department"))  # noqa: E731
    for r in ("month_to_date", "months12", "ever", "off_12_6", "year_to_date"):
        c[f"first_purchase/{r}"] = lambda v, r=r: S.FirstPurchase(S.NO_FILTER, RANGES[r])
        c[f"last_purchase/{r}"] = lambda v, r=r: S.LastPurchase(S.NO_FILTER, RANGES[r])
    c["first_purchase/dept/months6"] = lambda v: S.FirstPurchase(dept(v), RANGES["months6"])
    c["last_purchase/lapsed90"] = lambda v: S.LastPurchase(S.NO_FILTER, custom(None, O(days=-90)))
    c["regularly/month/12/3"] = lambda v: S.Regularly(B, "month", 12, 3)
    c["regularly/month/12/6/2"] = lambda v: S.Regularly(B, "month", 12, 6, 2)
    c["regularly/week/52/4"] = lambda v: S.Regularly(B, "week", 52, 4)
    c["regularly/week/1/1"] = lambda v: S.Regularly(B, "week", 1, 1)
    c["regularly/visits/week/26/2"] = lambda v: S.Regularly(V, "week", 26, 2)
    c["regularly/dept/month/24/2"] = lambda v: S.Regularly(S.Event("bought", dept(v)), "month", 24, 2)
    c["sequence/then/180"] = lambda v: S.Sequence(S.Event("bought", dept(v)),
                                                 S.Event("bought", F(department=v("purchases.department", 2)[1:])), 180)
    c["sequence/then/0"] = lambda v: S.Sequence(B, B, 0)
    c["sequence/then/visit_buy/30"] = lambda v: S.Sequence(V, B, 30, False, RANGES["months12"])
    c["sequence/then_not/visit/7"] = lambda v: S.Sequence(V, B, 7, True, RANGES["days365"])
    c["sequence/then_not/buy/30"] = lambda v: S.Sequence(B, B, 30, True)
    c["sequence/then_not/shops"] = lambda v: S.Sequence(S.Event("visited", shops=v("visits.shop", 1)), V, 60, True)
    for op, x in ((">=", 2), ("==", 0), ("<", 3), ("between", 1), (">", 1), ("<=", 1)):
        cm = cmp("between", 1, 3) if op == "between" else cmp(op, x)
        c[f"order_count/{op}"] = lambda v, cm=cm: S.OrderCount(cm)
    c["order_count/dept/months12"] = lambda v: S.OrderCount(cmp(">=", 1), dept(v), RANGES["months12"])
    c["order_count/prev_month"] = lambda v: S.OrderCount(cmp(">=", 1), S.NO_FILTER, RANGES["previous_month"])
    for op, x in ((">", 5000), (">=", 10000), ("<", 0), ("<=", 2500), ("==", 5000)):
        c[f"aov/{op}"] = lambda v, op=op, x=x: S.AverageOrderValue(cmp(op, x))
    c["aov/between/months12"] = lambda v: S.AverageOrderValue(cmp("between", 1000, 20000), RANGES["months12"])
    for key in ("spend", "purchase_count", "order_count", "last_purchase"):
        c[f"percentile/{key}/top20"] = lambda v, key=key: S.Percentile(S.Value(key, S.NO_FILTER, RANGES["months12"]),
                                                                         cmp(">=", 80))
    c["percentile/points/bottom"] = lambda v: S.Percentile(S.Value("loyalty_points"), cmp("<", 30))
    c["percentile/spend/among"] = lambda v: S.Percentile(S.Value("spend"), cmp("between", 50, 89),
                                                         S.LoyaltyMember())
    c["percentile/count/==0"] = lambda v: S.Percentile(S.Value("purchase_count", dept(v)), cmp("==", 0))
    c["percentile/empty_population"] = lambda v: S.Percentile(S.Value("spend"), cmp(">=", 0), S.Customers((-1,)))
    c["rfm/champions"] = lambda v: S.Rfm(S.NO_FILTER, RANGES["months12"], None, cmp(">=", 4), cmp(">=", 4),
                                         cmp(">=", 4))
    c["rfm/r_only"] = lambda v: S.Rfm(r=cmp("<=", 2))
    c["rfm/among/dept"] = lambda v: S.Rfm(dept(v), S.EVER, S.Bought(), None, cmp("==", 5), cmp(">=", 3))
    c["rfm/none"] = lambda v: S.Rfm(among=S.Reachable("email_opt_in"))
    for salt, cm in (("spring-2027", cmp("<", 1000)), ("", cmp(">=", 5000)), ("é", cmp("between", 0, 99))):
        c[f"random_bucket/{salt}"] = lambda v, salt=salt, cm=cm: S.RandomBucket(salt, cm)
    # combinators
    c["all_of"] = lambda v: S.AllOf((S.Bought(), S.LoyaltyMember()))
    c["any_of"] = lambda v: S.AnyOf((S.Spend(cmp("<", 0)), S.Tags(v("tags", 1))))
    c["not/bought"] = lambda v: S.Not(S.Bought())
    c["not/not"] = lambda v: S.Not(S.Not(S.Reachable("has_email")))
    c["lapsing"] = lambda v: S.AllOf((S.Visited(cmp(">=", 3), (), RANGES["months12"]),
                                      S.Not(S.Visited(S.AT_LEAST_ONE, (), R("last_n_months", 2))),
                                      S.Not(S.UpcomingAppointment())))
    return c


CATALOG = _catalog()
# Conditions that do not depend on the as-of instant: one instant is enough.
STATIC = ("all", "customers", "customers/none_exist", "loyalty_member")
STATIC_PREFIXES = ("search/", "surname/", "points/", "in/", "tags/", "reachable/", "balance/", "random_bucket/",
                   "percentile/points/")


def as_ofs_for(name: str, as_ofs: list) -> list:
    return as_ofs[:1] if name in STATIC or name.startswith(STATIC_PREFIXES) else as_ofs
LEAF_KINDS = {"All", "Customers", "Search", "Surname", "Birthday", "MarriedToday", "Age", "Joined",
              "LoyaltyMember", "LoyaltyPoints", "InValues", "Tags", "Reachable", "AccountBalance",
              "OverdueLayby", "Bought", "Spend", "PurchaseCount", "Visited", "UpcomingAppointment",
              "AllOf", "AnyOf", "Not", "FirstPurchase", "LastPurchase", "Regularly", "Sequence", "OrderCount",
              "AverageOrderValue", "Percentile", "Rfm", "RandomBucket"}


def values_of(ds):
    if "values" not in ds.cache:
        ds.cache["values"] = dataset_values(ds.peer)
    return ds.cache["values"]


def engine_ids(ds, seg, as_of) -> list:
    return [int(x) for x in ds.engine.materialize(ds.name, seg, as_of=as_of).customer_ids]


def diff(got, want) -> str:
    got, want = set(got), set(want)
    return f"engine-only {sorted(got - want)[:8]} peer-only {sorted(want - got)[:8]}"


def reach_of(ds) -> dict:
    """customer_id -> (email reachable, sms reachable), from the peer."""
    if "reach" not in ds.cache:
        ds.cache["reach"] = {r[0]: (r[1], r[2]) for r in ds.peer.con.execute(
            "SELECT customer_id, _has_email AND COALESCE(email_opt_in, FALSE), "
            "_has_phone AND COALESCE(sms_opt_in, FALSE) FROM customers").fetchall()}
    return ds.cache["reach"]


def check_condition(ds, cond, as_ofs=None) -> list:
    """Compare engine count and materialized ids with the peer; return mismatch messages."""
    from segments.engine.model.segment_json import dumps
    seg = S.Segment(cond)
    reach = reach_of(ds)
    problems = []
    for as_of in as_ofs or ds.as_ofs:
        want = ds.peer.result(seg, as_of)   # DuckPeer.count is checked against naive in test_oracle_self
        want_count = (len(want), sum(reach[i][0] for i in want), sum(reach[i][1] for i in want))
        c = ds.engine.count(ds.name, seg, as_of=as_of)
        got_count = (c.count, c.email_reachable, c.sms_reachable)
        got_ids = engine_ids(ds, seg, as_of)
        where = f"[{ds.key} as_of={as_of.isoformat()}]"
        if got_count != want_count:
            problems.append(f"{where} count {got_count} != peer {want_count} for {dumps(seg)}")
        if got_ids != want:
            how = "same set, order differs" if set(got_ids) == set(want) else diff(got_ids, want)
            problems.append(f"{where} ids ({len(got_ids)} vs {len(want)}, {how}) for {dumps(seg)}")
    return problems


def test_catalog_covers_every_kind():
    v = Values({}, [1, 2, 3], "MIT", "555-0100", "EXAMP", {f: "MIT" for f in S.SEARCH_FIELDS})
    v.top = {k: ["x", "y", "z"] for k in
             [f"purchases.{f}" for f in S.PRODUCT_FIELDS] + ["visits.shop", "tags"] +
             [f"customers.{f}" for f in PROFILE_VALUE_FIELDS]}
    conds = [make(v) for make in CATALOG.values()]
    assert {type(c).__name__ for c in conds} == LEAF_KINDS
    for kind in (S.Age, S.LoyaltyPoints, S.AccountBalance, S.Spend, S.PurchaseCount, S.Visited):
        assert {c.cmp.op for c in conds if type(c) is kind} == set(S.CMP_OPS), kind
    assert {c.channel for c in conds if isinstance(c, S.Reachable)} == set(S.REACHABLE_CHANNELS)
    modes = {(b.which, b.mode) for b in (make(v) for make in CATALOG.values()) if isinstance(b, S.Birthday)}
    assert modes == {(w, m) for w in ("birth", "anniversary") for m in S.BIRTHDAY_MODES}


@pytest.mark.parametrize("name", list(CATALOG))
def test_condition(ds, name):
    cond = CATALOG[name](values_of(ds))
    problems = check_condition(ds, cond, as_ofs_for(name, ds.as_ofs))
    assert not problems, "\n".join(problems)


def test_one_second_visibility(get_dataset):
    """Lines at as_of count; a line 1 s (or 1 us) after as_of does not."""
    from tests import datasets as D
    ds = get_dataset("edge_ny")
    cid = D.EDGE_FUTURE
    seg = S.Segment(S.AllOf((S.Customers((cid,)), S.Spend(cmp("==", 1111 + 2222)))))
    for as_of in (D.FUTURE_AS_OF,):
        assert ds.peer.result(seg, as_of) == [cid]
        assert engine_ids(ds, seg, as_of) == [cid]
    later = D.FUTURE_AS_OF + dt.timedelta(seconds=1)
    seg2 = S.Segment(S.AllOf((S.Customers((cid,)), S.Spend(cmp("==", 1111 + 2222 + 4444 + 8888)))))
    assert ds.peer.result(seg2, later) == [cid]
    assert engine_ids(ds, seg2, later) == [cid]


@pytest.mark.parametrize("key", ["edge_ny", "edge_akl"])
def test_local_midnight_lines(get_dataset, key):
    """Each DST-day line lands on the right local date (1 s before midnight = previous day)."""
    from tests import datasets as D
    ds = get_dataset(key)
    cid = D.EDGE_DST if key == "edge_ny" else D.EDGE_DST_AKL
    problems = []
    for i, day in enumerate(D.DST_DAYS[ds.timezone]):
        rng = custom(day, day)
        # lines of `day`: the at-midnight and +1 s lines of day i, the -1 s line of day i+1 if next
        want = 100 * (i * 3 + 2) + 100 * (i * 3 + 3)
        nxt = D.DST_DAYS[ds.timezone][i + 1] if i + 1 < len(D.DST_DAYS[ds.timezone]) else None
        if nxt == day + dt.timedelta(days=1):
            want += 100 * ((i + 1) * 3 + 1)
        seg = S.Segment(S.AllOf((S.Customers((cid,)), S.Spend(cmp("==", want), S.NO_FILTER, rng))))
        as_of = dt.datetime(2029, 1, 1, tzinfo=dt.timezone.utc)
        if ds.peer.result(seg, as_of) != [cid]:
            problems.append(f"peer: {day} spend != {want}")
        if engine_ids(ds, seg, as_of) != [cid]:
            problems.append(f"engine: {day} spend != {want} for {ds.key}")
    assert not problems, problems


def test_extreme_offsets(get_dataset):
    """Offsets at the parser's limits: the engine either refuses them (InvalidArgument) or
    treats a bound beyond the calendar as unbounded, as the peer does; it must not crash."""
    from segments.engine.errors import InvalidArgument
    ds = get_dataset("edge_ny")
    problems = []
    for r in (custom(O(months=-12000, days=-400000), O(months=12000, days=400000)),
              R("last_n_days", 100_000), R("last_n_months", 12_000)):
        try:
            problems += check_condition(ds, S.Bought(S.NO_FILTER, r), ds.as_ofs[:1])
        except InvalidArgument:
            pass
        except Exception as e:  # noqa: BLE001 - any other error is the finding
            problems.append(f"{r}: {type(e).__name__}: {e}")
    assert not problems, "\n".join(problems)
