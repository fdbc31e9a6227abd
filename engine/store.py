"""Datasets on disk: a folder per dataset holding immutable LMDB versions, and snapshots.

  <root>/<name>/dataset.json    name, timezone, shard_bits (fixed at creation)
  <root>/<name>/CURRENT         the live version's folder name, replaced atomically
  <root>/<name>/v000001/        an LMDB environment written once by engine.build
  <root>/<name>/catalog/        saved segments and customer groups (engine.catalog)
A Snapshot is one version opened read-only with one read transaction: every array is a
zero-copy view into the map, valid while the snapshot lives. A new version becomes visible
by renaming CURRENT; readers holding the old snapshot keep a consistent view.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import lmdb
import numpy as np
import pyarrow as pa
from numba import typed
from pyroaring import FrozenBitMap

from . import timerange
from .build import MAP_SIZE, build_version
from .errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound

DEFAULT_SHARD_BITS = 16
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
EMPTY = FrozenBitMap()


def check_name(name: str) -> str:
    """A dataset name: letters, digits, _ . - ; no path tricks."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise InvalidArgument("dataset", f"invalid dataset name {name!r} (letters, digits, _ . -; "
                                         "starting with a letter or digit)")
    return name


def dataset_dir(root: Path, name: str) -> Path:
    return Path(root) / check_name(name)


def create_dataset(root: Path, name: str, timezone: str, shard_bits: int = DEFAULT_SHARD_BITS) -> None:
    """Create an empty dataset folder; AlreadyExists if present."""
    timerange.load_zone(timezone)
    if not isinstance(shard_bits, int) or not 4 <= shard_bits <= 16:
        raise InvalidArgument("shard_bits", f"must be between 4 and 16, got {shard_bits!r}")
    d = dataset_dir(root, name)
    if (d / "dataset.json").exists():
        raise AlreadyExists("dataset", f"dataset {name!r} already exists")
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / "dataset.json.tmp"
    tmp.write_text(json.dumps({"name": name, "timezone": timezone, "shard_bits": shard_bits}))
    os.replace(tmp, d / "dataset.json")


def delete_dataset(root: Path, name: str) -> None:
    """Remove a dataset folder entirely; NotFound if absent."""
    d = dataset_dir(root, name)
    if not (d / "dataset.json").exists():
        raise NotFound("dataset", f"no dataset named {name!r}")
    shutil.rmtree(d)


def list_datasets(root: Path) -> list:
    """Names of the datasets under root."""
    root = Path(root)
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "dataset.json").exists())


