"""The JSON segment format (docs/segments.md): parse with errors naming the path, and dump.

A condition is an object with exactly one key, its kind:
    {"spend": {"filter": {"department": ["diamond"]}, "range": {"last_n_months": 6},
               "cmp": {"between": [50000, 100000]}}}
A segment is {"include": C, "exclude": C?, "append": [C...]?, "order_by": {...}?, "limit": N?}.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from . import kinds
from . import limits
from . import segment as S
from ..errors import InvalidArgument

MAX_DEPTH = 32
MAX_CUSTOMER_IDS = 100_000
MAX_VALUES = 10_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _fail(path: str, msg: str):
    raise InvalidArgument(path, msg)


def _obj(v: Any, path: str, allowed: tuple) -> dict:
    if not isinstance(v, dict):
        _fail(path, f"expected an object, got {type(v).__name__}")
    for k in v:
        if k not in allowed:
            _fail(f"{path}.{k}", "unknown field" + (f" (expected one of: {', '.join(allowed)})"
                                                   if allowed else f" ({path.rsplit('.', 1)[-1]} takes no fields)"))
    return v


def _int(v: Any, path: str, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            _fail(path, f"expected an integer, got {v!r}")
    if not lo <= v <= hi:
        _fail(path, f"{v} is out of range [{lo}, {hi}]")
    return v


def _str(v: Any, path: str, allow_empty: bool = False) -> str:
    if not isinstance(v, str):
        _fail(path, f"expected a string, got {v!r}")
    if not allow_empty and not v.strip():
        _fail(path, "must not be empty")
    return v


def _str_list(v: Any, path: str, allow_empty: bool = False) -> tuple:
    if not isinstance(v, list):
        _fail(path, f"expected a list of strings, got {type(v).__name__}")
    if not v and not allow_empty:
        _fail(path, "must not be empty")
    if len(v) > MAX_VALUES:
        _fail(path, f"{len(v)} values, more than the limit of {MAX_VALUES}")
    return tuple(_str(x, f"{path}[{i}]", allow_empty=True) for i, x in enumerate(v))


def _date(v: Any, path: str) -> dt.date:
    if not (isinstance(v, str) and len(v) == 10 and v[4] == "-" and v[7] == "-"):
        _fail(path, f"expected a date YYYY-MM-DD, got {v!r}")
    try:
        return dt.date.fromisoformat(v)
    except ValueError:
        _fail(path, f"expected a date YYYY-MM-DD, got {v!r}")


def parse_cmp(v: Any, path: str) -> S.Cmp:
    """{"op": value} with op in > >= < <= ==, or {"between": [a, b]}."""
    if not isinstance(v, dict) or len(v) != 1:
        _fail(path, 'expected one comparison such as {">=": 3} or {"between": [a, b]}')
    (op, arg), = v.items()
    if op not in S.CMP_OPS:
        _fail(f"{path}.{op}", f"unknown comparison (expected one of: {' '.join(S.CMP_OPS)})")
    if op == "between":
        if not isinstance(arg, list) or len(arg) != 2:
            _fail(f"{path}.between", "expected [low, high]")
        a, b = _int(arg[0], f"{path}.between[0]"), _int(arg[1], f"{path}.between[1]")
        if b < a:
            _fail(f"{path}.between", f"high {b} is below low {a}")
        return S.Cmp("between", a, b)
    return S.Cmp(op, _int(arg, f"{path}.{op}"))


def parse_range(v: Any, path: str) -> S.TimeRange:
    """A preset name, {"last_n_days": N}, {"last_n_months": N} or {"custom": {start, end}}."""
    if v is None:
        return S.EVER
    if isinstance(v, str):
        if v not in S.RANGE_PRESETS:
            _fail(path, f"unknown range {v!r} (expected one of: {', '.join(S.RANGE_PRESETS)}, "
                        "last_n_days, last_n_months, custom)")
        return S.TimeRange(v)
    if not isinstance(v, dict) or len(v) != 1:
        _fail(path, "expected a preset name or one of last_n_days / last_n_months / custom")
    (k, arg), = v.items()
    if k in ("last_n_days", "last_n_months"):
        return S.TimeRange(k, n=_int(arg, f"{path}.{k}", 1, 100_000 if k == "last_n_days" else 12_000))
    if k == "custom":
        _obj(arg, f"{path}.custom", ("start", "end"))
        start = _bound(arg.get("start"), f"{path}.custom.start")
        end = _bound(arg.get("end"), f"{path}.custom.end")
        if isinstance(start, dt.date) and isinstance(end, dt.date) and end < start:
            _fail(path, f"end before start ({end} < {start})")
        if isinstance(start, S.Offset) and isinstance(end, S.Offset):
            # before on every possible today: fewer months and no more days, or vice versa
            if (end.months <= start.months and end.days <= start.days) and \
                    (end.months, end.days) != (start.months, start.days):
                _fail(path, "end before start")
        return S.TimeRange("custom", start=start, end=end)
    if k in S.RANGE_PRESETS:
        if arg not in (None, {}, True):
            _fail(f"{path}.{k}", "takes no argument; write the preset as a string")
        return S.TimeRange(k)
    _fail(f"{path}.{k}", "unknown range kind")


def _bound(v: Any, path: str):
    if v is None:
        return None
    if isinstance(v, str):
        return _date(v, path)
    _obj(v, path, ("months", "days"))
    return S.Offset(months=_int(v.get("months", 0), f"{path}.months", -12_000, 12_000),
                    days=_int(v.get("days", 0), f"{path}.days", -400_000, 400_000))


def parse_filter(v: Any, path: str) -> S.ProductFilter:
    """{"department": ["diamond"], "metal": ["gold"]}: OR within a field, AND across, same line."""
    if v is None:
        return S.NO_FILTER
    _obj(v, path, S.PRODUCT_FIELDS)
    return S.ProductFilter(tuple(sorted((k, _str_list(vals, f"{path}.{k}")) for k, vals in v.items())))


def _shops(v: Any, path: str) -> tuple:
    return () if v is None or v == [] else _str_list(v, path)


def parse_condition(v: Any, path: str = "include", depth: int = 0) -> S.Condition:
    """One condition object; raises InvalidArgument naming the path of the first problem."""
    if depth > MAX_DEPTH:
        _fail(path, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(v, str) and v in ("all", "loyalty_member", "married_today", "overdue_layby",
                                    "upcoming_appointment"):
        v = {v: {}}
    if not isinstance(v, dict) or len(v) != 1:
        _fail(path, "expected an object with exactly one key, the condition kind")
    (kind, a), = v.items()
    p = f"{path}.{kind}"
    parser = _PARSERS.get(kind)
    if parser is None:
        _fail(p, f"unknown condition (expected one of: {', '.join(sorted(_PARSERS))})")
    return parser(a, p, depth)


def _children(a, p, depth):
    if not isinstance(a, list):
        _fail(p, "expected a list of conditions")
    if not a:
        _fail(p, "must not be empty")
    return tuple(parse_condition(c, f"{p}[{i}]", depth + 1) for i, c in enumerate(a))


def _empty(cls):
    def parse(a, p, depth):
        _obj(a if a is not None else {}, p, ())
        return cls()
    return parse


def _customers(a, p, depth):
    if isinstance(a, dict):
        _obj(a, p, ("ids",))
        a = a.get("ids")
        p = f"{p}.ids"
    if not isinstance(a, list):
        _fail(p, "expected a list of customer_ids")
    if len(a) > MAX_CUSTOMER_IDS:
        _fail(p, f"{len(a)} ids, more than the limit of {MAX_CUSTOMER_IDS}")
    return S.Customers(tuple(_customer_id(x, f"{p}[{i}]") for i, x in enumerate(a)))


def _customer_id(v: Any, path: str) -> int:
    """An int64 customer_id given as a JSON number or as decimal text: a caller whose JSON
    numbers are doubles (JavaScript) cannot write ids above 2^53 exactly as numbers."""
    if isinstance(v, str):
        text = v.strip()
        if not text.lstrip("+-").isdigit() or not text.isascii():
            _fail(path, f"expected a customer_id (an integer, or its decimal digits as a string), got {v!r}")
        v = int(text)
    return _int(v, path)


def _search(a, p, depth):
    _obj(a, p, ("text", "fields"))
    fields = S.SEARCH_FIELDS if a.get("fields") is None else _str_list(a["fields"], f"{p}.fields")
    for i, f in enumerate(fields):
        if f not in S.SEARCH_FIELDS:
            _fail(f"{p}.fields[{i}]", f"unknown field {f!r} (expected one of: {', '.join(S.SEARCH_FIELDS)})")
    return S.Search(_str(a.get("text"), f"{p}.text"), tuple(fields))


def _surname(a, p, depth):
    if isinstance(a, dict):
        _obj(a, p, ("text",))
        return S.Surname(_str(a.get("text"), f"{p}.text"))
    return S.Surname(_str(a, p))


def _birthday(which):
    def parse(a, p, depth):
        if isinstance(a, str):
            a = {"mode": a}
        _obj(a, p, ("mode", "month", "days"))
        mode = a.get("mode")
        if mode not in S.BIRTHDAY_MODES:
            _fail(f"{p}.mode", f"expected one of: {', '.join(S.BIRTHDAY_MODES)}")
        month = days = None
        if "month" in a and mode != "month":
            _fail(f"{p}.month", 'only with mode "month"')
        if "days" in a and mode != "next_days":
            _fail(f"{p}.days", 'only with mode "next_days"')
        if mode == "month":
            month = _int(a.get("month"), f"{p}.month", 1, 12)
        if mode == "next_days":
            days = _int(a.get("days"), f"{p}.days", 1, 366)
        return S.Birthday(which, mode, month, days)
    return parse


def _cmp_only(cls):
    def parse(a, p, depth):
        if isinstance(a, dict) and "cmp" in a:
            _obj(a, p, ("cmp",))
            return cls(parse_cmp(a["cmp"], f"{p}.cmp"))
        return cls(parse_cmp(a, p))
    return parse


def _joined(a, p, depth):
    _obj(a, p, ("range",))
    return S.Joined(parse_range(a.get("range"), f"{p}.range"))


def _in_values(field):
    def parse(a, p, depth):
        if isinstance(a, dict):
            _obj(a, p, ("values",))
            return S.InValues(field, _str_list(a.get("values"), f"{p}.values"))
        return S.InValues(field, _str_list(a, p))
    return parse


def _tags(a, p, depth):
    _obj(a, p, ("any", "all"))
    if len(a) != 1:
        _fail(p, 'expected exactly one of "any" or "all"')
    (mode, tags), = a.items()
    return S.Tags(_str_list(tags, f"{p}.{mode}"), mode)


def _reachable(a, p, depth):
    if isinstance(a, dict):
        _obj(a, p, ("channel",))
        a, p = a.get("channel"), f"{p}.channel"
    if a not in S.REACHABLE_CHANNELS:
        _fail(p, f"expected one of: {', '.join(S.REACHABLE_CHANNELS)}")
    return S.Reachable(a)


def _bought(a, p, depth):
    _obj(a if a is not None else {}, p, ("filter", "range"))
    a = a or {}
    return S.Bought(parse_filter(a.get("filter"), f"{p}.filter"), parse_range(a.get("range"), f"{p}.range"))


def _line_agg(cls):
    def parse(a, p, depth):
        _obj(a, p, ("filter", "range", "cmp"))
        if "cmp" not in a:
            _fail(f"{p}.cmp", "required")
        return cls(parse_cmp(a["cmp"], f"{p}.cmp"), parse_filter(a.get("filter"), f"{p}.filter"),
                   parse_range(a.get("range"), f"{p}.range"))
    return parse


def _visited(a, p, depth):
    a = {} if a is None else a
    _obj(a, p, ("cmp", "shops", "range"))
    cmp = S.AT_LEAST_ONE if a.get("cmp") is None else parse_cmp(a["cmp"], f"{p}.cmp")
    return S.Visited(cmp, _shops(a.get("shops"), f"{p}.shops"), parse_range(a.get("range"), f"{p}.range"))


def _upcoming(a, p, depth):
    a = {} if a is None else a
    _obj(a, p, ("shops",))
    return S.UpcomingAppointment(_shops(a.get("shops"), f"{p}.shops"))


def parse_event(v: Any, path: str) -> S.Event:
    """{"bought": {"filter": F}} or {"visited": {"shops": [..]}}."""
    if not isinstance(v, dict) or len(v) != 1:
        _fail(path, 'expected one event: {"bought": {"filter": ...}} or {"visited": {"shops": [...]}}')
    (kind, a), = v.items()
    p = f"{path}.{kind}"
    a = {} if a is None else a
    if kind == "bought":
        _obj(a, p, ("filter",))
        return S.Event("bought", parse_filter(a.get("filter"), f"{p}.filter"))
    if kind == "visited":
        _obj(a, p, ("shops",))
        return S.Event("visited", shops=_shops(a.get("shops"), f"{p}.shops"))
    _fail(p, f"unknown event (expected one of: {', '.join(S.EVENT_KINDS)})")


def _filter_range(cls):
    def parse(a, p, depth):
        a = {} if a is None else a
        _obj(a, p, ("filter", "range"))
        return cls(parse_filter(a.get("filter"), f"{p}.filter"), parse_range(a.get("range"), f"{p}.range"))
    return parse


def _required(a: dict, p: str, key: str):
    if a.get(key) is None:
        _fail(f"{p}.{key}", "required")
    return a[key]


def _regularly(a, p, depth):
    _obj(a, p, ("event", "period", "periods", "min_periods", "min_per_period"))
    event = parse_event(_required(a, p, "event"), f"{p}.event")
    period = _required(a, p, "period")
    if period not in S.PERIODS:
        _fail(f"{p}.period", f"expected one of: {', '.join(S.PERIODS)}")
    n = _int(_required(a, p, "periods"), f"{p}.periods", 1, S.MAX_PERIODS)
    k = _int(_required(a, p, "min_periods"), f"{p}.min_periods", 1, S.MAX_PERIODS)
    if k > n:
        _fail(f"{p}.min_periods", f"{k} is more than periods ({n})")
    m = _int(a.get("min_per_period", 1), f"{p}.min_per_period", 1, 1_000_000)
    return S.Regularly(event, period, n, k, m)


def _sequence(a, p, depth):
    _obj(a, p, ("first", "then", "then_not", "within_days", "range"))
    if ("then" in a) == ("then_not" in a):
        _fail(p, 'expected exactly one of "then" or "then_not"')
    key = "then" if "then" in a else "then_not"
    return S.Sequence(parse_event(_required(a, p, "first"), f"{p}.first"),
                      parse_event(_required(a, p, key), f"{p}.{key}"),
                      _int(_required(a, p, "within_days"), f"{p}.within_days", 0, 100_000),
                      key == "then_not", parse_range(a.get("range"), f"{p}.range"))


def _order_count(a, p, depth):
    _obj(a, p, ("filter", "range", "cmp"))
    return S.OrderCount(parse_cmp(_required(a, p, "cmp"), f"{p}.cmp"), parse_filter(a.get("filter"), f"{p}.filter"),
                        parse_range(a.get("range"), f"{p}.range"))


def _average_order_value(a, p, depth):
    _obj(a, p, ("range", "cmp"))
    return S.AverageOrderValue(parse_cmp(_required(a, p, "cmp"), f"{p}.cmp"), parse_range(a.get("range"), f"{p}.range"))


def parse_value(v: Any, path: str) -> S.Value:
    """{"spend" | "purchase_count" | "order_count" | "last_purchase": {"filter", "range"}} or {"loyalty_points": {}}."""
    if not isinstance(v, dict) or len(v) != 1:
        _fail(path, f"expected one value: {{key: {{...}}}} with key one of: {', '.join(S.VALUE_KEYS)}")
    (key, a), = v.items()
    p = f"{path}.{key}"
    if key not in S.VALUE_KEYS:
        _fail(p, f"unknown value (expected one of: {', '.join(S.VALUE_KEYS)})")
    a = {} if a is None else a
    if key == "loyalty_points":
        _obj(a, p, ())
        return S.Value(key)
    _obj(a, p, ("filter", "range"))
    return S.Value(key, parse_filter(a.get("filter"), f"{p}.filter"), parse_range(a.get("range"), f"{p}.range"))


def _among(a, p, depth):
    return None if a.get("among") is None else parse_condition(a["among"], f"{p}.among", depth + 1)


def _percentile(a, p, depth):
    _obj(a, p, ("of", "among", "cmp"))
    return S.Percentile(parse_value(_required(a, p, "of"), f"{p}.of"), parse_cmp(_required(a, p, "cmp"), f"{p}.cmp"),
                        _among(a, p, depth))


def _rfm(a, p, depth):
    _obj(a, p, ("filter", "range", "among", "r", "f", "m"))
    cmps = {k: None if a.get(k) is None else parse_cmp(a[k], f"{p}.{k}") for k in ("r", "f", "m")}
    return S.Rfm(parse_filter(a.get("filter"), f"{p}.filter"), parse_range(a.get("range"), f"{p}.range"),
                 _among(a, p, depth), **cmps)


def _random_bucket(a, p, depth):
    _obj(a, p, ("salt", "cmp"))
    return S.RandomBucket(_str(_required(a, p, "salt"), f"{p}.salt", allow_empty=True),
                          parse_cmp(_required(a, p, "cmp"), f"{p}.cmp"))


def _named(cls):
    def parse(a, p, depth):
        if isinstance(a, dict):
            _obj(a, p, ("name",))
            a, p = a.get("name"), f"{p}.name"
        return cls(_str(a, p))
    return parse


_PARSERS = {
    "all": _empty(S.All),
    "customers": _customers,
    "search": _search,
    "surname": _surname,
    "birthday": _birthday("birth"),
    "anniversary": _birthday("anniversary"),
    "married_today": _empty(S.MarriedToday),
    "age": _cmp_only(S.Age),
    "joined": _joined,
    "loyalty_member": _empty(S.LoyaltyMember),
    "loyalty_points": _cmp_only(S.LoyaltyPoints),
    **{f: _in_values(f) for f in S.VALUE_FIELDS},
    "tags": _tags,
    "reachable": _reachable,
    "account_balance": _cmp_only(S.AccountBalance),
    "overdue_layby": _empty(S.OverdueLayby),
    "bought": _bought,
    "spend": _line_agg(S.Spend),
    "purchase_count": _line_agg(S.PurchaseCount),
    "visited": _visited,
    "upcoming_appointment": _upcoming,
    "first_purchase": _filter_range(S.FirstPurchase),
    "last_purchase": _filter_range(S.LastPurchase),
    "regularly": _regularly,
    "sequence": _sequence,
    "order_count": _order_count,
    "average_order_value": _average_order_value,
    "percentile": _percentile,
    "rfm": _rfm,
    "random_bucket": _random_bucket,
    "in_segment": _named(S.InSegment),
    "in_group": _named(S.InGroup),
    "all_of": lambda a, p, d: S.AllOf(_children(a, p, d)),
    "any_of": lambda a, p, d: S.AnyOf(_children(a, p, d)),
    "not": lambda a, p, d: S.Not(parse_condition(a, p, d + 1)),
}


def parse_order_by(v: Any, path: str = "order_by") -> S.OrderBy:
    """{"key": "spend", "filter": {...}, "range": ..., "direction": "desc"|"asc"}."""
    _obj(v, path, ("key", "filter", "range", "direction"))
    key = v.get("key")
    if key not in S.ORDER_KEYS:
        _fail(f"{path}.key", f"expected one of: {', '.join(S.ORDER_KEYS)}")
    direction = v.get("direction", "desc")
    if direction not in ("asc", "desc"):
        _fail(f"{path}.direction", 'expected "asc" or "desc"')
    if key == "loyalty_points" and (v.get("filter") is not None or v.get("range") is not None):
        _fail(path, "loyalty_points takes no filter or range")
    if key == "average_order_value" and v.get("filter") is not None:
        _fail(f"{path}.filter", "average_order_value takes no filter (an order's value is all its lines)")
    return S.OrderBy(key, parse_filter(v.get("filter"), f"{path}.filter"),
                     parse_range(v.get("range"), f"{path}.range"), direction == "desc")


def parse_segment(v: Any) -> S.Segment:
    """A whole segment object; raises InvalidArgument naming the path of the first problem."""
    limits.check_segment(v)   # bounded work and valid text first (engine/model/limits.py)
    _obj(v, "segment", ("include", "exclude", "append", "order_by", "limit", "name", "description"))
    if "include" not in v:
        _fail("include", "required")
    include = parse_condition(v["include"], "include")
    exclude = None if v.get("exclude") is None else parse_condition(v["exclude"], "exclude")
    append = ()
    if v.get("append") is not None:
        if not isinstance(v["append"], list):
            _fail("append", "expected a list of conditions")
        append = tuple(parse_condition(c, f"append[{i}]") for i, c in enumerate(v["append"]))
    order_by = None if v.get("order_by") is None else parse_order_by(v["order_by"])
    limit = None if v.get("limit") is None else _int(v["limit"], "limit", 1, INT64_MAX)
    return S.Segment(include, exclude, append, order_by, limit)


def loads(text: str) -> S.Segment:
    """Parse a segment from JSON text."""
    return parse_segment(limits.decode_json(text))


# ---------------------------------------------------------------- dump

def dump_range(r: S.TimeRange):
    if r.kind in S.RANGE_PRESETS:
        return r.kind
    if r.kind in ("last_n_days", "last_n_months"):
        return {r.kind: r.n}

    def b(x):
        if x is None:
            return None
        return x.isoformat() if isinstance(x, dt.date) else {"months": x.months, "days": x.days}
    out = {}
    if r.start is not None:
        out["start"] = b(r.start)
    if r.end is not None:
        out["end"] = b(r.end)
    return {"custom": out}


def dump_cmp(c: S.Cmp):
    return {"between": [c.a, c.b]} if c.op == "between" else {c.op: c.a}


def _dump_birthday(c: S.Birthday):
    body = {"mode": c.mode}
    if c.month is not None:
        body["month"] = c.month
    if c.days is not None:
        body["days"] = c.days
    return body


def _dump_visited(c: S.Visited):
    body = {"cmp": dump_cmp(c.cmp), "range": dump_range(c.range)}
    if c.shops:
        body["shops"] = list(c.shops)
    return body


def dump_event(e: S.Event):
    if e.kind == "visited":
        return {"visited": {"shops": list(e.shops)} if e.shops else {}}
    return {"bought": {"filter": e.filter.as_dict()} if e.filter.fields else {}}


def _dump_sequence(c: S.Sequence):
    return {"first": dump_event(c.first), "then_not" if c.negate else "then": dump_event(c.then),
            "within_days": c.within_days, "range": dump_range(c.range)}


def _dump_value(v: S.Value):
    return {v.key: {} if v.key == "loyalty_points" else {"filter": v.filter.as_dict(), "range": dump_range(v.range)}}


def _dump_percentile(c: S.Percentile):
    out = {"of": _dump_value(c.of), "cmp": dump_cmp(c.cmp)}
    if c.among is not None:
        out["among"] = dump_condition(c.among)
    return out


def _dump_rfm(c: S.Rfm):
    out = {"filter": c.filter.as_dict(), "range": dump_range(c.range)}
    if c.among is not None:
        out["among"] = dump_condition(c.among)
    for k in ("r", "f", "m"):
        if getattr(c, k) is not None:
            out[k] = dump_cmp(getattr(c, k))
    return out


def _dump_line_agg(c):
    return {"cmp": dump_cmp(c.cmp), "filter": c.filter.as_dict(), "range": dump_range(c.range)}


# class -> the body under the kind's JSON name (kinds.kind_name); one entry per class of kinds.KINDS
_DUMPERS = {
    S.All: lambda c: {},
    S.Customers: lambda c: list(c.ids),
    S.Search: lambda c: {"text": c.text, "fields": list(c.fields)},
    S.Surname: lambda c: c.text,
    S.Birthday: _dump_birthday,
    S.MarriedToday: lambda c: {},
    S.Age: lambda c: {"cmp": dump_cmp(c.cmp)},
    S.Joined: lambda c: {"range": dump_range(c.range)},
    S.LoyaltyMember: lambda c: {},
    S.LoyaltyPoints: lambda c: {"cmp": dump_cmp(c.cmp)},
    S.InValues: lambda c: list(c.values),
    S.Tags: lambda c: {c.mode: list(c.tags)},
    S.Reachable: lambda c: c.channel,
    S.AccountBalance: lambda c: {"cmp": dump_cmp(c.cmp)},
    S.OverdueLayby: lambda c: {},
    S.Bought: lambda c: {"filter": c.filter.as_dict(), "range": dump_range(c.range)},
    S.Spend: _dump_line_agg,
    S.PurchaseCount: _dump_line_agg,
    S.Visited: _dump_visited,
    S.UpcomingAppointment: lambda c: {"shops": list(c.shops)} if c.shops else {},
    S.FirstPurchase: lambda c: {"filter": c.filter.as_dict(), "range": dump_range(c.range)},
    S.LastPurchase: lambda c: {"filter": c.filter.as_dict(), "range": dump_range(c.range)},
    S.Regularly: lambda c: {"event": dump_event(c.event), "period": c.period, "periods": c.periods,
                            "min_periods": c.min_periods, "min_per_period": c.min_per_period},
    S.Sequence: _dump_sequence,
    S.OrderCount: _dump_line_agg,
    S.AverageOrderValue: lambda c: {"cmp": dump_cmp(c.cmp), "range": dump_range(c.range)},
    S.Percentile: _dump_percentile,
    S.Rfm: _dump_rfm,
    S.RandomBucket: lambda c: {"salt": c.salt, "cmp": dump_cmp(c.cmp)},
    S.InSegment: lambda c: c.name,
    S.InGroup: lambda c: c.name,
    S.AllOf: lambda c: [dump_condition(x) for x in c.children],
    S.AnyOf: lambda c: [dump_condition(x) for x in c.children],
    S.Not: lambda c: dump_condition(c.child),
}


def dump_condition(c: S.Condition):
    """The JSON object of a condition (inverse of parse_condition)."""
    dumper = _DUMPERS.get(type(c))
    if dumper is None:
        raise TypeError(f"not a condition: {c!r}")
    return {kinds.kind_name(c): dumper(c)}


def dump_segment(s: S.Segment) -> dict:
    """The JSON object of a segment (inverse of parse_segment)."""
    out: dict = {"include": dump_condition(s.include)}
    if s.exclude is not None:
        out["exclude"] = dump_condition(s.exclude)
    if s.append:
        out["append"] = [dump_condition(c) for c in s.append]
    if s.order_by is not None:
        o = s.order_by
        out["order_by"] = {"key": o.key, "direction": "desc" if o.descending else "asc"}
        if o.key not in ("loyalty_points", "average_order_value"):
            out["order_by"]["filter"] = o.filter.as_dict()
        if o.key != "loyalty_points":
            out["order_by"]["range"] = dump_range(o.range)
    if s.limit is not None:
        out["limit"] = s.limit
    return out


def dumps(s: S.Segment) -> str:
    """JSON text of a segment."""
    return json.dumps(dump_segment(s), sort_keys=True)


def condition_paths(seg: S.Segment):
    """(path, condition) of every node of a segment, paths in the parser's syntax
    ("include.all_of[1].in_segment")."""
    def walk(c, path):
        name = kinds.kind_name(c)
        yield f"{path}.{name}", c
        if isinstance(c, (S.AllOf, S.AnyOf)):
            for i, x in enumerate(c.children):
                yield from walk(x, f"{path}.{name}[{i}]")
        elif isinstance(c, S.Not):
            yield from walk(c.child, f"{path}.not")
        elif isinstance(c, (S.Percentile, S.Rfm)) and c.among is not None:
            yield from walk(c.among, f"{path}.{name}.among")
    tops = [("include", seg.include)] + ([("exclude", seg.exclude)] if seg.exclude is not None else []) + \
        [(f"append[{i}]", a) for i, a in enumerate(seg.append)]
    for path, c in tops:
        yield from walk(c, path)
