"""Writing versions: a bulk load or a set of changes becomes new parts and a new manifest.

Work is done shard by shard, in buckets of consecutive shards (one part per bucket,
`workers` buckets at a time), so memory follows the bucket, not the dataset:
  - a shard whose customers changed (upserted, new, erased) gets a new customer object
    (engine.storage.shard_customers): its old rows with the changes applied;
  - a shard with new lines gets a new sorted run per table (engine.storage.runs); when its
    runs grow many, the small ones are merged, and when the merged ones grow large next to
    the largest, all are merged into one; erasing a customer rewrites the runs that hold
    its lines, without them;
  - every other shard's entry is copied from the base version as it is: its parts are
    shared, not rewritten.
A failed build leaves nothing behind but parts no manifest names, which the next build
removes. The caller publishes the returned version by switching CURRENT.
"""
from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import pyarrow as pa

from .customer_attrs import INT32_NULL, INT64_NULL  # noqa: F401  (re-exported for callers)
from .ingest_read import canonical_schema
from .load import Load
from .manifest import Manifest, Run, Shard, write_version
from .failpoints import failpoint
from .parts import PartWriter
from .runs import build_run, concat_columns, drop_customers, empty_columns
from .shard_customers import build_customers

DEFAULT_BUDGET = 4 << 30       # bytes a build may hold in memory (SEGMENTS_BUILD_MEMORY, --memory)
MAX_RUNS = 4                   # runs per shard and table before the small ones are merged
MERGE_FRACTION = 0.25          # merged small runs this large next to the largest: merge all
WORKERS = max(1, min(2, os.cpu_count() or 1))
LINE_TABLES = ("p", "v", "l")


def memory_budget(value: Optional[int] = None) -> int:
    """The build's memory budget in bytes: `value`, else $SEGMENTS_BUILD_MEMORY (bytes, or
    with a K/M/G suffix), else DEFAULT_BUDGET."""
    if value:
        return int(value)
    env = os.environ.get("SEGMENTS_BUILD_MEMORY", "").strip()
    if env:
        return parse_size(env)
    return DEFAULT_BUDGET


