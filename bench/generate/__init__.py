"""Deterministic synthetic datasets: customers, purchases, visits and laybys as Parquet or CSV.

The customers are cut into chunks; each chunk's rows of every table are drawn from
generators seeded by (seed, chunk, table) and written before the next chunk is drawn, so
memory stays bounded at any scale and the same arguments give byte-identical files.
Profiles come from bench/generate/tables.py, activity rows from bench/generate/lines.py,
cardinalities, skew, history length, activity mix and id layout from a named shape
(bench/generate/shapes.py; `default` is today's data, byte for byte).

Chunks are drawn by worker processes (`workers`, default: the machine's cores, at most one
per chunk) and written by one writer thread in chunk order, so the files do not depend on
how many workers drew them.

    python -m segments.bench.generate OUT --scale M --shape catalog --progress
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import time
from collections import deque
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from tqdm import tqdm

from .lines import laybys_chunk, make_catalog, purchases_chunk, visits_chunk
from .shapes import SHAPES, Shape
from .shapes import get as get_shape
from .tables import arrow_schema, customers_chunk, make_calendar
from segments.engine.model.schema import TABLE_NAMES

DEFAULT_ANCHOR = dt.date(2026, 11, 20)   # "today" of generated data; fixed for determinism
SCALES = {"S": 100_000, "M": 1_000_000, "L": 10_000_000}   # customers
FORMATS = ("parquet", "csv")

CHUNK_CUSTOMERS = 250_000        # customers drawn and written at a time (~5M purchase lines)
PART_ROWS = 5_000_000            # a table expected to be larger is written as a folder of parts
ROWS_PER_CUSTOMER = {"customers": 1.0, "purchases": 20.0, "visits": 5.0, "laybys": 0.07}
ID_LOW, ID_HIGH = 10**9, 9 * 10**15
ID_RANGES = {"wide": (ID_LOW, ID_HIGH), "digits10": (10**9, 10**10)}   # by Shape.ids
MAX_PENDING = 3                  # chunk tables queued for the writer thread (bounds memory)
_STREAM = {"ids": 0, "customers": 1, "purchases": 2, "visits": 3, "laybys": 4}
_CATALOG_CHUNK = 2**32 - 1       # spawn key of the catalog's generator, apart from any chunk


def generate(out: str | Path, scale: str = "S", seed: int = 0, fmt: str = "parquet",
             customers: int | None = None, anchor: dt.date = DEFAULT_ANCHOR,
             progress: bool = False, shape: str | Shape = "default",
             workers: int | None = None) -> dict:
    """Write customers/purchases/visits/laybys files into `out`; return rows per table.
    `shape`: a name of bench/generate/shapes.SHAPES or a Shape; `workers`: processes
    drawing chunks (default: cores, at most one per chunk; 1 draws in this process)."""
    shape = get_shape(shape)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, not {scale!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, not {seed!r}")
    n = SCALES[scale] if customers is None else int(customers)
    if n < 1:
        raise ValueError(f"customers must be >= 1, not {customers!r}")
    if not isinstance(anchor, dt.date) or isinstance(anchor, dt.datetime):
        raise ValueError(f"anchor must be a datetime.date, not {anchor!r}")

    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
        raise ValueError(f"workers must be an int >= 1, not {workers!r}")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # A chunk holds about CHUNK_CUSTOMERS * 20 purchase lines whatever the shape.
    per_chunk = CHUNK_CUSTOMERS if shape.lines_per_customer <= ROWS_PER_CUSTOMER["purchases"] else \
        max(1, int(CHUNK_CUSTOMERS * ROWS_PER_CUSTOMER["purchases"] / shape.lines_per_customer))
    n_chunks = math.ceil(n / per_chunk)
    sizes = [n // n_chunks + (c < n % n_chunks) for c in range(n_chunks)]
    id_low, id_high = ID_RANGES[shape.ids]
    stride = (id_high - id_low) // (max(sizes) * n_chunks)
    if stride < 1:
        raise ValueError(f"customers: {n:,} do not fit the {shape.ids} id range of shape {shape.name!r}")
    expected = {t: n * r for t, r in ROWS_PER_CUSTOMER.items()}
    expected["purchases"] = n * shape.lines_per_customer
    rows = dict.fromkeys(TABLE_NAMES, 0)
    pending: deque = deque()        # (table, future) written in order by one writer thread
    job = (seed, n_chunks, stride, id_low, anchor, shape)
    workers = min(n_chunks, workers or os.cpu_count() or 1)
    sinks: dict = {}

    def put(name: str, chunk: int, table: pa.Table) -> None:
        pending.append((name, writer.submit(sinks[name].write, chunk, table)))
        while len(pending) > MAX_PENDING:
            done, future = pending.popleft()
            rows[done] += future.result()

    pool = None
    try:
        if workers > 1:
            # Started (forked) before the writer thread exists; workers + 1 chunks in flight.
            pool = ProcessPoolExecutor(workers, mp_context=_mp_context())
            list(pool.map(_warm, range(workers)))
        sinks.update((t, _Sink(out, t, fmt, folder=expected[t] > PART_ROWS)) for t in TABLE_NAMES)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate-writer") as writer:
            bar = tqdm(range(n_chunks), disable=not progress, unit="chunk",
                       desc=f"generate {n:,} customers ({shape.name})")
            drawn: deque = deque()
            ahead = iter(range(n_chunks))
            for c in bar:
                if pool is None:
                    tables = _chunk(job, c, sizes[c])
                else:
                    while len(drawn) <= workers and (k := next(ahead, None)) is not None:
                        drawn.append(pool.submit(_chunk, job, k, sizes[k]))
                    tables = drawn.popleft().result()
                for name, table in zip(TABLE_NAMES, tables):
                    put(name, c, table)
                del tables
            while pending:
                done, future = pending.popleft()
                rows[done] += future.result()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        for sink in sinks.values():
            sink.close()
    return rows


_CATALOGS: dict = {}            # (seed, shape, anchor) -> (calendar, catalog), per process


def _chunk(job: tuple, c: int, size: int) -> tuple:
    """Chunk c's customers, purchases, visits and laybys (TABLE_NAMES order); the same
    whichever process draws it."""
    seed, n_chunks, stride, id_low, anchor, shape = job
    key = (seed, shape, anchor)
    if key not in _CATALOGS:
        _CATALOGS.clear()
        _CATALOGS[key] = (make_calendar(anchor, shape.years), make_catalog(_rng(seed, _CATALOG_CHUNK, 0), shape))
    cal, catalog = _CATALOGS[key]
    ids = _customer_ids(_rng(seed, c, _STREAM["ids"]), c, n_chunks, size, stride, id_low)
    customers, act = customers_chunk(_rng(seed, c, _STREAM["customers"]), ids, cal, shape)
    return (customers,
            purchases_chunk(_rng(seed, c, _STREAM["purchases"]), act, cal, catalog),
            visits_chunk(_rng(seed, c, _STREAM["visits"]), act, cal, catalog.vocab),
            laybys_chunk(_rng(seed, c, _STREAM["laybys"]), act, cal))


def _warm(_: int) -> int:
    return os.getpid()


def _mp_context():
    """fork where there is one (workers start at once, no re-import), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _rng(seed: int, chunk: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(chunk, stream))))


