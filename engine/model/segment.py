"""The engine's own segment definition: small frozen dataclasses, no protobuf.

A Segment is include / exclude / append conditions plus an optional ranking and limit.
Conditions form a tree (AllOf / AnyOf / Not over leaf conditions). Every class here is
immutable and hashable, so trees can be cached and compared. Parsing from JSON and the
validation that names the failing path live in engine/segment_json.py.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional, Tuple, Union

# ---------------------------------------------------------------- comparisons

CMP_OPS = (">", ">=", "<", "<=", "==", "between")


@dataclass(frozen=True)
class Cmp:
    """A numeric test: `op a`, or `between a and b` (inclusive)."""
    op: str
    a: int
    b: Optional[int] = None

    def bounds(self) -> Tuple[int, int]:
        """The inclusive [lo, hi] integer interval this comparison accepts."""
        lo, hi = -(2**63), 2**63 - 1
        if self.op == ">":
            return (self.a + 1, hi) if self.a < hi else (hi, lo)
        if self.op == ">=":
            return self.a, hi
        if self.op == "<":
            return (lo, self.a - 1) if self.a > lo else (hi, lo)
        if self.op == "<=":
            return lo, self.a
        if self.op == "==":
            return self.a, self.a
        return self.a, self.b  # between

    def test(self, v: int) -> bool:
        """Plain-Python evaluation (used by references, not on hot paths)."""
        lo, hi = self.bounds()
        return lo <= v <= hi


AT_LEAST_ONE = Cmp(">=", 1)

# ---------------------------------------------------------------- time ranges

RANGE_PRESETS = ("today", "yesterday", "last_week", "month_to_date", "previous_month",
                 "year_to_date", "ever")


@dataclass(frozen=True)
class Offset:
    """A shift from today: months first (clamped to month end), then days."""
    months: int = 0
    days: int = 0


DateBound = Union[dt.date, Offset]


@dataclass(frozen=True)
class TimeRange:
    """A closed interval of local calendar dates; resolved against `today` by engine.timerange.

    kind is a preset name, "last_n_days" / "last_n_months" (with n), or "custom"
    (start and end, each an absolute date or an Offset from today).
    """
    kind: str = "ever"
    n: Optional[int] = None
    start: Optional[DateBound] = None
    end: Optional[DateBound] = None


EVER = TimeRange("ever")

# ---------------------------------------------------------------- product filter

PRODUCT_FIELDS = ("department", "metal", "brand", "strain", "inventory_group",
                  "inventory_type", "product", "shop")


@dataclass(frozen=True)
class ProductFilter:
    """Per sale line: for every field given, the line's value is one of that field's values."""
    fields: Tuple[Tuple[str, Tuple[str, ...]], ...] = ()

    def as_dict(self) -> dict:
        return {k: list(v) for k, v in self.fields}


NO_FILTER = ProductFilter()

# ---------------------------------------------------------------- conditions


class Condition:
    """Base of every node of a condition tree."""
    __slots__ = ()


@dataclass(frozen=True)
class All(Condition):
    """Every active customer."""


@dataclass(frozen=True)
class Customers(Condition):
    """An explicit list of merchant customer_ids."""
    ids: Tuple[int, ...]


SEARCH_FIELDS = ("first_name", "last_name", "email", "phone", "address", "city", "postal_code")


@dataclass(frozen=True)
class Search(Condition):
    """Text appears (ignoring case and accents; phone: digits only) in any chosen field."""
    text: str
    fields: Tuple[str, ...] = SEARCH_FIELDS


@dataclass(frozen=True)
class Surname(Condition):
    """last_name equals text, ignoring case and accents."""
    text: str


BIRTHDAY_MODES = ("today", "this_month", "month", "next_days")


@dataclass(frozen=True)
class Birthday(Condition):
    """Month-day of birth_date (which="birth") or anniversary_date (which="anniversary").

    mode: today | this_month | month (with month 1..12) | next_days (with days N: the N
    dates today .. today+N-1). A 29 February date counts on 28 February in non-leap years.
    """
    which: str = "birth"
    mode: str = "today"
    month: Optional[int] = None
    days: Optional[int] = None


@dataclass(frozen=True)
class MarriedToday(Condition):
    """wedding_date equals today (month, day and year)."""


@dataclass(frozen=True)
class Age(Condition):
    """Completed years on today (29 Feb birthdays advance on 28 Feb in non-leap years)."""
    cmp: Cmp


@dataclass(frozen=True)
class Joined(Condition):
    """joined_on within a time range."""
    range: TimeRange


@dataclass(frozen=True)
class LoyaltyMember(Condition):
    """loyalty_member is true."""


@dataclass(frozen=True)
class LoyaltyPoints(Condition):
    """loyalty_points compared (null points never match)."""
    cmp: Cmp


VALUE_FIELDS = ("origin_shop", "gender", "marital_status", "city", "postal_code")


@dataclass(frozen=True)
class InValues(Condition):
    """A profile field (origin_shop, gender, marital_status, city, postal_code) is one of values."""
    field: str
    values: Tuple[str, ...]


@dataclass(frozen=True)
class Tags(Condition):
    """Has any of (mode="any") or all of (mode="all") the tags."""
    tags: Tuple[str, ...]
    mode: str = "any"


REACHABLE_CHANNELS = ("has_email", "has_phone", "email_opt_in", "sms_opt_in")


@dataclass(frozen=True)
class Reachable(Condition):
    """has_email / has_phone (present, non-empty) or email_opt_in / sms_opt_in (true)."""
    channel: str


@dataclass(frozen=True)
class AccountBalance(Condition):
    """account_balance (cents) compared (null never matches)."""
    cmp: Cmp


@dataclass(frozen=True)
class OverdueLayby(Condition):
    """An open layby (opened on or before today) with balance > 0 and due_on before today."""


@dataclass(frozen=True)
class Bought(Condition):
    """At least one matching non-refund line (amount >= 0) in the range."""
    filter: ProductFilter = NO_FILTER
    range: TimeRange = EVER


@dataclass(frozen=True)
class Spend(Condition):
    """Net sum of matching lines' amounts in the range (refunds subtract; none = 0), compared."""
    cmp: Cmp
    filter: ProductFilter = NO_FILTER
    range: TimeRange = EVER