def parse_size(text: str) -> int:
    """'4G', '512M', '1048576' -> bytes."""
    t = text.strip().upper().rstrip("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    num = t[:-1] if t[-1:] in "KMGT" else t
    try:
        v = int(float(num) * mult)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (bytes, or a number with K, M, G)") from None
    if v < (64 << 20):
        raise ValueError(f"memory budget {text!r} is below the minimum of 64M")
    return v


@dataclass
class ShardChanges:
    """What changes in one shard (internal ids are global)."""
    rows: Optional[pa.Table] = None                           # upserted / new customers + _iid
    erased: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lines: Dict[str, Dict[str, np.ndarray]] = field(default_factory=dict)  # table -> columns with iid


class VersionBuilder:
    """Writes the shards of one new version into parts under <dataset>/parts/."""

    def __init__(self, dataset_dir: Path, version: str, base, dicts: Dict[str, list], shard_bits: int,
                 aggregates: bool = True, pairs: tuple = ()):
        self.dir = Path(dataset_dir)
        self.version = version
        self.vno = int(version[1:])
        self.base = base            # Snapshot of the base version, or None
        self.dicts = dicts
        self.bits = shard_bits
        self.aggregates = aggregates
        self.pairs = tuple(base.manifest.pairs) if base is not None else tuple(pairs)
        self.parts_dir = self.dir / "parts"
        self.parts_dir.mkdir(exist_ok=True)
        self.written: List[str] = []
        self.bytes = 0

    def _base_shard(self, s: int) -> Optional[Shard]:
        if self.base is None or s >= self.base.n_shards:
            return None
        return self.base.manifest.shards[s]

    def write_bucket(self, bucket: int, changes: Dict[int, ShardChanges], n_after: int) -> Dict[int, Shard]:
        """Write the changed shards of one bucket into one new part; their new entries."""
        name = f"{self.version}.b{bucket:05d}"
        pw = PartWriter(self.parts_dir / name)
        self.written.append(name)
        try:
            out = {}
            for s in sorted(changes):
                out[s] = self._write_shard(pw, name, s, changes[s], n_after)
                pw.commit()
                failpoint("shard-written")
            size = pw.finish()
        except BaseException:
            pw.abort()
            raise
        self.bytes += size
        return out

    # ------------------------------------------------------------ one shard
    def _write_shard(self, pw: PartWriter, part: str, s: int, ch: ShardChanges, n_after: int) -> Shard:
        size = 1 << self.bits
        base_id = s * size
        old = self._base_shard(s)
        n_old = old.n if old is not None else 0
        n_new = max(n_old, min(size, n_after - base_id))
        erased_local = np.asarray(ch.erased, np.int64) - base_id
        if ch.rows is not None or erased_local.size or old is None or n_new != n_old:
            prefix = f"s{s:06d}/c{self.vno}"
            n_erased = self._write_customers(lambda k, v: pw.put(f"{prefix}/{k}", v), s, old, n_old, n_new, ch,
                                             erased_local, base_id)
            customers = (part, prefix)
        else:
            customers, n_erased = old.customers, old.erased
        runs = {}
        for table in LINE_TABLES:
            runs[table] = self._table_runs(pw, part, s, table, old, ch, erased_local, base_id, n_new)
        return Shard(n_new, customers, runs, n_erased)

    def _write_customers(self, put, s, old, n_old, n_new, ch, erased_local, base_id) -> int:
        schema = canonical_schema("customers")
        if old is not None:
            base_rows = self.base._ipc(s, "profile").cast(schema)
            ext = np.array(self.base.shard_customer_array(s, "ext", np.int64), copy=True)
            erased = np.zeros(n_new, bool)
            be = self.base.bitmap("erased")
            if len(be):
                e = np.asarray(be.to_array(), np.int64) - base_id
                erased[e[(e >= 0) & (e < n_old)]] = True
        else:
            base_rows = schema.empty_table()
            ext = np.zeros(0, np.int64)
            erased = np.zeros(n_new, bool)
        ext = np.concatenate([ext, np.zeros(n_new - n_old, np.int64)])
        idx = np.arange(n_new, dtype=np.int64)
        parts = [base_rows]
        covered = np.zeros(n_new, bool)
        covered[:n_old] = True
        if ch.rows is not None and ch.rows.num_rows:
            local = np.asarray(ch.rows.column("_iid").to_numpy(), np.int64) - base_id
            up = ch.rows.drop_columns(["_iid"]).cast(schema)
            idx[local] = n_old + np.arange(local.size)
            ext[local] = np.asarray(up.column("customer_id").to_numpy(), np.int64)
            covered[local] = True
            erased[local] = False          # a customer upserted again after an erasure is a new id
            parts.append(up)
        if erased_local.size:
            erased[erased_local] = True
        if not covered.all():
            missing = int(np.flatnonzero(~covered)[0]) + base_id
            raise AssertionError(f"internal id {missing} has no customer row")
        if erased.any():
            null = pa.table({f.name: pa.nulls(1, f.type) for f in schema}, schema=schema)
            idx[erased] = sum(p.num_rows for p in parts)
            parts.append(null)
        rows = pa.concat_tables(parts).take(pa.array(idx)) if (len(parts) > 1 or n_new != n_old) else base_rows
        rows = rows.combine_chunks()
        build_customers(put, rows, ext, base_id, self.dicts, erased)
        return int(erased.sum())

    def _table_runs(self, pw, part, s, table, old, ch, erased_local, base_id, n_new) -> Tuple[Run, ...]:
        existing = list(old.table_runs(table)) if old is not None else []
        new = ch.lines.get(table)
        new_cols = None
        if new is not None and new["iid"].size:
            new_cols = {k: v for k, v in new.items() if k != "iid"}
            new_cols["cust"] = (new["iid"] - base_id).astype(np.uint16)
            new_cols = drop_customers(new_cols, erased_local)
            if not new_cols["cust"].size:
                new_cols = None
        rewrite_all = bool(erased_local.size) and any(r.rows for r in existing)
        if new_cols is None and not rewrite_all:
            return tuple(existing)
        key = f"s{s:06d}/{table}{self.vno}"
        if rewrite_all:
            merge, keep = existing, []
        else:
            merge, keep = self._merge_plan(existing, new_cols["cust"].size if new_cols is not None else 0)
        parts = [self.base.run_arrays(s, table, r) for r in merge]
        if new_cols is not None:
            parts.append(new_cols)
        cols = concat_columns(table, parts) if parts else empty_columns(table)
        cols = drop_customers(cols, erased_local)
        if not cols["cust"].size:
            return tuple(keep)
        arrays, run = build_run(table, cols, n_new, part, key, aggregates=self.aggregates, pairs=self.pairs)
        for k, v in arrays.items():
            pw.put(f"{key}/{k}", v)
        return tuple(keep) + (run,)

    @staticmethod
    def _merge_plan(existing: list, new_rows: int):
        """(runs to merge with the new lines, runs kept as they are)."""
        if len(existing) + 1 <= MAX_RUNS:
            return [], existing
        largest = max(existing, key=lambda r: r.rows)
        small = [r for r in existing if r is not largest]
        if sum(r.rows for r in small) + new_rows > MERGE_FRACTION * largest.rows:
            return existing, []
        return small, [largest]

    # ------------------------------------------------------------ the whole version
    def finish(self, shards: List[Shard], n: int, ordered: bool, folded_seq: int, timezone: str,
               build: dict) -> Manifest:
        rows = {"customers": n - sum(s.erased for s in shards)}
        for t, name in (("p", "purchases"), ("v", "visits"), ("l", "laybys")):
            rows[name] = sum(r.rows for s in shards for r in s.table_runs(t))
        m = Manifest(timezone=timezone, shard_bits=self.bits, n_customers=n, shards=tuple(shards),
                     ordered=ordered, folded_seq=folded_seq, rows=rows, build=build, pairs=self.pairs)
        failpoint("parts-written")
        write_version(self.dir / self.version, m, self.dicts)
        failpoint("version-written")
        return m

    def abort(self) -> None:
        """Remove what this build wrote."""
        for name in self.written:
            shutil.rmtree(self.parts_dir / name, ignore_errors=True)
        shutil.rmtree(self.dir / self.version, ignore_errors=True)


def _bucket_changes_from_spill(load: Load, bucket: int, bits: int) -> Dict[int, ShardChanges]:
    """The changes of one spill bucket, per shard."""
    out: Dict[int, ShardChanges] = {}
    rows = load.spill.read("c", bucket)
    if rows is not None:
        iid = np.asarray(rows.column("_iid").to_numpy(), np.int64)
        shard = iid >> bits
        order = np.argsort(iid, kind="stable")
        rows, iid, shard = rows.take(pa.array(order)), iid[order], shard[order]
        for s, a, b in _runs_of(shard):
            out.setdefault(s, ShardChanges()).rows = rows.slice(a, b - a)
    for table in LINE_TABLES:
        t = load.spill.read(table, bucket)
        if t is None:
            continue
        cols = {name: np.asarray(t.column(name).to_numpy()) for name in t.column_names}
        del t
        shard = cols["iid"] >> bits
        order = np.argsort(shard, kind="stable")
        sh = shard[order]
        for s, a, b in _runs_of(sh):
            sel = order[a:b]
            out.setdefault(s, ShardChanges()).lines[table] = {k: v[sel] for k, v in cols.items()}
    return out


def _runs_of(sorted_keys: np.ndarray) -> Iterable[Tuple[int, int, int]]:
    """(key, start, end) of each run of equal values in a sorted array."""
    if not sorted_keys.size:
        return []
    cuts = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [sorted_keys.size]))
    return [(int(sorted_keys[a]), int(a), int(b)) for a, b in zip(starts, ends)]


