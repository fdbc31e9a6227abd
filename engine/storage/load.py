"""Reading a bulk load part by part: validate, give customers internal ids, route to spill.

A load is a folder of table files (engine.storage.ingest_read). It is read in batches of
rows, never whole, so its size is bounded by disk, not memory:
  1. customers, customer_id only: every id of the load, checked for repeats; new customers
     get internal ids (a first load: ranks of customer_id; a later one: after the dataset's
     ids, in customer_id order), known ones keep theirs;
  2. customers, whole rows: validated and routed to the spill bucket of their shard; their
     value dictionaries are gathered;
  3. purchases, visits, laybys: validated, their customers looked up (an unknown one is an
     error naming file and row), local days and dictionary codes computed, routed.
Any error stops the load before anything is written to the dataset: the caller deletes the
spill. The build (engine.storage.build) then turns each bucket into parts.
"""
from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import IngestError
from ..model import timerange
from ..model.schema import TABLE_NAMES
from ..model.segment import PRODUCT_FIELDS
from . import build_kernels as K
from .customer_attrs import (INT32_NULL, VALUE_FIELDS, day_numbers, encode, encode_local, filled, np_column,
                             remap_local)
from .ingest_read import (REFERENCING_TABLES, _rel, _unique_customer_ids, find_table_files,
                          iter_table_batches, table_units)
from .orders import order_keys
from .spill import Spill

VISIT_STATUS_CODES = {"completed": 1, "booked": 2, "cancelled": 3, "no_show": 4}
LAYBY_STATUS_CODES = {"open": 1, "closed": 2}
LINE_PREFIX = {"purchases": "p", "visits": "v", "laybys": "l"}
BYTES_PER_LINE = 96        # a line in memory while its bucket is sorted and written (with temporaries)
BYTES_PER_CUSTOMER = 600   # a customer row (profile, text, derived) while its bucket is written
DEFAULT_BATCH_ROWS = 1 << 20
CUSTOMER_DICTS = VALUE_FIELDS + ("tag",)


@dataclass
class Target:
    """The dataset a load lands on (empty for a first load)."""
    n: int = 0                                  # internal ids allocated so far
    ext: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # customer_id of live ids
    iid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # their internal ids
    dicts: Dict[str, list] = field(default_factory=dict)
    shard_bits: int = 16
    max_ext: Optional[int] = None               # the largest customer_id ever given an id
    pairs: Optional[tuple] = None               # the dataset's pair indexes (None: choose them)


@dataclass
class Load:
    """A load read into spill buckets, ready to build."""
    spill: Spill
    bucket_shards: int
    n: int                                      # internal ids allocated after the load
    dicts: Dict[str, list]
    rows: Dict[str, int]
    new_customers: int
    ordered: bool                               # new ids all sort after the old ones
    pairs: tuple = ()                           # field pairs to index together (runs.MAX_PAIRS at most)


def _estimate_lines(found: dict) -> int:
    n = 0
    for table in REFERENCING_TABLES:
        for p in found.get(table, []):
            if p.suffix.lower() == ".parquet":
                try:
                    n += pq.ParquetFile(p).metadata.num_rows
                except Exception:  # noqa: BLE001 - the reader names the problem later
                    pass
            else:
                n += p.stat().st_size // 48
    return n


