"""Read a snapshot back as canonical arrow tables (the inverse of a build), and merge
a later load into them (customers upserted by customer_id, lines appended)."""
from __future__ import annotations

from typing import Dict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .customer_attrs import INT32_NULL
from .load import LAYBY_STATUS_CODES, VISIT_STATUS_CODES
from .runs import LINE_COLUMNS
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


def _lines(snap, prefix: str) -> dict:
    """Every line of a table: its internal id and stored columns (shard, run, line order)."""
    parts = []
    bases = snap.shard_bases()
    for s, sh in enumerate(snap.manifest.shards):
        for run in sh.table_runs(prefix):
            cols = snap.run_arrays(s, prefix, run)
            cols["iid"] = cols.pop("cust").astype(np.int64) + bases[s]
            parts.append(cols)
    names = list(LINE_COLUMNS[prefix]) + ["iid"]
    names.remove("cust")
    if not parts:
        return {k: np.zeros(0, LINE_COLUMNS[prefix].get(k, np.int64)) for k in names}
    return {k: np.concatenate([p[k] for p in parts]) for k in names}


def _without(t: pa.Table, iids: np.ndarray, drop) -> pa.Table:
    if drop is None or not len(drop):
        return t
    return t.filter(pa.array(~np.isin(iids, drop)))


def snapshot_tables(snap, drop_customers=None, drop_lines=None) -> Dict[str, pa.Table]:
    """Every table of a snapshot with canonical types (line order: by shard, run, day,
    instant), without erased customers, the customers of internal ids `drop_customers` and
    the lines of `drop_lines`."""
    ids = np.arange(snap.n, dtype=np.int64)
    erased = np.asarray(snap.bitmap("erased").to_array(), np.int64)
    drop = erased if drop_customers is None else np.union1d(erased, np.asarray(drop_customers, np.int64))
    out = {"customers": _without(snap.profile().cast(table_schema("customers")), ids, drop)}
    ext = snap.ext_ids()
    ts_type = CANONICAL["timestamp"]

    p = _lines(snap, "p")
    qty = p["quantity"]
    cols = {
        "customer_id": pa.array(ext[p["iid"]], pa.int64()),
        "purchased_at": pa.array(p["ts"], pa.int64()).cast(ts_type),
        "amount": pa.array(p["amount"], pa.int64()),
        "quantity": pa.array(qty, pa.int32(), mask=qty == INT32_NULL),
    }
    for f in PRODUCT_FIELDS:
        cols[f] = decode(p[f"c.{f}"], snap.dictionary(f))
    # order ids are stored as their 64-bit keys (engine.storage.orders): exported as the key
    # in hex ("#" + 16 digits), which groups lines into the same orders; null stays null
    okeys = p["order"] if "order" in p else np.zeros(p["ts"].size, np.int64)
    cols["order_id"] = pa.array([None if k == 0 else f"#{int(k) & 0xFFFFFFFFFFFFFFFF:016x}" for k in okeys.tolist()],
                                pa.string()) if okeys.any() else pa.nulls(okeys.size, pa.string())
    out["purchases"] = _without(pa.table({c.name: cols[c.name] for c in TABLES["purchases"]
                                          if c.name in cols}, schema=table_schema("purchases")), p["iid"], drop_lines)

    v = _lines(snap, "v")
    out["visits"] = _without(pa.table({
        "customer_id": pa.array(ext[v["iid"]], pa.int64()),
        "starts_at": pa.array(v["ts"], pa.int64()).cast(ts_type),
        "status": decode(v["status"], list(VISIT_STATUS_CODES)),
        "shop": decode(v["shop"], snap.dictionary("shop")),
    }, schema=table_schema("visits")), v["iid"], drop_lines)

    lb = _lines(snap, "l")
    out["laybys"] = _without(pa.table({
        "customer_id": pa.array(ext[lb["iid"]], pa.int64()),
        "opened_on": pa.array(lb["opened"], pa.int32()).cast(pa.date32()),
        "due_on": pa.array(lb["due"], pa.int32()).cast(pa.date32()),
        "balance": pa.array(lb["balance"], pa.int64()),
        "status": decode(lb["status"], list(LAYBY_STATUS_CODES)),
    }, schema=table_schema("laybys")), lb["iid"], drop_lines)
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
