"""The engine's public face: one Engine over a data directory of many datasets.

Everything callers (CLI, gRPC servicer, bench) need goes through here. Times are
`datetime` instants (aware); `deadline` is an absolute `time.monotonic()` value after which
evaluation stops at the next shard boundary with errors.Cancelled.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from .catalog.catalog import Catalog, References, scrub_groups
from .datasets import folders
from .datasets.dataset import Dataset
from .errors import InvalidArgument
from .evaluation import output, warm as warmup
from .model.schema import PROFILE_FIELDS
from .model.segment import Segment
from .results import CountResult, ExplainNode, Materialized, Preview


def default_data_dir() -> str:
    """$SEGMENTS_DATA or ./data."""
    return os.environ.get("SEGMENTS_DATA", "./data")


class Engine:
    """A data directory holding many datasets (one per merchant); thread-safe."""

    def __init__(self, data_dir: str | os.PathLike | None = None, auto_compact: bool = True,
                 compact_after_lines: int = 2_000_000, compact_after_customers: int = 200_000):
        """auto_compact: fold changes into a new version in a background thread once the
        appended lines or changed (upserted / erased) customers pass the thresholds."""
        self.auto_compact = auto_compact
        self.compact_after_lines = compact_after_lines
        self.compact_after_customers = compact_after_customers
        self.root = Path(data_dir or default_data_dir())
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._open: dict = {}
        self.compactions = 0   # compactions started by this process (explicit and background)
        self.catalog = None    # saved segments and groups in_segment / in_group read (a Catalog sets itself)

    # ------------------------------------------------------------ datasets
    def create_dataset(self, name: str, timezone: str, shard_bits: int = folders.DEFAULT_SHARD_BITS) -> dict:
        """Create an empty dataset; AlreadyExists if the name is taken."""
        with self._lock:
            folders.create_dataset(self.root, name, timezone, shard_bits)
        return self.info(name)

    def delete_dataset(self, name: str) -> None:
        """Delete a dataset and everything in it (saved segments and groups too), and its
        exports in the default export folder (<data>/_exports/<name>/)."""
        with self._lock:
            ds = self._open.pop(name, None)
            if ds is not None:
                ds.close()
            folders.delete_dataset(self.root, name)
            exports = self.root / "_exports" / name
            if exports.is_symlink():
                exports.unlink()
            elif exports.is_dir():
                shutil.rmtree(exports, ignore_errors=True)

    def datasets(self) -> list:
        """Names of every dataset, sorted."""
        return folders.list_datasets(self.root)

    def dataset(self, name: str) -> Dataset:
        """The open Dataset `name` (NotFound if none)."""
        with self._lock:
            ds = self._open.get(name)
            if ds is None:
                ds = Dataset.open(self.root, name, on_erased=scrub_groups)
                self._open[name] = ds
            return ds

    def info(self, name: str) -> dict:
        """Row counts per table, shards, bytes on disk, timezone."""
        return self.dataset(name).info()

    def ingest(self, name: str, folder: str | os.PathLike, progress: bool = False, memory: Optional[int] = None,
               report=None) -> dict:
        """Bulk load a folder of Parquet/CSV files; all or nothing. Returns rows per table.
        `memory`: the build's budget in bytes (default $SEGMENTS_BUILD_MEMORY, else 4 GiB);
        `report(phase, done, total)` follows its progress."""
        return self.dataset(name).ingest(Path(folder), progress=progress, memory=memory, report=report)

    # ------------------------------------------------------------ live changes
    def apply_changes(self, name: str, customers=None, purchases=None, visits=None, laybys=None,
                      delete=(), batch_id: Optional[str] = None) -> dict:
        """One atomic batch, durable when this returns: `delete` (customer_ids, erasure)
        first, then `customers` upserted, then purchases / visits / laybys appended. Rows
        are a pyarrow Table or a list of dicts (data-model column names). A batch_id makes
        a retry harmless: a batch already applied is answered again, not re-applied.
        Returns {"sequence", "rows", "not_found", "duplicate"}. IngestError (nothing
        applied) names the table, the 1-based row within it, and the column."""
        ds = self.dataset(name)
        ack = ds.apply_changes(customers, purchases, visits, laybys, delete, batch_id)
        if self.auto_compact:
            p = ds.pending()
            lines = p.get("purchases", 0) + p.get("visits", 0) + p.get("laybys", 0)
            if (lines >= self.compact_after_lines
                    or p.get("customers", 0) + p.get("deleted", 0) >= self.compact_after_customers):
                if ds.compact_in_background():
                    self.compactions += 1
        return ack

    def upsert_customers(self, name: str, rows, batch_id: Optional[str] = None) -> dict:
        """Insert or replace customers (a row replaces the whole earlier row)."""
        return self.apply_changes(name, customers=rows, batch_id=batch_id)

    def append(self, name: str, table: str, rows, batch_id: Optional[str] = None) -> dict:
        """Append purchases, visits or laybys."""
        if table not in ("purchases", "visits", "laybys"):
            raise InvalidArgument("table", f"expected purchases, visits or laybys, got {table!r}")
        return self.apply_changes(name, batch_id=batch_id, **{table: rows})

    def delete_customers(self, name: str, customer_ids, batch_id: Optional[str] = None) -> dict:
        """Erase customers: gone from every answer, group and export now; their data
        leaves storage at the next compaction. Unknown ids are listed in not_found."""
        return self.apply_changes(name, delete=customer_ids, batch_id=batch_id)

    def compact(self, name: str, progress: bool = False) -> dict:
        """Fold every change so far into a new version now: {"version", "sequence", "seconds"}."""
        ds = self.dataset(name)
        self.compactions += 1
        return ds.compact(progress=progress)

    # ------------------------------------------------------------ evaluation
    def snapshot(self, name: str):
        """What a reader of dataset `name` sees now: the version plus every change so far."""
        return self.dataset(name).require_snapshot()

    def count(self, name: str, segment: Segment, as_of=None, deadline: Optional[float] = None) -> CountResult:
        """Result size with email / SMS reachable counts."""
        return output.count(self.snapshot(name), segment, as_of, deadline, self.references(name))

    def preview(self, name: str, segment: Segment, n: int = 20, fields: Sequence[str] = (),
                as_of=None, deadline: Optional[float] = None) -> Preview:
        """The first n customers with chosen fields and the ranking value."""
        return output.preview(self.snapshot(name), segment, n, tuple(fields), as_of, deadline, self.references(name))

    def materialize(self, name: str, segment: Segment, fields: Sequence[str] = (),
                    as_of=None, deadline: Optional[float] = None) -> Materialized:
        """Every customer_id of the result (and chosen fields), with the instant evaluated
        (now when as_of is None) and the change sequence of the snapshot read."""
        snap = self.snapshot(name)
        if as_of is None:
            as_of = dt.datetime.now(dt.timezone.utc)
        m = output.materialize(snap, segment, tuple(fields), as_of, deadline, self.references(name))
        m.as_of = output.parse_as_of(as_of)
        state = getattr(snap, "state", None)
        m.sequence = int(getattr(state, "seq", 0) or 0)
        return m

    def explain(self, name: str, segment: Segment, as_of=None, deadline: Optional[float] = None) -> ExplainNode:
        """The evaluated tree with each node's size and time."""
        return output.explain(self.snapshot(name), segment, as_of, deadline, self.references(name))

    def references(self, name: str) -> "References":
        """What in_segment and in_group conditions of dataset `name` read: the catalog's saved
        segments and groups (a default Catalog when none was made for this engine)."""
        if self.catalog is None:
            Catalog(self)
        return References(self.catalog, name)

    def rows_of(self, name: str, customer_ids, fields: Sequence[str] = ()) -> Materialized:
        """Customers by customer_id that are still in the dataset (active or not)."""
        return output.rows_of(self.snapshot(name), customer_ids, tuple(fields))

    # ------------------------------------------------------------ operations
    def open_datasets(self) -> dict:
        """Live state of each dataset open in this process: name -> {"sequence", "pending"}
        (cheap: no disk walk, for metrics)."""
        with self._lock:
            open_ = list(self._open.items())
        out = {}
        for name, ds in open_:
            live = ds.live()
            state = getattr(live, "state", None)
            out[name] = {"sequence": int(getattr(state, "seq", 0) or 0),
                         "pending": dict(getattr(state, "pending", None) or {})}
        return out

    def warm(self, names: Optional[Iterable[str]] = None, synthetic: bool = True,
             log: Optional[Callable[[str], None]] = None,
             cancelled: Callable[[], bool] = lambda: False) -> dict:
        """Pay before the first call what a process's first evaluations cost: run the
        warm-up segments (engine.evaluation.warm) as count, preview with every field,
        materialize and explain, on a tiny synthetic dataset with live changes (the kernels,
        process-wide) and on each dataset of `names` (default: every
        dataset; their arrays, bitmaps, profile and text columns). Stops between
        evaluations once cancelled() is true. Returns seconds per step."""
        log = log or (lambda message: None)
        timings = {}
        if synthetic:
            t0 = time.perf_counter()
            folder = Path(tempfile.mkdtemp(prefix="segments-warm-"))
            try:
                scratch = Engine(folder / "data", auto_compact=False)
                try:
                    warm_synthetic(scratch, folder / "input", cancelled)
                finally:
                    scratch.close()
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            timings["synthetic"] = round(time.perf_counter() - t0, 3)
            log(f"warm-up: kernels on a synthetic dataset in {timings['synthetic']:.2f} s")
        for name in (self.datasets() if names is None else list(names)):
            if cancelled():
                break
            t0 = time.perf_counter()
            warm_dataset(self, name, cancelled)
            timings[name] = round(time.perf_counter() - t0, 3)
            log(f"warm-up: dataset {name} in {timings[name]:.2f} s")
        return timings

    def close(self) -> None:
        """Close every open dataset."""
        with self._lock:
            for ds in self._open.values():
                ds.close()
            self._open.clear()


