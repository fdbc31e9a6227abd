"""Read a snapshot back as canonical arrow tables (the inverse of engine.build), and merge
a later load into them (customers upserted by customer_id, lines appended)."""
from __future__ import annotations

from typing import Dict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .build import INT32_NULL, LAYBY_STATUS_CODES, VISIT_STATUS_CODES
from .ingest_read import CANONICAL
from ..model.schema import TABLES
from ..model.segment import PRODUCT_FIELDS


def table_schema(table: str) -> pa.Schema:
    return pa.schema([(c.name, CANONICAL[c.type]) for c in TABLES[table]])


def decode(codes: np.ndarray, dictionary: list) -> pa.Array:
    """int codes (0 = null) -> string array."""
    d = pa.array(dictionary, type=pa.string())
    idx = pa.array(codes.astype(np.int32) - 1, mask=codes == 0)
    return d.take(idx) if len(d) else pa.nulls(len(codes), pa.string())


def _iids(snap, prefix):
    """Internal id of every line of a line table (shard order)."""
    bases = snap.shard_bases()
    cdt = np.dtype(snap.meta["cust_dtype"])
    return np.concatenate([snap.array(f"s/{s:06d}/{prefix}/cust", cdt).astype(np.int64) + bases[s]
                           for s in range(snap.n_shards)]) if snap.n_shards else np.zeros(0, np.int64)


def _cat(snap, prefix, col, dtype):
    parts = [np.asarray(snap.array(f"s/{s:06d}/{prefix}/{col}", dtype)) for s in range(snap.n_shards)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _without(t: pa.Table, iids: np.ndarray, drop) -> pa.Table:
    if drop is None or not len(drop):
        return t
    return t.filter(pa.array(~np.isin(iids, drop)))


def snapshot_tables(snap, drop_customers=None, drop_lines=None) -> Dict[str, pa.Table]:
    """Every table of a snapshot with canonical types (line order: by shard, day, instant),
    without the customers of internal ids `drop_customers` and the lines of `drop_lines`."""
    out = {"customers": _without(snap.profile().cast(table_schema("customers")),
                                 np.arange(snap.n, dtype=np.int64), drop_customers)}
    ext = snap.ext_ids()
    ts_type = CANONICAL["timestamp"]

    p_iid = _iids(snap, "p")
    cid = ext[p_iid]
    codes = np.concatenate([np.asarray(snap.array(f"s/{s:06d}/p/codes", np.dtype(snap.meta.get("code_dtype", "int32")))).reshape(8, -1)
                            for s in range(snap.n_shards)], axis=1)
    qty = _cat(snap, "p", "quantity", np.int32)
    cols = {
        "customer_id": pa.array(cid, pa.int64()),
        "purchased_at": pa.array(_cat(snap, "p", "ts", np.int64), pa.int64()).cast(ts_type),
        "amount": pa.array(_cat(snap, "p", "amount", np.dtype(snap.meta.get("amount_dtype", "int64")))
                           .astype(np.int64), pa.int64()),
        "quantity": pa.array(qty, pa.int32(), mask=qty == INT32_NULL),
    }
    decoded = {f: decode(codes[i], snap.dictionary(f)) for i, f in enumerate(PRODUCT_FIELDS)}
    for c in TABLES["purchases"][4:]:
        cols[c.name] = decoded[c.name]
    out["purchases"] = _without(pa.table(cols, schema=table_schema("purchases")), p_iid, drop_lines)

    v_iid = _iids(snap, "v")
    out["visits"] = _without(pa.table({
        "customer_id": pa.array(ext[v_iid], pa.int64()),
        "starts_at": pa.array(_cat(snap, "v", "ts", np.int64), pa.int64()).cast(ts_type),
        "status": decode(_cat(snap, "v", "status", np.uint8), list(VISIT_STATUS_CODES)),
        "shop": decode(_cat(snap, "v", "shop", np.int32), snap.dictionary("shop")),
    }, schema=table_schema("visits")), v_iid, drop_lines)

    l_iid = _iids(snap, "l")
    out["laybys"] = _without(pa.table({
        "customer_id": pa.array(ext[l_iid], pa.int64()),
        "opened_on": pa.array(_cat(snap, "l", "opened", np.int32), pa.int32()).cast(pa.date32()),
        "due_on": pa.array(_cat(snap, "l", "due", np.int32), pa.int32()).cast(pa.date32()),
        "balance": pa.array(_cat(snap, "l", "balance", np.int64), pa.int64()),
        "status": decode(_cat(snap, "l", "status", np.uint8), list(LAYBY_STATUS_CODES)),
    }, schema=table_schema("laybys")), l_iid, drop_lines)
    return out


def merge_tables(old: Dict[str, pa.Table], new: Dict[str, pa.Table]) -> Dict[str, pa.Table]:
    """Tables `old` with `new` applied: customers upserted, lines appended."""
    out = {}
    if "customers" in new:
        nc = new["customers"].cast(table_schema("customers"))
        keep = pc.invert(pc.is_in(old["customers"].column("customer_id"), value_set=nc.column("customer_id")))
        out["customers"] = pa.concat_tables([old["customers"].filter(keep), nc])
    else:
        out["customers"] = old["customers"]
    for t in ("purchases", "visits", "laybys"):
        if t in new and t in old:
            out[t] = pa.concat_tables([old[t], new[t].cast(table_schema(t))])
        elif t in new:
            out[t] = new[t]
        elif t in old:
            out[t] = old[t]
    return out
