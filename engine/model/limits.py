"""Bounds on what a caller may ask for, checked before any real work starts.

A segment definition is checked here as a decoded JSON value, before the parser of
segment_json.py reads it: one iterative walk (no recursion, so no depth can overflow the
interpreter's stack) that bounds the work a definition can ask for and refuses text that
is not valid Unicode. Every refusal is an InvalidArgument naming the path of the offending
value, in the parser's path syntax (`include.any_of[3].search.text`), with names clipped
so that a hostile name never makes a huge message. docs/segments.md states the limits.

The valid calendar of the data model lives here too: every date and instant of a dataset
and every as-of instant lies in [MIN_DATE, MAX_DATE] (instants in UTC), so every reading of
it in any IANA zone, and a year on either side, stays inside what the engine computes with.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ..errors import InvalidArgument

MAX_JSON_DEPTH = 100          # nesting of JSON objects and lists (a valid segment needs < 80)
MAX_CONDITIONS = 256          # condition nodes per segment, combinators included
MAX_SEARCHES = 16             # search and surname conditions per segment
MAX_LIST_ITEMS = 100_000      # items of one JSON list (a `customers` list is the longest)
MAX_TOTAL_ITEMS = 200_000     # list items over the whole definition
MAX_OBJECTS = 10_000          # JSON objects over the whole definition
MAX_TEXT_CHARS = 1_000        # characters of one text value (a name, a value, a date, a search text)
MAX_KEY_CHARS = 64            # characters of a field name
MAX_INT_DIGITS = 20           # digits of a JSON integer (int64 needs 19)
MAX_NAME_CHARS = 128          # a dataset, saved segment or group name (folders.NAME_RE agrees)
MAX_DESCRIPTION_CHARS = 10_000
MAX_PREVIEW = 10_000          # rows of one preview
COMBINATORS = ("all_of", "any_of")
SEARCH_KINDS = ("search", "surname")

UTC = dt.timezone.utc
MIN_DATE, MAX_DATE = dt.date(1000, 1, 1), dt.date(9998, 12, 31)
MIN_INSTANT = dt.datetime(1000, 1, 1, tzinfo=UTC)
MAX_INSTANT = dt.datetime(9998, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
CALENDAR = f"{MIN_DATE.isoformat()} to {MAX_DATE.isoformat()}"


class HugeInt:
    """A JSON integer too long to convert safely: its digit count, for the error."""

    __slots__ = ("digits",)

    def __init__(self, digits: int):
        self.digits = digits


def _parse_int(text: str):
    digits = len(text.lstrip("-"))
    return HugeInt(digits) if digits > MAX_INT_DIGITS else int(text)


def decode_json(text: Any, path: str = "segment") -> Any:
    """json.loads for definitions: integers of more than MAX_INT_DIGITS digits come back as
    HugeInt (refused with their path by check_segment), a nesting too deep for the decoder
    is an InvalidArgument, so is text that is not a string."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidArgument(path, f"not UTF-8 text (byte {e.start})") from None
    if not isinstance(text, str):
        raise InvalidArgument(path, f"expected JSON text, got {type(text).__name__}")
    try:
        return json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as e:
        raise InvalidArgument(path, f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise InvalidArgument(path, f"nested deeper than {MAX_JSON_DEPTH} levels") from None


def clip(text: str, n: int = 40) -> str:
    """A name as it may appear in a path or message: valid Unicode, at most about n characters."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= n else f"{text[:n - 8]}...({len(text)} chars)"


def unicode_error(text: str):
    """The index of the first lone surrogate of text, or None when text is valid Unicode."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as e:
        return e.start


def check_text(value: str, path: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """A caller's text: valid Unicode and at most max_chars characters; InvalidArgument naming path."""
    bad = unicode_error(value)
    if bad is not None:
        raise InvalidArgument(path, f"text is not valid Unicode (a lone surrogate at character {bad})")
    if len(value) > max_chars:
        raise InvalidArgument(path, f"text of {len(value)} characters, more than the limit of {max_chars}")
    return value


def _child(path: str, key: str) -> str:
    return clip(key) if path == "" else f"{path}.{clip(key)}"


def check_segment(v: Any) -> Any:
    """Refuse a decoded definition that asks for more than the limits allow, or holds text
    that is not valid Unicode or an integer too long to read; returns v unchanged."""
    counts = {"conditions": 0, "searches": 0, "items": 0, "objects": 0}
    # (value, path, depth, role): role "condition" marks a place where a condition stands
    stack = [(v, "", 0, "root")]
    while stack:
        value, path, depth, role = stack.pop()
        shown = path or "segment"
        if depth > MAX_JSON_DEPTH:
            raise InvalidArgument(shown, f"nested deeper than {MAX_JSON_DEPTH} levels")
        if role == "condition":
            counts["conditions"] += 1
            if counts["conditions"] > MAX_CONDITIONS:
                raise InvalidArgument(shown, f"more than {MAX_CONDITIONS} conditions in one segment")
        if isinstance(value, dict):
            counts["objects"] += 1
            if counts["objects"] > MAX_OBJECTS:
                raise InvalidArgument(shown, f"more than {MAX_OBJECTS} objects in one segment")
            kind = next(iter(value)) if role == "condition" and len(value) == 1 else None
            if kind in SEARCH_KINDS:
                counts["searches"] += 1
                if counts["searches"] > MAX_SEARCHES:
                    raise InvalidArgument(_child(path, kind), f"more than {MAX_SEARCHES} search and surname "
                                                              "conditions in one segment")
            for key, item in reversed(value.items()):   # popped in document order
                bad = unicode_error(key)
                if bad is not None:
                    raise InvalidArgument(_child(path, key), "field name is not valid Unicode "
                                                             f"(a lone surrogate at character {bad})")
                if len(key) > MAX_KEY_CHARS:
                    raise InvalidArgument(_child(path, key), f"field name of {len(key)} characters, "
                                                             f"more than the limit of {MAX_KEY_CHARS}")
                stack.append((item, _child(path, key), depth + 1, _role(role, key, kind)))
        elif isinstance(value, list):
            if len(value) > MAX_LIST_ITEMS:
                raise InvalidArgument(shown, f"{len(value)} items, more than the limit of {MAX_LIST_ITEMS}")
            counts["items"] += len(value)
            if counts["items"] > MAX_TOTAL_ITEMS:
                raise InvalidArgument(shown, f"more than {MAX_TOTAL_ITEMS} list items in one segment")
            item_role = "condition" if role in ("conditions", "append") else "value"
            for i in range(len(value) - 1, -1, -1):
                stack.append((value[i], f"{shown}[{i}]", depth + 1, item_role))
        elif isinstance(value, str):
            check_text(value, shown)
        elif isinstance(value, HugeInt):
            raise InvalidArgument(shown, f"an integer of {value.digits} digits is out of range "
                                         "(at most 64-bit integers)")
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
            raise InvalidArgument(shown, f"an integer of about {int(value.bit_length() * 0.30103) + 1} "
                                         "digits is out of range (at most 64-bit integers)")
    return v


def _role(parent: str, key: str, kind) -> str:
    """What stands under `key` of an object in role `parent` (kind: the condition's kind)."""
    if parent == "root":
        if key in ("include", "exclude"):
            return "condition"
        return "append" if key == "append" else "value"
    if parent == "population" and key == "among":
        return "condition"
    if parent == "condition" and kind is not None:
        if key in ("percentile", "rfm"):
            return "population"
        if key in COMBINATORS:
            return "conditions"
        if key == "not":
            return "condition"
    return "value"


def check_instant(instant: dt.datetime, path: str = "as_of") -> dt.datetime:
    """An instant inside the valid calendar; InvalidArgument naming path otherwise."""
    try:
        ok = MIN_INSTANT <= instant <= MAX_INSTANT
    except (OverflowError, TypeError):
        ok = False
    if not ok:
        raise InvalidArgument(path, f"{instant.isoformat()} is outside the supported calendar "
                                    f"({CALENDAR}, UTC)")
    return instant


def check_name(name: Any, path: str = "name") -> str:
    """A name's size and Unicode, before any pattern is matched against it (so that the
    error never repeats a huge or broken name)."""
    if isinstance(name, str):
        if unicode_error(name) is not None or len(name) > MAX_NAME_CHARS:
            raise InvalidArgument(path, f"invalid name {clip(name)!r}: at most {MAX_NAME_CHARS} "
                                        "characters of letters, digits, _ . -")
    return name