@dataclass(frozen=True)
class PurchaseCount(Condition):
    """Number of matching non-refund lines in the range, compared."""
    cmp: Cmp
    filter: ProductFilter = NO_FILTER
    range: TimeRange = EVER


@dataclass(frozen=True)
class Visited(Condition):
    """Number of completed visits (optionally at shops) in the range, compared (default >= 1)."""
    cmp: Cmp = AT_LEAST_ONE
    shops: Tuple[str, ...] = ()
    range: TimeRange = EVER


@dataclass(frozen=True)
class UpcomingAppointment(Condition):
    """A booked visit (optionally at shops) starting after the as-of instant."""
    shops: Tuple[str, ...] = ()


# ---------------------------------------------------------------- behaviour (shared/spec behaviour.md)

EVENT_KINDS = ("bought", "visited")


@dataclass(frozen=True)
class Event:
    """A non-refund purchase line matching filter (kind "bought", dated by its local date),
    or a completed visit at one of shops (kind "visited"; no shops = any)."""
    kind: str = "bought"
    filter: ProductFilter = NO_FILTER
    shops: Tuple[str, ...] = ()


BOUGHT = Event()


@dataclass(frozen=True)
class FirstPurchase(Condition):
    """The earliest matching non-refund line (as of the instant) is dated within the range."""
    filter: ProductFilter = NO_FILTER
    range: TimeRange = EVER


@dataclass(frozen=True)
class LastPurchase(Condition):
    """The latest matching non-refund line (as of the instant) is dated within the range."""
    filter: ProductFilter = NO_FILTER
    range: TimeRange = EVER


PERIODS = ("week", "month")
MAX_PERIODS = 520


@dataclass(frozen=True)
class Regularly(Condition):
    """In at least min_periods of the `periods` consecutive calendar periods (weeks Monday to
    Sunday, or months) ending with today's, at least min_per_period events each."""
    event: Event
    period: str
    periods: int
    min_periods: int
    min_per_period: int = 1