def build_from_load(dataset_dir: Path, version: str, base, load: Load, timezone: str, shard_bits: int,
                    folded_seq: int = 0, workers: int = WORKERS, progress=None) -> Manifest:
    """Write a version: the base (None for a first load) with a read load applied. Buckets
    are built `workers` at a time, each from its spill files."""
    t0 = time.perf_counter()
    vb = VersionBuilder(dataset_dir, version, base, load.dicts, shard_bits, pairs=load.pairs)
    n_shards = max(1, (load.n + (1 << shard_bits) - 1) >> shard_bits)
    per = load.bucket_shards
    buckets = sorted(set(load.spill.buckets("c")) | set().union(*[set(load.spill.buckets(t)) for t in LINE_TABLES]))
    if base is None:
        buckets = sorted(set(buckets) | set(range((n_shards + per - 1) // per)))
    entries: Dict[int, Shard] = {}
    try:
        def one(bucket):
            ch = _bucket_changes_from_spill(load, bucket, shard_bits)
            first, last = bucket * per, min(n_shards, (bucket + 1) * per)
            for s in range(first, last):  # shards that gain ids get a customer object
                if s not in ch and (base is None or s >= base.n_shards or
                                    base.manifest.shards[s].n < min(1 << shard_bits, load.n - (s << shard_bits))):
                    ch[s] = ShardChanges()
            out = vb.write_bucket(bucket, ch, load.n) if ch else {}
            for k in ("c",) + LINE_TABLES:
                load.spill.remove(k, bucket)
            return out
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(one, buckets):
                entries.update(done)
                if progress is not None:
                    progress(len(done))
        shards = _all_shards(base, entries, n_shards)
        return vb.finish(shards, load.n, load.ordered and (base is None or base.ordered), folded_seq, timezone,
                         {"kind": "load", "seconds": round(time.perf_counter() - t0, 3),
                          "parts_written": len(vb.written), "bytes_written": vb.bytes})
    except BaseException:
        vb.abort()
        raise


def build_from_changes(dataset_dir: Path, version: str, base, changes: Dict[int, ShardChanges], n_after: int,
                       ordered: bool, dicts: Dict[str, list], timezone: str, shard_bits: int, folded_seq: int,
                       budget: int, workers: int = WORKERS) -> Manifest:
    """Write a version: the base with in-memory changes applied (a compaction)."""
    t0 = time.perf_counter()
    vb = VersionBuilder(dataset_dir, version, base, dicts, shard_bits)
    n_shards = max(1, (n_after + (1 << shard_bits) - 1) >> shard_bits)
    for s in range(base.n_shards if base is not None else 0, n_shards):
        changes.setdefault(s, ShardChanges())
    if base is not None and base.n_shards:
        last = base.n_shards - 1
        if base.manifest.shards[last].n < min(1 << shard_bits, n_after - (last << shard_bits)):
            changes.setdefault(last, ShardChanges())
    # buckets: consecutive changed shards whose rewritten runs fit the budget together
    per_line = 96
    buckets, cur, cur_bytes = [], {}, 0
    for s in sorted(changes):
        old = base.manifest.shards[s] if base is not None and s < base.n_shards else None
        est = sum(r.rows for rs in (old.runs.values() if old else []) for r in rs) * per_line
        est += sum(c["iid"].size for c in changes[s].lines.values()) * per_line
        if cur and cur_bytes + est > budget // max(2 * workers, 1):
            buckets.append(cur)
            cur, cur_bytes = {}, 0
        cur[s] = changes[s]
        cur_bytes += est
    if cur:
        buckets.append(cur)
    entries: Dict[int, Shard] = {}
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(lambda kb: vb.write_bucket(kb[0], kb[1], n_after), enumerate(buckets)):
                entries.update(done)
        shards = _all_shards(base, entries, n_shards)
        return vb.finish(shards, n_after, ordered, folded_seq, timezone,
                         {"kind": "changes", "seconds": round(time.perf_counter() - t0, 3),
                          "shards_rewritten": len(entries), "parts_written": len(vb.written),
                          "bytes_written": vb.bytes})
    except BaseException:
        vb.abort()
        raise


def _all_shards(base, entries: Dict[int, Shard], n_shards: int) -> List[Shard]:
    out = []
    for s in range(n_shards):
        e = entries.get(s)
        if e is None:
            if base is None or s >= base.n_shards:
                raise AssertionError(f"shard {s} was not written")
            e = base.manifest.shards[s]
        out.append(e)
    return out


def remove_unreferenced_parts(dataset_dir: Path, keep: set) -> int:
    """Delete every part folder not in `keep` (what the current version reads and what a
    build under way writes). Returns how many were removed."""
    parts = Path(dataset_dir) / "parts"
    if not parts.exists():
        return 0
    n = 0
    for p in parts.iterdir():
        if p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n
