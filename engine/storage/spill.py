"""Spill files: rows of a load routed to buckets of shards, on disk until their bucket is built.

A bulk load reads its input part by part; each part's rows go to the bucket of their
customers' shards (consecutive shards, sized so one bucket's rows fit the memory budget)
as Arrow IPC record batches appended to one file per (kind, bucket). The builder then
reads one bucket back at a time. Nothing here is part of a version: the folder is deleted
when the build ends, successfully or not.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import pyarrow as pa

from .build_kernels import bucket_order


class Spill:
    """Append-only Arrow IPC files per (kind, bucket) under `folder`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._writers: Dict[Tuple[str, int], tuple] = {}
        self.rows: Dict[Tuple[str, int], int] = {}
        self.bytes = 0

    def _path(self, kind: str, bucket: int) -> Path:
        return self.folder / f"{kind}.{bucket:05d}.arrow"

    def write(self, kind: str, bucket: int, table: pa.Table) -> None:
        if not table.num_rows:
            return
        key = (kind, bucket)
        w = self._writers.get(key)
        if w is None:
            sink = pa.OSFile(str(self._path(kind, bucket)), "wb")
            w = (sink, pa.ipc.new_stream(sink, table.schema))
            self._writers[key] = w
        w[1].write_table(table)
        self.rows[key] = self.rows.get(key, 0) + table.num_rows
        self.bytes += table.nbytes

    @staticmethod
    def split(table: pa.Table, bucket: np.ndarray) -> list:
        """[(bucket, its rows of table)] (stable order within a bucket)."""
        if not table.num_rows:
            return []
        order = np.argsort(bucket, kind="stable")
        b = bucket[order]
        cuts = np.flatnonzero(b[1:] != b[:-1]) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [b.size]))
        if starts.size == 1:
            return [(int(b[0]), table)]
        return [(int(b[s]), table.take(pa.array(order[s:e]))) for s, e in zip(starts, ends)]

    @staticmethod
    def split_columns(cols: dict, bucket: np.ndarray) -> list:
        """[(bucket, a table of its rows)] of numpy columns: each column gathered once into
        bucket order, then cut (stable order within a bucket)."""
        if not bucket.size:
            return []
        lo, hi = int(bucket.min()), int(bucket.max())
        if lo == hi:
            return [(lo, pa.table(cols))]
        order, starts = bucket_order(bucket - lo, hi - lo + 1)
        moved = {k: v[order] for k, v in cols.items()}
        out = []
        for b in range(hi - lo + 1):
            s, e = int(starts[b]), int(starts[b + 1])
            if e > s:
                out.append((lo + b, pa.table({k: v[s:e] for k, v in moved.items()})))
        return out

    def route(self, kind: str, table: pa.Table, bucket: np.ndarray) -> None:
        """Write each row of `table` to the file of its bucket."""
        for b, piece in self.split(table, bucket):
            self.write(kind, b, piece)

    def finish_writing(self) -> None:
        for sink, w in self._writers.values():
            w.close()
            sink.close()
        self._writers.clear()

    def read(self, kind: str, bucket: int) -> Optional[pa.Table]:
        """Every row spilled to (kind, bucket), or None."""
        p = self._path(kind, bucket)
        if not p.exists():
            return None
        with pa.OSFile(str(p), "rb") as src:
            return pa.ipc.open_stream(src).read_all()

    def buckets(self, kind: str) -> list:
        return sorted(b for (k, b) in self.rows if k == kind)

    def remove(self, kind: str, bucket: int) -> None:
        self._path(kind, bucket).unlink(missing_ok=True)

    def cleanup(self) -> None:
        try:
            self.finish_writing()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
