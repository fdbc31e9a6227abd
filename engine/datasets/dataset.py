"""A Dataset: one merchant's data on disk and in memory, through its lifecycle.

It owns the live version (engine.live.Live: the immutable version, its change log and the
state readers see), applies change batches, runs bulk loads and compactions (which write a
new version and switch CURRENT), and answers `snapshot()`: what a reader evaluates
(engine.evaluation) or exports. It evaluates nothing itself.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..live.changes import Live, erased_customer_ids, prepare_batch
from ..live.log import ChangeLog, log_path
from ..model import timerange
from ..storage import space
from ..storage.failpoints import failpoint
from ..storage.build import build_from_changes, build_from_load, memory_budget, remove_unreferenced_parts
from ..storage.load import Target, read_load
from ..storage.manifest import read_manifest
from ..storage.snapshot import EmptySnapshot, Snapshot
from .fold import state_changes
from .priority import DEFAULT_NICE, _start_kernel_threads, lower_this_thread, run_low
from .folders import build_lock, dataset_dir, write_current, write_lock



class Dataset:
    """One merchant's dataset: its settings, its live version and changes, and the calls on it."""

    def __init__(self, root: Path, name: str, on_erased: Optional[Callable[[Path, np.ndarray], None]] = None):
        """on_erased(dataset folder, customer_ids): called after a rebuild drops erased
        customers from storage, so that what refers to them (saved groups) drops them too."""
        self.root = Path(root)
        self.on_erased = on_erased or (lambda folder, ids: None)
        self.name = name
        self.dir = dataset_dir(root, name)
        try:
            cfg = json.loads((self.dir / "dataset.json").read_text())
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("dataset", f"no dataset named {name!r}", reason="DATASET_NOT_FOUND") from None
        self.timezone = cfg["timezone"]
        self.zone = timerange.load_zone(self.timezone)
        self.shard_bits = cfg["shard_bits"]
        self._lock = threading.Lock()
        self._write_mutex = threading.Lock()   # one writer thread per process (the flock: per dataset)
        self._live = None                      # engine.live.Live of the current version
        self._live_version: Optional[str] = None
        self._current_seen: Optional[tuple] = None  # (CURRENT's stat, the version it names)
        self._compacting = threading.Lock()    # held by a background compaction
        self._cleaned = False                  # what a crash left was removed (first open)
        self.nice = DEFAULT_NICE               # loads and compactions run this much below reads

    @classmethod
    def open(cls, root: Path, name: str, on_erased=None) -> "Dataset":
        return cls(root, name, on_erased)

    def close(self) -> None:
        """Close the version and its log (calls in flight must have finished); waits for a
        background compaction, which reads them."""
        with self._compacting, self._lock:
            if self._live is not None:
                self._live.close()
            self._live = None
            self._live_version = None

    def unload(self) -> bool:
        """Drop the loaded version (its parts close once no reader holds its snapshot any
        more; calls in flight finish on it) unless a compaction runs; True when dropped.
        The next call loads it again with every acknowledged change (they are in the log)."""
        if not self._compacting.acquire(blocking=False):
            return False
        try:
            with self._lock:
                self._live = None
                self._live_version = None
            return True
        finally:
            self._compacting.release()

    def footprint(self) -> Optional[tuple]:
        """(descriptors, mapped bytes) of the loaded version's parts; None when not loaded."""
        live = self._live
        return None if live is None else live.base.footprint()

    # ------------------------------------------------------------ versions
    def _current_version(self) -> Optional[str]:
        # Every call asks (another process may have switched it): a stat, and the file read
        # only when it is another file than last time (a switch renames a new one over it).
        path = os.path.join(self.dir, "CURRENT")
        try:
            st = os.stat(path)
            sig = (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
            seen = self._current_seen
            if seen is not None and seen[0] == sig:
                return seen[1]
            with open(path) as f:
                version = f.read().strip() or None
        except FileNotFoundError:
            return None
        self._current_seen = (sig, version)
        return version

    def live(self):
        """The current version's Live (None while the dataset has never been loaded)."""
        with self._lock:  # CURRENT is read under the lock a rebuild switches it under
            version = self._current_version()
            if version != self._live_version:
                snap = Snapshot(self.dir, version, self.timezone) if version else None
                if not self._cleaned and version is not None:
                    with build_lock(self.dir, wait=False) as mine:
                        if mine:  # first open in this process: what a crash left goes
                            self._cleanup(known=(version, snap.manifest))
                            self._cleaned = True
                self._live = Live(snap, self.zone, self.shard_bits) if version else None
                self._live_version = version
            return self._live

    def snapshot(self):
        """The live snapshot: the version plus every change so far (None while empty)."""
        live = self.live()
        return None if live is None else live.view()

    def reading(self) -> tuple:
        """(live, state, view) published together (live and state None while the dataset
        was never loaded; view then the empty snapshot): one consistent state to evaluate."""
        live = self.live()
        if live is None:
            return None, None, EmptySnapshot.get(self.timezone)
        st, view = live.current()
        return live, st, view

    @staticmethod
    def touched(old_state, new_state) -> tuple:
        """(internal ids, table names) the batches after old_state up to new_state changed
        (two states of one Live; engine.live.state.touched)."""
        from ..live.state import touched
        return touched(old_state, new_state)

    def require_snapshot(self):
        snap = self.snapshot()
        if snap is None:
            return EmptySnapshot.get(self.timezone)
        return snap

    # ------------------------------------------------------------ changes
    def apply_changes(self, customers=None, purchases=None, visits=None, laybys=None, delete=(),
                      batch_id: Optional[str] = None) -> dict:
        """One atomic, durable batch: deletes, then customer upserts, then appended lines."""
        tables, ids = prepare_batch(customers, purchases, visits, laybys, delete, batch_id)
        # the log stores the batch as Arrow IPC; LMDB pages and a copy-on-write of its tree
        need = 2 * space.table_bytes(tables) + 8 * len(ids) + (1 << 20)
        if self.live() is None:
            self._rebuild(None, empty_only=True)  # changes before any bulk load: an empty version
        with space.reserve(self.dir, need, "the change batch"), self._write_mutex, write_lock(self.dir):
            return self.live().apply_changes(tables, ids, batch_id)

    def pending(self) -> dict:
        live = self.live()
        return dict(live.state.pending) if live is not None else {}

    def compact(self, progress: bool = False) -> dict:
        """Fold every change so far into a new version (erased customers leave storage)."""
        t0 = time.perf_counter()
        with self._compacting:
            version, seq = run_low(lambda: self._rebuild(None, progress=progress), self.nice, f"compact-{self.name}")
        return {"version": version, "sequence": seq, "seconds": round(time.perf_counter() - t0, 3)}

    def compact_in_background(self) -> bool:
        """Start a compaction thread unless one runs; True when started."""
        if not self._compacting.acquire(blocking=False):
            return False

        def run():
            lower_this_thread(self.nice)
            try:
                self._rebuild(None)
            except Exception:  # the next trigger retries; changes stay in the log meanwhile
                logging.getLogger(__name__).exception("background compaction of %s failed", self.name)
            finally:
                self._compacting.release()
        if self.nice > 0:
            _start_kernel_threads()
        threading.Thread(target=run, name=f"compact-{self.name}", daemon=True).start()
        return True

    def ingest(self, folder: Path, progress: bool = False, memory: Optional[int] = None, report=None) -> dict:
        """Load a folder of files. The first load builds the dataset; a later load upserts
        customers and appends lines (the shards it touches get new parts). All or nothing.
        `memory`: the build's memory budget in bytes (default $SEGMENTS_BUILD_MEMORY or 4 GiB);
        `report(phase, done, total)` is called as the load advances."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InvalidArgument("folder", f"{str(folder)!r} is not a folder")
        return run_low(lambda: self._ingest(folder, progress, memory, report), self.nice, f"load-{self.name}")

    def _ingest(self, folder: Path, progress: bool, memory: Optional[int], report) -> dict:
        budget = memory_budget(memory)
        with build_lock(self.dir), space.reserve(self.dir, _load_bytes(folder), "the bulk load"):
            live = self.live()
            if live is not None:
                live.refresh()
                if not live.state.empty:
                    self._fold(live)  # a load lands on a version holding every change so far
                    live = self.live()
            base = live.base if live is not None else None
            target = _target(base, self.shard_bits)
            version = self._next_version()
            spill_dir = self.dir / f"{version}.spill"
            try:
                load = read_load(folder, target, self.zone, spill_dir, budget, require_customers=base is None,
                                 progress=progress, report=report)
                bar = _bar(progress, "writing shards", "shards")
                try:
                    build_from_load(self.dir, version, base, load, self.timezone, self.shard_bits,
                                    folded_seq=live.state.seq if live is not None else 0,
                                    progress=(bar.update if bar is not None else None))
                finally:
                    if bar is not None:
                        bar.close()
            finally:
                shutil.rmtree(spill_dir, ignore_errors=True)
            seq = live.state.seq if live is not None else 0
            self._publish(version, seq, live, np.zeros(0, np.int64))
            return dict(load.rows)

    def _rebuild(self, new_tables=None, progress: bool = False, locked: bool = False, empty_only: bool = False):
        """Fold every change so far into a new version and switch to it (changes acknowledged
        meanwhile move to the new version's log). Returns (version, folded sequence)."""
        if not locked:
            with build_lock(self.dir):
                return self._rebuild(new_tables, progress, True, empty_only)
        assert new_tables is None
        live = self.live()
        if empty_only and live is not None:
            return self._live_version, live.state.seq
        if live is None:
            with space.reserve(self.dir, 4 << 20, "the empty version"):
                version = self._next_version()
                build_from_changes(self.dir, version, None, {}, 0, True, {}, self.timezone, self.shard_bits, 0,
                                   memory_budget())
                self._publish(version, 0, None, np.zeros(0, np.int64))
            return version, 0
        live.refresh()
        return self._fold(live)

    def _fold(self, live) -> tuple:
        """A new version with the live state's changes (the caller holds the build lock)."""
        st = live.state
        if st.empty:
            self._cleanup()
            return self._live_version, st.seq
        erased = erased_customer_ids(live.view())
        changes, n_after, ordered, dicts = state_changes(live.base, st, self.shard_bits)
        with space.reserve(self.dir, self._fold_bytes(live, len(changes)), "the compaction"):
            version = self._next_version()
            build_from_changes(self.dir, version, live.base, changes, n_after, ordered, dicts, self.timezone,
                               self.shard_bits, st.seq, memory_budget())
            self._publish(version, st.seq, live, erased)
        return version, st.seq

    def _fold_bytes(self, live, changed_shards: int) -> int:
        """What a compaction writes, about: new parts for the shards it changes (their share
        of the dataset's parts) and the changes themselves, with a quarter to spare."""
        parts = space.used_bytes(self.dir / "parts")
        share = parts * min(changed_shards, live.base.n_shards or 1) / max(live.base.n_shards, 1)
        log = space.used_bytes(log_path(self.dir / self._live_version)) if self._live_version else 0
        return int(1.25 * (share + 2 * log)) + (4 << 20)

    def _publish(self, version: str, seq: int, live, erased: np.ndarray) -> None:
        """Switch CURRENT to a written version; its log starts with the batches after `seq`."""
        start = self._live_version
        with self._write_mutex, write_lock(self.dir):
            if self._current_version() != start:
                shutil.rmtree(self.dir / version, ignore_errors=True)
                raise FailedPrecondition("dataset", "another load replaced the dataset meanwhile; retry",
                                         reason="DATASET_REPLACED")
            log = None
            try:
                log = ChangeLog(log_path(self.dir / version), create=True)
                if live is not None:
                    head = max(seq, live.log.head(seq))
                    log.seed(head, list(live.log.raw_records(seq)), live.log.batch_ids())
                else:
                    log.seed(seq, [], [])
                new = Live(Snapshot(self.dir, version, self.timezone), self.zone, self.shard_bits, log)
                failpoint("log-seeded")
                with self._lock:
                    write_current(self.dir, version)
                    self._live = new
                    self._live_version = version
            except Exception:
                if self._current_version() != version:  # not switched: the old version stays live,
                    if log is not None:                  # and the half-published one goes at once
                        log.close()
                    shutil.rmtree(self.dir / version, ignore_errors=True)
                    shutil.rmtree(log_path(self.dir / version), ignore_errors=True)
                raise
            failpoint("current-switched")
        if start and start != version:  # mapped pages of readers stay valid
            shutil.rmtree(self.dir / start, ignore_errors=True)
            shutil.rmtree(log_path(self.dir / start), ignore_errors=True)
        remove_unreferenced_parts(self.dir, new.base.manifest.parts())
        failpoint("cleaned-up")
        if erased.size:
            self.on_erased(self.dir, erased)

    def _next_version(self) -> str:
        """The next version's name; removes what failed builds left first."""
        nums = [int(p.name[1:7]) for p in self.dir.glob("v[0-9]*") if p.name[1:7].isdigit()]
        self._cleanup()
        return f"v{max(nums, default=0) + 1:06d}"

    def _cleanup(self, known: tuple = (None, None)) -> None:
        """Remove what no version needs: folders of versions other than CURRENT (builds
        that failed, or crashed before or after switching) and parts its manifest does not
        name. The caller holds the build lock, so nothing else is being written.
        known: (version, its manifest) already read, used when CURRENT still names it."""
        current = self._current_version()
        keep = (current, f"{current}.log") if current else ()
        for name in os.listdir(self.dir):
            if name[:1] == "v" and name[1:2].isdigit() and name not in keep and (self.dir / name).is_dir():
                shutil.rmtree(self.dir / name, ignore_errors=True)
        if not current:
            parts = set()
        elif current == known[0]:
            parts = known[1].parts()
        else:
            parts = read_manifest(self.dir / current).parts()
        remove_unreferenced_parts(self.dir, parts)

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


def _load_bytes(folder: Path) -> int:
    """What a bulk load writes, about: its spill files and new parts. A Parquet file decodes
    to several times its size (5x for generated data); CSV to about its size."""
    total = 0
    for p in Path(folder).rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size * (6 if p.suffix.lower() == ".parquet" else 2)
        except OSError:
            pass
    return total + (16 << 20)


def _target(base, shard_bits: int) -> Target:
    """What a load lands on: the customers of a version (None: a first load)."""
    if base is None:
        return Target(shard_bits=shard_bits)
    ext = base.ext_ids()
    iid = np.arange(ext.size, dtype=np.int64)
    erased = np.asarray(base.bitmap("erased").to_array(), np.int64)
    keep = np.ones(ext.size, bool)
    keep[erased] = False
    return Target(n=base.n, ext=ext[keep], iid=iid[keep], dicts={k: list(v) for k, v in base.dictionaries().items()},
                  shard_bits=shard_bits, max_ext=int(ext.max()) if ext.size else None,
                  pairs=tuple(base.manifest.pairs))


def _bar(progress: bool, desc: str, unit: str):
    if not progress or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(desc=desc, unit=unit, file=sys.stderr)