def warm_dataset(engine: Engine, name: str, cancelled: Callable[[], bool] = lambda: False) -> None:
    """Run the warm-up segments of one dataset through every output."""
    snap = engine.snapshot(name)
    if getattr(snap, "empty", False):
        return
    for i, seg in enumerate(warmup.warm_segments(snap)):
        if cancelled():
            return
        engine.count(name, seg)
        engine.preview(name, seg, 5, PROFILE_FIELDS if i == 0 else ("email",))
        engine.materialize(name, seg, ("email", "loyalty_points") if i < 2 else ())
        if i == 0:
            engine.explain(name, seg)
            engine.rows_of(name, engine.materialize(name, seg).customer_ids[:5], ("email",))


def warm_synthetic(engine: Engine, input_dir: Path, cancelled: Callable[[], bool] = lambda: False) -> None:
    """Build the tiny synthetic dataset in `engine`, evaluate, apply its change batch,
    evaluate again (the appended-line paths)."""
    import pyarrow.parquet as pq

    input_dir.mkdir(parents=True, exist_ok=True)
    for table, t in warmup.synthetic_tables().items():
        pq.write_table(t, input_dir / f"{table}.parquet")
    engine.create_dataset("warm", "UTC", shard_bits=warmup.SYNTHETIC_SHARD_BITS)
    engine.ingest("warm", input_dir)
    warm_dataset(engine, "warm", cancelled)
    if not cancelled():
        engine.apply_changes("warm", **warmup.synthetic_changes())
        warm_dataset(engine, "warm", cancelled)
