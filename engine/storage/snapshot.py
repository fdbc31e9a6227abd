"""A Snapshot: one version opened read-only: its manifest, its dictionaries and its parts.

Every array is a zero-copy view into a part's map, fetched on first use and valid while the
snapshot lives. A new version becomes visible by renaming CURRENT (engine.datasets); a
reader holding an old snapshot keeps a consistent view (its parts stay mapped even once a
later version no longer names them and they are deleted).

What evaluation reads:
  per customer   dense columns (`array("c/<name>")`, concatenated over shards on first use),
                 bitmaps (`bitmap(field, code)`: the union of the shards'), dictionaries,
                 profile rows, customer_ids;
  per shard      search text with its trigram and equality indexes (`text_shards`);
  per line table `pieces(table)`: a PieceSet over every run of every shard, which one
                 kernel call reads whole (engine.storage.views).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pyarrow as pa
from numba import njit
from pyroaring import BitMap, FrozenBitMap

from ..model import timerange
from ..model.segment import PRODUCT_FIELDS
from . import layout as LY
from .customer_attrs import DENSE
from .manifest import LINE_TABLES, Manifest, read_dicts, read_manifest
from .orders import ORDER_COLUMNS
from .parts import PartReader, open_part, release_part  # noqa: F401
from .runs import AGG_COLUMNS, ALL_COLUMNS, LINE_COLUMNS, MARK_COLUMNS, POSTING_COLUMNS, pair_name
from .views import PieceTable


@njit(cache=True, nogil=True)
def _ascending(x):
    for i in range(1, x.size):
        if x[i] < x[i - 1]:
            return False
    return True


@njit(cache=True, nogil=True)
def _merge_lookup(ext, iid, ids, out):
    """out[i] = iid of ids[i] in ext (both ascending), left alone where absent: a merge,
    linear where a binary search per id misses the cache ~20 times (741k of 1M ids: 38 ->
    a few ms)."""
    j = 0
    for i in range(ids.size):
        x = ids[i]
        while j < ext.size and ext[j] < x:
            j += 1
        if j < ext.size and ext[j] == x:
            out[i] = iid[j]


EMPTY = FrozenBitMap()

P_NAMES = (("cust", "day", "ts", "amount", "quantity") + tuple(f"c.{f}" for f in PRODUCT_FIELDS)
           + tuple(f"x.{f}.{k}" for k in POSTING_COLUMNS for f in PRODUCT_FIELDS)
           + tuple(f"a.{f}.{k}" for k in AGG_COLUMNS for f in PRODUCT_FIELDS)
           + tuple(f"a.all.{k}" for k in ALL_COLUMNS)
           + tuple(f"x.pair{s}.{k}" for k in POSTING_COLUMNS for s in range(LY.MAX_PAIRS))
           + tuple(f"a.pair{s}.{k}" for k in AGG_COLUMNS for s in range(LY.MAX_PAIRS)) + ("order",)
           + tuple(f"m.{k}" for k in MARK_COLUMNS))
V_NAMES = ("cust", "day", "ts", "status", "shop", "a.all.count", "a.all.first", "a.all.last")
L_NAMES = ("cust", "opened", "due", "balance", "status")
PIECE_NAMES = {"p": P_NAMES, "v": V_NAMES, "l": L_NAMES}
assert len(P_NAMES) == LY.P_NCOLS and len(V_NAMES) == LY.V_NCOLS and len(L_NAMES) == LY.L_NCOLS
DTYPES = {**{f"x.{f}.{k}": dt for k, dt in POSTING_COLUMNS.items() for f in PRODUCT_FIELDS},
          **{f"a.{f}.{k}": dt for k, dt in AGG_COLUMNS.items() for f in PRODUCT_FIELDS},
          **{f"a.all.{k}": dt for k, dt in ALL_COLUMNS.items()},
          **{f"m.{k}": dt for k, dt in MARK_COLUMNS.items()},
          **{f"x.pair{s}.{k}": (np.uint64 if k == "codes" else dt)
             for k, dt in POSTING_COLUMNS.items() for s in range(LY.MAX_PAIRS)},
          **{f"a.pair{s}.{k}": (np.uint64 if k == "codes" else dt)
             for k, dt in AGG_COLUMNS.items() for s in range(LY.MAX_PAIRS)}}


@dataclass
class PieceSet:
    """Every run of one line table, shard by shard: piece p belongs to shard k when
    shard_ptr[k] <= p < shard_ptr[k + 1] (a shard without runs has none); `base[k]` /
    `n[k]` are shard k's first internal id and size. `meta[p]` holds the run's facts
    (layout.M_*)."""
    table: PieceTable
    meta: np.ndarray          # int64 (pieces, M_NMETA)
    shard_ptr: np.ndarray     # int64 (shards with pieces + 1)
    shard: np.ndarray         # int64 shard number of each shard index
    base: np.ndarray          # int64
    n: np.ndarray             # int64
    runs: list                # (shard, Run) per piece

    @property
    def addr(self):
        return self.table.addr

    @property
    def size(self):
        return self.table.size

    @property
    def n_shards(self) -> int:
        return int(self.shard.size)


@dataclass
class TextShard:
    """One shard's normalised text of a search field, and its indexes."""
    base: int
    n: int
    data: np.ndarray          # utf-8 bytes
    offsets: np.ndarray       # int64 row offsets
    trigrams: Optional[tuple]  # (keys, offsets, ids) or None
    equal: Optional[tuple]     # (sorted hashes uint64, rows uint32) or None


