"""Live-update messages <-> the engine's change tables: the ApplyChangesRequest half of the codec.

Decoding (server): the row messages of a ApplyChangesRequest become pyarrow Tables in the canonical
types of engine/storage/ingest_read.py, one column at a time; an absent field is null and an absent
`active` is true. Engine.apply_changes then validates them like a bulk load, so required
values, closed sets and unknown customers are checked in one place. Only what a Table cannot
hold is checked here: dates given as text and instants out of range, each an IngestError
naming the table, the 1-based row of the batch and the column, as the engine's errors do.

Encoding (client): rows given as lists of dicts or pyarrow Tables become row messages.
Values are Python objects (int, str, bool, datetime.date, aware datetime, a list of str for
tags) or text in the CSV conventions of shared/spec/data-model.md; a value that cannot be
put on the typed wire is a ValueError naming table, row and column before anything is sent.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from segments.engine.errors import IngestError
from segments.engine.storage.ingest_read import CANONICAL, canonical_schema
from segments.engine.model.schema import TABLE_NAMES, TABLES
from segments.proto import segments_pb2 as pb

ROW_MESSAGES = {"customers": pb.CustomerRow, "purchases": pb.PurchaseRow,
                "visits": pb.VisitRow, "laybys": pb.LaybyRow}
COUNT_KEYS = ("customers", "purchases", "visits", "laybys", "deleted")
# The range of a google.protobuf.Timestamp: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799
INT_RANGE = {"int64": (-2**63, 2**63 - 1), "int32": (-2**31, 2**31 - 1)}
_TRUE_TEXT, _FALSE_TEXT = ("true", "1"), ("false", "0")
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


# ================================================================ decode: messages -> tables

def decode_batch(req: pb.ApplyChangesRequest) -> dict:
    """The keyword arguments of Engine.apply_changes for a ApplyChangesRequest (tables without rows
    are None, an empty batch_id is None)."""
    out = {t: decode_rows(t, getattr(req, t)) if len(getattr(req, t)) else None for t in TABLE_NAMES}
    out["delete"] = list(req.delete_customer_ids)
    out["batch_id"] = req.batch_id or None
    return out


def decode_rows(table: str, rows) -> pa.Table:
    """Row messages of `table` as a Table of its canonical schema (absent fields null)."""
    present = [{f.name: v for f, v in m.ListFields()} for m in rows]
    columns = []
    for c in TABLES[table]:
        values = [r.get(c.name) for r in present]
        if c.type == "date":
            arr = _dates(values, table, c.name)
        elif c.type == "timestamp":
            arr = _instants(values, table, c.name)
        elif c.type == "list<string>":
            arr = pa.array([list(v) if v else None for v in values], CANONICAL[c.type])
        else:
            arr = pa.array(values, CANONICAL[c.type])
        if c.name == "active":
            arr = pc.fill_null(arr, True)
        columns.append(arr)
    return pa.Table.from_arrays(columns, schema=canonical_schema(table))


def _dates(values: list, table: str, col: str) -> pa.Array:
    """YYYY-MM-DD text (blanks around it tolerated, blank = null) as date32."""
    text = pc.utf8_trim_whitespace(pa.array(values, pa.string()))
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    try:
        return pc.cast(text, pa.date32())
    except pa.ArrowInvalid:
        pass
    for i, v in enumerate(text.to_pylist()):       # slow path: name the first bad row
        try:
            pc.cast(pa.array([v], pa.string()), pa.date32())
        except pa.ArrowInvalid:
            raise IngestError(table, i + 1, col, f"expected a date YYYY-MM-DD, got {values[i]!r}") from None
    raise AssertionError("a date column failed to cast but no value did")


def _instants(values: list, table: str, col: str) -> pa.Array:
    """Timestamp messages as UTC microseconds; out-of-range seconds or nanos name their row."""
    micros = []
    for i, ts in enumerate(values):
        if ts is None:
            micros.append(None)
            continue
        if not MIN_SECONDS <= ts.seconds <= MAX_SECONDS or not 0 <= ts.nanos < 1_000_000_000:
            raise IngestError(table, i + 1, col, f"timestamp out of range (seconds {ts.seconds}, "
                                                 f"nanos {ts.nanos}): 0001-01-01 to 9999-12-31 UTC")
        micros.append(ts.seconds * 1_000_000 + ts.nanos // 1000)
    return pa.array(micros, CANONICAL["timestamp"])


# ================================================================ encode: rows -> messages

def encode_rows(table: str, rows) -> list:
    """Row messages of `table` from a list of dicts or a pyarrow Table (ValueError naming
    table, row and column for a value that has no place on the wire)."""
    if table not in ROW_MESSAGES:
        raise ValueError(f"unknown table {table!r}: expected one of {', '.join(TABLE_NAMES)}")
    if isinstance(rows, pa.Table):
        rows = rows.to_pylist()
    elif not isinstance(rows, (list, tuple)):
        raise TypeError(f"{table}: rows must be a list of dicts or a pyarrow Table, "
                        f"got {type(rows).__name__}")
    message = ROW_MESSAGES[table]
    types = {c.name: c.type for c in TABLES[table]}
    out = []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise TypeError(f"{table}, row {i}: expected a dict, got {type(row).__name__}")
        fields = {}
        for name, value in row.items():
            if name not in types:
                raise ValueError(f"{table}, row {i}, column {name}: unknown column in {table}")
            try:
                v = _wire_value(types[name], value)
            except (TypeError, ValueError) as e:
                raise ValueError(f"{table}, row {i}, column {name}: {e}") from None
            if v is not None:
                fields[name] = v
        out.append(message(**fields))
    return out


def _wire_value(ltype: str, v):
    """A Python or CSV-text value as the field value of its logical type (None: unset)."""
    if v is None or (isinstance(v, float) and v != v):    # None, or NaN from pandas
        return None
    if isinstance(v, str) and not v.strip() and ltype not in ("string", "list<string>"):
        return None                                       # a blank field, as in a CSV file
    if ltype in ("int64", "int32"):
        return _integer(v, ltype)
    if ltype == "string":
        if isinstance(v, str):
            return v
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            return str(v)
        raise TypeError(f"expected text, got {v!r}")
    if ltype == "bool":
        return _boolean(v)
    if ltype == "date":
        if isinstance(v, dt.datetime):
            raise TypeError(f"expected a date, got a datetime {v.isoformat()!r}")
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, str):
            return v          # checked by the server, row and column named
        raise TypeError(f"expected a date (datetime.date or YYYY-MM-DD), got {v!r}")
    if ltype == "timestamp":
        delta = _instant(v) - _EPOCH
        return pb.google_dot_protobuf_dot_timestamp__pb2.Timestamp(
            seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)
    if ltype == "list<string>":
        if isinstance(v, str):
            return [x.strip() for x in v.split(";") if x.strip()]
        if isinstance(v, (list, tuple, np.ndarray)) and all(isinstance(x, str) for x in v):
            return list(v)
        raise TypeError(f"expected a list of text or 'a;b' text, got {v!r}")
    raise AssertionError(ltype)


def _integer(v, ltype: str = "int64") -> int:
    """An int of an integer or integer text, within the range of ltype."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        n = int(v)
    elif isinstance(v, str) and _INT_TEXT.fullmatch(v.strip()):
        n = int(v.strip())
    else:
        raise TypeError(f"expected an integer, got {v!r}")
    lo, hi = INT_RANGE[ltype]
    if not lo <= n <= hi:
        raise ValueError(f"integer out of range for {ltype} ({lo}..{hi}), got {v!r}")
    return n


