"""Build one immutable dataset version (an LMDB environment) from validated arrow tables.

Layout of a version (keys are ASCII; values raw little-endian numpy bytes unless noted):
  meta                      JSON: counts, shards, timezone, column dtypes
  dict/<name>               JSON list of strings; code = index + 1, code 0 = null
  c/<col>                   per-customer dense arrays indexed by internal id
  b/<field>/<code>          roaring bitmap (portable format) of internal ids
  s/<shard>/p/<col>         purchases of the shard's customers, sorted by (local day, instant)
  s/<shard>/v/<col>         visits, same order;  s/<shard>/l/<col>  laybys
  s/<shard>/profile         Arrow IPC stream: the shard's customer rows (output fields)
  s/<shard>/search          Arrow IPC stream: normalised text for search / surname
  t/<field>/{keys,offsets,ids,pos}  trigram posting lists (CSR) of each search field (text_index)
Internal ids are ranks of customer_id (ascending), so bitmap order is customer_id order.
A shard is the contiguous internal-id range [s << bits, (s + 1) << bits).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, Optional

import lmdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..model import timerange
from .customer_attrs import (INT32_NULL, INT64_NULL, SEARCH_TEXT_FIELDS, VALUE_FIELDS,  # noqa: F401
                             day_numbers as _days, derive, encode as _encode, filled as _filled,
                             np_column as _np)
from . import build_kernels as K
from . import text_index
from .bitmaps import mask_to_roaring
from ..model.segment import PRODUCT_FIELDS as PRODUCT_FIELDS_ORDER

MAP_SIZE = 1 << 40
VISIT_STATUS_CODES = {"completed": 1, "booked": 2, "cancelled": 3, "no_show": 4}
LAYBY_STATUS_CODES = {"open": 1, "closed": 2}
FORMAT_VERSION = 1


def shard_key(shard: int, table: str, col: str) -> bytes:
    return f"s/{shard:06d}/{table}/{col}".encode()


class _Writer:
    """Puts numpy arrays / bytes into an LMDB env in bounded transactions."""

    def __init__(self, path: Path):
        self.env = lmdb.open(str(path), map_size=MAP_SIZE, subdir=True, sync=False,
                             metasync=False, max_dbs=0, lock=True)
        self.txn = self.env.begin(write=True)
        self.pending = 0

    def put(self, key, value) -> None:
        if isinstance(key, str):
            key = key.encode()
        if isinstance(value, np.ndarray):
            value = np.ascontiguousarray(value).tobytes()
        elif isinstance(value, str):
            value = value.encode()
        self.txn.put(key, value)
        self.pending += len(value)
        if self.pending > (256 << 20):
            self.txn.commit()
            self.txn = self.env.begin(write=True)
            self.pending = 0

    def finish(self) -> None:
        self.txn.commit()
        self.env.sync(True)
        self.env.close()


def _bitmap_bytes(ids: np.ndarray, n: int) -> bytes:
    mask = np.zeros(n, dtype=np.uint8)
    mask[ids] = 1
    return mask_to_roaring(mask).tobytes()


def _put_groups(w: _Writer, prefix: str, codes: np.ndarray, n: int, ids: Optional[np.ndarray] = None) -> None:
    """One bitmap per nonzero code: b/<prefix>/<code> of the ids (default: positions)."""
    if ids is None:
        ids = np.arange(codes.size, dtype=np.int64)
    order = np.argsort(codes, kind="stable")
    sc = codes[order]
    bounds = np.flatnonzero(np.diff(sc)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [sc.size]))
    for s, e in zip(starts, ends):
        if e > s and sc[s] != 0:
            w.put(f"b/{prefix}/{int(sc[s])}", _bitmap_bytes(ids[order[s:e]], n))


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as wr:
        wr.write_table(table)
    return sink.getvalue().to_pybytes()


def build_version(path: Path, tables: Dict[str, pa.Table], timezone: str, shard_bits: int,
                  progress: Optional[Callable[[str], None]] = None, extra_meta: Optional[dict] = None) -> dict:
    """Write `tables` (canonical, validated; customers required) as a new LMDB version at
    `path` (which must not exist). Returns the meta dict. Removes `path` on failure."""
    t0 = time.perf_counter()
    path = Path(path)
    path.mkdir(parents=True)
    try:
        w = _Writer(path)
        meta = _build(w, tables, timezone, shard_bits, progress or (lambda s: None))
        meta["build_seconds"] = round(time.perf_counter() - t0, 3)
        meta.update(extra_meta or {})
        w.put("meta", json.dumps(meta))
        w.finish()
        return meta
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise


def _build(w: _Writer, tables, timezone, shard_bits, step) -> dict:
    zone = timerange.load_zone(timezone)
    cust = tables["customers"]
    ext = _np(cust.column("customer_id"), np.int64)
    order = np.argsort(ext, kind="stable")
    ext = ext[order]
    cust = cust.take(pa.array(order))
    n = int(ext.size)
    n_shards = max(1, (n + (1 << shard_bits) - 1) >> shard_bits)
    id_table = K.build_id_hash(ext)
    step("customers")

    # ---- per-customer dense columns, flags, value groups and search text
    w.put("c/ext_id", ext)
    d = derive(cust)
    for name, arr in d.dense.items():
        w.put(f"c/{name}", arr)
    for name, f in d.flags.items():
        w.put(f"b/{name}/1", _bitmap_bytes(np.flatnonzero(f), n))
    for name, codes in d.groups.items():
        _put_groups(w, name, codes, n)
    _put_groups(w, "tag", d.tag_codes, n, d.tag_rows)
    dicts = dict(d.dicts)
    search = d.search
    search_table = pa.table(search)
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        text_index.build_index(w.put, search, pool)  # t/<field>/*: trigram posting lists
    size = 1 << shard_bits
    for s in range(n_shards):
        a, b = s * size, min(n, (s + 1) * size)
        w.put(f"s/{s:06d}/profile", _ipc(cust.slice(a, b - a)))
        w.put(f"s/{s:06d}/search", _ipc(search_table.slice(a, b - a)))
    step("profiles")

    # ---- line tables, per shard
    rows = {"customers": n}
    shop_dict = sorted(set().union(*[
        set(pc.unique(tables[t].column("shop")).drop_null().to_pylist())
        for t in ("purchases", "visits") if t in tables]))
    dicts["shop"] = shop_dict
    p = tables.get("purchases")
    max_purchase = None
    amount_dtype = np.int64
    rollups, rollup_cutoff, rollup_max = [], None, None
    if p is not None and p.num_rows:
        codes = []
        for f in PRODUCT_FIELDS_ORDER:
            c, d = _encode(p.column(f), shop_dict if f == "shop" else None)
            codes.append(c)
            if f != "shop":
                dicts[f] = d
        ts = _np(pc.cast(p.column("purchased_at"), pa.int64()), np.int64)
        max_purchase = int(ts.max())
        amount = _np(p.column("amount"), np.int64)
        if amount.size and -(2**31) < amount.min() and amount.max() < 2**31:
            amount_dtype = np.int32  # a third fewer bytes per scanned line; sums stay int64
        cols = {
            "amount": amount.astype(amount_dtype),
            "quantity": _filled(p.column("quantity"), int(INT32_NULL), np.int32),
        }
        code_dtype = np.uint16 if max(len(d) for d in [shop_dict] + [dicts[f] for f in PRODUCT_FIELDS_ORDER
                                                                       if f != "shop"]) < 65535 else np.int32
        codes = [c.astype(code_dtype) for c in codes]
        rollups = rollup_specs([len(shop_dict) if f == "shop" else len(dicts[f]) for f in PRODUCT_FIELDS_ORDER])
        # Rollups cover lines up to a week before the newest day; later lines stay a short
        # tail that queries scan with the as-of check, so "now"-ish as-of instants use them.
        local_days = timerange.local_day_of_micros(ts, zone)
        rollup_cutoff = int(local_days.max()) - ROLLUP_TAIL_DAYS
        rolled = local_days <= rollup_cutoff
        rollup_max = int(ts[rolled].max()) if rolled.any() else None
        del local_days, rolled
        _write_lines(w, "p", id_table, p.column("customer_id"), ts, zone, shard_bits, n_shards, cols, codes,
                     rollups=rollups, n_customers=n, rollup_cutoff=rollup_cutoff)
    else:
        for f in PRODUCT_FIELDS_ORDER:
            dicts.setdefault(f, [] if f != "shop" else shop_dict)
        _write_lines(w, "p", id_table, pa.array([], pa.int64()), np.zeros(0, np.int64), zone, shard_bits,
                     n_shards, {"amount": np.zeros(0, np.int64), "quantity": np.zeros(0, np.int32)},
                     [np.zeros(0, np.uint16)] * len(PRODUCT_FIELDS_ORDER))
        code_dtype = np.uint16
    rows["purchases"] = 0 if p is None else p.num_rows
    step("purchases")

    v = tables.get("visits")
    if v is not None and v.num_rows:
        ts = _np(pc.cast(v.column("starts_at"), pa.int64()), np.int64)
        status, _ = _encode(v.column("status"), list(VISIT_STATUS_CODES))
        shop, _ = _encode(v.column("shop"), shop_dict)
        _write_lines(w, "v", id_table, v.column("customer_id"), ts, zone, shard_bits, n_shards,
                     {"status": status.astype(np.uint8), "shop": shop}, None)
    else:
        _write_lines(w, "v", id_table, pa.array([], pa.int64()), np.zeros(0, np.int64), zone, shard_bits,
                     n_shards, {"status": np.zeros(0, np.uint8), "shop": np.zeros(0, np.int32)}, None)
    rows["visits"] = 0 if v is None else v.num_rows
    step("visits")

    lb = tables.get("laybys")
    nl = 0 if lb is None else lb.num_rows
    iid = K.hash_lookup(*id_table, _np(lb.column("customer_id"), np.int64)) if nl else np.zeros(0, np.int64)
    shard = iid >> shard_bits
    order = np.argsort(shard, kind="stable")
    starts = np.searchsorted(shard[order], np.arange(n_shards + 1))
    lcols = {}
    if nl:
        lcols = {"opened": _days(lb.column("opened_on")), "due": _days(lb.column("due_on")),
                 "balance": _np(lb.column("balance"), np.int64),
                 "status": _encode(lb.column("status"), list(LAYBY_STATUS_CODES))[0].astype(np.uint8)}
    else:
        lcols = {"opened": np.zeros(0, np.int32), "due": np.zeros(0, np.int32),
                 "balance": np.zeros(0, np.int64), "status": np.zeros(0, np.uint8)}
    for s in range(n_shards):
        sel = order[starts[s]:starts[s + 1]]
        w.put(shard_key(s, "l", "cust"), (iid[sel] & (size - 1)).astype(np.uint16 if shard_bits <= 16 else np.uint32))
        for k, arr in lcols.items():
            w.put(shard_key(s, "l", k), arr[sel])
    rows["laybys"] = nl

    for name, d in dicts.items():
        w.put(f"dict/{name}", json.dumps(d))
    return {
        "format": FORMAT_VERSION, "timezone": timezone, "shard_bits": shard_bits,
        "n_customers": n, "n_shards": n_shards, "rows": rows, "ordered": True,
        "max_purchase_micros": max_purchase, "dicts": sorted(dicts),
        "cust_dtype": "uint16" if shard_bits <= 16 else "uint32",
        "code_dtype": np.dtype(code_dtype).name,
        "amount_dtype": np.dtype(amount_dtype).name,
        "rollups": {name: {"fields": [PRODUCT_FIELDS_ORDER[i] for i in idx], "dims": dims}
                    for name, idx, dims in rollups},
        "rollup_cutoff_day": rollup_cutoff, "rollup_max_micros": rollup_max,
    }


ROLLUP_MAX_WIDTH = 64  # codes per rollup: bounds the per-shard build scratch (n x width)
ROLLUP_TAIL_DAYS = 7   # newest days left out of the rollups, scanned at query time
ROLLUP_FIELDS = ((), ("department",), ("metal",), ("brand",), ("strain",), ("inventory_group",),
                 ("inventory_type",), ("shop",), ("department", "metal"))


def rollup_specs(dict_sizes) -> list:
    """[(name, field indexes, dims)] of the all-time rollups worth keeping: single product
    fields and the department x metal pair whose code space is small."""
    index = {f: i for i, f in enumerate(PRODUCT_FIELDS_ORDER)}
    out = []
    for fields in ROLLUP_FIELDS:
        idx = [index[f] for f in fields]
        dims = [dict_sizes[i] + 1 for i in idx]
        if int(np.prod(dims)) <= ROLLUP_MAX_WIDTH:
            out.append(("+".join(fields) or "all", idx, dims))
    return out


def _write_lines(w, prefix, id_table, cid_col, ts, zone, shard_bits, n_shards, cols, codes,
                 rollups=(), n_customers=0, rollup_cutoff=0):
    """Group lines by shard, order each shard by (local day, instant), write its columns.

    codes: a list of int32 code arrays (one per product field) or None."""
    size = 1 << shard_bits
    iid = K.hash_lookup(*id_table, _np(cid_col, np.int64))
    shard = iid >> shard_bits
    order, starts = K.bucket_order(shard, n_shards)
    cust_dtype = np.uint16 if shard_bits <= 16 else np.uint32
    table = None
    if ts.size:
        secs = ts // 1_000_000
        table = timerange.zone_transitions(zone, int(secs.min()), int(secs.max()))

    def shard_columns(s):
        idx = order[starts[s]:starts[s + 1]]
        idx = idx[np.argsort(ts[idx], kind="stable")]
        day = timerange.local_day_of_micros(ts[idx], zone, table)
        if day.size > 1 and (np.diff(day) < 0).any():  # a backward DST shift across midnight
            o = np.lexsort((ts[idx], day))
            idx, day = idx[o], day[o]
        out = {"cust": (iid[idx] & (size - 1)).astype(cust_dtype), "day": day, "ts": ts[idx]}
        for k, v in cols.items():
            out[k] = v[idx]
        if codes is not None:
            out["codes"] = np.stack([c[idx] for c in codes])
        n_shard = min(size, n_customers - s * size)
        upto = int(day.searchsorted(np.int32(rollup_cutoff), "right")) if rollups else 0
        for name, fidx, dims in rollups:  # aggregates per (customer, code) of lines to the cutoff
            if not fidx:  # "all": one entry per customer, every line
                code = np.zeros(upto, np.int64)
            else:
                code = out["codes"][fidx[0]][:upto].astype(np.int64)
            if len(fidx) == 2:
                code = code * dims[1] + out["codes"][fidx[1]][:upto]
            parts = K.rollup_build(out["cust"][:upto], out["amount"][:upto], day[:upto], code, n_shard,
                                   int(np.prod(dims)))
            for key, arr in zip(("ptr", "code", "spend", "count", "last"), parts):
                out[f"r.{name}.{key}"] = arr
        return s, out

    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        for s, out in pool.map(shard_columns, range(n_shards)):
            for k, v in out.items():
                w.put(shard_key(s, prefix, k), v)