class Snapshot:
    """One version of a dataset, read-only."""

    def __init__(self, dataset_dir: Path, version: str, timezone: str):
        self.dir = Path(dataset_dir)
        self.path = self.dir / version
        self.version = version
        self.manifest = read_manifest(self.path)
        self._dicts: Optional[Dict[str, list]] = None  # read on first use: a count of profile values needs none
        m: Manifest = self.manifest
        self.zone = timerange.load_zone(timezone)
        self.n = m.n_customers
        self.shard_bits = m.shard_bits
        self.n_shards = m.n_shards
        self.ordered = m.ordered
        self.meta = {"rows": dict(m.rows), "ordered": m.ordered, "folded_seq": m.folded_seq,
                     "n_customers": m.n_customers, "n_shards": m.n_shards, "shard_bits": m.shard_bits,
                     "timezone": timezone, "build": dict(m.build)}
        self._parts: Dict[str, PartReader] = {}
        try:
            for name in sorted(m.parts()):
                self._parts[name] = open_part(self.dir / "parts" / name)
        except BaseException:
            self.close()
            raise
        self._lock = threading.RLock()
        self._cache: dict = {}

    def close(self) -> None:
        with getattr(self, "_lock", threading.RLock()):
            self._cache = {}
            for r in self._parts.values():
                release_part(r)
            self._parts = {}

    def footprint(self) -> tuple:
        """(descriptors, mapped bytes) of the parts this version holds open."""
        parts = list(self._parts.values())
        return len(parts), sum(r.size for r in parts)

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

    # ------------------------------------------------------------ raw values
    def value(self, part: str, key: str):
        """The raw value (a memoryview into the part's map) or None."""
        return self._parts[part].get(key)

    def part_array(self, part: str, key: str, dtype) -> Optional[np.ndarray]:
        """A zero-copy read-only numpy view of a value (copied if misaligned), None if absent."""
        def make():
            buf = self.value(part, key)
            if buf is None:
                return False
            a = np.frombuffer(buf, dtype=dtype)
            return a if a.flags.aligned else a.copy()
        a = self._cached(("pa", part, key), make)
        return None if a is False else a

    # ------------------------------------------------------------ per customer
    def shard_bases(self) -> np.ndarray:
        return self._cached(("bases",), lambda: np.arange(self.n_shards, dtype=np.int64) << self.shard_bits)

    def shard_sizes(self) -> np.ndarray:
        return self._cached(("sizes",), lambda: np.array([s.n for s in self.manifest.shards], np.int64))

    def shard_customer_array(self, s: int, name: str, dtype) -> np.ndarray:
        part, prefix = self.manifest.shards[s].customers
        a = self.part_array(part, f"{prefix}/{name}", dtype)
        return a if a is not None else np.zeros(0, dtype)

    def array(self, key: str, dtype=None) -> np.ndarray:
        """A dense per-customer column `c/<name>` over every shard (read-only)."""
        assert key.startswith("c/"), key
        name = key[2:]
        if name == "ext_id":
            return self.ext_ids()
        dt = DENSE[name][0]

        def make():
            parts = [self.shard_customer_array(s, f"d.{name}", dt) for s in range(self.n_shards)]
            out = np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, dt))
            out.flags.writeable = False
            return out
        return self._cached(("c", name), make)

    def ext_ids(self) -> np.ndarray:
        """customer_id of each internal id."""
        def make():
            parts = [self.shard_customer_array(s, "ext", np.int64) for s in range(self.n_shards)]
            out = np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, np.int64))
            out.flags.writeable = False
            return out
        return self._cached(("ext",), make)

    def _ext_sorted(self):
        """(customer_ids sorted, their internal ids) of customers not erased."""
        def make():
            ext = self.ext_ids()
            ids = np.arange(ext.size, dtype=np.int64)
            erased = self.bitmap("erased")
            if len(erased):
                keep = np.ones(ext.size, bool)
                keep[np.asarray(erased.to_array(), np.int64)] = False
                ext, ids = ext[keep], ids[keep]
            if self.ordered:
                return ext, ids
            o = np.argsort(ext, kind="stable")
            return ext[o], ids[o]
        return self._cached(("ext_sorted",), make)

    def lookup(self, customer_ids) -> np.ndarray:
        """The internal id of each customer_id, -1 where the dataset has none (erased ones
        included)."""
        ids = np.asarray(customer_ids, dtype=np.int64)
        ext, iid = self._ext_sorted()
        out = np.full(ids.size, -1, np.int64)
        if not ext.size or not ids.size:
            return out
        if ids.size > 4096 and _ascending(ids):   # a frozen group, a sorted list: one merge
            _merge_lookup(ext, iid, ids, out)
            return out
        pos = np.searchsorted(ext, ids)
        pos_c = np.minimum(pos, ext.size - 1)
        found = ext[pos_c] == ids
        out[found] = iid[pos_c[found]]
        return out

    def internal_ids(self, customer_ids) -> tuple:
        """(internal ids found, customer_ids not in the dataset)."""
        ids = np.asarray(customer_ids, dtype=np.int64)
        iid = self.lookup(ids)
        return iid[iid >= 0], ids[iid < 0]

    def dictionary(self, name: str) -> list:
        """Strings of a dictionary; code = index + 1."""
        return self.dictionaries().get(name, [])

    def dictionaries(self) -> Dict[str, list]:
        d = self._dicts
        if d is None:
            with self._lock:
                if self._dicts is None:
                    self._dicts = self._read_dicts()
                d = self._dicts
        return d

    def _read_dicts(self) -> Dict[str, list]:
        # A replaced version's folder is removed while readers may still hold it (its parts
        # stay mapped). Dictionaries only grow and a code never changes, so the newest
        # version's serve this one as well.
        for _ in range(5):
            try:
                return read_dicts(self.path)
            except FileNotFoundError:
                pass
            try:
                current = (self.dir / "CURRENT").read_text().strip()
                return read_dicts(self.dir / current)
            except FileNotFoundError:
                continue  # switched again meanwhile
        return read_dicts(self.path)

    def code_of(self, name: str) -> dict:
        """value -> code for a dictionary."""
        return self._cached(("dc", name), lambda: {v: i + 1 for i, v in enumerate(self.dictionary(name))})

    def bitmap(self, field: str, code: int = 1) -> FrozenBitMap:
        """The members of b/<field>/<code> over every shard (empty if none)."""
        def make():
            out = []
            for s in self.manifest.shards:
                part, prefix = s.customers
                buf = self.value(part, f"{prefix}/b/{field}/{code}")
                if buf is not None:
                    out.append(BitMap.deserialize(bytes(buf)))
            if not out:
                return EMPTY
            return FrozenBitMap(BitMap.union(*out) if len(out) > 1 else out[0])
        return self._cached(("b", field, code), make)

    @property
    def alive(self) -> FrozenBitMap:
        return self.bitmap("alive")

    def _ipc(self, s: int, name: str) -> pa.Table:
        part, prefix = self.manifest.shards[s].customers
        buf = self.value(part, f"{prefix}/{name}")
        return pa.ipc.open_stream(pa.py_buffer(buf)).read_all()

    def profile(self) -> pa.Table:
        """Every customer's row (canonical columns), in internal-id order."""
        def make():
            parts = [self._ipc(s, "profile") for s in range(self.n_shards)]
            return pa.concat_tables(parts) if parts else pa.table({})
        return self._cached(("profile",), make)

    def profile_take(self, ids, fields) -> pa.Table:
        """The rows of internal ids `ids` (chosen output fields)."""
        return self.profile().select(list(fields)).take(pa.array(np.asarray(ids, np.int64)))

    def search_table(self) -> pa.Table:
        """Normalised text columns for search / surname, in internal-id order."""
        def make():
            parts = [self._ipc(s, "search") for s in range(self.n_shards)]
            return pa.concat_tables(parts) if parts else pa.table({})
        return self._cached(("search",), make)

    def text_shards(self, field: str) -> List[TextShard]:
        """Per shard: the normalised text of a search field with its indexes."""
        def make():
            from .text_index import text_buffers
            out = []
            bases = self.shard_bases()
            for s, sh in enumerate(self.manifest.shards):
                part, prefix = sh.customers
                data, offsets = text_buffers(self._ipc(s, "search").column(field))
                get = lambda k, dt: self.part_array(part, f"{prefix}/{k}", dt)  # noqa: E731
                keys = get(f"t/{field}/keys", np.uint32)
                tri = None if keys is None else (keys, get(f"t/{field}/offsets", np.int64),
                                                 get(f"t/{field}/ids", np.uint32))
                h = get(f"e/{field}/hash", np.uint64)
                eq = None if h is None else (h, get(f"e/{field}/rows", np.uint32))
                out.append(TextShard(int(bases[s]), sh.n, data, offsets, tri, eq))
            return out
        return self._cached(("text", field), make)

    def text_pieces(self, field: str) -> tuple:
        """(PieceTable over shards with text_kernels.T_* columns, base int64): a search
        field's text and indexes for one kernel call over every shard."""
        def make():
            from .text_kernels import T_NAMES
            shards = self.text_shards(field)
            pt = PieceTable(T_NAMES, len(shards))
            for k, sh in enumerate(shards):
                pt.set("data", k, sh.data)
                pt.set("offsets", k, sh.offsets)
                if sh.trigrams is not None:
                    pt.set("keys", k, sh.trigrams[0])
                    pt.set("koffsets", k, sh.trigrams[1])
                    pt.set("ids", k, sh.trigrams[2])
                if sh.equal is not None:
                    pt.set("eq_hash", k, sh.equal[0])
                    pt.set("eq_rows", k, sh.equal[1])
            return pt, np.array([sh.base for sh in shards], np.int64)
        return self._cached(("textpieces", field), make)

    # ------------------------------------------------------------ lines
    def pieces(self, table: str) -> PieceSet:
        """Every run of a line table ("p", "v", "l") as one PieceSet."""
        assert table in LINE_TABLES
        return self._cached(("pieces", table), lambda: self._pieces(table))

    def _pieces(self, table: str) -> PieceSet:
        names = PIECE_NAMES[table]
        runs = [(s, r) for s, sh in enumerate(self.manifest.shards) for r in sh.table_runs(table)]
        pt = PieceTable(names, len(runs))
        meta = np.zeros((len(runs), LY.M_NMETA), np.int64)
        shard_ptr = np.zeros(self.n_shards + 1, np.int64)
        dtypes = dict(LINE_COLUMNS[table])
        if table == "v":
            dtypes.update({"a.all.count": np.int32, "a.all.first": np.int32, "a.all.last": np.int32})
        field_bit = {f: 1 << i for i, f in enumerate(PRODUCT_FIELDS)}
        slot_of = {pair_name(pr): s for s, pr in enumerate(self.manifest.pairs)}
        for p, (s, r) in enumerate(runs):
            shard_ptr[s + 1] += 1
            for name in names:
                if name.startswith(("x.pair", "a.pair")):
                    continue
                dt = dtypes.get(name) or DTYPES[name]
                pt.set(name, p, self.part_array(r.part, f"{r.key}/{name}", dt))
            for pname in r.pairs:  # the run's pair indexes, in the dataset's slots
                slot = slot_of[pname]
                meta[p, LY.M_PAIRS] |= 1 << slot
                for k in POSTING_COLUMNS:
                    pt.set(f"x.pair{slot}.{k}", p, self.part_array(r.part, f"{r.key}/x.{pname}.{k}",
                                                                    DTYPES[f"x.pair{slot}.{k}"]))
                if pname in r.agg_fields:
                    for k in AGG_COLUMNS:
                        pt.set(f"a.pair{slot}.{k}", p, self.part_array(r.part, f"{r.key}/a.{pname}.{k}",
                                                                        DTYPES[f"a.pair{slot}.{k}"]))
            meta[p, LY.M_ROWS] = r.rows
            if r.agg_cutoff_day is not None:
                meta[p, LY.M_AGG] = 1
                meta[p, LY.M_CUTOFF] = r.agg_cutoff_day
                meta[p, LY.M_AGG_MICROS] = r.agg_max_micros
                meta[p, LY.M_AGG_FIELDS] = (sum(field_bit[f] for f in r.agg_fields if f in field_bit)
                                            + sum(1 << (8 + slot_of[f]) for f in r.agg_fields if f in slot_of))
        shard_ptr = np.cumsum(shard_ptr)
        return PieceSet(pt, meta, shard_ptr, np.arange(self.n_shards, dtype=np.int64), self.shard_bases(),
                        self.shard_sizes(), runs)

    def order_pieces(self) -> PieceTable:
        """The orders of every purchases run (engine/storage/orders.py), one piece per run
        in the order of pieces("p"); a run written before order summaries has none."""
        def make():
            runs = self.pieces("p").runs
            pt = PieceTable(tuple(ORDER_COLUMNS), len(runs))
            for p, (_, r) in enumerate(runs):
                for name, dt in ORDER_COLUMNS.items():
                    pt.set(name, p, self.part_array(r.part, f"{r.key}/{name}", dt))
            return pt
        return self._cached(("order_pieces",), make)

    def run_arrays(self, shard: int, table: str, run) -> Dict[str, np.ndarray]:
        """The stored per-line columns of one run (a compaction rewriting it reads these)."""
        out = {}
        for name, dt in LINE_COLUMNS[table].items():
            a = self.part_array(run.part, f"{run.key}/{name}", dt)
            out[name] = a if a is not None else np.zeros(0, dt)
        if "order" in out and out["order"].size != out["day"].size:  # a run written before order keys
            out["order"] = np.zeros(out["day"].size, np.int64)
        return out

    def max_purchase_micros(self) -> Optional[int]:
        ts = [r.max_ts for sh in self.manifest.shards for r in sh.table_runs("p") if r.rows]
        return max(ts) if ts else None

    def bytes_on_disk(self) -> int:
        total = 0
        for name in self.manifest.parts():
            total += os.stat(self.dir / "parts" / name / "data.mdb").st_blocks * 512
        for p in self.path.iterdir():
            total += os.stat(p).st_blocks * 512
        return total


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
