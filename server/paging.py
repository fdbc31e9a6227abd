"""Preview pages. A page token is opaque to callers: base64url JSON naming the request it
belongs to (a fingerprint of dataset, source, n and fields), the instant evaluated and where
the previous page ended (its last customer_id and the rows before it). A page starts right
after that customer in result order; if the customer has left the result since (a live
change), at the same position instead.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Optional, Tuple

import numpy as np

from segments.engine.errors import InvalidArgument
from segments.engine.results import Preview, rank_array

UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def fingerprint(request) -> str:
    """What must not change from page to page: dataset, source, page size and fields."""
    h = hashlib.sha256()
    for part in (request.dataset.encode(), request.source.SerializeToString(deterministic=True),
                 str(request.n).encode(), "\0".join(request.fields).encode()):
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()[:16]


def encode_token(fp: str, as_of: dt.datetime, after_id: int, offset: int) -> str:
    micros = (as_of - _EPOCH) // dt.timedelta(microseconds=1)
    raw = json.dumps({"v": 1, "fp": fp, "at": micros, "after": int(after_id), "offset": int(offset)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, fp: str) -> Tuple[dt.datetime, int, int]:
    """(as_of, after customer_id, offset); InvalidArgument("page_token") if it is not one of
    ours or belongs to another request."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if raw.get("v") != 1:
            raise ValueError
        at, after, offset = int(raw["at"]), int(raw["after"]), int(raw["offset"])
        as_of = _EPOCH + dt.timedelta(microseconds=at)
    except (ValueError, KeyError, TypeError, OverflowError, json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidArgument("page_token", "not a page token of this server") from None
    if raw.get("fp") != fp:
        raise InvalidArgument("page_token", "belongs to another request: keep dataset, source, n and fields "
                                            "as they were for the first page")
    if offset < 0:
        raise InvalidArgument("page_token", "not a page token of this server")
    return as_of, after, offset


def later_page(engine, dataset: str, seg, n: int, fields: tuple, as_of: dt.datetime, after_id: int, offset: int,
               deadline: Optional[float]) -> Tuple[Preview, Optional[Tuple[int, int]]]:
    """A page after the first: (Preview of the page, (last customer_id, rows before the next
    page) or None when it is the last page)."""
    m = engine.materialize(dataset, seg, (), as_of, deadline)
    ids = m.customer_ids
    hit = np.flatnonzero(ids == after_id)
    start = int(hit[0]) + 1 if hit.size else min(offset, int(ids.size))
    page = ids[start:start + n]
    rows = [{"customer_id": int(c)} for c in page]
    if fields and page.size:
        got = engine.rows_of(dataset, page, fields)
        where = {int(c): i for i, c in enumerate(got.customer_ids)}
        cols = {f: got.columns[f].to_pylist() for f in fields}
        for row in rows:
            i = where.get(row["customer_id"])
            for f in fields:
                row[f] = None if i is None else cols[f][i]
    if m.rank_values is not None:
        for row, v in zip(rows, rank_array(m.rank_values[start:start + n], m.rank_key).to_pylist()):
            row["rank_value"] = v
    nxt = (int(page[-1]), start + int(page.size)) if page.size and start + page.size < ids.size else None
    return Preview(rows, int(ids.size), m.missing_ids, m.elapsed_ms), nxt
