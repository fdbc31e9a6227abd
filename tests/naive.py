"""A slow, obvious reference: a Segment evaluated customer by customer over Python dicts.

One small function per condition kind, no cleverness, no shared code with bench/duck.py
or the engine (only the condition dataclasses). Used on small data to check the DuckDB
peer, which in turn checks the engine at scale.
"""
from __future__ import annotations

import calendar
import datetime as dt
import unicodedata
from collections import defaultdict
from functools import lru_cache
from zoneinfo import ZoneInfo

from segments.engine.model import segment as S

ONE_DAY = dt.timedelta(days=1)


# ---------------------------------------------------------------- calendar

def add_months(d: dt.date, months: int) -> dt.date:
    """Step month by month, then clamp the day to the month's length."""
    year, month = d.year, d.month
    step = 1 if months > 0 else -1
    for _ in range(abs(months)):
        month += step
        if month == 13:
            year, month = year + 1, 1
        if month == 0:
            year, month = year - 1, 12
    last = calendar.monthrange(year, month)[1]
    return dt.date(year, month, min(d.day, last))


@lru_cache(maxsize=4096)
def date_range(r: S.TimeRange, today: dt.date):
    """(start, end) local dates, None for no bound."""
    if r.kind == "ever":
        return None, None
    if r.kind == "today":
        return today, today
    if r.kind == "yesterday":
        return today - ONE_DAY, today - ONE_DAY
    if r.kind == "last_week":
        d = today - 7 * ONE_DAY          # some day of last week
        while d.weekday() != 0:
            d -= ONE_DAY
        return d, d + 6 * ONE_DAY
    if r.kind == "month_to_date":
        return today.replace(day=1), today
    if r.kind == "previous_month":
        end = today.replace(day=1) - ONE_DAY
        return end.replace(day=1), end
    if r.kind == "year_to_date":
        return dt.date(today.year, 1, 1), today
    if r.kind == "last_n_days":
        return today - (r.n - 1) * ONE_DAY, today
    if r.kind == "last_n_months":
        return add_months(today, -r.n) + ONE_DAY, today
    if r.kind == "custom":
        def bound(b):
            if b is None or isinstance(b, dt.date):
                return b
            return add_months(today, b.months) + b.days * ONE_DAY
        return bound(r.start), bound(r.end)
    raise ValueError(r.kind)


def in_range(d, r: S.TimeRange, today: dt.date) -> bool:
    if d is None:
        return False
    start, end = date_range(r, today)
    return (start is None or d >= start) and (end is None or d <= end)


def celebrates(date_value: dt.date, day: dt.date) -> bool:
    """Is `day` the anniversary of date_value (29 Feb -> 28 Feb in non-leap years)?"""
    if (date_value.month, date_value.day) == (day.month, day.day):
        return True
    return (date_value.month, date_value.day) == (2, 29) and (day.month, day.day) == (2, 28) \
        and not calendar.isleap(day.year)


def age_on(birth: dt.date, today: dt.date) -> int:
    age = today.year - birth.year
    month, day = birth.month, birth.day
    if (month, day) == (2, 29) and not calendar.isleap(today.year):
        day = 28
    if (today.month, today.day) < (month, day):
        age -= 1
    return age


FOLD = str.maketrans({"ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "đ": "d", "ð": "d",
                      "þ": "th", "ı": "i"})


def normalise(s: str) -> str:
    """Lowercase, accents removed, the letters without a separable accent folded (ø -> o)."""
    decomposed = unicodedata.normalize("NFD", s.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).translate(FOLD)


def digits(s: str) -> str:
    return "".join(ch for ch in s if ch in "0123456789")


def present(s) -> bool:
    return s is not None and s.strip() != ""


# ---------------------------------------------------------------- data

class Ctx:
    """One evaluation: as-of instant and today."""

    def __init__(self, as_of: dt.datetime, zone: ZoneInfo):
        self.as_of = as_of
        self.today = as_of.astimezone(zone).date()


