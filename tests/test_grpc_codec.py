"""server.codec: typed messages <-> engine segments, and validation naming field paths."""
from __future__ import annotations

import datetime as dt

import pytest

from segments.engine.model import segment as S
from segments.engine.model import segment_json
from segments.engine.errors import InvalidArgument
from segments.proto import segments_pb2 as pb
from segments.server import codec

F_DIAMOND = S.ProductFilter((("department", ("diamond",)),))
F_GOLD_CHARM = S.ProductFilter((("department", ("charms",)), ("metal", ("gold",))))

EVERY_KIND = [
    S.All(), S.Customers((5, 1, -3)), S.Search("smith", ("last_name", "email")), S.Surname("Müller"),
    S.Birthday("birth", "today"), S.Birthday("birth", "month", month=12),
    S.Birthday("anniversary", "next_days", days=7), S.Birthday("anniversary", "this_month"),
    S.MarriedToday(), S.Age(S.Cmp("between", 30, 59)), S.Joined(S.TimeRange("year_to_date")),
    S.LoyaltyMember(), S.LoyaltyPoints(S.Cmp(">", 100)),
    *[S.InValues(f, ("a", "b")) for f in S.VALUE_FIELDS],
    S.Tags(("VIP",), "any"), S.Tags(("VIP", "staff"), "all"),
    *[S.Reachable(ch) for ch in S.REACHABLE_CHANNELS],
    S.AccountBalance(S.Cmp(">", 0)), S.OverdueLayby(),
    S.Bought(F_GOLD_CHARM, S.TimeRange("last_n_months", n=6)), S.Bought(),
    S.Spend(S.Cmp("between", 50000, 100000), F_DIAMOND, S.TimeRange("ever")),
    S.Spend(S.Cmp(">=", 20000), range=S.TimeRange("custom", start=dt.date(2025, 12, 1), end=dt.date(2025, 12, 31))),
    S.PurchaseCount(S.Cmp("==", 2), range=S.TimeRange("custom", start=S.Offset(-12, 0), end=S.Offset(-6, -1))),
    S.Visited(), S.Visited(S.Cmp("<", 3), ("Mall",), S.TimeRange("last_n_days", n=30)),
    S.UpcomingAppointment(), S.UpcomingAppointment(("Airport",)),
    S.Not(S.All()), S.AllOf((S.All(), S.AnyOf((S.LoyaltyMember(), S.MarriedToday())))),
    *[S.Joined(S.TimeRange(p)) for p in S.RANGE_PRESETS],
]


@pytest.mark.parametrize("cond", EVERY_KIND, ids=lambda c: type(c).__name__)
def test_every_condition_round_trips_through_the_typed_message(cond):
    seg = S.Segment(cond)
    assert codec.decode_segment(codec.encode_segment(seg)) == seg


@pytest.mark.parametrize("cond", EVERY_KIND, ids=lambda c: type(c).__name__)
def test_every_condition_round_trips_through_json_text(cond):
    """Saved segments are stored, and the client sends definitions, as segment_json.dumps text."""
    seg = S.Segment(cond)
    assert segment_json.loads(segment_json.dumps(seg)) == seg


@pytest.mark.parametrize("order_by", [
    S.OrderBy("spend", F_DIAMOND, S.TimeRange("last_n_months", n=6)),
    S.OrderBy("purchase_count", descending=False), S.OrderBy("loyalty_points"), S.OrderBy("last_purchase")])
def test_whole_segments_round_trip(order_by):
    seg = S.Segment(S.LoyaltyMember(), exclude=S.MarriedToday(), append=(S.Customers((7,)), S.All()),
                    order_by=order_by, limit=50)
    assert codec.decode_segment(codec.encode_segment(seg)) == seg


def _typed(include=None, **kw) -> pb.Segment:
    return pb.Segment(include=include, **kw)


