"""Messages <-> engine values: the only module that turns protobuf into the engine's segment tree.

A typed proto Segment is converted to the JSON shape of engine/model/segment_json.py and parsed
there, so both request forms are validated by one parser and errors name the same paths
("include.all_of[1].spend.cmp.between"). Encoding goes the other way, from the engine's
dataclasses and results to messages.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import math
from typing import Any, Optional

import numpy as np

from segments.engine.model import kinds
from segments.engine.model import limits
from segments.engine.model import segment as S
from segments.engine.model import segment_json
from segments.engine.errors import InvalidArgument
from segments.engine.results import CountResult, ExplainNode, Materialized, MaterializedStream, Preview
from segments.proto import segments_pb2 as pb

from .changes import encode_live

UTC = dt.timezone.utc
CACHE_MAX_BYTES = 16 * 1024

_CMP_OPS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "=="}
_OPS_CMP = {v: k for k, v in _CMP_OPS.items()}
_FLAG_KINDS = ("all", "married_today", "loyalty_member", "overdue_layby")
_CMP_KINDS = ("age", "loyalty_points", "account_balance")
_PRESET_NAMES = {v: pb.RangePreset.Name(v)[len("RANGE_PRESET_"):].lower() for v in pb.RangePreset.values()
                 if v != pb.RANGE_PRESET_UNSPECIFIED}
_PRESET_VALUES = {v: k for k, v in _PRESET_NAMES.items()}
_BIRTHDAY_NAMES = {pb.BIRTHDAY_MODE_TODAY: "today", pb.BIRTHDAY_MODE_THIS_MONTH: "this_month",
                   pb.BIRTHDAY_MODE_MONTH: "month", pb.BIRTHDAY_MODE_NEXT_DAYS: "next_days"}
_BIRTHDAY_VALUES = {v: k for k, v in _BIRTHDAY_NAMES.items()}
_CHANNEL_NAMES = {pb.REACHABLE_CHANNEL_HAS_EMAIL: "has_email", pb.REACHABLE_CHANNEL_HAS_PHONE: "has_phone",
                  pb.REACHABLE_CHANNEL_EMAIL_OPT_IN: "email_opt_in", pb.REACHABLE_CHANNEL_SMS_OPT_IN: "sms_opt_in"}
_CHANNEL_VALUES = {v: k for k, v in _CHANNEL_NAMES.items()}
_ORDER_NAMES = {pb.ORDER_KEY_SPEND: "spend", pb.ORDER_KEY_PURCHASE_COUNT: "purchase_count",
                pb.ORDER_KEY_LOYALTY_POINTS: "loyalty_points", pb.ORDER_KEY_LAST_PURCHASE: "last_purchase",
                pb.ORDER_KEY_ORDER_COUNT: "order_count", pb.ORDER_KEY_AVERAGE_ORDER_VALUE: "average_order_value"}
_PERIOD_NAMES = {pb.PERIOD_WEEK: "week", pb.PERIOD_MONTH: "month"}
_PERIOD_VALUES = {v: k for k, v in _PERIOD_NAMES.items()}
_ORDER_VALUES = {v: k for k, v in _ORDER_NAMES.items()}


# ================================================================ decode: proto -> JSON shape

def cmp_to_json(c: pb.Cmp) -> dict:
    """{"op": value} or {"between": [low, high]}; {} when no op is set (the parser rejects it)."""
    op = c.WhichOneof("op")
    if op is None:
        return {}
    if op == "between":
        return {"between": [c.between.low, c.between.high]}
    return {_CMP_OPS[op]: getattr(c, op)}


def range_to_json(r: pb.TimeRange):
    """A preset name, {"last_n_days": N}, {"last_n_months": N} or {"custom": {...}}."""
    kind = r.WhichOneof("kind")
    if kind is None:
        return "ever"
    if kind == "preset":
        return _PRESET_NAMES.get(r.preset, f"{pb.RangePreset.Name(r.preset) if r.preset in pb.RangePreset.values() else r.preset}")
    if kind in ("last_n_days", "last_n_months"):
        return {kind: getattr(r, kind)}
    out = {}
    for end in ("start", "end"):
        if r.custom.HasField(end):
            b = getattr(r.custom, end)
            out[end] = b.date if b.WhichOneof("kind") == "date" else \
                {"months": b.offset.months, "days": b.offset.days}
    return {"custom": out}


def filter_to_json(f: pb.ProductFilter) -> Optional[dict]:
    """The fields given (non-empty lists) of a product filter, or None for no filter."""
    out = {name: list(getattr(f, name)) for name in S.PRODUCT_FIELDS if len(getattr(f, name))}
    return out or None


def _put(out: dict, msg, name: str, conv):
    if msg.HasField(name):
        out[name] = conv(getattr(msg, name))


def _dec_customers(a, kind, path):
    if len(a.ids) > segment_json.MAX_CUSTOMER_IDS:  # before building a huge list
        raise InvalidArgument(f"{path}.customers.ids",
                              f"{len(a.ids)} ids, more than the limit of {segment_json.MAX_CUSTOMER_IDS}")
    return {"ids": list(a.ids)}


def _dec_search(a, kind, path):
    body = {"text": a.text}
    if len(a.fields):
        body["fields"] = list(a.fields)
    return body


def _dec_birthday(a, kind, path):
    body = {"mode": _BIRTHDAY_NAMES.get(a.mode)}
    if a.mode == pb.BIRTHDAY_MODE_MONTH:
        body["month"] = a.month
    if a.mode == pb.BIRTHDAY_MODE_NEXT_DAYS:
        body["days"] = a.days
    return body


def _dec_tags(a, kind, path):
    mode = a.WhichOneof("mode")
    return {} if mode is None else {mode: list(getattr(a, mode).values)}


def _dec_lines(a, kind, path):
    body = {}
    if kind != "bought":
        _put(body, a, "cmp", cmp_to_json)
    if kind == "visited":
        if len(a.shops):
            body["shops"] = list(a.shops)
    else:
        _put(body, a, "filter", filter_to_json)
    _put(body, a, "range", range_to_json)
    return body


def _dec_children(a, kind, path):
    if len(a.conditions) > limits.MAX_CONDITIONS:  # before building a huge tree
        raise InvalidArgument(f"{path}.{kind}", f"{len(a.conditions)} conditions, more than the limit of "
                                                f"{limits.MAX_CONDITIONS} in one segment")
    return [condition_to_json(x, f"{path}.{kind}[{i}]") for i, x in enumerate(a.conditions)]


def event_to_json(e: pb.Event) -> dict:
    kind = e.WhichOneof("kind")
    if kind is None:
        return {}
    if kind == "bought":
        body = {}
        _put(body, e.bought, "filter", filter_to_json)
        return {"bought": body}
    return {"visited": {"shops": list(e.visited.shops)} if len(e.visited.shops) else {}}


def _filter_range_json(a) -> dict:
    body = {}
    _put(body, a, "filter", filter_to_json)
    _put(body, a, "range", range_to_json)
    return body


def _dec_regularly(a, kind, path):
    body = {"period": _PERIOD_NAMES.get(a.period, a.period), "periods": a.periods, "min_periods": a.min_periods}
    _put(body, a, "event", event_to_json)
    if a.HasField("min_per_period"):
        body["min_per_period"] = a.min_per_period
    return body


def _dec_sequence(a, kind, path):
    body = {"within_days": a.within_days}
    _put(body, a, "first", event_to_json)
    second = a.WhichOneof("second")
    if second is not None:
        body[second] = event_to_json(getattr(a, second))
    _put(body, a, "range", range_to_json)
    return body


def _dec_percentile(a, kind, path):
    body = {}
    if a.HasField("of"):
        vk = a.of.WhichOneof("kind")
        body["of"] = {} if vk is None else {vk: {} if vk == "loyalty_points" else _filter_range_json(getattr(a.of, vk))}
    _put(body, a, "cmp", cmp_to_json)
    if a.HasField("among"):
        body["among"] = condition_to_json(a.among, f"{path}.{kind}.among")
    return body


def _dec_rfm(a, kind, path):
    body = _filter_range_json(a)
    if a.HasField("among"):
        body["among"] = condition_to_json(a.among, f"{path}.{kind}.among")
    for k in ("r", "f", "m"):
        _put(body, a, k, cmp_to_json)
    return body


def _dec_cmp_range(a, kind, path):
    body = {}
    _put(body, a, "cmp", cmp_to_json)
    _put(body, a, "range", range_to_json)
    return body


def _dec_random_bucket(a, kind, path):
    body = {"salt": a.salt}
    _put(body, a, "cmp", cmp_to_json)
    return body


# Condition oneof field (= the JSON name, engine.model.kinds) -> the JSON body of its message
_DECODERS = {
    **{k: (lambda a, kind, path: {}) for k in _FLAG_KINDS},
    "customers": _dec_customers,
    "search": _dec_search,
    "surname": lambda a, kind, path: a,
    "birthday": _dec_birthday,
    "anniversary": _dec_birthday,
    **{k: (lambda a, kind, path: cmp_to_json(a)) for k in _CMP_KINDS},
    "joined": lambda a, kind, path: {"range": range_to_json(a.range)},
    **{k: (lambda a, kind, path: {"values": list(a.values)}) for k in S.VALUE_FIELDS},
    "tags": _dec_tags,
    "reachable": lambda a, kind, path: _CHANNEL_NAMES.get(a),
    **{k: _dec_lines for k in ("bought", "spend", "purchase_count", "visited")},
    "upcoming_appointment": lambda a, kind, path: {"shops": list(a.shops)} if len(a.shops) else {},
    "first_purchase": lambda a, kind, path: _filter_range_json(a),
    "last_purchase": lambda a, kind, path: _filter_range_json(a),
    "regularly": _dec_regularly,
    "sequence": _dec_sequence,
    "order_count": _dec_lines,
    "average_order_value": _dec_cmp_range,
    "percentile": _dec_percentile,
    "rfm": _dec_rfm,
    "random_bucket": _dec_random_bucket,
    "in_segment": lambda a, kind, path: a,
    "in_group": lambda a, kind, path: a,
    "all_of": _dec_children,
    "any_of": _dec_children,
    "not": lambda a, kind, path: condition_to_json(a, f"{path}.not"),
}


def condition_to_json(c: pb.Condition, path: str = "include") -> Any:
    """The JSON object of a typed condition (no validation beyond the shape)."""
    kind = c.WhichOneof("kind")
    if kind is None:
        return {}
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise InvalidArgument(path, f"unsupported condition kind {kind!r}")
    return {kind: decoder(getattr(c, kind), kind, path)}


def order_by_to_json(o: pb.OrderBy) -> dict:
    """{"key", "direction", "filter"?, "range"?}."""
    out = {"key": _ORDER_NAMES.get(o.key), "direction": "asc" if o.ascending else "desc"}
    _put(out, o, "filter", filter_to_json)
    _put(out, o, "range", range_to_json)
    return {k: v for k, v in out.items() if v is not None or k == "key"}


def segment_to_json(s: pb.Segment) -> dict:
    """The JSON object of a typed segment, ready for engine.model.segment_json.parse_segment."""
    out: dict = {}
    if s.HasField("include"):
        out["include"] = condition_to_json(s.include, "include")
    if s.HasField("exclude"):
        out["exclude"] = condition_to_json(s.exclude, "exclude")
    if len(s.append):
        if len(s.append) > limits.MAX_CONDITIONS:
            raise InvalidArgument("append", f"{len(s.append)} conditions, more than the limit of "
                                            f"{limits.MAX_CONDITIONS} in one segment")
        out["append"] = [condition_to_json(c, f"append[{i}]") for i, c in enumerate(s.append)]
    if s.HasField("order_by"):
        out["order_by"] = order_by_to_json(s.order_by)
    if s.HasField("limit"):
        out["limit"] = s.limit
    return out


def decode_segment(s: pb.Segment) -> S.Segment:
    """The engine Segment of a typed message; InvalidArgument naming the path of a problem."""
    return segment_json.parse_segment(segment_to_json(s))


def decode_segment_json(text: str) -> S.Segment:
    """The engine Segment of JSON text; InvalidArgument naming the path of a problem."""
    try:
        return segment_json.loads(text)
    except RecursionError:
        raise InvalidArgument("segment_json", "nested too deep") from None


@functools.lru_cache(maxsize=1024)
def _decode_cached(kind: str, data) -> S.Segment:
    return decode_segment(pb.Segment.FromString(data)) if kind == "segment" else decode_segment_json(data)


def decode_source_definition(kind: str, value) -> S.Segment:
    """decode_segment / decode_segment_json with a cache of small definitions: a dashboard
    asks the same few segments again and again, and Segments are immutable. Only successes
    are cached (an exception is never stored by lru_cache)."""
    data = value.SerializeToString(deterministic=True) if kind == "segment" else value
    if len(data) > CACHE_MAX_BYTES:
        return decode_segment(value) if kind == "segment" else decode_segment_json(value)
    return _decode_cached(kind, data)


def decode_definition(msg, field: str = "definition") -> Optional[S.Segment]:
    """A `segment` / `segment_json` oneof member of msg as an engine Segment (None if neither)."""
    kind = msg.WhichOneof(field)
    if kind in ("segment", "segment_json"):
        return decode_source_definition(kind, getattr(msg, kind))
    return None


def decode_as_of(msg) -> Optional[dt.datetime]:
    """The request's as_of instant (aware, UTC) or None for now."""
    if not msg.HasField("as_of"):
        return None
    ts = msg.as_of
    if not 0 <= ts.nanos < 1_000_000_000:
        raise InvalidArgument("as_of.nanos", f"{ts.nanos} is out of range")
    try:
        return from_timestamp(ts)
    except OverflowError:
        raise InvalidArgument("as_of", f"{ts.seconds} seconds is out of range") from None