class Naive:
    """The dataset as lists of dict rows, grouped by customer."""

    def __init__(self, tables: dict, timezone: str):
        self.zone = ZoneInfo(timezone)
        self.customers = sorted(tables["customers"].to_pylist(), key=lambda c: c["customer_id"])
        self.by_id = {c["customer_id"]: c for c in self.customers}
        self.purchases = defaultdict(list)
        for p in tables["purchases"].to_pylist():
            p["local_date"] = p["purchased_at"].astimezone(self.zone).date()
            self.purchases[p["customer_id"]].append(p)
        self.visits = defaultdict(list)
        for v in tables["visits"].to_pylist():
            v["local_date"] = v["starts_at"].astimezone(self.zone).date()
            self.visits[v["customer_id"]].append(v)
        self.memo: dict = {}             # percentile populations per (value, among, as_of)
        self.saved_segments: dict = {}   # name -> Segment (in_segment)
        self.groups: dict = {}           # name -> set of customer_ids (in_group)
        self.laybys = defaultdict(list)
        for layby in tables["laybys"].to_pylist():
            self.laybys[layby["customer_id"]].append(layby)

    def active(self):
        return [c for c in self.customers if c["active"] is not False]

    # ------------------------------------------------------------ conditions
    def matches(self, cond: S.Condition, c: dict, ctx: Ctx) -> bool:
        return CHECKS[type(cond)](self, cond, c, ctx)

    def ids(self, cond: S.Condition, as_of: dt.datetime) -> set:
        ctx = Ctx(as_of, self.zone)
        return {c["customer_id"] for c in self.active() if self.matches(cond, c, ctx)}

    def lines(self, c, f: S.ProductFilter, r: S.TimeRange, ctx: Ctx):
        """Purchase lines of c visible as of ctx, matching filter and range (refunds included)."""
        out = []
        start, end = date_range(r, ctx.today)
        for p in self.purchases[c["customer_id"]]:
            if p["purchased_at"] > ctx.as_of:
                continue
            if (start is not None and p["local_date"] < start) or (end is not None and p["local_date"] > end):
                continue
            if all(p[field] in values for field, values in f.fields):
                out.append(p)
        return out

    # ------------------------------------------------------------ segments
    def rank_value(self, o: S.OrderBy, c: dict, ctx: Ctx):
        if o.key == "loyalty_points":
            return c["loyalty_points"]
        if o.key == "order_count":
            return order_count_of(self, c, o.filter, o.range, ctx)
        if o.key == "average_order_value":
            return average_order_value_of(self, c, o.range, ctx)
        lines = self.lines(c, o.filter, o.range, ctx)
        if o.key == "spend":
            return sum(p["amount"] for p in lines)
        sales = [p for p in lines if p["amount"] >= 0]
        if o.key == "purchase_count":
            return len(sales)
        return max((p["local_date"] for p in sales), default=None)

    def ranked(self, seg: S.Segment, as_of: dt.datetime) -> list:
        """[(customer_id, ranking value)] in result order."""
        ctx = Ctx(as_of, self.zone)
        act = self.active()

        def member(cond):
            return {c["customer_id"] for c in act if self.matches(cond, c, ctx)}

        excluded = member(seg.exclude) if seg.exclude is not None else set()
        base = sorted(member(seg.include) - excluded)
        value = {}
        if seg.order_by is not None:
            value = {i: self.rank_value(seg.order_by, self.by_id[i], ctx) for i in base}

        def order(ids):
            if seg.order_by is None:
                return sorted(ids)
            present_ = sorted((i for i in ids if value[i] is not None), key=lambda i: i)
            present_.sort(key=lambda i: value[i], reverse=seg.order_by.descending)
            return present_ + sorted(i for i in ids if value[i] is None)

        top = order(base)
        if seg.limit is not None:
            top = top[:seg.limit]
        final = set(top)
        for a in seg.append:
            final |= member(a) - excluded
        if seg.order_by is not None:
            for i in final:
                if i not in value:
                    value[i] = self.rank_value(seg.order_by, self.by_id[i], ctx)
        return [(i, value.get(i)) for i in order(final)]

    def result(self, seg: S.Segment, as_of: dt.datetime) -> list:
        return [i for i, _ in self.ranked(seg, as_of)]

    def count(self, seg: S.Segment, as_of: dt.datetime):
        ids = self.result(seg, as_of)
        cs = [self.by_id[i] for i in ids]
        return (len(ids),
                sum(1 for c in cs if present(c["email"]) and c["email_opt_in"] is True),
                sum(1 for c in cs if present(c["phone"]) and c["sms_opt_in"] is True))