def _boolean(v) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in _TRUE_TEXT + _FALSE_TEXT:
        return v.strip().lower() in _TRUE_TEXT
    raise ValueError(f"expected a boolean (true/false/1/0), got {v!r}")


def _instant(v) -> dt.datetime:
    """An aware datetime of a datetime or ISO-8601 text with an offset or Z."""
    if isinstance(v, str):
        text = v.strip()
        if text.endswith(("Z", "z")):      # Python 3.10's fromisoformat does not read Z
            text = text[:-1] + "+00:00"
        try:
            v = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"expected an ISO-8601 timestamp with offset, e.g. "
                             f"2024-01-05T10:00:00Z, got {v!r}") from None
    if not isinstance(v, dt.datetime):
        raise TypeError(f"expected an aware datetime or ISO-8601 text, got {v!r}")
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValueError(f"timestamp without UTC offset: {v.isoformat()!r}")
    return v


def encode_batch(dataset: str, customers=None, purchases=None, visits=None, laybys=None,
                 delete=(), batch_id: Optional[str] = None) -> pb.ApplyChangesRequest:
    """The ApplyChangesRequest of Engine.apply_changes' arguments (rows as dicts or Tables)."""
    given = {"customers": customers, "purchases": purchases, "visits": visits, "laybys": laybys}
    req = pb.ApplyChangesRequest(dataset=dataset, batch_id=batch_id or "")
    for table, rows in given.items():
        if rows is not None:
            getattr(req, table).extend(encode_rows(table, rows))
    try:
        req.delete_customer_ids.extend(_integer(x) for x in delete)
    except (TypeError, ValueError) as e:
        raise ValueError(f"delete: {e}") from None
    return req


# ================================================================ acks

def encode_counts(counts: Optional[dict]) -> pb.ChangeCounts:
    """ChangeCounts of a {customers, purchases, visits, laybys, deleted} dict (absent: 0)."""
    counts = counts or {}
    return pb.ChangeCounts(**{k: int(counts.get(k, 0) or 0) for k in COUNT_KEYS})


def decode_counts(m: pb.ChangeCounts) -> dict:
    return {k: getattr(m, k) for k in COUNT_KEYS}


def encode_ack(ack: dict) -> pb.ApplyChangesResponse:
    """The ApplyChangesResponse of Engine.apply_changes' answer."""
    return pb.ApplyChangesResponse(sequence=int(ack["sequence"]), rows=encode_counts(ack.get("rows")),
                        not_found=[int(x) for x in ack.get("not_found", ())],
                        duplicate=bool(ack.get("duplicate", False)))


def decode_ack(m: pb.ApplyChangesResponse) -> dict:
    """The engine's answer dict of an ApplyChangesResponse."""
    return {"sequence": m.sequence, "rows": decode_counts(m.rows), "not_found": list(m.not_found),
            "duplicate": m.duplicate}


def encode_compaction(r: dict) -> pb.CompactResponse:
    """The CompactResponse of Engine.compact's answer."""
    return pb.CompactResponse(version=str(r.get("version", "")), sequence=int(r.get("sequence", 0)),
                              seconds=float(r.get("seconds", 0.0)))


def decode_compaction(m: pb.CompactResponse) -> dict:
    return {"version": m.version, "sequence": m.sequence, "seconds": m.seconds}


def encode_live(live: Optional[dict]) -> Optional[pb.LiveState]:
    """The LiveState of Engine.info()["live"] (None when the engine reports none)."""
    if not isinstance(live, dict):
        return None
    return pb.LiveState(sequence=int(live.get("sequence", 0) or 0), pending=encode_counts(live.get("pending")))
