"""The registry of condition kinds: every JSON name, its class, and what it reads.

This is the one list every concern is checked against (tests/test_kinds.py): the JSON
parser and dumper (segment_json), the proto codec (server/codec.py), evaluation
(evaluation/evaluate.py LEAVES), docs/segments.md, and both oracles (tests/naive.py,
bench/duck.py). A kind that reads lines (`reads` names a line table) must also be checked
over live appended lines (tests/test_live_oracle.py). docs/architecture.md, "Adding a
condition", is the checklist.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import segment as S

PROFILE, PURCHASES, VISITS, LAYBYS, TREE, CATALOG = "profile", "purchases", "visits", "laybys", "tree", "catalog"
LINE_TABLES = (PURCHASES, VISITS, LAYBYS)


@dataclass(frozen=True)
class Kind:
    """One JSON condition name: its dataclass and the tables it reads."""
    name: str
    cls: type
    reads: tuple = (PROFILE,)
    per_customer: bool = True   # membership follows the customer's own rows alone (False:
    # it compares customers with each other or reads another segment); tracked segments'
    # maintenance re-evaluates only touched customers, a cluster partition answers alone

    @property
    def reads_lines(self) -> bool:
        return any(t in LINE_TABLES for t in self.reads)


def _k(name, cls, *reads, per_customer=True):
    return Kind(name, cls, tuple(reads) or (PROFILE,), per_customer)


KINDS = (
    _k("all", S.All),
    _k("customers", S.Customers),
    _k("search", S.Search),
    _k("surname", S.Surname),
    _k("birthday", S.Birthday),
    _k("anniversary", S.Birthday),
    _k("married_today", S.MarriedToday),
    _k("age", S.Age),
    _k("joined", S.Joined),
    _k("loyalty_member", S.LoyaltyMember),
    _k("loyalty_points", S.LoyaltyPoints),
    *(_k(f, S.InValues) for f in S.VALUE_FIELDS),
    _k("tags", S.Tags),
    _k("reachable", S.Reachable),
    _k("account_balance", S.AccountBalance),
    _k("overdue_layby", S.OverdueLayby, LAYBYS),
    _k("bought", S.Bought, PURCHASES),
    _k("spend", S.Spend, PURCHASES),
    _k("purchase_count", S.PurchaseCount, PURCHASES),
    _k("visited", S.Visited, VISITS),
    _k("upcoming_appointment", S.UpcomingAppointment, VISITS),
    _k("first_purchase", S.FirstPurchase, PURCHASES),
    _k("last_purchase", S.LastPurchase, PURCHASES),
    _k("regularly", S.Regularly, PURCHASES, VISITS),
    _k("sequence", S.Sequence, PURCHASES, VISITS),
    _k("order_count", S.OrderCount, PURCHASES),
    _k("average_order_value", S.AverageOrderValue, PURCHASES),
    _k("percentile", S.Percentile, PURCHASES, TREE, per_customer=False),
    _k("rfm", S.Rfm, PURCHASES, TREE, per_customer=False),
    _k("random_bucket", S.RandomBucket),
    _k("in_segment", S.InSegment, CATALOG, per_customer=False),
    _k("in_group", S.InGroup, CATALOG),
    _k("all_of", S.AllOf, TREE),
    _k("any_of", S.AnyOf, TREE),
    _k("not", S.Not, TREE),
)

BY_NAME = {k.name: k for k in KINDS}
CLASSES = tuple(dict.fromkeys(k.cls for k in KINDS))


def names_of(cls: type) -> tuple:
    """The JSON names of a condition class (InValues and Birthday have several)."""
    return tuple(k.name for k in KINDS if k.cls is cls)


def kind_name(c: S.Condition) -> str:
    """The JSON name of a condition instance."""
    t = type(c)
    if t is S.InValues:
        return c.field
    if t is S.Birthday:
        return "birthday" if c.which == "birth" else "anniversary"
    names = names_of(t)
    if len(names) != 1:
        raise TypeError(f"not a condition: {c!r}")
    return names[0]