@contextmanager
def _write_lock(d: Path):
    """One writer per dataset across processes."""
    with open(d / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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


class Dataset:
    """One merchant's dataset: its settings, its live version and changes, and the calls on it."""

    def __init__(self, root: Path, name: str):
        self.root = Path(root)
        self.name = name
        self.dir = dataset_dir(root, name)
        settings = self.dir / "dataset.json"
        if not settings.exists():
            raise NotFound("dataset", f"no dataset named {name!r}")
        cfg = json.loads(settings.read_text())
        self.timezone = cfg["timezone"]
        self.zone = timerange.load_zone(self.timezone)
        self.shard_bits = cfg["shard_bits"]
        self._lock = threading.Lock()
        self._write_mutex = threading.Lock()   # one writer thread per process (the flock: per dataset)
        self._live = None                      # engine.live.Live of the current version
        self._live_version: Optional[str] = None
        self._compacting = threading.Lock()    # held by a background compaction

    @classmethod
    def open(cls, root: Path, name: str) -> "Dataset":
        return cls(root, name)

    def close(self) -> None:
        """Close the version and its log (calls in flight must have finished); waits for a
        background compaction, which reads them."""
        with self._compacting, self._lock:
            if self._live is not None:
                self._live.close()
            self._live = None
            self._live_version = None

    # ------------------------------------------------------------ versions
    def _current_version(self) -> Optional[str]:
        try:
            return (self.dir / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    def live(self):
        """The current version's Live (None while the dataset has never been loaded)."""
        from .live import Live
        with self._lock:  # CURRENT is read under the lock a rebuild switches it under
            version = self._current_version()
            if version != self._live_version:
                self._live = Live(Snapshot(self.dir / version, self.timezone), self.zone,
                                  self.shard_bits) if version else None
                self._live_version = version
            return self._live

    def snapshot(self):
        """The live snapshot: the version plus every change so far (None while empty)."""
        live = self.live()
        return None if live is None else live.view()

    def require_snapshot(self):
        snap = self.snapshot()
        if snap is None:
            return _EmptySnapshot.get(self.timezone)
        return snap

    # ------------------------------------------------------------ changes
    def apply_changes(self, customers=None, purchases=None, visits=None, laybys=None, delete=(),
                      batch_id: Optional[str] = None) -> dict:
        """One atomic, durable batch: deletes, then customer upserts, then appended lines."""
        from .live import prepare_batch
        tables, ids = prepare_batch(customers, purchases, visits, laybys, delete, batch_id)
        if self.live() is None:
            self._rebuild(None, empty_only=True)  # changes before any bulk load: an empty version
        with self._write_mutex, _write_lock(self.dir):
            return self.live().apply_changes(tables, ids, batch_id)

    def pending(self) -> dict:
        live = self.live()
        return dict(live.state.pending) if live is not None else {}

    def compact(self, progress: bool = False) -> dict:
        """Fold every change so far into a new version (erased customers leave storage)."""
        t0 = time.perf_counter()
        with self._compacting:
            version, seq = self._rebuild(None, progress=progress)
        return {"version": version, "sequence": seq, "seconds": round(time.perf_counter() - t0, 3)}

    def compact_in_background(self) -> bool:
        """Start a compaction thread unless one runs; True when started."""
        if not self._compacting.acquire(blocking=False):
            return False

        def run():
            try:
                self._rebuild(None)
            except Exception:  # the next trigger retries; changes stay in the log meanwhile
                import logging
                logging.getLogger(__name__).exception("background compaction of %s failed", self.name)
            finally:
                self._compacting.release()
        threading.Thread(target=run, name=f"compact-{self.name}", daemon=True).start()
        return True

    def ingest(self, folder: Path, progress: bool = False) -> dict:
        """Load a folder of files. The first load builds the dataset; a later load upserts
        customers and appends lines (rebuilding a new version). All or nothing."""
        from . import ingest_read
        from .live import known_customer_ids

        folder = Path(folder)
        if not folder.is_dir():
            raise InvalidArgument("folder", f"{str(folder)!r} is not a folder")
        with _build_lock(self.dir):
            view = self.snapshot()
            tables = ingest_read.read_folder(folder, known_ids=known_customer_ids(view),
                                             require_customers=view is None, progress=progress)
            self._rebuild(tables, progress=progress, locked=True)
            return {k: v.num_rows for k, v in tables.items()}

    def _rebuild(self, new_tables, progress: bool = False, locked: bool = False, empty_only: bool = False):
        """Write a new version from the current one, its changes so far and `new_tables`,
        then switch to it; changes acknowledged meanwhile move to the new version's log.
        Returns (version, folded sequence)."""
        if not locked:
            with _build_lock(self.dir):
                return self._rebuild(new_tables, progress, True, empty_only)
        from .export_tables import merge_tables
        from .live import erased_customer_ids, live_tables
        from .live_log import ChangeLog, log_path
        live = self.live()
        if empty_only and live is not None:
            return self._live_version, live.state.seq
        start = self._live_version
        live and live.refresh()
        st = live.state if live is not None else None
        seq = st.seq if st is not None else 0
        if live is not None:
            tables = live_tables(live.base, st)
            erased = erased_customer_ids(live.view())
        else:
            from .ingest_read import canonical_schema
            tables = {"customers": canonical_schema("customers").empty_table()}
            erased = np.zeros(0, np.int64)
        if new_tables:
            tables = merge_tables(tables, new_tables)
        version = self._next_version()
        build_version(self.dir / version, tables, self.timezone, self.shard_bits, _progress_steps(progress),
                      extra_meta={"folded_seq": seq})
        del tables
        with self._write_mutex, _write_lock(self.dir):
            if self._current_version() != start:
                shutil.rmtree(self.dir / version, ignore_errors=True)
                raise FailedPrecondition("dataset", "another load replaced the dataset meanwhile; retry")
            log = ChangeLog(log_path(self.dir / version), create=True)
            if live is not None:
                head = max(seq, live.log.head(seq))
                log.seed(head, list(live.log.raw_records(seq)), live.log.batch_ids())
            else:
                log.seed(seq, [], [])
            from .live import Live
            new = Live(Snapshot(self.dir / version, self.timezone), self.zone, self.shard_bits, log)
            with self._lock:
                _write_current(self.dir, version)
                self._live = new
                self._live_version = version
        if start and start != version:  # mapped pages of readers stay valid
            shutil.rmtree(self.dir / start, ignore_errors=True)
            shutil.rmtree(log_path(self.dir / start), ignore_errors=True)
        if erased.size:
            from .catalog import scrub_groups
            scrub_groups(self.dir, erased)
        return version, seq

    def _next_version(self) -> str:
        current = self._current_version()
        nums = [int(p.name[1:7]) for p in self.dir.glob("v[0-9]*") if p.name[1:7].isdigit()]
        keep = (current, f"{current}.log") if current else ()
        for p in self.dir.glob("v[0-9]*"):
            if p.is_dir() and p.name not in keep:
                shutil.rmtree(p, ignore_errors=True)  # leftovers of a failed build
        return f"v{max(nums, default=0) + 1:06d}"

    # ------------------------------------------------------------ inspection
    def info(self) -> dict:
        """Row counts per table, shards, bytes on disk, timezone, pending changes."""
        snap = self.snapshot()
        live = self._live
        rows = {"customers": 0, "purchases": 0, "visits": 0, "laybys": 0}
        out = {"name": self.name, "timezone": self.timezone, "shard_bits": self.shard_bits,
               "shard_size": 1 << self.shard_bits, "shards": 0, "rows": rows, "bytes_on_disk": 0,
               "version": self._live_version, "live": {"sequence": 0, "pending": {}}}
        if snap is not None:
            rows.update(snap.rows_now() if hasattr(snap, "rows_now") else snap.meta["rows"])
            out["shards"] = snap.n_shards
            out["active_customers"] = len(snap.alive)
            out["bytes_on_disk"] = snap.bytes_on_disk()
            out["live"] = {"sequence": live.state.seq, "pending": dict(live.state.pending)}
        return out

    # ------------------------------------------------------------ evaluation
    def count(self, segment, as_of=None, deadline=None):
        from . import output
        return output.count(self.require_snapshot(), segment, as_of, deadline)

    def preview(self, segment, n=20, fields=(), as_of=None, deadline=None):
        from . import output
        return output.preview(self.require_snapshot(), segment, n, fields, as_of, deadline)

    def materialize(self, segment, fields=(), as_of=None, deadline=None):
        from . import output
        return output.materialize(self.require_snapshot(), segment, fields, as_of, deadline)

    def explain(self, segment, as_of=None, deadline=None):
        from . import output
        return output.explain(self.require_snapshot(), segment, as_of, deadline)

    def rows_of(self, customer_ids, fields=()):
        from . import output
        return output.rows_of(self.require_snapshot(), customer_ids, fields)


@contextmanager
def _build_lock(d: Path):
    """One build (bulk load, compaction) per dataset across processes; writers of change
    batches do not wait for it."""
    with open(d / ".build.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_current(d: Path, version: str) -> None:
    tmp = d / "CURRENT.tmp"
    with open(tmp, "w") as f:
        f.write(version)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, d / "CURRENT")
    _fsync_dir(d)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _progress_steps(progress: bool):
    if not progress:
        return None
    import sys
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    bar = tqdm(total=5, desc="building", unit="step", file=sys.stderr)

    def step(name):
        bar.set_postfix_str(name)
        bar.update(1)
        if bar.n >= bar.total:
            bar.close()
    return step


class _EmptySnapshot:
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
