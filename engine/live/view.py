"""LiveView: a version plus a LiveState, read through the Snapshot interface.

Evaluation and output code reads a LiveView exactly like a Snapshot. What differs:
- `n` counts new customers too (their internal ids follow the version's);
- `c/` arrays are the version's, copied once per customer change with the changed rows
  written over them; bitmaps are the version's minus changed and erased customers, plus
  the changed customers' current values; dictionaries have new values appended;
- `delta(prefix)` gives the appended lines, which the evaluator adds to the version's
  kernels' per-customer sums (engine.evaluate);
- `ordered` is False once a new customer_id sorts before an older one: output then sorts
  by customer_id instead of relying on internal id order.
Line runs, text columns and their indexes stay the version's (zero-copy).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyroaring import BitMap, FrozenBitMap

from . import state as L
from ..storage.customer_attrs import DENSE
from ..storage.text_index import text_buffers
from ..storage.views import PieceTable

EMPTY = FrozenBitMap()
# appended-line columns in the order of engine.storage.layout's D_* / DV_* / DL_* indexes
DELTA_COLUMNS = {"p": ("iid", "day", "ts", "amount", "codes", "order"), "v": ("iid", "day", "ts", "status", "shop"),
                 "l": ("iid", "opened", "due", "balance", "status")}


class LiveView:
    """What one reader sees: `base` (a Snapshot, None for a dataset never loaded) + `state`."""

    def __init__(self, base, state: L.LiveState, zone, shard_bits: int):
        self.base = base
        self.state = state
        self.ov = state.overlay
        self.zone = zone
        self.shard_bits = shard_bits
        self.n = self.ov.n
        self.n_shards = base.n_shards if base is not None else 0
        self.ordered = self.ov.ordered
        self.path = base.path if base is not None else None
        self.manifest = base.manifest if base is not None else None
        self.meta = base.meta if base is not None else {"rows": {}, "cust_dtype": "uint16"}
        self._cache: dict = {}

    def rows_now(self) -> dict:
        """Rows per table the dataset holds now: the version's and the appended ones,
        without erased customers and their lines."""
        rows = dict(self.meta.get("rows") or {})
        rows["customers"] = rows.get("customers", 0) + self.ov.new_ext.size - len(self.ov.dead)
        dead = np.frombuffer(self.ov.dead.to_array(), np.uint32).astype(np.int64)
        gone = self.ov._cached("dead_lines", lambda: self._version_lines_of(dead))
        for prefix, table in (("p", "purchases"), ("v", "visits"), ("l", "laybys")):
            n = rows.get(table, 0) - gone[prefix]
            for _, cols in self.state.lines(prefix) or ():
                n += cols["iid"].size - (int(np.isin(cols["iid"], dead).sum()) if dead.size else 0)
            rows[table] = n
        return rows

    def _version_lines_of(self, iids: np.ndarray) -> dict:
        """Lines per line table that the version holds for internal ids `iids`."""
        out = {"p": 0, "v": 0, "l": 0}
        if self.base is None or not iids.size:
            return out
        iids = iids[iids < self.base.n]
        shard = iids >> self.shard_bits
        for prefix in out:
            for s in np.unique(shard):
                local = iids[shard == s] - (int(s) << self.shard_bits)
                for run in self.base.manifest.shards[int(s)].table_runs(prefix):
                    cust = self.base.run_arrays(int(s), prefix, run)["cust"]
                    out[prefix] += int(np.isin(cust, local).sum())
        return out

    # ------------------------------------------------------------ version passthrough
    def pieces(self, table):
        return self.base.pieces(table)

    def order_pieces(self):
        return self.base.order_pieces()

    def shard_bases(self):
        return self.base.shard_bases()

    def shard_sizes(self):
        return self.base.shard_sizes()

    def _cached(self, key, make):
        return self.base._cached(key, make)

    def text_shards(self, field):
        return self.base.text_shards(field) if self.base is not None else []

    def text_pieces(self, field):
        if self.base is None:
            return PieceTable(("data",), 0), np.zeros(0, np.int64)
        return self.base.text_pieces(field)

    def bytes_on_disk(self) -> int:
        return self.base.bytes_on_disk() if self.base is not None else 0

    # ------------------------------------------------------------ overlaid reads
    def _mine(self, key, make):
        v = self._cache.get(key)
        if v is None:
            v = self._cache[key] = make()
        return v

    def dictionary(self, name: str) -> list:
        d = self.state.dicts.get(name)
        if d is not None:
            return d
        return self.base.dictionary(name) if self.base is not None else []

    def code_of(self, name: str) -> dict:
        return self._mine(("dc", name), lambda: {v: i + 1 for i, v in enumerate(self.dictionary(name))})

    def derived(self):
        return self.ov.derived()

    def array(self, key: str, dtype) -> np.ndarray:
        """Per-customer c/ arrays with the changed rows written over the version's (copied
        once per state that changed customers, from the previous state's when it has one)."""
        if not key.startswith("c/"):
            return self.base.array(key, dtype)
        if key == "c/ext_id":
            return self.ext_ids()
        name = key[2:]
        ov = self.ov
        if not ov.chunks and not ov.new_ext.size:
            return self.base.array(key, dtype)
        dt, null = DENSE[name]

        def grown(a):
            out = np.full(self.n, null, dtype=dt)
            out[:a.size] = a
            return out

        def full():
            out = grown(self.base.array(key, dt) if self.base is not None else np.zeros(0, dt))
            if ov.iids.size:
                out[ov.iids] = self.derived().dense[name]
            out.flags.writeable = False
            return out

        def update(prev, events):
            out = grown(prev)
            for chunk in ov.new_chunks(events):
                out[chunk.iids] = chunk.derived(ov.dicts).dense[name]
            out.flags.writeable = False
            return out
        return ov._incremental(("a", key), full, update)

    def _members(self, field: str, code: int) -> FrozenBitMap:
        """The changed customers whose current row has value `code` of `field`."""
        ov = self.ov

        def pick(d, iids):
            if field == "tag":
                return iids[d.tag_rows[d.tag_codes == code]]
            if field in d.flags:
                return iids[d.flags[field]] if code == 1 else iids[:0]
            if field in d.groups:
                return iids[d.groups[field] == code]
            return iids[:0]

        def full():
            return FrozenBitMap(pick(self.derived(), ov.iids).astype(np.uint32))

        def update(prev, events):
            out = BitMap(prev)
            ov.new_chunks(events)  # derived together
            for e in events:
                if e.gone.size:
                    out -= BitMap(e.gone.astype(np.uint32))
                if e.chunk >= 0:
                    chunk = ov.chunks[e.chunk]
                    out -= BitMap(chunk.iids.astype(np.uint32))
                    out.update(pick(chunk.derived(ov.dicts), chunk.iids).astype(np.uint32))
            return FrozenBitMap(out)
        return ov._incremental(("m", field, code), full, update)

    def bitmap(self, field: str, code: int = 1) -> FrozenBitMap:
        """The version's bitmap without the changed and erased customers, with the changed
        customers' current members."""
        def make():
            base = self.base.bitmap(field, code) if self.base is not None else EMPTY
            if not self.ov.changed:
                return base
            out = BitMap(base)
            out -= self.ov.touched
            out -= self.ov.dead
            out |= self._members(field, code)
            return FrozenBitMap(out)
        return self.ov._cached(("b", field, code), make)

    @property
    def alive(self) -> FrozenBitMap:
        return self.bitmap("alive")

    def ext_ids(self) -> np.ndarray:
        return L.ext_ids(self.base, self.ov)

    def internal_ids(self, customer_ids) -> tuple:
        """(internal ids found, customer_ids not in the dataset) — erased ones are not."""
        ids = np.asarray(customer_ids, dtype=np.int64)
        iid = L.lookup(self.base, self.ov, ids)
        return iid[iid >= 0], ids[iid < 0]

    def profile_take(self, ids: np.ndarray, fields) -> pa.Table:
        """Rows of internal ids `ids` (output fields), changed customers' current values."""
        fields = list(fields)
        ids = np.asarray(ids, dtype=np.int64)
        if not self.ov.chunks:
            return self.base.profile_take(ids, fields)
        changed, rows = self.ov.rows_of(ids, fields)
        if rows is None:
            return self.base.profile_take(ids, fields)
        old = ids[~changed]
        base_rows = (self.base.profile_take(old, fields) if self.base is not None and old.size
                     else rows.schema.empty_table())
        both = pa.concat_tables([base_rows.cast(rows.schema), rows])
        idx = np.empty(ids.size, np.int64)
        idx[~changed] = np.arange(old.size)
        idx[changed] = old.size + np.arange(rows.num_rows)
        return both.take(pa.array(idx))

    def search_rows(self, field: str):
        """(internal ids, utf-8 bytes, offsets) of the changed customers' normalised text."""
        def make():
            data, offsets = text_buffers(self.ov.search_text()[field])
            return self.ov.iids, data, offsets
        return self.ov._cached(("search", field), make)

    def delta(self, prefix: str):
        """The appended lines of a line table visible here, as a PieceTable over the shards
        that have lines (columns named by engine.storage.layout.D_*), or None."""
        def make():
            per_shard = self.state.lines(prefix)
            if per_shard is None:
                return False
            return PieceTable.of_shards(DELTA_COLUMNS[prefix], per_shard)
        return self._mine(("delta", prefix), make) or None