def timestamp(instant: Optional[dt.datetime]):
    """A Timestamp message of an aware datetime (None -> None)."""
    if instant is None:
        return None
    delta = instant - dt.datetime(1970, 1, 1, tzinfo=UTC)
    return pb.google_dot_protobuf_dot_timestamp__pb2.Timestamp(
        seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def from_timestamp(ts) -> dt.datetime:
    """An aware UTC datetime of a Timestamp message."""
    return dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


# ================================================================ encode: engine -> proto

def encode_cmp(c: S.Cmp) -> pb.Cmp:
    if c.op == "between":
        return pb.Cmp(between=pb.Between(low=c.a, high=c.b))
    return pb.Cmp(**{_OPS_CMP[c.op]: c.a})


def encode_range(r: S.TimeRange) -> Optional[pb.TimeRange]:
    if r.kind == "ever":
        return None
    if r.kind in _PRESET_VALUES:
        return pb.TimeRange(preset=_PRESET_VALUES[r.kind])
    if r.kind in ("last_n_days", "last_n_months"):
        return pb.TimeRange(**{r.kind: r.n})

    def bound(b):
        if b is None:
            return None
        if isinstance(b, dt.date):
            return pb.DateBound(date=b.isoformat())
        return pb.DateBound(offset=pb.DateOffset(months=b.months, days=b.days))
    return pb.TimeRange(custom=pb.CustomRange(start=bound(r.start), end=bound(r.end)))


def encode_filter(f: S.ProductFilter) -> Optional[pb.ProductFilter]:
    return pb.ProductFilter(**{k: list(v) for k, v in f.fields}) if f.fields else None


def _enc_birthday(c: S.Birthday):
    return pb.Birthday(mode=_BIRTHDAY_VALUES[c.mode], month=c.month or 0, days=c.days or 0)


def _enc_line_agg(c):
    return pb.LineAggregate(cmp=encode_cmp(c.cmp), filter=encode_filter(c.filter), range=encode_range(c.range))


def encode_event(e: S.Event) -> pb.Event:
    if e.kind == "visited":
        return pb.Event(visited=pb.VisitedEvent(shops=e.shops))
    return pb.Event(bought=pb.BoughtEvent(filter=encode_filter(e.filter)))


def _enc_filter_range(c) -> pb.FilterRange:
    return pb.FilterRange(filter=encode_filter(c.filter), range=encode_range(c.range))


def _enc_regularly(c: S.Regularly) -> pb.Regularly:
    return pb.Regularly(event=encode_event(c.event), period=_PERIOD_VALUES[c.period], periods=c.periods,
                        min_periods=c.min_periods, min_per_period=c.min_per_period)


def _enc_sequence(c: S.Sequence) -> pb.Sequence:
    return pb.Sequence(first=encode_event(c.first), within_days=c.within_days, range=encode_range(c.range),
                       **{"then_not" if c.negate else "then": encode_event(c.then)})


def _enc_percentile(c: S.Percentile) -> pb.Percentile:
    v = c.of
    of = pb.PercentileValue(**{v.key: pb.Flag() if v.key == "loyalty_points" else _enc_filter_range(v)})
    out = pb.Percentile(of=of, cmp=encode_cmp(c.cmp))
    if c.among is not None:
        out.among.CopyFrom(encode_condition(c.among))
    return out


def _enc_rfm(c: S.Rfm) -> pb.Rfm:
    out = pb.Rfm(filter=encode_filter(c.filter), range=encode_range(c.range),
                 **{k: encode_cmp(getattr(c, k)) for k in ("r", "f", "m") if getattr(c, k) is not None})
    if c.among is not None:
        out.among.CopyFrom(encode_condition(c.among))
    return out


# class -> the message under the kind's oneof field (engine.model.kinds.kind_name)
_ENCODERS = {
    S.All: lambda c: pb.Flag(),
    S.Customers: lambda c: pb.CustomerIds(ids=c.ids),
    S.Search: lambda c: pb.Search(text=c.text, fields=c.fields),
    S.Surname: lambda c: c.text,
    S.Birthday: _enc_birthday,
    S.MarriedToday: lambda c: pb.Flag(),
    S.Age: lambda c: encode_cmp(c.cmp),
    S.Joined: lambda c: pb.Joined(range=encode_range(c.range)),
    S.LoyaltyMember: lambda c: pb.Flag(),
    S.LoyaltyPoints: lambda c: encode_cmp(c.cmp),
    S.InValues: lambda c: pb.Values(values=c.values),
    S.Tags: lambda c: pb.Tags(**{c.mode: pb.Values(values=c.tags)}),
    S.Reachable: lambda c: _CHANNEL_VALUES[c.channel],
    S.AccountBalance: lambda c: encode_cmp(c.cmp),
    S.OverdueLayby: lambda c: pb.Flag(),
    S.Bought: lambda c: pb.Bought(filter=encode_filter(c.filter), range=encode_range(c.range)),
    S.Spend: _enc_line_agg,
    S.PurchaseCount: _enc_line_agg,
    S.Visited: lambda c: pb.Visited(cmp=encode_cmp(c.cmp), shops=c.shops, range=encode_range(c.range)),
    S.UpcomingAppointment: lambda c: pb.UpcomingAppointment(shops=c.shops),
    S.FirstPurchase: _enc_filter_range,
    S.LastPurchase: _enc_filter_range,
    S.Regularly: _enc_regularly,
    S.Sequence: _enc_sequence,
    S.OrderCount: _enc_line_agg,
    S.AverageOrderValue: lambda c: pb.AverageOrderValue(cmp=encode_cmp(c.cmp), range=encode_range(c.range)),
    S.Percentile: _enc_percentile,
    S.Rfm: _enc_rfm,
    S.RandomBucket: lambda c: pb.RandomBucket(salt=c.salt, cmp=encode_cmp(c.cmp)),
    S.InSegment: lambda c: c.name,
    S.InGroup: lambda c: c.name,
    S.AllOf: lambda c: pb.Conditions(conditions=[encode_condition(x) for x in c.children]),
    S.AnyOf: lambda c: pb.Conditions(conditions=[encode_condition(x) for x in c.children]),
    S.Not: lambda c: encode_condition(c.child),
}


def encode_condition(c: S.Condition) -> pb.Condition:
    """The typed message of an engine condition (inverse of condition_to_json + parse)."""
    encoder = _ENCODERS.get(type(c))
    if encoder is None:
        raise TypeError(f"not a condition: {c!r}")
    return pb.Condition(**{kinds.kind_name(c): encoder(c)})


def encode_segment(s: S.Segment) -> pb.Segment:
    """The typed message of an engine Segment."""
    out = pb.Segment(include=encode_condition(s.include),
                     append=[encode_condition(c) for c in s.append])
    if s.exclude is not None:
        out.exclude.CopyFrom(encode_condition(s.exclude))
    if s.order_by is not None:
        o = s.order_by
        out.order_by.CopyFrom(pb.OrderBy(key=_ORDER_VALUES[o.key], ascending=not o.descending))
        if o.key != "loyalty_points":
            f = None if o.key == "average_order_value" else encode_filter(o.filter)
            r = encode_range(o.range)
            if f is not None:
                out.order_by.filter.CopyFrom(f)
            if r is not None:
                out.order_by.range.CopyFrom(r)
    if s.limit is not None:
        out.limit = s.limit
    return out


# ---------------------------------------------------------------- results

def encode_value(v: Any) -> pb.Value:
    """A profile or rank value; None (and NaN) -> an empty Value (null)."""
    if v is None:
        return pb.Value()
    if isinstance(v, (bool, np.bool_)):
        return pb.Value(bool_value=bool(v))
    if isinstance(v, (int, np.integer)):
        return pb.Value(int_value=int(v))
    if isinstance(v, (float, np.floating)):
        return pb.Value() if math.isnan(v) else pb.Value(double_value=float(v))
    if isinstance(v, str):
        return pb.Value(string_value=v)
    if isinstance(v, dt.datetime):
        return pb.Value(string_value=v.isoformat())
    if isinstance(v, dt.date):
        return pb.Value(date_value=v.isoformat())
    if isinstance(v, np.datetime64):
        return pb.Value() if np.isnat(v) else pb.Value(date_value=str(v.astype("datetime64[D]")))
    if isinstance(v, (list, tuple, np.ndarray)):
        return pb.Value(list_value=pb.Values(values=[str(x) for x in v]))
    return pb.Value(string_value=str(v))


def decode_value(v: pb.Value) -> Any:
    """The plain Python value of a Value message (dates as datetime.date)."""
    kind = v.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "date_value":
        return dt.date.fromisoformat(v.date_value)
    if kind == "list_value":
        return list(v.list_value.values)
    return getattr(v, kind)


def encode_count(r: CountResult) -> pb.CountResponse:
    return pb.CountResponse(count=r.count, email_reachable=r.email_reachable, sms_reachable=r.sms_reachable,
                            missing_ids=r.missing_ids, elapsed_ms=r.elapsed_ms)


def encode_preview(p: Preview) -> pb.PreviewResponse:
    rows = []
    for row in p.rows:
        msg = pb.Row(customer_id=int(row["customer_id"]))
        for k, v in row.items():
            if k == "customer_id":
                continue
            if k == "rank_value":
                msg.rank_value.CopyFrom(encode_value(v))
            else:
                msg.fields[k].CopyFrom(encode_value(v))
        rows.append(msg)
    return pb.PreviewResponse(rows=rows, total=p.total, missing_ids=p.missing_ids, elapsed_ms=p.elapsed_ms)


def encode_explain(node: ExplainNode) -> pb.ExplainNode:
    return pb.ExplainNode(label=node.label, size=node.size, ms=node.ms, bytes_read=node.bytes_read,
                          children=[encode_explain(c) for c in node.children])


def decode_explain(node: pb.ExplainNode) -> ExplainNode:
    return ExplainNode(node.label, node.size, node.ms, tuple(decode_explain(c) for c in node.children),
                       node.bytes_read)


def materialize_chunks(m: Materialized, chunk_ids: int, check=None, message=pb.MaterializeResponse):
    """`message` chunks (MaterializeResponse or MaterializeGroupResponse) of a result: each
    an Arrow IPC stream of one record batch holding customer_id, the fields and rank_value
    (typed) when ranked. `check()` runs before each chunk (a deadline test)."""
    yield from stream_chunks(MaterializedStream.of(m, chunk_ids), check, message)


def stream_chunks(stream: MaterializedStream, check=None, message=pb.MaterializeResponse):
    """materialize_chunks of an answer given in pieces (Engine.materialize_stream): one
    message per piece, the first with the answer's total, missing ids, rank key, time, as_of
    and change sequence."""
    import pyarrow as pa

    first = True
    for piece in stream.chunks:
        if check is not None:
            check()
        part = piece.to_arrow()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, part.schema) as w:
            w.write_table(part)
        msg = message(arrow_ipc=sink.getvalue().to_pybytes())
        if first:
            msg.total = stream.total
            msg.missing_ids.extend(stream.missing_ids)
            msg.rank_key = stream.rank_key or ""
            msg.elapsed_ms = stream.elapsed_ms
            if stream.as_of is not None:
                msg.as_of.CopyFrom(timestamp(stream.as_of))
            msg.change_sequence = int(stream.sequence or 0)
            first = False
        yield msg


def dataset_info(name: str, info: dict) -> pb.DatasetInfo:
    """DatasetInfo of the engine's info dict (known keys typed, everything as JSON)."""
    rows = info.get("rows") or {}
    return pb.DatasetInfo(
        name=name, timezone=str(info.get("timezone", "")),
        rows={k: int(v) for k, v in rows.items()} if isinstance(rows, dict) else {},
        shards=int(info.get("shards", 0) or 0), bytes=int(info.get("bytes_on_disk", 0) or 0),
        info_json=json.dumps(info, default=str, sort_keys=True), live=encode_live(info.get("live")))
