"""A shard's customer object: everything a version keeps per customer, for one shard.

Keys under the object's prefix (row r is internal id base + r):
  ext                   int64 customer_id of each row
  d.<name>              dense per-customer columns (customer_attrs.DENSE)
  b/<field>/<code>      roaring bitmaps (portable format) of the shard's members, internal ids
  profile, search       Arrow IPC streams: the rows (output fields) and their normalised text
  t/<field>/...         trigram posting lists of each search field (text_index), local rows
  e/last_name/hash|rows surname equality index: FNV-1a 64 of the normalised last name, sorted,
                        with the row of each (exact bytes are compared on a hit)
Erased customers keep their row (so ids stay dense) with every value null, not alive, and
in b/erased/1; their data is gone.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import pyarrow as pa
from numba import njit
from pyroaring import BitMap

from . import layout as LY
from . import text_index
from .customer_attrs import derive

EQUAL_INDEX_FIELDS = ("last_name",)
FNV_OFFSET = np.uint64(0xcbf29ce484222325)
FNV_PRIME = np.uint64(0x100000001b3)


@njit(cache=True, nogil=True)
def text_hashes(data, offsets):
    """FNV-1a 64 of each row's bytes (0 for an empty row)."""
    n = offsets.size - 1
    out = np.zeros(n, np.uint64)
    for r in range(n):
        if offsets[r + 1] == offsets[r]:
            continue
        h = FNV_OFFSET
        for i in range(offsets[r], offsets[r + 1]):
            h = (h ^ np.uint64(data[i])) * FNV_PRIME
        out[r] = h
    return out


def ipc_bytes(table: pa.Table, compress: bool = False) -> bytes:
    """An Arrow IPC stream of table; with `compress`, its buffers zstd-compressed (readers
    decompress on their own: a copy in memory instead of a view of the part)."""
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd") if compress else None
    with pa.ipc.new_stream(sink, table.schema, options=options) as wr:
        wr.write_table(table)
    return sink.getvalue().to_pybytes()


def _bitmap(rows: np.ndarray, base: int) -> bytes:
    return BitMap((np.asarray(rows, np.int64) + base).astype(np.uint32)).serialize()


def _groups(put, prefix: str, codes: np.ndarray, base: int, rows: Optional[np.ndarray] = None) -> None:
    if rows is None:
        rows = np.arange(codes.size, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    sc = codes[order]
    bounds = np.flatnonzero(np.diff(sc)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [sc.size]))
    for s, e in zip(starts, ends):
        if e > s and sc[s] != 0:
            put(f"b/{prefix}/{int(sc[s])}", _bitmap(rows[order[s:e]], base))


def build_customers(put, rows: pa.Table, ext: np.ndarray, base: int, dicts: Dict[str, list],
                    erased: Optional[np.ndarray] = None) -> Dict[str, list]:
    """Write a shard's customer object through put(key suffix, value): `rows` in local id
    order (canonical customers schema, customer_id included), `ext` their customer_ids,
    `erased` a bool per row. `dicts` holds the customer value dictionaries; values they lack
    are appended. Returns the dictionaries after that."""
    d = derive(rows, dicts)
    n = rows.num_rows
    put("ext", np.ascontiguousarray(ext, np.int64))
    for name, arr in d.dense.items():
        put(f"d.{name}", arr)
    flags = dict(d.flags)
    if erased is not None and erased.any():
        for k in flags:
            flags[k] = flags[k] & ~erased
        flags["erased"] = erased
    for name, f in flags.items():
        put(f"b/{name}/1", _bitmap(np.flatnonzero(f), base))
    for name, codes in d.groups.items():
        _groups(put, name, codes, base)
    _groups(put, "tag", d.tag_codes, base, d.tag_rows)
    lean = LY.lean_shard(n)   # compressed rows, and search scans them (no trigram index)
    put("profile", ipc_bytes(rows, compress=lean))
    put("search", ipc_bytes(pa.table(d.search), compress=lean))
    if not lean:
        text_index.build_index(lambda k, v: put(k, v), d.search)
    for f in EQUAL_INDEX_FIELDS:
        data, offsets = text_index.text_buffers(d.search[f])
        h = text_hashes(data, offsets)
        order = np.argsort(h, kind="stable")
        keep = order[h[order] != 0]
        put(f"e/{f}/hash", h[keep])
        put(f"e/{f}/rows", keep.astype(np.uint32))
    assert n == ext.size
    return d.dicts


def fnv1a64(data: bytes) -> int:
    """FNV-1a 64 of bytes, as text_hashes computes it per row (0 for empty)."""
    if not data:
        return 0
    h = int(FNV_OFFSET)
    for b in data:
        h = ((h ^ b) * int(FNV_PRIME)) & 0xFFFFFFFFFFFFFFFF
    return h
