"""Per-chunk builders of the generated tables: vectorised numpy draws turned into Arrow tables.

A chunk is a slice of customers. `customers_chunk` draws their profiles and a hidden
`Activity` (how much each one buys and visits, and when); the other builders expand that
into purchase lines, visits and laybys. Each builder takes its own Generator, so a table's
rows depend only on (seed, chunk, table). Rows come out shuffled, never sorted by customer.
Used only by bench/generate/__init__.py.
"""
from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import vocab as V
from .shapes import NO_ACTIVITY_SHARE, SHAPES, vocab
from segments.engine.model.schema import TABLES

ARROW_TYPES = {
    "int64": pa.int64(), "int32": pa.int32(), "string": pa.string(), "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"), "bool": pa.bool_(),
    "list<string>": pa.list_(pa.string()),
}
DAY_US = 86_400 * 1_000_000
YEAR = 365.2425
DISPENSARY_SKU_SHARE = 0.2

# Per-customer activity mix. Calibrated so lines average ~20 and visits ~5 per customer.
NO_ACTIVITY = NO_ACTIVITY_SHARE   # neither purchases nor visits (0.135)
PURCHASER = 0.965            # of the others
VISITOR = 0.62               # of the others
REGULAR = 0.10               # of visitors: many completed visits
CHURNED = 0.28               # activity stops at a random day before the anchor
PURCHASES_MU, PURCHASES_SIGMA, PURCHASES_MAX = 2.75, 1.15, 5000
VISITS_MU, VISITS_SIGMA = 1.72, 0.8
BOOKED = 0.115               # of active customers: 1-2 visits booked in the next 90 days
LAYBY = 0.055                # of purchasers: 1-2 laybys
REFUND = 0.03                # of purchase lines


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema the generator writes for `table` (engine/model/schema.py's logical types)."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in TABLES[table]])


def _days_of(y, m, d) -> np.ndarray:
    """Day numbers (since 1970-01-01) of year/month/day arrays."""
    months = (np.asarray(y, np.int64) - 1970) * 12 + np.asarray(m, np.int64) - 1
    return (months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
            + np.asarray(d, np.int64) - 1)


def _month_of(days: np.ndarray) -> np.ndarray:
    """Calendar month 1..12 of day numbers."""
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12 + 1


def _year_of(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


class InverseCdf:
    """Draws bin indices from weights by inverse CDF; a guide table makes each draw O(1)
    (np.searchsorted on random keys is cache-bound and ~10x slower at millions of rows)."""

    def __init__(self, weights: np.ndarray):
        cdf = np.concatenate([[0.0], np.cumsum(np.asarray(weights, np.float64))])
        self.cdf = cdf / cdf[-1]                 # cdf[i] <= u < cdf[i+1] picks bin i
        k = 4 * len(weights)
        self.guide = np.searchsorted(self.cdf, np.arange(k) / k, side="right") - 1
        self.bins = len(weights)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        """The bin of each u in [0, 1)."""
        i = self.guide[(u * len(self.guide)).astype(np.int64)]
        i = np.minimum(i, self.bins - 1)
        todo = np.nonzero(self.cdf[i + 1] <= u)[0]
        while todo.size:                         # a few rows step over tiny bins
            i[todo] += 1
            todo = todo[(i[todo] < self.bins - 1) & (self.cdf[i[todo] + 1] <= u[todo])]
        return i


@dataclass(frozen=True)
class Calendar:
    """The activity window: day numbers start_day..anchor_day and their sales weights."""
    anchor: dt.date
    anchor_day: int
    start_day: int
    days: InverseCdf         # window index (day - start_day) by sales weight

    @property
    def length(self) -> int:
        return self.anchor_day - self.start_day + 1


def make_calendar(anchor: dt.date, years: int = 3) -> Calendar:
    """`years` years up to the anchor day; December weighs ~2.6x, November and Saturdays more."""
    anchor_day = (anchor - dt.date(1970, 1, 1)).days
    y, m = anchor.year - years, anchor.month
    start_day = int(_days_of(y, m, 1)) + min(anchor.day, _month_len(y, m)) - 1
    days = np.arange(start_day, anchor_day + 1)
    month_weight = np.array([0, 0.85, 1.05, 0.9, 0.95, 1.1, 0.9, 0.85, 0.9, 0.95, 1.0, 1.4, 2.6])
    w = month_weight[_month_of(days)]
    w = w * np.where((days + 3) % 7 == 5, 1.3, 1.0)                 # Saturdays
    w = w * (1.0 + 0.15 * (days - start_day) / len(days))             # slow growth
    return Calendar(anchor, anchor_day, start_day, InverseCdf(w))


def _month_len(y: int, m: int) -> int:
    return int(_days_of(y + m // 12, m % 12 + 1, 1) - _days_of(y, m, 1))


def _window_days(rng, cal: Calendar, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One weighted day (window index) per row, inside each row's [lo, hi]."""
    cdf = cal.days.cdf
    a, b = cdf[lo], cdf[hi + 1]
    return np.minimum(np.maximum(cal.days(a + rng.random(len(lo)) * (b - a)), lo), hi)


def _pick(rng, n: int, weights) -> np.ndarray:
    """Indices drawn by weight; an index equal to len(weights) (the leftover share) means null."""
    w = np.asarray(weights, np.float64)
    cdf = np.cumsum(w / max(1.0, w.sum()))
    if w.sum() >= 1.0 - 1e-9:
        cdf[-1] = 1.0                      # no leftover share: never null
    return np.searchsorted(cdf, rng.random(n), side="right")


def _take(values, idx: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """String column values[idx], null where `null` (or where idx is past the values)."""
    vocab = values if isinstance(values, pa.Array) else pa.array(list(values), pa.string())
    mask = idx >= len(vocab) if null is None else (null | (idx >= len(vocab)))
    return pc.take(vocab, pa.array(np.minimum(idx, len(vocab) - 1).astype(np.int32), mask=mask))


def _force(rng, n: int, share: float, minimum: int) -> np.ndarray:
    """A few distinct row indices: about share*n, at least `minimum` (when n allows)."""
    k = min(n, max(minimum, int(round(share * n))))
    return rng.choice(n, k, replace=False)


def _ascii(name: str) -> str:
    """Lower-case ASCII of a name for e-mail addresses (José -> jose, Łukasz -> lukasz)."""
    special = {"ł": "l", "ø": "o", "æ": "ae", "ß": "ss", "陽子": "yoko", "田中": "tanaka"}
    s = name.lower()
    for k, v in special.items():
        s = s.replace(k, v)
    s = "".join(ch for ch in unicodedata.normalize("NFKD", s) if not unicodedata.combining(ch))
    return "".join(ch for ch in s if ch.isascii() and ch.isalnum())


_FIRST = [n for n, _ in V.FIRST_NAMES]
_LAST = [n for n, _ in V.LAST_NAMES]
# Last-name variants: as written, UPPER CASE (1%), decomposed accents NFD (0.5%).
_LAST_VARIANTS = _LAST + [n.upper() for n in _LAST] + [unicodedata.normalize("NFD", n) for n in _LAST]


@dataclass
class Activity:
    """What a chunk's customers do, in row order of the chunk's customers table."""
    ids: np.ndarray          # int64 customer_id
    home: np.ndarray         # shop index
    lo: np.ndarray           # first window index of activity
    hi: np.ndarray           # last window index of activity
    kind: np.ndarray         # 0 jewellery, 1 dispensary, 2 both, 3 bead/charm collector
    n_purchases: np.ndarray
    n_visits: np.ndarray     # past visits
    n_booked: np.ndarray     # future booked visits
    n_laybys: np.ndarray


def customers_chunk(rng, ids: np.ndarray, cal: Calendar, shape=None) -> tuple[pa.Table, Activity]:
    """The customers table of one chunk (rows in the order of `ids`) and their activity;
    shops, the inactive share and the activity mix from `shape` (bench/generate/shapes.py,
    the default shape when None)."""
    shape = shape or SHAPES["default"]
    voc = vocab(shape)
    n = len(ids)
    a = cal.anchor_day
    cols: dict[str, pa.Array] = {"customer_id": pa.array(ids, pa.int64())}

    first = _pick(rng, n, [w for _, w in V.FIRST_NAMES])
    last = _pick(rng, n, [w for _, w in V.LAST_NAMES])
    variant = np.searchsorted([0.985, 0.995], rng.random(n), side="right")
    cols["first_name"] = _take(_FIRST, first, rng.random(n) < 0.015)
    cols["last_name"] = _take(_LAST_VARIANTS, last + variant * len(_LAST), rng.random(n) < 0.015)
    cols["email"] = _emails(rng, first, last, rng.random(n) < 0.12)
    cols["phone"] = _phones(rng, n, rng.random(n) < 0.15)
    number = pc.cast(pa.array(rng.integers(1, 2000, n)), pa.string())
    street = _take(V.STREETS, rng.integers(0, len(V.STREETS), n))
    cols["address"] = pc.if_else(pa.array(rng.random(n) < 0.05), None,
                                 pc.binary_join_element_wise(number, street, " "))
    place = rng.integers(0, len(V.PLACES), n)
    cols["city"] = _take([c for c, _ in V.PLACES], place, rng.random(n) < 0.04)
    cols["postal_code"] = _take([p for _, p in V.PLACES], place, rng.random(n) < 0.06)
    cols["gender"] = _take(V.GENDERS, _pick(rng, n, V.GENDER_WEIGHTS))
    marital = _pick(rng, n, V.MARITAL_WEIGHTS)
    cols["marital_status"] = _take(V.MARITAL, marital)

    birth, wedding, anniversary = _family_dates(rng, n, cal, marital)
    for name, (days, null) in (("birth_date", birth), ("anniversary_date", anniversary),
                               ("wedding_date", wedding)):
        cols[name] = pa.array(days.astype(np.int32), pa.date32(), mask=null)

    # joined_on: 55% before the window, the rest inside it; a few today; 3% unknown.
    old = rng.random(n) < 0.55
    joined_lo = min(int(_days_of(2010, 1, 1)), cal.start_day - 365)
    joined = np.where(old, rng.integers(joined_lo, cal.start_day, n),
                      rng.integers(cal.start_day, a + 1, n))
    joined[_force(rng, n, 0.0005, 1)] = a
    joined_null = rng.random(n) < 0.03
    cols["joined_on"] = pa.array(joined.astype(np.int32), pa.date32(), mask=joined_null)

    member = rng.random(n) < 0.58
    cols["loyalty_member"] = pa.array(member, mask=rng.random(n) < 0.02)
    points = np.where(member, np.minimum((rng.pareto(1.3, n) * 400).astype(np.int64), 10**7), 0)
    cols["loyalty_points"] = pa.array(points, pa.int64(), mask=rng.random(n) < 0.04)
    home = _pick(rng, n, voc.shop_weights)
    cols["origin_shop"] = _take(voc.shops, home, rng.random(n) < 0.03)
    cols["tags"] = _tags(rng, n)
    has_email = cols["email"].is_valid().to_numpy(zero_copy_only=False)
    has_phone = cols["phone"].is_valid().to_numpy(zero_copy_only=False)
    cols["email_opt_in"] = pa.array(has_email & (rng.random(n) < 0.62), mask=rng.random(n) < 0.03)
    cols["sms_opt_in"] = pa.array(has_phone & (rng.random(n) < 0.40), mask=rng.random(n) < 0.03)
    balance = np.where(rng.random(n) < 0.10, rng.lognormal(np.log(15_000), 1.2, n), 0).astype(np.int64)
    cols["account_balance"] = pa.array(balance, pa.int64(), mask=rng.random(n) < 0.05)
    cols["active"] = pa.array(rng.random(n) >= shape.inactive, mask=rng.random(n) < 0.005)

    table = pa.Table.from_arrays([cols[f.name] for f in arrow_schema("customers")],
                                 schema=arrow_schema("customers"))
    return table, _activity(rng, ids, home, np.where(joined_null, cal.start_day, joined), cal, shape)


def _family_dates(rng, n: int, cal: Calendar, marital: np.ndarray):
    """(days, null) pairs for birth, wedding and anniversary dates, with forced edge cases:
    29 February birthdays, birthdays / weddings / anniversaries on the anchor's month-day,
    weddings on the anchor date itself. Weddings come 20+ years after birth, never later
    than the anchor."""
    a, anchor = cal.anchor_day, cal.anchor
    birth = rng.integers(int(a - 90 * YEAR), int(a - 18 * YEAR), n)
    birth_null = rng.random(n) < 0.10
    years = np.arange(anchor.year - 89, anchor.year - 18)
    leap = years[(years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0))]
    feb29 = _force(rng, n, 0.007, 3)
    birth[feb29] = _days_of(rng.choice(leap, len(feb29)), 2, 29)
    today = _force(rng, n, 0.003, 2)                      # birthday today, any age 18..89
    birth[today] = _anchor_day_in(rng, np.full(len(today), anchor.year - 89), anchor.year - 18, anchor)
    birth_null[np.concatenate([feb29, today])] = False
    birth_year = np.where(birth_null, anchor.year - 70, _year_of(birth))

    wed_lo = np.minimum(np.where(birth_null, a - 50 * YEAR, birth + 20 * YEAR), a).astype(np.int64)
    wedding = wed_lo + (rng.random(n) * (a - wed_lo + 1)).astype(np.int64)
    married_ever = (marital == 1) | (((marital == 2) | (marital == 3)) & (rng.random(n) < 0.5))
    wedding_null = ~(married_ever & (rng.random(n) < 0.7)) | (wed_lo >= a)   # too young
    on_day = _force(rng, n, 0.004, 3)                     # wedding anniversary today
    wedding[on_day] = _anchor_day_in(rng, birth_year[on_day] + 20, anchor.year - 1, anchor)
    exact = _force(rng, n, 0.0005, 2)                     # married today
    wedding[exact] = a
    wedding_null[np.concatenate([on_day, exact])] = False

    ann_lo = np.minimum(np.maximum(np.where(birth_null, 0, birth + 16 * YEAR), a - 40 * YEAR), a)
    some_day = (ann_lo + rng.random(n) * (a - ann_lo + 1)).astype(np.int64)
    anniversary = np.where(~wedding_null & (rng.random(n) < 0.5), wedding, some_day)
    anniversary_null = np.where(wedding_null, rng.random(n) >= 0.15, rng.random(n) >= 0.7)
    ann_today = _force(rng, n, 0.003, 2)
    anniversary[ann_today] = _anchor_day_in(rng, birth_year[ann_today] + 18, anchor.year - 1, anchor)
    anniversary_null[ann_today] = False
    return (birth, birth_null), (wedding, wedding_null), (anniversary, anniversary_null)


def _anchor_day_in(rng, lo_year: np.ndarray, hi_year: int, anchor: dt.date) -> np.ndarray:
    """Day numbers on the anchor's month-day in a year drawn from [lo_year, hi_year]
    (lo_year capped at hi_year); a 29 February anchor gets leap years."""
    lo = np.minimum(lo_year, hi_year)
    year = lo + (rng.random(len(lo)) * (hi_year - lo + 1)).astype(np.int64)
    if (anchor.month, anchor.day) == (2, 29):
        year = year - year % 4
    return _days_of(year, anchor.month, anchor.day)


def _emails(rng, first: np.ndarray, last: np.ndarray, null: np.ndarray) -> pa.Array:
    n = len(first)
    lower_first = [_ascii(x) for x in _FIRST]
    lower_last = [_ascii(x) for x in _LAST]
    cap = rng.random(n) < 0.04                          # John.Smith@..., mixed case
    f = _take(lower_first + [x.capitalize() for x in lower_first], first + cap * len(_FIRST))
    l = _take(lower_last + [x.capitalize() for x in lower_last], last + cap * len(_LAST))
    sep = _take((".", "_", ""), _pick(rng, n, (0.6, 0.2, 0.2)))
    digits = np.where(rng.random(n) < 0.5, rng.integers(10, 100, n), rng.integers(1950, 2010, n))
    suffix = pc.if_else(pa.array(rng.random(n) < 0.6), "", pc.cast(pa.array(digits), pa.string()))
    domain = _take(V.EMAIL_DOMAINS, rng.integers(0, len(V.EMAIL_DOMAINS), n))
    local = pc.binary_join_element_wise(f, sep, l, suffix, "")
    return pc.if_else(pa.array(null), None, pc.binary_join_element_wise(local, domain, "@"))


def _phones(rng, n: int, null: np.ndarray) -> pa.Array:
    """Phones in mixed formats: +1 (212) 555-0142, 212.555.0199, +41 44 555 01 42, ..."""
    def digits(lo, hi, width):
        return pc.utf8_lpad(pc.cast(pa.array(rng.integers(lo, hi, n)), pa.string()), width, "0")

    area, line, two = digits(201, 990, 3), digits(100, 200, 4), digits(0, 100, 2)
    j = pc.binary_join_element_wise
    formats = [
        j("+1 (", area, ") 555-", line, ""), j(area, "555", line, "."),
        j("(", area, ") 555-", line, ""), j(area, "555", line, "-"),
        j("+1", area, "555", line, ""), j("+41 44 555 01 ", two, ""),
        j("+44 20 7946 0", pc.utf8_slice_codeunits(line, 1), ""),
    ]
    fmt = _pick(rng, n, (0.25, 0.2, 0.15, 0.15, 0.1, 0.1, 0.05))
    return pc.if_else(pa.array(null), None, pc.choose(pa.array(fmt.astype(np.int8)), *formats))


def _tags(rng, n: int) -> pa.Array:
    """list<string> of distinct tags; most customers have none, written as null (never an
    empty list, which CSV could not tell from null)."""
    has = np.stack([rng.random(n) < p for _, p in V.TAGS], axis=1)    # (n, tags)
    names = pa.array([t for t, _ in V.TAGS], pa.string())
    values = pc.take(names, pa.array(np.nonzero(has)[1].astype(np.int32)))
    offsets = np.concatenate([[0], np.cumsum(has.sum(axis=1))]).astype(np.int32)
    null = ~has.any(axis=1)
    return pa.ListArray.from_arrays(pa.array(offsets), values, pa.list_(pa.string()),
                                    mask=pa.array(null))


def _purchase_mix(shape) -> tuple:
    """(share of the active who buy, lognormal mu of lines per buyer) for a shape: today's
    constants for today's mix, else the share giving shape.no_purchases and a mu scaled so
    the mean lines per customer (all customers) is about shape.lines_per_customer."""
    buyer, mu = PURCHASER, PURCHASES_MU
    if shape.no_purchases is not None:
        buyer = min(1.0, (1.0 - shape.no_purchases) / (1.0 - NO_ACTIVITY))
    if shape.no_purchases is not None or shape.lines_per_customer != 20.0:
        mu = PURCHASES_MU + np.log(shape.lines_per_customer / 20.0) + np.log(PURCHASER / buyer)
    return buyer, mu


def _activity(rng, ids, home, joined, cal: Calendar, shape=None) -> Activity:
    """Activity counts and windows; about 13.5% of customers do nothing at all."""
    buyer, mu = _purchase_mix(shape or SHAPES["default"])
    n, days = len(ids), cal.length
    lo = np.clip(joined - cal.start_day - rng.integers(0, 60, n), 0, days - 1)
    churned = rng.random(n) < CHURNED
    hi = np.where(churned, lo + (rng.random(n) * (days - lo)).astype(np.int64), days - 1)
    span = np.sqrt(np.clip((hi - lo + 1) / days, 0.05, 1.0))

    active = rng.random(n) >= NO_ACTIVITY
    buys = active & (rng.random(n) < buyer)
    visits = active & ((rng.random(n) < VISITOR) | ~buys)
    regular = visits & (rng.random(n) < REGULAR)
    n_p = np.where(buys, 1 + rng.lognormal(mu, PURCHASES_SIGMA, n) * span, 0)
    n_v = np.where(visits, 1 + rng.lognormal(VISITS_MU, VISITS_SIGMA, n) * span, 0)
    n_v = np.where(regular, 12 + rng.lognormal(np.log(20), 0.5, n) * span, n_v)
    hi = np.where(regular & (rng.random(n) < 0.7), days - 1, hi)     # most regulars still come
    booked = np.where(active & (rng.random(n) < BOOKED), 1 + (rng.random(n) < 0.2), 0)
    laybys = np.where(buys & (rng.random(n) < LAYBY), 1 + (rng.random(n) < 0.25), 0)
    kind = _pick(rng, n, (0.62, 0.12, 0.08, 0.18))
    return Activity(ids, home, lo, hi, kind, np.minimum(n_p, PURCHASES_MAX).astype(np.int64),
                    n_v.astype(np.int64), booked, laybys)
