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
from .datasets import priority
from .datasets.residency import Budget, Residency
from .errors import InvalidArgument
from .evaluation import output, warm as warmup
from .model.schema import PROFILE_FIELDS
from .model.segment import Segment
from .results import CountResult, ExplainNode, Materialized, MaterializedStream, Preview


def default_data_dir() -> str:
    """$SEGMENTS_DATA or ./data."""
    return os.environ.get("SEGMENTS_DATA", "./data")


class Engine:
    """A data directory holding many datasets (one per merchant); thread-safe."""

    def __init__(self, data_dir: str | os.PathLike | None = None, auto_compact: bool = True,
                 compact_after_lines: int = 2_000_000, compact_after_customers: int = 200_000,
                 budget: Optional[Budget] = None, build_nice: Optional[int] = None):
        """auto_compact: fold changes into a new version in a background thread once the
        appended lines or changed (upserted / erased) customers pass the thresholds.
        budget: how many datasets, descriptors and mapped bytes the open datasets may hold
        (engine.datasets.residency; default Budget.from_env()): past it the least recently
        used idle datasets are closed, and a call on a closed one reopens it.
        build_nice: how far below reads loads and compactions run (engine.datasets.priority;
        default $SEGMENTS_BUILD_NICE or 10; 0: same priority)."""
        self.auto_compact = auto_compact
        self.compact_after_lines = compact_after_lines
        self.compact_after_customers = compact_after_customers
        self.root = Path(data_dir or default_data_dir())
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._open: dict = {}   # name -> Dataset, kept once used (small; its version may be unloaded)
        self.compactions = 0   # compactions started by this process (explicit and background)
        self.catalog = None    # saved segments and groups in_segment / in_group read (a Catalog sets itself)
        self._listeners: list = []  # fn(dataset name) after each acknowledged change or load
        self.build_nice = priority.default_nice() if build_nice is None else int(build_nice)
        self.residency = Residency(budget if budget is not None else Budget.from_env(), self._dataset)

    def add_change_listener(self, fn: Callable[[str], None]) -> None:
        """Call fn(dataset) after each acknowledged change batch, load or compaction of this
        process (tracked segments' maintenance wakes up on it; it must return quickly)."""
        self._listeners.append(fn)

    def remove_change_listener(self, fn: Callable[[str], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _changed(self, name: str) -> None:
        for fn in list(self._listeners):
            fn(name)

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
            self.residency.forget(name)
            folders.delete_dataset(self.root, name)
            exports = self.root / "_exports" / name
            if exports.is_symlink():
                exports.unlink()
            elif exports.is_dir():
                shutil.rmtree(exports, ignore_errors=True)

    def datasets(self) -> list:
        """Names of every dataset, sorted."""
        return folders.list_datasets(self.root)

    def _dataset(self, name: str) -> Dataset:
        with self._lock:
            ds = self._open.get(name)
            if ds is None:
                ds = Dataset.open(self.root, name, on_erased=scrub_groups)
                ds.nice = self.build_nice
                self._open[name] = ds
            return ds

    def dataset(self, name: str) -> Dataset:
        """The Dataset `name` (NotFound if none). Its version may be closed again to keep
        the budget once no call holds it; a reader keeping a snapshot keeps its parts open."""
        ds = self._dataset(name)
        self.residency.touch(name, ds)
        return ds

    def _use(self, name: str):
        """Hold dataset `name` open for a call (engine.datasets.residency)."""
        return self.residency.hold(name)

    def info(self, name: str) -> dict:
        """Row counts per table, shards, bytes on disk, timezone."""
        with self._use(name) as ds:
            return ds.info()

    def ingest(self, name: str, folder: str | os.PathLike, progress: bool = False, memory: Optional[int] = None,
               report=None) -> dict:
        """Bulk load a folder of Parquet/CSV files; all or nothing. Returns rows per table.
        `memory`: the build's budget in bytes (default $SEGMENTS_BUILD_MEMORY, else 4 GiB);
        `report(phase, done, total)` follows its progress."""
        with self._use(name) as ds:
            rows = ds.ingest(Path(folder), progress=progress, memory=memory, report=report)
        self._changed(name)
        return rows

    # ------------------------------------------------------------ live changes
    def apply_changes(self, name: str, customers=None, purchases=None, visits=None, laybys=None,
                      delete=(), batch_id: Optional[str] = None) -> dict:
        """One atomic batch, durable when this returns: `delete` (customer_ids, erasure)
        first, then `customers` upserted, then purchases / visits / laybys appended. Rows
        are a pyarrow Table or a list of dicts (data-model column names). A batch_id makes
        a retry harmless: a batch already applied is answered again, not re-applied.
        Returns {"sequence", "rows", "not_found", "duplicate"}. IngestError (nothing
        applied) names the table, the 1-based row within it, and the column."""
        with self._use(name) as ds:
            ack = self._apply(ds, customers, purchases, visits, laybys, delete, batch_id)
        self._changed(name)
        return ack

    def _apply(self, ds, customers, purchases, visits, laybys, delete, batch_id) -> dict:
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
        with self._use(name) as ds:
            self.compactions += 1
            out = ds.compact(progress=progress)
        self._changed(name)
        return out

    # ------------------------------------------------------------ evaluation
    def snapshot(self, name: str):
        """What a reader of dataset `name` sees now: the version plus every change so far."""
        with self._use(name) as ds:
            return ds.require_snapshot()

    def count(self, name: str, segment: Segment, as_of=None, deadline: Optional[float] = None,
              references=None) -> CountResult:
        """Result size with email / SMS reachable counts. references (here and in the other
        evaluations): what in_segment / in_group read instead of this engine's catalog, and
        percentiles' value intervals (a cluster partition's, given by its coordinator)."""
        with self._use(name) as ds:
            return output.count(ds.require_snapshot(), segment, as_of, deadline, self._refs(name, references))

    def preview(self, name: str, segment: Segment, n: int = 20, fields: Sequence[str] = (),
                as_of=None, deadline: Optional[float] = None, references=None) -> Preview:
        """The first n customers with chosen fields and the ranking value."""
        with self._use(name) as ds:
            return output.preview(ds.require_snapshot(), segment, n, tuple(fields), as_of, deadline,
                                  self._refs(name, references))

    def materialize(self, name: str, segment: Segment, fields: Sequence[str] = (),
                    as_of=None, deadline: Optional[float] = None, references=None) -> Materialized:
        """Every customer_id of the result (and chosen fields), with the instant evaluated
        (now when as_of is None) and the change sequence of the snapshot read."""
        with self._use(name) as ds:
            snap = ds.require_snapshot()
            if as_of is None:
                as_of = dt.datetime.now(dt.timezone.utc)
            m = output.materialize(snap, segment, tuple(fields), as_of, deadline,
                                   self._refs(name, references))
            m.as_of = output.parse_as_of(as_of)
            state = getattr(snap, "state", None)
            m.sequence = int(getattr(state, "seq", 0) or 0)
            return m

    def materialize_stream(self, name: str, segment: Segment, fields: Sequence[str] = (), as_of=None,
                           deadline: Optional[float] = None, chunk_ids: int = 65_536) -> MaterializedStream:
        """materialize() in pieces of chunk_ids rows (what a server streams; a cluster
        coordinator merges its partitions' streams instead of whole answers)."""
        return MaterializedStream.of(self.materialize(name, segment, fields, as_of, deadline), chunk_ids)

    def limit_pieces(self, name: str, segment: Segment, want: str = "count", n: int = 0, fields: Sequence[str] = (),
                     as_of=None, deadline: Optional[float] = None, references=None) -> dict:
        """A segment with a limit as the two pieces a cluster coordinator merges in one
        round (output.limit_pieces), with the change sequence of the snapshot read."""
        with self._use(name) as ds:
            snap = ds.require_snapshot()
            out = output.limit_pieces(snap, segment, want, n, tuple(fields), as_of, deadline,
                                      self._refs(name, references))
            out["sequence"] = int(getattr(getattr(snap, "state", None), "seq", 0) or 0)
            return out

    def explain(self, name: str, segment: Segment, as_of=None, deadline: Optional[float] = None,
                references=None) -> ExplainNode:
        """The evaluated tree with each node's size and time."""
        with self._use(name) as ds:
            return output.explain(ds.require_snapshot(), segment, as_of, deadline, self._refs(name, references))

    def value_histograms(self, name: str, items, as_of=None, deadline: Optional[float] = None,
                         references=None) -> list:
        """(sorted distinct values, counts) of each (Value, among) over its percentile
        population (output.value_histograms): a cluster coordinator's first round."""
        with self._use(name) as ds:
            return output.value_histograms(ds.require_snapshot(), items, as_of, deadline,
                                           self._refs(name, references))

    def references(self, name: str) -> "References":
        """What in_segment and in_group conditions of dataset `name` read: the catalog's saved
        segments and groups (a default Catalog when none was made for this engine)."""
        if self.catalog is None:
            Catalog(self)
        return References(self.catalog, name)

    def _refs(self, name: str, given):
        return self.references(name) if given is None else given

    def rows_of(self, name: str, customer_ids, fields: Sequence[str] = ()) -> Materialized:
        """Customers by customer_id that are still in the dataset (active or not)."""
        with self._use(name) as ds:
            return output.rows_of(ds.require_snapshot(), customer_ids, tuple(fields))

    # ------------------------------------------------------------ operations
    def open_datasets(self) -> dict:
        """Live state of each dataset open in this process: name -> {"sequence", "pending"}
        (cheap: no disk walk, for metrics)."""
        with self._lock:
            open_ = list(self._open.items())
        out = {}
        for name, ds in open_:
            if ds._live is None:   # closed: metrics never reopen a dataset
                continue
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
        dataset, at most as many as the budget keeps open; their arrays, bitmaps, profile
        and text columns). Stops between
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
        if names is None:   # warming more datasets than may stay open would only close them again
            names = self.datasets()
            if self.residency.budget.datasets:
                names = names[:self.residency.budget.datasets]
        for name in names:
            if cancelled():
                break
            t0 = time.perf_counter()
            warm_dataset(self, name, cancelled)
            timings[name] = round(time.perf_counter() - t0, 3)
            log(f"warm-up: dataset {name} in {timings[name]:.2f} s")
        return timings

    def open_stats(self) -> dict:
        """Open datasets, their descriptors and mapped bytes, the budget, and how many
        were opened (cold calls) and closed since start."""
        return self.residency.stats()

    def close_idle(self, older_than: float = 0.0) -> int:
        """Close every dataset no call holds that was last called `older_than` seconds ago
        or earlier; returns how many."""
        return self.residency.close_idle(older_than)

    def close(self) -> None:
        """Close every open dataset."""
        self.residency.stop()
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