@dataclass(frozen=True)
class Sequence(Condition):
    """An event `first` dated within range, then (negate=False) an event `then` with a later
    instant at most within_days days later, or (negate=True) no such event."""
    first: Event
    then: Event
    within_days: int
    negate: bool = False
    range: TimeRange = EVER


@dataclass(frozen=True)
class OrderCount(Condition):
    """Number of orders with instant in the range holding a matching non-refund line, compared."""
    cmp: Cmp
    filter: ProductFilter = NO_FILTER
    range: TimeRange = EVER


@dataclass(frozen=True)
class AverageOrderValue(Condition):
    """floor(sum of net order amounts / number of orders) over orders with instant in the range,
    compared; no order never matches."""
    cmp: Cmp
    range: TimeRange = EVER


VALUE_KEYS = ("spend", "purchase_count", "order_count", "last_purchase", "loyalty_points")


@dataclass(frozen=True)
class Value:
    """A per-customer value a percentile ranks: spend, purchase_count, order_count or
    last_purchase over filter and range, or loyalty_points."""
    key: str
    filter: ProductFilter = NO_FILTER
    range: TimeRange = EVER


@dataclass(frozen=True)
class Percentile(Condition):
    """floor(100 * below / N) over the population (active customers matching among, default
    all), compared; customers outside the population never match."""
    of: Value
    cmp: Cmp
    among: Optional[Condition] = None


@dataclass(frozen=True)
class Rfm(Condition):
    """Scores 1 + floor(pct / 20) of recency, frequency and monetary over filter and range in
    the population; every given comparison (r, f, m) holds."""
    filter: ProductFilter = NO_FILTER
    range: TimeRange = EVER
    among: Optional[Condition] = None
    r: Optional[Cmp] = None
    f: Optional[Cmp] = None
    m: Optional[Cmp] = None


@dataclass(frozen=True)
class RandomBucket(Condition):
    """splitmix64(customer_id XOR fnv1a64(salt)) mod 10000, compared."""
    salt: str
    cmp: Cmp


@dataclass(frozen=True)
class InSegment(Condition):
    """The whole result of saved segment `name`, evaluated as of the same instant."""
    name: str


@dataclass(frozen=True)
class InGroup(Condition):
    """The frozen members of customer group `name` that are still active."""
    name: str


@dataclass(frozen=True)
class AllOf(Condition):
    """AND of the children (at least one)."""
    children: Tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf(Condition):
    """OR of the children (at least one)."""
    children: Tuple[Condition, ...]


@dataclass(frozen=True)
class Not(Condition):
    """Active customers not matching the child."""
    child: Condition


# ---------------------------------------------------------------- segment

ORDER_KEYS = ("spend", "purchase_count", "loyalty_points", "last_purchase", "order_count", "average_order_value")


@dataclass(frozen=True)
class OrderBy:
    """Ranking key. spend / purchase_count / last_purchase take a filter and range;
    last_purchase is the local date of the latest matching non-refund line; order_count
    (filter and range) and average_order_value (range) as the conditions. Customers
    without a value (no purchase for last_purchase, null points, no order for
    average_order_value) rank last either way."""
    key: str
    filter: ProductFilter = NO_FILTER
    range: TimeRange = EVER
    descending: bool = True


@dataclass(frozen=True)
class Segment:
    """Result = top `limit` of (include - exclude) by ranking (ties: ascending customer_id),
    then union (each append - exclude). Inactive and deleted customers never appear."""
    include: Condition
    exclude: Optional[Condition] = None
    append: Tuple[Condition, ...] = ()
    order_by: Optional[OrderBy] = None
    limit: Optional[int] = None


def walk(cond: Condition):
    """Yield every node of a condition tree, parents before children."""
    yield cond
    if isinstance(cond, (AllOf, AnyOf)):
        for c in cond.children:
            yield from walk(c)
    elif isinstance(cond, Not):
        yield from walk(cond.child)
    elif isinstance(cond, (Percentile, Rfm)) and cond.among is not None:
        yield from walk(cond.among)


def segment_conditions(seg: Segment):
    """Yield every top-level condition of a segment (include, exclude, appends)."""
    yield seg.include
    if seg.exclude is not None:
        yield seg.exclude
    yield from seg.append
