"""What the engine derives from customer rows: dense columns, flag and value groups, text.

One function serves the bulk builder (every customer of a version) and the live overlay
(the customers changed since): both must derive a row identically, or an upserted customer
would answer differently from a bulk-loaded one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .ingest_read import digits_only, normalize_text

INT64_NULL = np.int64(-(2**63))
INT32_NULL = np.int32(-(2**31))
VALUE_FIELDS = ("gender", "marital_status", "origin_shop", "city", "postal_code")
SEARCH_TEXT_FIELDS = ("first_name", "last_name", "email", "address", "city", "postal_code")
# c/<name> arrays: dtype and null fill
DENSE = {"loyalty_points": (np.int64, INT64_NULL), "account_balance": (np.int64, INT64_NULL),
         "wedding_date_day": (np.int32, INT32_NULL), "joined_on_day": (np.int32, INT32_NULL),
         "birth_year": (np.int16, 0), "birth_md": (np.int16, 0), "anniversary_md": (np.int16, 0)}


@dataclass
class Derived:
    """Per-row derivations of a customers table (row order kept)."""
    dense: Dict[str, np.ndarray]      # c/<name> values
    flags: Dict[str, np.ndarray]      # b/<name>/1 membership (bool per row), incl. alive
    groups: Dict[str, np.ndarray]     # b/<name>/<code> (int32 code per row, 0 = none)
    tag_codes: np.ndarray             # b/tag/<code>: (code, row) pairs
    tag_rows: np.ndarray
    dicts: Dict[str, list]            # value dictionaries (code = index + 1)
    search: Dict[str, pa.Array]       # normalised search text per field


def np_column(col, dtype=None) -> np.ndarray:
    """A numpy copy of an arrow column without nulls."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    a = col.to_numpy(zero_copy_only=False)
    return a if dtype is None else a.astype(dtype, copy=False)


def filled(col, fill, dtype) -> np.ndarray:
    return np_column(pc.fill_null(col, pa.scalar(fill, type=col.type)), dtype)


def day_numbers(col) -> np.ndarray:
    """date32 column -> int32 day numbers, INT32_NULL for null."""
    return filled(pc.cast(col, pa.int32()), int(INT32_NULL), np.int32)


def month_day(col):
    """date32 column -> (year int16, month*100+day int16), zeros for null."""
    days = day_numbers(col)
    valid = days != INT32_NULL
    d = np.where(valid, days, 0).astype("datetime64[D]")
    y = d.astype("datetime64[Y]").astype(np.int64) + 1970
    m = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (d - d.astype("datetime64[M]")).astype(np.int64) + 1
    year = np.where(valid, y, 0).astype(np.int16)
    md = np.where(valid, m * 100 + dd, 0).astype(np.int16)
    return year, md


