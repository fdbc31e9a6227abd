"""Bounds on what a definition may ask for (engine/model/limits.py), and the valid calendar.

Each limit: at the limit a definition parses, one past it is an InvalidArgument naming the
path, and docs/segments.md states the number. Hostile text (integers of thousands of
digits, lone surrogates, huge names, nesting past any stack) is refused with a path and a
short message, through both parse entry points (JSON text and a decoded object).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from segments.engine.errors import InvalidArgument
from segments.engine.model import limits as L
from segments.engine.model import segment_json
from segments.engine.model.timerange import AsOf, load_zone, parse_instant

DOCS = Path(__file__).resolve().parents[1] / "docs" / "segments.md"
SPEND = {"spend": {"cmp": {">": 0}}}


def refused(v, path: str, text: str = "") -> str:
    """The message of the InvalidArgument that parsing v (text or object) raises at path."""
    with pytest.raises(InvalidArgument) as e:
        if isinstance(v, str):
            segment_json.loads(v)
        else:
            segment_json.parse_segment(v)
    assert e.value.path == path, (e.value.path, str(e.value)[:200])
    assert text in e.value.message, e.value.message
    assert len(str(e.value)) < 500
    return e.value.message


def test_conditions_per_segment():
    at = {"include": {"any_of": [SPEND] * (L.MAX_CONDITIONS - 1)}}
    segment_json.parse_segment(at)
    over = {"include": {"any_of": [SPEND] * L.MAX_CONDITIONS}}
    refused(over, f"include.any_of[{L.MAX_CONDITIONS - 1}]", f"more than {L.MAX_CONDITIONS} conditions")
    # exclude and append count too
    split = {"include": {"any_of": [SPEND] * 200}, "exclude": {"any_of": [SPEND] * 40},
             "append": [SPEND] * 20}
    refused(split, "append[14]", "conditions")


def test_searches_per_segment():
    at = {"include": {"any_of": [{"search": {"text": f"a{i}"}} for i in range(L.MAX_SEARCHES - 1)]
                      + [{"surname": "x"}]}}
    segment_json.parse_segment(at)
    over = {"include": {"all_of": [{"surname": f"s{i}"} for i in range(L.MAX_SEARCHES + 1)]}}
    refused(over, f"include.all_of[{L.MAX_SEARCHES}].surname", "search and surname")


def test_values_per_list_and_overall():
    refused({"include": {"customers": list(range(L.MAX_LIST_ITEMS + 1))}}, "include.customers", "items")
    many = {"include": {"any_of": [{"customers": list(range(i * 60_000, (i + 1) * 60_000))} for i in range(4)]}}
    refused(many, "include.any_of[3].customers", f"more than {L.MAX_TOTAL_ITEMS} list items")
    segment_json.parse_segment({"include": {"gender": ["x"] * 10_000}})


def test_text_and_name_sizes():
    segment_json.parse_segment({"include": {"tags": {"any": ["t" * L.MAX_TEXT_CHARS]}}})
    refused({"include": {"tags": {"any": ["t" * (L.MAX_TEXT_CHARS + 1)]}}}, "include.tags.any[0]", "characters")
    refused({"include": {"bought": {"range": "x" * 10_000_000}}}, "include.bought.range", "10000000 characters")
    msg = refused('{"include": {"' + "k" * 12_000 + '": 1}}', "include." + L.clip("k" * 12_000), "field name")
    assert "12000" in msg


def test_integers_of_thousands_of_digits_name_their_path():
    refused('{"include": {"age": {">": ' + "9" * 5000 + "}}}", "include.age.>", "5000 digits")
    refused('{"include": "all", "limit": -' + "1" * 4400 + "}", "limit", "4400 digits")
    refused({"include": {"age": {"between": [1, 10 ** 5000]}}}, "include.age.between[1]", "digits")
    segment_json.loads('{"include": {"age": {">": 9223372036854775807}}}')


@pytest.mark.parametrize("text, path", [
    ('{"include": {"search": {"text": "\\ud800"}}}', "include.search.text"),
    ('{"include": {"surname": "\\udfff"}}', "include.surname"),
    ('{"include": {"gender": ["ok", "\\udc00x"]}}', "include.gender[1]"),
    ('{"include": {"\\ud800": 1}}', "include.\\ud800"),
])
def test_lone_surrogates_are_refused_with_a_path(text, path):
    refused(text, path, "not valid Unicode")


def test_nesting_past_any_stack_is_refused_from_text_and_from_objects():
    refused('{"include": ' + '{"not": ' * 10_000 + '"all"' + "}" * 10_001, "segment", "nested deeper")
    deep = "all"
    for _ in range(50_000):          # built without recursion; parse_segment must not recurse either
        deep = {"not": deep}
    with pytest.raises(InvalidArgument) as e:
        segment_json.parse_segment({"include": deep})
    assert "nested deeper" in e.value.message
    lists = '{"include": ' + "[" * 900 + "]" * 900 + "}"
    with pytest.raises(InvalidArgument, match="nested deeper"):
        segment_json.loads(lists)


def test_json_text_that_is_not_a_definition():
    refused("{oops", "segment", "not valid JSON")
    refused("[1]", "segment", "expected an object")
    refused('{"include": {"age": {">": NaN}}}', "include.age.>", "expected an integer")


def test_every_limit_is_stated_in_the_docs():
    doc = DOCS.read_text(encoding="utf-8").replace(",", "")
    for name in ("MAX_CONDITIONS", "MAX_SEARCHES", "MAX_LIST_ITEMS", "MAX_TOTAL_ITEMS", "MAX_OBJECTS",
                 "MAX_TEXT_CHARS", "MAX_KEY_CHARS", "MAX_JSON_DEPTH"):
        assert re.search(rf"\b{getattr(L, name)}\b", doc), f"docs/segments.md does not state {name}"
    assert L.MIN_DATE.isoformat() in doc and L.MAX_DATE.isoformat() in doc


# ---------------------------------------------------------------- the calendar

NY, PARIS = load_zone("America/New_York"), load_zone("Europe/Paris")
UTC = dt.timezone.utc


@pytest.mark.parametrize("instant, zone", [
    (dt.datetime(1, 1, 1, tzinfo=UTC), NY),
    (dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), PARIS),
    (dt.datetime(999, 12, 31, 23, 59, tzinfo=UTC), NY),
    (dt.datetime(9999, 1, 1, tzinfo=UTC), PARIS),
])
def test_as_of_outside_the_calendar_is_invalid_argument(instant, zone):
    with pytest.raises(InvalidArgument) as e:
        AsOf(instant, zone)
    assert e.value.path == "as_of" and "calendar" in e.value.message


def test_as_of_at_the_calendar_edges_reads_in_every_zone():
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago", "America/New_York", "Asia/Kathmandu"):
        for instant in (L.MIN_INSTANT, L.MAX_INSTANT):
            a = AsOf(instant, load_zone(zone))
            assert 999 <= a.today.year <= 9999


@pytest.mark.parametrize("text", ["", "   ", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+00:00",
                                  "2026-01-01", "x" * 10_000, "2026-13-01T00:00:00Z"])
def test_parse_instant_refuses_with_a_short_message(text):
    with pytest.raises(InvalidArgument) as e:
        parse_instant(text, "--as-of")
    assert e.value.path == "--as-of" and len(e.value.message) < 200


def test_a_huge_or_broken_timezone_name_gives_a_short_error():
    for name in ("Z" * 10_000, "\ud800", "Europe/\x00Paris"):
        with pytest.raises(InvalidArgument) as e:
            load_zone(name)
        assert len(str(e.value)) < 200


def test_decode_json_refuses_non_text():
    with pytest.raises(InvalidArgument, match="not UTF-8"):
        L.decode_json(b'{"include": "\xff"}')
    with pytest.raises(InvalidArgument, match="expected JSON text"):
        L.decode_json(42)
    assert L.decode_json(json.dumps({"a": 1})) == {"a": 1}