# ---------------------------------------------------------------- one function per condition

def cmp_test(cmp: S.Cmp, v) -> bool:
    if v is None:
        return False
    if cmp.op == ">":
        return v > cmp.a
    if cmp.op == ">=":
        return v >= cmp.a
    if cmp.op == "<":
        return v < cmp.a
    if cmp.op == "<=":
        return v <= cmp.a
    if cmp.op == "==":
        return v == cmp.a
    return cmp.a <= v <= cmp.b


def check_all(n, cond, c, ctx):
    return True


def check_customers(n, cond, c, ctx):
    return c["customer_id"] in cond.ids


def check_search(n, cond, c, ctx):
    needle = normalise(cond.text)
    for f in cond.fields:
        value = c[f]
        if value is None:
            continue
        if f == "phone":
            d = digits(cond.text)
            if d and d in digits(value):
                return True
        elif needle in normalise(value):
            return True
    return False


def check_surname(n, cond, c, ctx):
    return c["last_name"] is not None and normalise(c["last_name"]) == normalise(cond.text)


def check_birthday(n, cond, c, ctx):
    d = c["birth_date"] if cond.which == "birth" else c["anniversary_date"]
    if d is None:
        return False
    if cond.mode == "today":
        return celebrates(d, ctx.today)
    if cond.mode == "this_month":
        return d.month == ctx.today.month
    if cond.mode == "month":
        return d.month == cond.month
    return any(celebrates(d, ctx.today + i * ONE_DAY) for i in range(cond.days))


def check_married_today(n, cond, c, ctx):
    return c["wedding_date"] == ctx.today


def check_age(n, cond, c, ctx):
    return c["birth_date"] is not None and cmp_test(cond.cmp, age_on(c["birth_date"], ctx.today))


def check_joined(n, cond, c, ctx):
    return in_range(c["joined_on"], cond.range, ctx.today)


def check_loyalty_member(n, cond, c, ctx):
    return c["loyalty_member"] is True


def check_loyalty_points(n, cond, c, ctx):
    return cmp_test(cond.cmp, c["loyalty_points"])


def check_in_values(n, cond, c, ctx):
    return c[cond.field] is not None and c[cond.field] in cond.values


def check_tags(n, cond, c, ctx):
    have = set(c["tags"] or ())
    if cond.mode == "any":
        return any(t in have for t in cond.tags)
    return all(t in have for t in cond.tags)


def check_reachable(n, cond, c, ctx):
    if cond.channel == "has_email":
        return present(c["email"])
    if cond.channel == "has_phone":
        return present(c["phone"])
    return c[cond.channel] is True


def check_account_balance(n, cond, c, ctx):
    return cmp_test(cond.cmp, c["account_balance"])


def check_overdue_layby(n, cond, c, ctx):
    return any(lb["status"] == "open" and lb["balance"] > 0 and lb["due_on"] < ctx.today
               and lb["opened_on"] <= ctx.today for lb in n.laybys[c["customer_id"]])


def check_bought(n, cond, c, ctx):
    return any(p["amount"] >= 0 for p in n.lines(c, cond.filter, cond.range, ctx))


def check_spend(n, cond, c, ctx):
    return cmp_test(cond.cmp, sum(p["amount"] for p in n.lines(c, cond.filter, cond.range, ctx)))


def check_purchase_count(n, cond, c, ctx):
    lines = n.lines(c, cond.filter, cond.range, ctx)
    return cmp_test(cond.cmp, sum(1 for p in lines if p["amount"] >= 0))


def check_visited(n, cond, c, ctx):
    k = sum(1 for v in n.visits[c["customer_id"]]
            if v["status"] == "completed" and v["starts_at"] <= ctx.as_of
            and (not cond.shops or v["shop"] in cond.shops)
            and in_range(v["local_date"], cond.range, ctx.today))
    return cmp_test(cond.cmp, k)


def check_upcoming_appointment(n, cond, c, ctx):
    return any(v["status"] == "booked" and v["starts_at"] > ctx.as_of
               and (not cond.shops or v["shop"] in cond.shops) for v in n.visits[c["customer_id"]])


