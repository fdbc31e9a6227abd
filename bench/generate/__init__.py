"""Deterministic synthetic datasets: customers, purchases, visits and laybys as Parquet or CSV.

The customers are cut into chunks; each chunk's rows of every table are drawn from
generators seeded by (seed, chunk, table) and written before the next chunk is drawn, so
memory stays bounded at any scale and the same arguments give byte-identical files.
Profiles come from bench/generate/tables.py, activity rows from bench/generate/lines.py.

    python -m segments.bench.generate OUT --scale M --progress
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from tqdm import tqdm

from .lines import laybys_chunk, make_catalog, purchases_chunk, visits_chunk
from .tables import arrow_schema, customers_chunk, make_calendar
from segments.engine.model.schema import TABLE_NAMES

DEFAULT_ANCHOR = dt.date(2026, 11, 20)   # "today" of generated data; fixed for determinism
SCALES = {"S": 100_000, "M": 1_000_000, "L": 10_000_000}   # customers
FORMATS = ("parquet", "csv")

CHUNK_CUSTOMERS = 250_000        # customers drawn and written at a time (~5M purchase lines)
PART_ROWS = 5_000_000            # a table expected to be larger is written as a folder of parts
ROWS_PER_CUSTOMER = {"customers": 1.0, "purchases": 20.0, "visits": 5.0, "laybys": 0.07}
ID_LOW, ID_HIGH = 10**9, 9 * 10**15
MAX_PENDING = 3                  # chunk tables queued for the writer thread (bounds memory)
_STREAM = {"ids": 0, "customers": 1, "purchases": 2, "visits": 3, "laybys": 4}
_CATALOG_CHUNK = 2**32 - 1       # spawn key of the catalog's generator, apart from any chunk


def generate(out: str | Path, scale: str = "S", seed: int = 0, fmt: str = "parquet",
             customers: int | None = None, anchor: dt.date = DEFAULT_ANCHOR,
             progress: bool = False) -> dict:
    """Write customers/purchases/visits/laybys files into `out`; return rows per table."""
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

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_chunks = math.ceil(n / CHUNK_CUSTOMERS)
    sizes = [n // n_chunks + (c < n % n_chunks) for c in range(n_chunks)]
    stride = (ID_HIGH - ID_LOW) // (max(sizes) * n_chunks)
    cal = make_calendar(anchor)
    catalog = make_catalog(_rng(seed, _CATALOG_CHUNK, 0))
    sinks = {t: _Sink(out, t, fmt, folder=n * ROWS_PER_CUSTOMER[t] > PART_ROWS)
             for t in TABLE_NAMES}
    rows = dict.fromkeys(TABLE_NAMES, 0)
    pending: deque = deque()        # (table, future) written in order by one writer thread

    def put(name: str, chunk: int, table: pa.Table) -> None:
        pending.append((name, writer.submit(sinks[name].write, chunk, table)))
        while len(pending) > MAX_PENDING:
            done, future = pending.popleft()
            rows[done] += future.result()

    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate-writer") as writer:
            bar = tqdm(range(n_chunks), disable=not progress, unit="chunk",
                       desc=f"generate {n:,} customers")
            for c in bar:
                ids = _customer_ids(_rng(seed, c, _STREAM["ids"]), c, n_chunks, sizes[c], stride)
                table, act = customers_chunk(_rng(seed, c, _STREAM["customers"]), ids, cal)
                put("customers", c, table)
                put("purchases", c, purchases_chunk(_rng(seed, c, _STREAM["purchases"]), act, cal, catalog))
                put("visits", c, visits_chunk(_rng(seed, c, _STREAM["visits"]), act, cal))
                put("laybys", c, laybys_chunk(_rng(seed, c, _STREAM["laybys"]), act, cal))
                del table, act
            while pending:
                done, future = pending.popleft()
                rows[done] += future.result()
    finally:
        for sink in sinks.values():
            sink.close()
    return rows


def _rng(seed: int, chunk: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(chunk, stream))))


def _customer_ids(rng, chunk: int, n_chunks: int, size: int, stride: int) -> np.ndarray:
    """Unique sparse ids in [ID_LOW, ID_HIGH), shuffled: customer k of chunk c owns slot
    k*n_chunks + c, a stride-wide band, so ids are unique across chunks and every chunk
    spans the whole id range."""
    slots = np.arange(size, dtype=np.int64) * n_chunks + chunk
    ids = ID_LOW + slots * stride + rng.integers(0, stride, size)
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
    p.add_argument("--progress", action="store_true")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    rows = generate(a.out, a.scale, a.seed, a.fmt, a.customers, a.anchor, a.progress)
    print(" ".join(f"{k}={v:,}" for k, v in rows.items()), f"in {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
