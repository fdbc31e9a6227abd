"""A Snapshot: one immutable version opened read-only, read through one long-lived read
transaction. Every array is a zero-copy view into the map, valid while the snapshot lives.
A new version becomes visible by renaming CURRENT (engine.datasets); readers holding the
old snapshot keep a consistent view.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import lmdb
import numpy as np
import pyarrow as pa
from numba import typed
from pyroaring import FrozenBitMap

from ..model import timerange
from .build import MAP_SIZE

EMPTY = FrozenBitMap()


class Snapshot:
    """One immutable version, read through a single long-lived read transaction."""

    def __init__(self, path: Path, timezone: str):
        self.path = path
        self.env = lmdb.open(str(path), readonly=True, lock=False, map_size=MAP_SIZE, subdir=True)
        self.txn = self.env.begin(buffers=True)
        self.meta = json.loads(bytes(self.txn.get(b"meta")))
        self.zone = timerange.load_zone(timezone)
        self.n = self.meta["n_customers"]
        self.shard_bits = self.meta["shard_bits"]
        self.n_shards = self.meta["n_shards"]
        self._lock = threading.RLock()
        self._cache: dict = {}

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            if self.env is not None:
                self.txn.abort()
                self.env.close()
                self.env = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _cached(self, key, make):
        v = self._cache.get(key)
        if v is None:
            with self._lock:
                v = self._cache.get(key)
                if v is None:
                    v = make()
                    self._cache[key] = v
        return v

    def raw(self, key: str):
        """The raw value (a memoryview into the map) or None."""
        return self.txn.get(key.encode())

    def array(self, key: str, dtype) -> np.ndarray:
        """A zero-copy read-only numpy view of key (copied if the map offset is misaligned)."""
        def make():
            buf = self.raw(key)
            if buf is None:
                raise KeyError(key)
            a = np.frombuffer(buf, dtype=dtype)
            return a if a.flags.aligned else a.copy()
        return self._cached(("a", key), make)

    def dictionary(self, name: str) -> list:
        """Strings of a dictionary; code = index + 1."""
        return self._cached(("d", name), lambda: json.loads(bytes(self.raw(f"dict/{name}") or b"[]")))

    def code_of(self, name: str) -> dict:
        """value -> code for a dictionary."""
        return self._cached(("dc", name), lambda: {v: i + 1 for i, v in enumerate(self.dictionary(name))})

    def bitmap(self, field: str, code: int = 1) -> FrozenBitMap:
        """The bitmap b/<field>/<code> (empty if absent)."""
        def make():
            buf = self.raw(f"b/{field}/{code}")
            return EMPTY if buf is None else FrozenBitMap.deserialize(bytes(buf))
        return self._cached(("b", field, code), make)

    @property
    def alive(self) -> FrozenBitMap:
        return self.bitmap("alive")

    def shard_arrays(self, table: str, col: str, dtype) -> "typed.List":
        """A numba typed List of one array per shard (for prange-over-shards kernels)."""
        def make():
            lst = typed.List()
            for s in range(self.n_shards):
                a = self.array(f"s/{s:06d}/{table}/{col}", dtype)
                if col == "codes":
                    a = a.reshape(8, -1)
                lst.append(a)
            return lst
        return self._cached(("sl", table, col), make)

    def shard_list(self, table: str, col: str, dtype) -> list:
        """A plain list of one array per shard."""
        return [self.array(f"s/{s:06d}/{table}/{col}", dtype) for s in range(self.n_shards)]

    def shard_bases(self) -> np.ndarray:
        return self._cached(("bases",), lambda: (np.arange(self.n_shards, dtype=np.int64) << self.shard_bits))

    def shard_sizes(self) -> np.ndarray:
        def make():
            sizes = np.full(self.n_shards, 1 << self.shard_bits, dtype=np.int64)
            sizes[-1] = self.n - (self.n_shards - 1) * (1 << self.shard_bits)
            return sizes
        return self._cached(("sizes",), make)

    def _ipc_table(self, kind: str) -> pa.Table:
        def make():
            parts = []
            for s in range(self.n_shards):
                buf = self.raw(f"s/{s:06d}/{kind}")
                parts.append(pa.ipc.open_stream(pa.py_buffer(buf)).read_all())
            return pa.concat_tables(parts) if parts else pa.table({})
        return self._cached(("ipc", kind), make)

    def profile(self) -> pa.Table:
        """Every customer's row (canonical columns), in internal-id order."""
        return self._ipc_table("profile")

    def profile_take(self, ids, fields) -> pa.Table:
        """The rows of internal ids `ids` (chosen output fields)."""
        return self.profile().select(list(fields)).take(pa.array(ids))

    def search_table(self) -> pa.Table:
        """Normalised text columns for search / surname, in internal-id order."""
        return self._ipc_table("search")

    def text_column(self, name: str):
        """(utf-8 bytes as uint8, int64 row offsets) of a normalised search column; null
        rows are empty."""
        def make():
            col = self.search_table().column(name).combine_chunks()
            col = col.fill_null("")
            _, off, data = col.buffers()
            offsets = np.frombuffer(off, dtype=np.int32, count=len(col) + 1, offset=col.offset * 4)
            raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
            return raw, offsets.astype(np.int64)
        return self._cached(("text", name), make)

    def trigram_index(self, field: str):
        """(keys uint32, offsets int64, ids uint32, pos uint8) zero-copy views of the trigram
        posting lists t/<field>/* (engine.text_index), or None when this version has none."""
        def make():
            if self.raw(f"t/{field}/keys") is None:
                return False
            return (self.array(f"t/{field}/keys", np.uint32), self.array(f"t/{field}/offsets", np.int64),
                    self.array(f"t/{field}/ids", np.uint32), self.array(f"t/{field}/pos", np.uint8))
        return self._cached(("tri", field), make) or None

    def ext_ids(self) -> np.ndarray:
        """customer_id of each internal id (ascending)."""
        return self.array("c/ext_id", np.int64)

    def internal_ids(self, customer_ids) -> tuple:
        """(internal ids found, customer_ids not in the dataset)."""
        ids = np.asarray(customer_ids, dtype=np.int64)
        ext = self.ext_ids()
        pos = np.searchsorted(ext, ids)
        pos_c = np.minimum(pos, max(ext.size - 1, 0))
        found = (pos < ext.size) & (ext[pos_c] == ids) if ext.size else np.zeros(ids.size, bool)
        return pos[found], ids[~found]

    def bytes_on_disk(self) -> int:
        return sum(os.stat(p).st_blocks * 512 for p in self.path.iterdir() if p.is_file())


class EmptySnapshot:
    """Stands in for a dataset with no data yet: every answer is empty."""
    _instances: dict = {}

    @classmethod
    def get(cls, timezone):
        return cls._instances.setdefault(timezone, cls(timezone))

    def __init__(self, timezone):
        self.zone = timerange.load_zone(timezone)
        self.n = 0
        self.n_shards = 0
        self.meta = {"rows": {}, "ordered": True}
        self.empty = True