def check_all_of(n, cond, c, ctx):
    return all(n.matches(x, c, ctx) for x in cond.children)


def check_any_of(n, cond, c, ctx):
    return any(n.matches(x, c, ctx) for x in cond.children)


def check_not(n, cond, c, ctx):
    return not n.matches(cond.child, c, ctx)


CHECKS = {
    S.All: check_all, S.Customers: check_customers, S.Search: check_search,
    S.Surname: check_surname, S.Birthday: check_birthday, S.MarriedToday: check_married_today,
    S.Age: check_age, S.Joined: check_joined, S.LoyaltyMember: check_loyalty_member,
    S.LoyaltyPoints: check_loyalty_points, S.InValues: check_in_values, S.Tags: check_tags,
    S.Reachable: check_reachable, S.AccountBalance: check_account_balance,
    S.OverdueLayby: check_overdue_layby, S.Bought: check_bought, S.Spend: check_spend,
    S.PurchaseCount: check_purchase_count, S.Visited: check_visited,
    S.UpcomingAppointment: check_upcoming_appointment, S.AllOf: check_all_of,
    S.AnyOf: check_any_of, S.Not: check_not,
}


# ---------------------------------------------------------------- behaviour (shared/spec behaviour.md)

def events(n, c, ev: S.Event, ctx):
    """[(instant, local date)] of c's visible events of kind ev."""
    if ev.kind == "visited":
        return [(v["starts_at"], v["local_date"]) for v in n.visits[c["customer_id"]]
                if v["status"] == "completed" and v["starts_at"] <= ctx.as_of
                and (not ev.shops or v["shop"] in ev.shops)]
    return [(p["purchased_at"], p["local_date"]) for p in n.lines(c, ev.filter, S.EVER, ctx) if p["amount"] >= 0]


def sale_dates(n, c, f, r, ctx):
    return [p["local_date"] for p in n.lines(c, f, r, ctx) if p["amount"] >= 0]


def check_first_purchase(n, cond, c, ctx):
    ds = sale_dates(n, c, cond.filter, S.EVER, ctx)
    return bool(ds) and in_range(min(ds), cond.range, ctx.today)


def check_last_purchase(n, cond, c, ctx):
    ds = sale_dates(n, c, cond.filter, S.EVER, ctx)
    return bool(ds) and in_range(max(ds), cond.range, ctx.today)


def period_starts(period: str, periods: int, today: dt.date) -> list:
    """Start dates of the n periods ending with today's, oldest first."""
    if period == "week":
        monday = today - today.weekday() * ONE_DAY
        return [monday - 7 * (periods - 1 - i) * ONE_DAY for i in range(periods)]
    first = today.replace(day=1)
    return [add_months(first, -(periods - 1 - i)) for i in range(periods)]


def check_regularly(n, cond, c, ctx):
    starts = period_starts(cond.period, cond.periods, ctx.today) + [None]
    counts = [0] * cond.periods
    for _, d in events(n, c, cond.event, ctx):
        for i in range(cond.periods):
            end = starts[i + 1] if starts[i + 1] is not None else ctx.today + ONE_DAY
            if starts[i] <= d < end:
                counts[i] += 1
    return sum(1 for k in counts if k >= cond.min_per_period) >= cond.min_periods


def check_sequence(n, cond, c, ctx):
    firsts = [e for e in events(n, c, cond.first, ctx) if in_range(e[1], cond.range, ctx.today)]
    thens = events(n, c, cond.then, ctx)
    for t1, d1 in firsts:
        found = any(t2 > t1 and (d2 - d1).days <= cond.within_days for t2, d2 in thens)
        if found != cond.negate:
            return True
    return False


def orders(n, c, ctx) -> list:
    """[(instant, local date, net amount, lines)] of c's orders as of ctx (visible lines)."""
    groups = defaultdict(list)
    for p in n.purchases[c["customer_id"]]:
        if p["purchased_at"] > ctx.as_of:
            continue
        key = ("id", p.get("order_id")) if p.get("order_id") is not None else ("at", p["purchased_at"])
        groups[key].append(p)
    out = []
    for lines in groups.values():
        first = min(lines, key=lambda p: p["purchased_at"])
        out.append((first["purchased_at"], first["local_date"], sum(p["amount"] for p in lines), lines))
    return out


