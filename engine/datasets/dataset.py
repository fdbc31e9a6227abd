"""A Dataset: one merchant's data on disk and in memory, through its lifecycle.

It owns the live version (engine.live.Live: the immutable version, its change log and the
state readers see), applies change batches, runs bulk loads and compactions (which write a
new version and switch CURRENT), and answers `snapshot()`: what a reader evaluates
(engine.evaluation) or exports. It evaluates nothing itself.
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..live.changes import Live, erased_customer_ids, known_customer_ids, live_tables, prepare_batch
from ..live.log import ChangeLog, log_path
from ..model import timerange
from ..storage import ingest_read
from ..storage.build import build_version
from ..storage.export_tables import merge_tables
from ..storage.snapshot import EmptySnapshot, Snapshot
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

    # ------------------------------------------------------------ versions
    def _current_version(self) -> Optional[str]:
        try:
            return (self.dir / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    def live(self):
        """The current version's Live (None while the dataset has never been loaded)."""
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
            return EmptySnapshot.get(self.timezone)
        return snap

    # ------------------------------------------------------------ changes
    def apply_changes(self, customers=None, purchases=None, visits=None, laybys=None, delete=(),
                      batch_id: Optional[str] = None) -> dict:
        """One atomic, durable batch: deletes, then customer upserts, then appended lines."""
        tables, ids = prepare_batch(customers, purchases, visits, laybys, delete, batch_id)
        if self.live() is None:
            self._rebuild(None, empty_only=True)  # changes before any bulk load: an empty version
        with self._write_mutex, write_lock(self.dir):
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
                logging.getLogger(__name__).exception("background compaction of %s failed", self.name)
            finally:
                self._compacting.release()
        threading.Thread(target=run, name=f"compact-{self.name}", daemon=True).start()
        return True

    def ingest(self, folder: Path, progress: bool = False) -> dict:
        """Load a folder of files. The first load builds the dataset; a later load upserts
        customers and appends lines (rebuilding a new version). All or nothing."""

        folder = Path(folder)
        if not folder.is_dir():
            raise InvalidArgument("folder", f"{str(folder)!r} is not a folder")
        with build_lock(self.dir):
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
            with build_lock(self.dir):
                return self._rebuild(new_tables, progress, True, empty_only)
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
            tables = {"customers": ingest_read.canonical_schema("customers").empty_table()}
            erased = np.zeros(0, np.int64)
        if new_tables:
            tables = merge_tables(tables, new_tables)
        version = self._next_version()
        build_version(self.dir / version, tables, self.timezone, self.shard_bits, _progress_steps(progress),
                      extra_meta={"folded_seq": seq})
        del tables
        with self._write_mutex, write_lock(self.dir):
            if self._current_version() != start:
                shutil.rmtree(self.dir / version, ignore_errors=True)
                raise FailedPrecondition("dataset", "another load replaced the dataset meanwhile; retry")
            log = ChangeLog(log_path(self.dir / version), create=True)
            if live is not None:
                head = max(seq, live.log.head(seq))
                log.seed(head, list(live.log.raw_records(seq)), live.log.batch_ids())
            else:
                log.seed(seq, [], [])
            new = Live(Snapshot(self.dir / version, self.timezone), self.zone, self.shard_bits, log)
            with self._lock:
                write_current(self.dir, version)
                self._live = new
                self._live_version = version
        if start and start != version:  # mapped pages of readers stay valid
            shutil.rmtree(self.dir / start, ignore_errors=True)
            shutil.rmtree(log_path(self.dir / start), ignore_errors=True)
        if erased.size:
            self.on_erased(self.dir, erased)
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


def _progress_steps(progress: bool):
    if not progress:
        return None
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