def bucket_size(n_shards: int, lines: int, customers: int, shard_bits: int, budget: int, workers: int) -> int:
    """Shards per bucket so that `workers` buckets in memory at once fit the budget."""
    per_shard = (lines / max(n_shards, 1)) * BYTES_PER_LINE + min(customers, 1 << shard_bits) * BYTES_PER_CUSTOMER
    fit = int(budget // max(workers * 2 * per_shard, 1))
    spread = -(-n_shards // (2 * workers))   # at least two buckets per worker when there are shards enough
    return max(1, min(n_shards, fit, spread))


class _Progress:
    def __init__(self, enabled: bool, report: Optional[Callable[[str, int, int], None]]):
        self.bar = None
        self.enabled = enabled and sys.stderr.isatty()
        self.report = report

    def phase(self, name: str, total: int, unit: str = "rows"):
        self.close()
        self.name = name
        self.done = 0
        self.total = total
        if self.enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total or None, desc=name, unit=unit, unit_scale=True, file=sys.stderr)

    def add(self, k: int) -> None:
        self.done += k
        if self.bar is not None:
            self.bar.update(k)
        if self.report is not None:
            self.report(self.name, self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def read_load(folder: Path, target: Target, zone, spill_dir: Path, budget: int, require_customers: bool,
              workers: int = 2, progress: bool = False, report=None,
              batch_rows: Optional[int] = None) -> Load:
    """Read, validate and route a folder of table files into a new spill (see the module
    docstring). IngestError on bad input; the caller removes the spill either way."""
    folder = Path(folder)
    batch_rows = batch_rows or DEFAULT_BATCH_ROWS
    found = find_table_files(folder)
    if not found:
        raise IngestError("", 0, "", f"no table files in {folder}: expected "
                          + ", ".join(TABLE_NAMES) + " as .parquet, .csv or a folder of parts")
    if require_customers and "customers" not in found:
        raise IngestError("customers", 0, "", "missing customers file (customers.parquet, "
                          "customers.csv or customers/): the first load needs one")
    bar = _Progress(progress, report)
    spill = Spill(spill_dir)
    bits = target.shard_bits
    try:
        # ---- 1. customer ids
        files = [(p, _rel(p, folder)) for p in found.get("customers", [])]
        bar.phase("customer ids", 0)
        id_parts, extent = [], []
        for path, name in files:
            rows = 0
            for _, t in iter_table_batches(path, "customers", name, batch_rows, columns=("customer_id",)):
                id_parts.append(np_column(t.column("customer_id"), np.int64))
                rows += t.num_rows
                bar.add(t.num_rows)
            extent.append((name, rows))
        load_ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
        _unique_customer_ids(pa.table({"customer_id": load_ids}), extent)

        known_iid = _lookup_sorted(target.ext, target.iid, load_ids)
        new = np.flatnonzero(known_iid < 0)
        new_ids = np.sort(load_ids[new])
        iid_of_load = known_iid.copy()
        if target.n == 0:
            iid_of_load[new] = np.searchsorted(new_ids, load_ids[new])      # ranks
        else:
            iid_of_load[new] = target.n + np.searchsorted(new_ids, load_ids[new])
        n_after = target.n + new_ids.size
        ordered = not (new_ids.size and target.max_ext is not None and new_ids[0] < target.max_ext)
        # one lookup table for every customer_id a line may name
        keys = np.concatenate([target.ext, load_ids[new]])
        vals = np.concatenate([target.iid, iid_of_load[new]])
        tkeys, tpos = K.build_id_hash(keys) if keys.size else (np.zeros(1, np.int64), np.full(1, -1, np.int64))
        del id_parts

        n_shards = max(1, (n_after + (1 << bits) - 1) >> bits)
        lines = _estimate_lines(found)
        per = bucket_size(n_shards, lines, n_after, bits, budget, workers)

        def bucket_of(iid):
            return (iid >> bits) // per

        # ---- 2. customer rows
        dict_values: Dict[str, set] = {k: set() for k in CUSTOMER_DICTS}
        bar.phase("customers", load_ids.size)
        start = 0
        for path, name in files:
            for _, t in iter_table_batches(path, "customers", name, batch_rows):
                iid = iid_of_load[start:start + t.num_rows]
                start += t.num_rows
                for k in VALUE_FIELDS:
                    dict_values[k].update(v for v in pc.unique(t.column(k)).to_pylist() if v is not None)
                dict_values["tag"].update(v for v in pc.unique(pc.list_flatten(t.column("tags"))).to_pylist()
                                          if v is not None)
                spill.route("c", t.append_column("_iid", pa.array(iid, pa.int64())), bucket_of(iid))
                bar.add(t.num_rows)
        dicts = {k: list(v) for k, v in target.dicts.items()}
        for k in CUSTOMER_DICTS:
            have = dicts.get(k, [])
            known = set(have)
            dicts[k] = have + sorted(v for v in dict_values[k] if v not in known)
        for f in PRODUCT_FIELDS:
            dicts.setdefault(f, [])

        # ---- 3. lines: parts of files read `workers` at a time (validation, lookups and local
        # days in parallel; dictionary codes and spill writes one batch at a time)
        rows = {"customers": int(load_ids.size)} if "customers" in found else {}
        sample = []                           # product codes of the first lines, to choose pair indexes
        lock = threading.Lock()
        for table in REFERENCING_TABLES:
            files = [(p, _rel(p, folder)) for p in found.get(table, [])]
            if not files:
                continue
            rows[table] = 0
            bar.phase(table, 0)
            prefix = LINE_PREFIX[table]

            def work(unit, table=table, prefix=prefix):
                nonlocal dicts
                path, name, part = unit
                for offset, t in iter_table_batches(path, table, name, batch_rows, unit=part,
                                                    coded=coded_fields(prefix)):
                    cid = np_column(t.column("customer_id"), np.int64)
                    pos = K.hash_lookup(tkeys, tpos, cid)
                    if (pos < 0).any():
                        i = int(np.argmax(pos < 0))
                        raise IngestError(name, offset + i + 1, "customer_id",
                                          f"unknown customer_id {int(cid[i])}: not in this load's customers "
                                          "nor in the dataset")
                    iid = vals[pos]
                    cols = line_values(prefix, t, iid, zone)
                    local = local_codes(prefix, t)
                    with lock:
                        remaps, dicts = global_codes(prefix, local, dicts)
                    put_codes(prefix, cols, local, remaps)
                    pieces = spill.split_columns(cols, bucket_of(iid))
                    with lock:
                        if prefix == "p" and target.pairs is None and sum(len(s[0]) for s in sample) < PAIR_SAMPLE:
                            sample.append([cols[f"c.{f}"] for f in PRODUCT_FIELDS])
                        for bucket, piece in pieces:
                            spill.write(prefix, bucket, piece)
                        rows[table] += t.num_rows
                        bar.add(t.num_rows)
            units = [(p, n, u) for p, n in files for u in table_units(p, batch_rows)]
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(work, units):  # in order: the earliest part's error is the one raised
                    pass
        spill.finish_writing()
        bar.close()
        pairs = target.pairs if target.pairs is not None else choose_pairs(sample)
        return Load(spill, per, n_after, dicts, rows, int(new_ids.size), bool(ordered), tuple(pairs))
    except BaseException:
        bar.close()
        spill.cleanup()
        raise


PAIR_SAMPLE = 500_000       # purchase lines the choice of pair indexes looks at
PAIR_MIN_SHARE = 0.05       # a pair is set together on at least this share of lines ...
PAIR_MIN_GAIN = 1.5         # ... has this many times more values than either field alone ...
PAIR_MAX_VALUES = 1 / 8     # ... and at most this many values per line that has both
PAIR_FIELD_MAX_VALUES = 1000  # a field with more values selects few lines alone (its postings do)


def choose_pairs(sample: list) -> tuple:
    """The product field pairs worth a pair index, from a sample of lines' codes: pairs
    set together on many lines, whose combinations are many more than either field's
    values (so a filter on both selects far fewer lines than one on either) yet few per line
    (categories, not ids). Fields with many values (SKUs) are selective alone and are not
    paired. At most runs.MAX_PAIRS, the most frequent first."""
    from .runs import MAX_PAIRS, pair_codes
    if not sample:
        return ()
    codes = [np.concatenate([s[j] for s in sample]) for j in range(len(PRODUCT_FIELDS))]
    lines = codes[0].size
    distinct = [np.unique(c[c != 0]).size for c in codes]
    found = []
    coarse = [j for j in range(len(PRODUCT_FIELDS)) if distinct[j] < PAIR_FIELD_MAX_VALUES]
    for a in coarse:
        for b in coarse:
            if b <= a:
                continue
            comp = pair_codes(codes[a], codes[b])
            both = comp[comp != 0]
            if both.size < PAIR_MIN_SHARE * lines:
                continue
            values = np.unique(both).size
            if values >= PAIR_MIN_GAIN * max(distinct[a], distinct[b]) and values <= PAIR_MAX_VALUES * both.size:
                found.append((both.size, PRODUCT_FIELDS[a], PRODUCT_FIELDS[b]))
    found.sort(key=lambda t: -t[0])
    return tuple((f, g) for _, f, g in found[:MAX_PAIRS])


def _lookup_sorted(ext: np.ndarray, iid: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Internal id of each of `ids` among (ext, iid) pairs, -1 when absent."""
    out = np.full(ids.size, -1, np.int64)
    if not ext.size or not ids.size:
        return out
    order = np.argsort(ext, kind="stable")
    se = ext[order]
    pos = np.searchsorted(se, ids)
    pc_ = np.minimum(pos, se.size - 1)
    hit = se[pc_] == ids
    out[hit] = iid[order[pc_[hit]]]
    return out


def line_values(prefix: str, t: pa.Table, iid: np.ndarray, zone) -> dict:
    """The spilled columns of a batch of lines but their dictionary codes: internal ids,
    local days, amounts, closed-domain codes."""
    if prefix == "l":
        return {"iid": iid, "opened": day_numbers(t.column("opened_on")), "due": day_numbers(t.column("due_on")),
                "balance": np_column(t.column("balance"), np.int64),
                "status": encode(t.column("status"), list(LAYBY_STATUS_CODES))[0].astype(np.uint8)}
    tcol = "purchased_at" if prefix == "p" else "starts_at"
    ts = np_column(pc.cast(t.column(tcol), pa.int64()), np.int64)
    cols = {"iid": iid, "day": timerange.local_day_of_micros(ts, zone).astype(np.int32), "ts": ts}
    if prefix == "v":
        cols["status"] = encode(t.column("status"), list(VISIT_STATUS_CODES))[0].astype(np.uint8)
        return cols
    cols["amount"] = np_column(t.column("amount"), np.int64)
    cols["quantity"] = filled(t.column("quantity"), int(INT32_NULL), np.int32)
    cols["order"] = order_keys(t.column("order_id"))
    return cols


def coded_fields(prefix: str) -> tuple:
    return ("shop",) if prefix == "v" else PRODUCT_FIELDS if prefix == "p" else ()


def local_codes(prefix: str, t: pa.Table) -> dict:
    """field -> (distinct values, index per row) of a batch's dictionary-coded fields (the
    costly half of encoding; needs no shared state)."""
    return {f: encode_local(t.column(f)) for f in coded_fields(prefix)}


def global_codes(prefix: str, local: dict, dicts: Dict[str, list]):
    """(field -> remap of local indexes to codes, the dictionaries extended with the batch's
    new values): the cheap half, done one batch at a time."""
    dicts = dict(dicts)
    remaps = {}
    for f, (values, _) in local.items():
        remaps[f], dicts[f] = remap_local(values, dicts.get(f, []))
    return remaps, dicts


def put_codes(prefix: str, cols: dict, local: dict, remaps: dict) -> None:
    for f, (_, idx) in local.items():
        cols["shop" if prefix == "v" else f"c.{f}"] = remaps[f][idx].astype(np.uint32)