def _customer_ids(rng, chunk: int, n_chunks: int, size: int, stride: int,
                  id_low: int = ID_LOW) -> np.ndarray:
    """Unique sparse ids from id_low on (ID_RANGES), shuffled: customer k of chunk c owns
    slot k*n_chunks + c, a stride-wide band, so ids are unique across chunks and every
    chunk spans the whole id range."""
    slots = np.arange(size, dtype=np.int64) * n_chunks + chunk
    ids = id_low + slots * stride + rng.integers(0, stride, size)
    return rng.permutation(ids)


class _Sink:
    """One table's output: a single `<table>.<fmt>` file written chunk by chunk, or a folder
    `<table>/` holding one `part-NNNNN.<fmt>` per chunk."""

    def __init__(self, out: Path, table: str, fmt: str, folder: bool):
        self.fmt, self.schema = fmt, arrow_schema(table)
        self.folder = out / table if folder else None
        _clear(out, table)
        if self.folder is not None:
            self.folder.mkdir()
            self.writer = None
        else:
            self.writer = self._open(out / f"{table}.{fmt}")

    def _open(self, path: Path):
        if self.fmt == "parquet":
            return pq.ParquetWriter(path, self.schema, compression="zstd")
        return pcsv.CSVWriter(path, _csv_schema(self.schema))

    def write(self, chunk: int, table: pa.Table) -> int:
        """Append one chunk's rows; returns how many."""
        data = table if self.fmt == "parquet" else _csv_table(table)
        if self.folder is None:
            self.writer.write_table(data)
        else:
            writer = self._open(self.folder / f"part-{chunk:05d}.{self.fmt}")
            writer.write_table(data)
            writer.close()
        return table.num_rows

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _clear(out: Path, table: str) -> None:
    """Remove an earlier run's output of `table` (either format, file or folder of parts)."""
    for ext in FORMATS:
        (out / f"{table}.{ext}").unlink(missing_ok=True)
    folder = out / table
    if folder.is_dir():
        for part in folder.glob("part-*"):
            part.unlink()
        folder.rmdir()       # refuses, loudly, to delete a folder holding anything else


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    """Timestamps and lists are written as text."""
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_timestamp(f.type)
                      or pa.types.is_list(f.type) else f for f in schema])


def _csv_table(table: pa.Table) -> pa.Table:
    """CSV form: timestamps ISO-8601 with Z (whole seconds), lists `;`-joined, an empty list
    as an empty (null) field."""
    cols = []
    for field, col in zip(table.schema, table.columns):
        if pa.types.is_timestamp(field.type):
            col = pc.strftime(pc.cast(col, pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")
        elif pa.types.is_list(field.type):
            joined = pc.binary_join(col, ";")
            col = pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), joined)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=_csv_schema(table.schema))


def main(argv=None) -> None:
    """Command line: python -m segments.bench.generate OUT [--scale S|M|L] [--customers N] ..."""
    p = argparse.ArgumentParser(prog="python -m segments.bench.generate", description=main.__doc__)
    p.add_argument("out")
    p.add_argument("--scale", default="S", choices=sorted(SCALES))
    p.add_argument("--customers", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", dest="fmt", default="parquet", choices=FORMATS)
    p.add_argument("--anchor", type=dt.date.fromisoformat, default=DEFAULT_ANCHOR)
    p.add_argument("--shape", default="default", choices=sorted(SHAPES))
    p.add_argument("--workers", type=int, help="processes drawing chunks (default: cores)")
    p.add_argument("--progress", action="store_true")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    rows = generate(a.out, a.scale, a.seed, a.fmt, a.customers, a.anchor, a.progress, a.shape, a.workers)
    print(" ".join(f"{k}={v:,}" for k, v in rows.items()), f"in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
