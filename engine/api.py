"""The engine's public face: one Engine over a data directory of many datasets.

Everything callers (CLI, gRPC servicer, bench) need goes through here. Times are
`datetime` instants (aware); `deadline` is an absolute `time.monotonic()` value after which
evaluation stops at the next shard boundary with errors.Cancelled.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Optional, Sequence

from . import store

from .results import CountResult, ExplainNode, Materialized, Preview
from .segment import Segment


def default_data_dir() -> str:
    """$SEGMENTS_DATA or ./data."""
    return os.environ.get("SEGMENTS_DATA", "./data")


class Engine:
    """A data directory holding many datasets (one per merchant); thread-safe."""

    def __init__(self, data_dir: str | os.PathLike | None = None):
        self.root = Path(data_dir or default_data_dir())
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._open: dict = {}

    # ------------------------------------------------------------ datasets
    def create_dataset(self, name: str, timezone: str, shard_bits: int = store.DEFAULT_SHARD_BITS) -> dict:
        """Create an empty dataset; AlreadyExists if the name is taken."""
        with self._lock:
            store.create_dataset(self.root, name, timezone, shard_bits)
        return self.info(name)

    def delete_dataset(self, name: str) -> None:
        """Delete a dataset and everything in it (saved segments and groups too)."""
        with self._lock:
            ds = self._open.pop(name, None)
            if ds is not None:
                ds.close()
            store.delete_dataset(self.root, name)

    def datasets(self) -> list:
        """Names of every dataset, sorted."""
        return store.list_datasets(self.root)

    def dataset(self, name: str) -> "store.Dataset":
        """The open Dataset `name` (NotFound if none)."""
        with self._lock:
            ds = self._open.get(name)
            if ds is None:
                ds = store.Dataset.open(self.root, name)
                self._open[name] = ds
            return ds

    def info(self, name: str) -> dict:
        """Row counts per table, shards, bytes on disk, timezone."""
        return self.dataset(name).info()

    def ingest(self, name: str, folder: str | os.PathLike, progress: bool = False) -> dict:
        """Bulk load a folder of Parquet/CSV files; all or nothing. Returns rows per table."""
        return self.dataset(name).ingest(Path(folder), progress=progress)

    # ------------------------------------------------------------ evaluation
    def count(self, name: str, segment: Segment, as_of=None, deadline: Optional[float] = None) -> CountResult:
        """Result size with email / SMS reachable counts."""
        return self.dataset(name).count(segment, as_of, deadline)

    def preview(self, name: str, segment: Segment, n: int = 20, fields: Sequence[str] = (),
                as_of=None, deadline: Optional[float] = None) -> Preview:
        """The first n customers with chosen fields and the ranking value."""
        return self.dataset(name).preview(segment, n, tuple(fields), as_of, deadline)

    def materialize(self, name: str, segment: Segment, fields: Sequence[str] = (),
                    as_of=None, deadline: Optional[float] = None) -> Materialized:
        """Every customer_id of the result (and chosen fields)."""
        return self.dataset(name).materialize(segment, tuple(fields), as_of, deadline)

    def explain(self, name: str, segment: Segment, as_of=None, deadline: Optional[float] = None) -> ExplainNode:
        """The evaluated tree with each node's size and time."""
        return self.dataset(name).explain(segment, as_of, deadline)

    def rows_of(self, name: str, customer_ids, fields: Sequence[str] = ()) -> Materialized:
        """Customers by customer_id that are still in the dataset (active or not)."""
        return self.dataset(name).rows_of(customer_ids, tuple(fields))

    def close(self) -> None:
        """Close every open dataset."""
        with self._lock:
            for ds in self._open.values():
                ds.close()
            self._open.clear()
