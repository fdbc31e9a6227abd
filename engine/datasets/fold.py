"""What a compaction writes: the changes of a live state, shard by shard.

The live state (engine.live.state) holds every change since the version in the merchant's
terms turned into internal ids: the current rows of changed customers, the erased ids, and
the appended lines per shard with local days and dictionary codes already computed. This
regroups them as the per-shard changes the version builder (engine.storage.build) applies.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import pyarrow as pa

from ..live.state import LiveState
from ..model.segment import PRODUCT_FIELDS
from ..storage.build import ShardChanges


def _by_shard(iids: np.ndarray, bits: int):
    shard = iids >> bits
    order = np.argsort(shard, kind="stable")
    sh = shard[order]
    cuts = np.flatnonzero(sh[1:] != sh[:-1]) + 1
    for a, b in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [sh.size]))):
        if b > a:
            yield int(sh[a]), order[a:b]


def state_changes(base, st: LiveState, bits: int) -> Tuple[Dict[int, ShardChanges], int, bool, Dict[str, list]]:
    """(changes per shard, internal ids allocated, ordered, dictionaries) of a live state over
    its base Snapshot (None for a dataset that had no version)."""
    ov = st.overlay
    changes: Dict[int, ShardChanges] = {}
    dead = np.asarray(ov.dead.to_array(), np.int64)
    # customer rows: every changed customer's current row; an erased new customer keeps a
    # row holding only its customer_id (its id stays allocated, its data does not)
    rows = ov.rows_table()
    missing = np.setdiff1d(dead[dead >= ov.base_n], ov.iids)
    if missing.size:
        schema = rows.schema
        filler = {f.name: pa.nulls(missing.size, f.type) for f in schema}
        filler["customer_id"] = pa.array(ov.new_ext[missing - ov.base_n], pa.int64())
        filler["_iid"] = pa.array(missing, pa.int64())
        rows = pa.concat_tables([rows, pa.table(filler, schema=schema)])
    if rows.num_rows:
        iids = np.asarray(rows.column("_iid").to_numpy(), np.int64)
        for s, idx in _by_shard(iids, bits):
            changes.setdefault(s, ShardChanges()).rows = rows.take(pa.array(idx))
    for s, idx in _by_shard(dead, bits):
        changes.setdefault(s, ShardChanges()).erased = dead[idx]
    for prefix in ("p", "v", "l"):
        for s, cols in st.lines(prefix) or ():
            out = {k: v for k, v in cols.items() if k != "codes"}
            if prefix == "p":
                codes = cols["codes"]
                for j, f in enumerate(PRODUCT_FIELDS):
                    out[f"c.{f}"] = codes[:, j].astype(np.uint32)
            if prefix == "v":
                out["shop"] = cols["shop"].astype(np.uint32)
            changes.setdefault(s, ShardChanges()).lines[prefix] = out
    dicts = dict(base.dictionaries()) if base is not None else {}
    dicts.update({k: list(v) for k, v in st.dicts.items()})
    ordered = ov.ordered and (base is None or base.ordered)
    return changes, ov.n, ordered, dicts