def encode(col, dictionary: Optional[list] = None, extend: bool = False):
    """Dictionary-encode a string column: (int32 codes, dictionary list); 0 = null.

    One hash pass (arrow dictionary_encode), then the small local dictionary is remapped
    onto `dictionary` (default: the sorted distinct values). Values outside it get 0, or
    with `extend` are appended to a copy of it (new codes after the old ones)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    de = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
    local = de.dictionary.to_pylist()
    if dictionary is None:
        dictionary = sorted(set(v for v in local if v is not None))
    elif extend:
        known = set(dictionary)
        new = sorted(set(v for v in local if v is not None and v not in known))
        if new:
            dictionary = list(dictionary) + new
    pos = _positions(dictionary)
    remap = np.array([0] + [pos.get(v, 0) for v in local], dtype=np.int32)
    idx = filled(pc.cast(de.indices, pa.int64()), -1, np.int64) + 1
    return remap[idx], dictionary


def encode_local(col):
    """(distinct values of a string column as a list, int64 index per row into 1 + that list,
    0 for null): the hashing half of `encode`, free of any shared dictionary."""
    if isinstance(col, pa.ChunkedArray):
        col = col.unify_dictionaries() if pa.types.is_dictionary(col.type) else col
        if pa.types.is_dictionary(col.type) and col.num_chunks > 1:
            dictionary = col.chunk(0).dictionary
            indices = pa.chunked_array([c.indices for c in col.chunks]).combine_chunks()
            return dictionary.to_pylist(), filled(pc.cast(indices, pa.int64()), -1, np.int64) + 1
        col = col.combine_chunks()
    de = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
    return de.dictionary.to_pylist(), filled(pc.cast(de.indices, pa.int64()), -1, np.int64) + 1


def remap_local(local: list, dictionary: list):
    """(remap int32 array: 1 + local index -> code in the dictionary, the dictionary with the
    local values it lacked appended in sorted order): the shared half of `encode`."""
    known = set(dictionary)
    new = sorted(set(v for v in local if v is not None and v not in known))
    if new:
        dictionary = list(dictionary) + new
    pos = _positions(dictionary)
    return np.array([0] + [pos.get(v, 0) for v in local], dtype=np.int32), dictionary


_POS: dict = {}


def _positions(dictionary: list) -> dict:
    """value -> code of a dictionary, memoised for the live dictionaries that every batch
    of appended lines encodes against (keyed by identity and length; lists only grow by
    copy, and the memo holds the list so its id is not reused)."""
    key = (id(dictionary), len(dictionary))
    hit = _POS.get(key)
    if hit is not None and hit[0] is dictionary:
        return hit[1]
    pos = {v: i + 1 for i, v in enumerate(dictionary)}
    if len(_POS) > 256:
        _POS.clear()
    _POS[key] = (dictionary, pos)
    return pos


def derive(cust: pa.Table, dicts: Optional[Dict[str, list]] = None, search: bool = True) -> Derived:
    """Derive every indexed attribute of the rows of `cust` (canonical customers schema).

    Without `dicts` the value dictionaries are the sorted distinct values (a bulk build);
    with them, known values keep their codes and new ones are appended (live changes).
    search=False leaves the normalised search text out (`search` is then empty): it is most
    of derive's cost, and live changes need it only when a search condition runs."""
    dense = {}
    for name in ("loyalty_points", "account_balance"):
        dense[name] = filled(cust.column(name), int(INT64_NULL), np.int64)
    for name in ("wedding_date", "joined_on"):
        dense[f"{name}_day"] = day_numbers(cust.column(name))
    dense["birth_year"], dense["birth_md"] = month_day(cust.column("birth_date"))
    _, dense["anniversary_md"] = month_day(cust.column("anniversary_date"))

    def present(name):
        col = cust.column(name)
        return filled(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0), False, np.bool_)

    flags = {
        "alive": filled(cust.column("active"), True, np.bool_),
        "has_email": present("email"), "has_phone": present("phone"),
        "email_opt_in": filled(cust.column("email_opt_in"), False, np.bool_),
        "sms_opt_in": filled(cust.column("sms_opt_in"), False, np.bool_),
        "loyalty_member": filled(cust.column("loyalty_member"), False, np.bool_),
    }
    flags["email_reach"] = flags["has_email"] & flags["email_opt_in"]
    flags["sms_reach"] = flags["has_phone"] & flags["sms_opt_in"]

    groups = {"birth_month": (dense["birth_md"] // 100).astype(np.int32),
              "anniversary_month": (dense["anniversary_md"] // 100).astype(np.int32)}
    out_dicts = {}
    for name in VALUE_FIELDS:
        groups[name], out_dicts[name] = encode(cust.column(name), (dicts or {}).get(name), dicts is not None)
    tags = cust.column("tags").combine_chunks()
    tag_codes, out_dicts["tag"] = encode(pc.list_flatten(tags), (dicts or {}).get("tag"), dicts is not None)
    parents = np_column(pc.list_parent_indices(tags), np.int64)
    keep = tag_codes != 0

    return Derived(dense, flags, groups, tag_codes[keep], parents[keep], out_dicts,
                   derive_search(cust) if search else {})


def derive_search(cust: pa.Table) -> Dict[str, pa.Array]:
    """The normalised search text of each search field of the rows of `cust`."""
    out = {f: normalize_text(cust.column(f).combine_chunks()) for f in SEARCH_TEXT_FIELDS}
    out["phone"] = digits_only(cust.column("phone").combine_chunks())
    return out


def take_derived(d: Derived, idx: np.ndarray) -> Derived:
    """The derivations of rows `idx` (int positions, no repeats) of d's rows, in that order."""
    idx = np.asarray(idx, np.int64)
    inverse = np.full(_rows(d), -1, np.int64)
    inverse[idx] = np.arange(idx.size)
    moved = inverse[d.tag_rows]
    keep = moved >= 0
    take = pa.array(idx)
    return Derived({k: v[idx] for k, v in d.dense.items()}, {k: v[idx] for k, v in d.flags.items()},
                   {k: v[idx] for k, v in d.groups.items()}, d.tag_codes[keep], moved[keep], d.dicts,
                   {k: v.take(take) for k, v in d.search.items()})


def concat_derived(parts) -> Derived:
    """The derivations of each part's rows, in order, in one pass. Each part's dictionaries
    must extend the previous ones' (live dictionaries only grow), so codes keep their
    meaning; the last part's are the result's."""
    parts = list(parts)
    a = parts[0]
    if len(parts) == 1:
        return a
    offsets = np.cumsum([0] + [_rows(d) for d in parts[:-1]])
    return Derived({k: np.concatenate([d.dense[k] for d in parts]) for k in a.dense},
                   {k: np.concatenate([d.flags[k] for d in parts]) for k in a.flags},
                   {k: np.concatenate([d.groups[k] for d in parts]) for k in a.groups},
                   np.concatenate([d.tag_codes for d in parts]),
                   np.concatenate([d.tag_rows + o for d, o in zip(parts, offsets)]),
                   parts[-1].dicts, {k: pa.concat_arrays([d.search[k] for d in parts]) for k in a.search})


def _rows(d: Derived) -> int:
    return d.flags["alive"].size