@pytest.mark.parametrize("msg, path", [
    (pb.Segment(), "include"),
    (_typed(pb.Condition()), "include"),
    (_typed(pb.Condition(any_of=pb.Conditions())), "include.any_of"),
    (_typed(pb.Condition(all=pb.Flag()), limit=0), "limit"),
    (_typed(pb.Condition(all=pb.Flag()), limit=-5), "limit"),
    (_typed(pb.Condition(age=pb.Cmp(between=pb.Between(low=60, high=30)))), "include.age.between"),
    (_typed(pb.Condition(age=pb.Cmp())), "include.age"),
    (_typed(pb.Condition(bought=pb.Bought(range=pb.TimeRange(custom=pb.CustomRange(
        start=pb.DateBound(date="2026-02-01"), end=pb.DateBound(date="2026-01-01")))))), "include.bought.range"),
    (_typed(pb.Condition(joined=pb.Joined(range=pb.TimeRange(custom=pb.CustomRange(
        start=pb.DateBound(date="2026-13-01")))))), "include.joined.range.custom.start"),
    (_typed(pb.Condition(spend=pb.LineAggregate())), "include.spend.cmp"),
    (_typed(pb.Condition(visited=pb.Visited(range=pb.TimeRange(last_n_days=0)))), "include.visited.range.last_n_days"),
    (_typed(pb.Condition(search=pb.Search(text="x", fields=["shoe_size"]))), "include.search.fields[0]"),
    (_typed(pb.Condition(search=pb.Search(text=" "))), "include.search.text"),
    (_typed(pb.Condition(reachable=pb.REACHABLE_CHANNEL_UNSPECIFIED)), "include.reachable"),
    (_typed(pb.Condition(birthday=pb.Birthday(mode=pb.BIRTHDAY_MODE_MONTH, month=13))), "include.birthday.month"),
    (_typed(pb.Condition(birthday=pb.Birthday())), "include.birthday.mode"),
    (_typed(pb.Condition(tags=pb.Tags())), "include.tags"),
    (_typed(pb.Condition(city=pb.Values())), "include.city.values"),
    (_typed(pb.Condition(all=pb.Flag()), order_by=pb.OrderBy()), "order_by.key"),
    (_typed(pb.Condition(all=pb.Flag()), append=[pb.Condition(), ]), "append[0]"),
    (_typed(pb.Condition(all_of=pb.Conditions(conditions=[pb.Condition(all=pb.Flag()), pb.Condition(
        any_of=pb.Conditions())]))), "include.all_of[1].any_of"),
    (_typed(pb.Condition(customers=pb.CustomerIds(ids=range(segment_json.MAX_CUSTOMER_IDS + 1)))),
     "include.customers.ids"),
])
def test_malformed_typed_segments_name_the_field_path(msg, path):
    with pytest.raises(InvalidArgument) as e:
        codec.decode_segment(msg)
    assert e.value.path == path


def test_a_tree_nested_past_the_limit_is_refused():
    c = pb.Condition(all=pb.Flag())
    for _ in range(segment_json.MAX_DEPTH + 2):
        c = pb.Condition(**{"not": c})
    with pytest.raises(InvalidArgument) as e:
        codec.decode_segment(pb.Segment(include=c))
    assert e.value.path.startswith("include.not.not") and "deeper" in e.value.message


def test_json_text_errors_and_absurd_nesting_are_invalid_arguments():
    with pytest.raises(InvalidArgument) as e:
        codec.decode_segment_json('{"include": {"any_of": []}}')
    assert e.value.path == "include.any_of"
    with pytest.raises(InvalidArgument):
        codec.decode_segment_json("[" * 100_000)
    with pytest.raises(InvalidArgument):
        codec.decode_segment_json("{not json")


@pytest.mark.parametrize("v", [None, "x", 5, -(2**63), True, False, 1.5, dt.date(2000, 2, 29), ["a", "b"], []])
def test_profile_values_round_trip(v):
    assert codec.decode_value(codec.encode_value(v)) == v


def test_as_of_decodes_to_an_aware_instant():
    req = pb.CountRequest(as_of=codec.timestamp(dt.datetime(2026, 11, 20, 17, 0, 0, 123000, tzinfo=dt.timezone.utc)))
    assert codec.decode_as_of(req) == dt.datetime(2026, 11, 20, 17, 0, 0, 123000, tzinfo=dt.timezone.utc)
    assert codec.decode_as_of(pb.CountRequest()) is None