def order_count_of(n, c, f, r, ctx) -> int:
    return sum(1 for _, d, _, lines in orders(n, c, ctx) if in_range(d, r, ctx.today)
               and any(p["amount"] >= 0 and all(p[k] in v for k, v in f.fields) for p in lines))


def average_order_value_of(n, c, r, ctx):
    mine = [net for _, d, net, _ in orders(n, c, ctx) if in_range(d, r, ctx.today)]
    return sum(mine) // len(mine) if mine else None


def check_order_count(n, cond, c, ctx):
    return cmp_test(cond.cmp, order_count_of(n, c, cond.filter, cond.range, ctx))


def check_average_order_value(n, cond, c, ctx):
    return cmp_test(cond.cmp, average_order_value_of(n, c, cond.range, ctx))


LOWEST = float("-inf")


def value_of(n, v: S.Value, c, ctx):
    """A percentile's value; absent (no line, null points) is the lowest."""
    if v.key == "loyalty_points":
        return LOWEST if c["loyalty_points"] is None else c["loyalty_points"]
    if v.key == "order_count":
        return order_count_of(n, c, v.filter, v.range, ctx)
    lines = n.lines(c, v.filter, v.range, ctx)
    if v.key == "spend":
        return sum(p["amount"] for p in lines)
    sales = [p for p in lines if p["amount"] >= 0]
    if v.key == "purchase_count":
        return len(sales)
    return max((p["local_date"].toordinal() for p in sales), default=LOWEST)


def pct_of(n, v: S.Value, among, c, ctx):
    """floor(100 * below / N) of c in the population, None outside it."""
    key = ("pct", v, among, ctx.as_of)
    if key not in n.memo:   # the population's values, once per evaluation
        pop = [x for x in n.active() if among is None or n.matches(among, x, ctx)]
        n.memo[key] = {x["customer_id"]: value_of(n, v, x, ctx) for x in pop}
    values = n.memo[key]
    if c["customer_id"] not in values:
        return None
    mine = values[c["customer_id"]]
    below = sum(1 for x in values.values() if x < mine)
    return 100 * below // len(values)


def check_percentile(n, cond, c, ctx):
    return cmp_test(cond.cmp, pct_of(n, cond.of, cond.among, c, ctx))


def check_rfm(n, cond, c, ctx):
    for key, cmp in (("last_purchase", cond.r), ("purchase_count", cond.f), ("spend", cond.m)):
        pct = pct_of(n, S.Value(key, cond.filter, cond.range), cond.among, c, ctx)
        if pct is None:
            return False
        if cmp is not None and not cmp_test(cmp, 1 + pct // 20):
            return False
    return True


M64 = (1 << 64) - 1


def bucket_of(customer_id: int, salt: str) -> int:
    h = 0xcbf29ce484222325
    for b in salt.encode("utf-8"):
        h = ((h ^ b) * 0x100000001b3) & M64
    x = ((customer_id & M64) ^ h)
    x = (x + 0x9e3779b97f4a7c15) & M64
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M64
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & M64
    return (x ^ (x >> 31)) % 10000


def check_random_bucket(n, cond, c, ctx):
    return cmp_test(cond.cmp, bucket_of(c["customer_id"], cond.salt))


def check_in_segment(n, cond, c, ctx):
    key = ("in_segment", cond.name, ctx.as_of)
    if key not in n.memo:   # the referenced result, once per evaluation
        n.memo[key] = set(n.result(n.saved_segments[cond.name], ctx.as_of))
    return c["customer_id"] in n.memo[key]


def check_in_group(n, cond, c, ctx):
    return c["customer_id"] in n.groups[cond.name]


CHECKS.update({
    S.FirstPurchase: check_first_purchase, S.LastPurchase: check_last_purchase, S.Regularly: check_regularly,
    S.Sequence: check_sequence, S.OrderCount: check_order_count, S.AverageOrderValue: check_average_order_value,
    S.Percentile: check_percentile, S.Rfm: check_rfm, S.RandomBucket: check_random_bucket,
    S.InSegment: check_in_segment, S.InGroup: check_in_group,
})
