"""The in-memory state of the changes applied on top of a version: immutable once published.

A LiveState is what one reader sees: the base version plus every batch up to `seq`.
- Customers: `Overlay` holds the current rows of every customer changed since the version
  (upserted existing ones keep their internal id; new ones take ids from base.n on), the
  erased ids (`dead`) and the lookup of new customer_ids. A batch that changes customers
  makes a new Overlay (cost: the changed customers, not the dataset).
- Lines: appended purchases, visits and laybys go to growable column buffers, one per
  shard (a shard's lines touch only its customers: kernels run shards in parallel, each
  within its own cache-sized slice of the per-customer arrays). A state holds a buffer and
  a row count per shard; a later batch writes past that count (or into a larger copy), so
  what an older state sees never changes.
Building the next state is a pure function of the previous one and a batch; the writer
publishes it only after the batch is durable in the log.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Dict, Optional, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyroaring import BitMap, FrozenBitMap

from ..model import timerange
from ..storage.customer_attrs import (INT32_NULL, VALUE_FIELDS, Derived, day_numbers, derive, derive_search, encode, filled,
                              np_column, take_derived)
from ..model.segment import PRODUCT_FIELDS
from ..storage.id_sets import unique_ids
from ..storage.orders import order_keys
from ..storage.ingest_read import canonical_schema

VISIT_STATUS = {"completed": 1, "booked": 2, "cancelled": 3, "no_show": 4}
LAYBY_STATUS = {"open": 1, "closed": 2}
CUSTOMER_DICTS = ("gender", "marital_status", "origin_shop", "city", "postal_code", "tag")
LINE_COLUMNS = {
    "p": {"iid": np.int64, "day": np.int32, "ts": np.int64, "amount": np.int64, "quantity": np.int32,
          "codes": np.int32, "order": np.int64},  # codes: (n, 8), one column per product field (rows stay contiguous)
    "v": {"iid": np.int64, "day": np.int32, "ts": np.int64, "status": np.uint8, "shop": np.int32},
    "l": {"iid": np.int64, "opened": np.int32, "due": np.int32, "balance": np.int64, "status": np.uint8},
}
TABLE_PREFIX = {"purchases": "p", "visits": "v", "laybys": "l"}
_NONE = np.zeros(0, np.int64)


class LineBuf:
    """Growable columns of one line table; rows [0, count) of a state never change."""

    def __init__(self, prefix: str, capacity: int = 1024):
        self.prefix = prefix
        self.cols = {k: np.zeros((capacity, len(PRODUCT_FIELDS)) if k == "codes" else capacity, dt)
                     for k, dt in LINE_COLUMNS[prefix].items()}

    @property
    def capacity(self) -> int:
        return self.cols["iid"].size

    def extend(self, count: int, new: Dict[str, np.ndarray]) -> "LineBuf":
        """Write `new` at [count, count + k): into this buffer when it fits, else into a
        copy twice as large (readers of the old one keep it)."""
        k = new["iid"].size
        buf = self
        if count + k > self.capacity:
            buf = LineBuf(self.prefix, max(2 * self.capacity, count + k))
            for name, a in self.cols.items():
                buf.cols[name][:count] = a[:count]
        for name, a in new.items():
            buf.cols[name][count:count + k] = a
        return buf

    def view(self, count: int) -> Dict[str, np.ndarray]:
        return {k: a[:count] for k, a in self.cols.items()}


class Chunk:
    """One batch's customer rows (canonical columns + _iid), derived on first use: the
    writer stores rows, readers derive them (without search text) once; a chunk is shared by
    every later state."""

    def __init__(self, rows: pa.Table, iids: np.ndarray):
        self.rows = rows
        self.iids = iids
        self._derived: Optional[Derived] = None
        self._lock = threading.Lock()

    def derived(self, dicts: Dict[str, list]) -> Derived:
        """derive() of the rows, with codes in `dicts` (which already hold every value of
        these rows: the writer extended the live dictionaries with them)."""
        d = self._derived
        if d is None:
            derive_chunks([self], dicts)
            d = self._derived
        return d


def derive_chunks(chunks, dicts: Dict[str, list]) -> None:
    """Derive every chunk of `chunks` not derived yet, in one derive() call: a reader that
    skipped k batches pays one call's fixed cost, not k. `dicts` must be the newest of the
    chunks' overlays' (codes only grow, so any later dictionary gives the same codes)."""
    todo = [c for c in chunks if c._derived is None]
    if not todo:
        return
    cust = {k: dicts[k] for k in CUSTOMER_DICTS}
    if len(todo) == 1:
        parts = [derive(todo[0].rows.drop_columns(["_iid"]), cust, search=False)]
    else:
        schema = todo[0].rows.schema
        rows = pa.concat_tables([c.rows.cast(schema) for c in todo]).drop_columns(["_iid"])
        both = derive(rows, cust, search=False)
        offsets = np.cumsum([0] + [c.iids.size for c in todo])
        parts = [take_derived(both, np.arange(a, b)) for a, b in zip(offsets[:-1], offsets[1:])]
    for c, d in zip(todo, parts):
        with c._lock:
            if c._derived is None:
                c._derived = d


@dataclass(frozen=True)
class Event:
    """What one batch did to the changed customers: the chunk it added (index into the
    overlay's chunks, -1 for none) and the internal ids it erased."""
    chunk: int
    gone: np.ndarray


class OverlayLog:
    """The events of one version's chain of overlays, shared by all of them (an overlay sees
    events[:pos]), and the newest cached value of each key.

    Caches advance along the chain: a value computed for one overlay is kept with its
    position, and a later overlay brings it up to date by the events in between. A reader
    that skipped k states pays for k batches' rows, not for every change since the version.
    A batch whose state is never published (its log write failed) leaves events past the
    published position: the next batch replaces them, and a cached value records the event
    it ends at, so a value of an unpublished state is never reused."""

    def __init__(self):
        self.events: list = []
        self.latest: dict = {}               # key -> (pos, last event seen, value)
        self.lock = threading.Lock()

    def add(self, pos: int, event: Event) -> int:
        with self.lock:
            del self.events[pos:]
            self.events.append(event)
            return pos + 1

    def since(self, key, pos: int):
        """(value, events from its position to `pos`) of the newest cached value of `key`
        at or before `pos`, or None."""
        with self.lock:
            got = self.latest.get(key)
            if got is None:
                return None
            p, last, v = got
            if p > pos or (p and self.events[p - 1] is not last):
                return None
            return v, self.events[p:pos]

    def keep(self, key, pos: int, value) -> None:
        with self.lock:
            got = self.latest.get(key)
            if got is None or got[0] <= pos:
                self.latest[key] = (pos, self.events[pos - 1] if pos else None, value)


@dataclass(frozen=True)
class Overlay:
    """Customers changed since the version, and the erased ones.

    A batch adds a Chunk of rows (cost: the batch's rows) and an Event to the shared log;
    what readers need of every changed customer's current row (`latest`, member bitmaps,
    dense columns) is computed on first use per overlay, from the newest cached value of an
    earlier overlay of the chain (cost: the rows of the batches in between, plus a copy)."""
    base_n: int
    new_ext: np.ndarray                  # customer_id of internal ids base_n, base_n + 1, ...
    new_index: Dict[int, int]            # customer_id -> internal id, for ids >= base_n (not erased)
    dead: FrozenBitMap                   # erased internal ids
    chunks: Tuple[Chunk, ...]            # customer rows of each batch that had some, oldest first
    ordered: bool                        # internal id order is still customer_id order
    dicts: Dict[str, list]               # the customer dictionaries (values of every chunk included)
    log: OverlayLog = field(default_factory=OverlayLog, compare=False)
    pos: int = 0                         # events of the log this overlay sees
    cache: dict = field(default_factory=dict, compare=False)

    @property
    def n(self) -> int:
        return self.base_n + self.new_ext.size

    @property
    def changed(self) -> bool:
        """Any customer row changed (or erased) since the version."""
        return bool(self.chunks) or len(self.dead) > 0

    def _cached(self, key, make):
        v = self.cache.get(key)
        if v is None:
            v = self.cache[key] = make()
        return v

    def _incremental(self, key, make_full, update):
        """A cached value, brought up to date from an earlier overlay's (update(value,
        events between)) when the log has one, else made whole."""
        v = self.cache.get(key)
        if v is not None:
            return v
        got = self.log.since(key, self.pos)
        v = make_full() if got is None else (got[0] if not got[1] else update(*got))
        self.cache[key] = v
        self.log.keep(key, self.pos, v)
        return v

    def new_chunks(self, events) -> list:
        """The chunks the batches of `events` added, oldest first (derived together)."""
        out = [self.chunks[e.chunk] for e in events if e.chunk >= 0]
        derive_chunks(out, self.dicts)
        return out

    # ------------------------------------------------------------ the current rows
    def latest(self) -> tuple:
        """(iids ascending, chunk index, row in chunk) of every changed customer's current
        row (erased ones left out)."""
        def full():
            if not self.chunks:
                return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64)
            iids = np.concatenate([c.iids for c in self.chunks])
            ch = np.concatenate([np.full(c.iids.size, k, np.int32) for k, c in enumerate(self.chunks)])
            rows = np.concatenate([np.arange(c.iids.size, dtype=np.int64) for c in self.chunks])
            return _last_by_iid(iids, ch, rows, self.dead)

        def update(pv, events):
            # an erased internal id never comes back (a customer_id upserted again after its
            # erasure gets a new one), so the events' order matters only among their chunks
            iids, ch, rows = pv
            added = [e.chunk for e in events if e.chunk >= 0]
            drop = [e.gone for e in events] + [self.chunks[k].iids for k in added]
            drop = np.concatenate(drop) if drop else np.zeros(0, np.int64)
            if drop.size:
                keep = ~np.isin(iids, drop)
                iids, ch, rows = iids[keep], ch[keep], rows[keep]
            if added:
                n_iids, n_ch, n_rows = _last_by_iid(
                    np.concatenate([self.chunks[k].iids for k in added]),
                    np.concatenate([np.full(self.chunks[k].iids.size, k, np.int32) for k in added]),
                    np.concatenate([np.arange(self.chunks[k].iids.size, dtype=np.int64) for k in added]),
                    self.dead)
                iids = np.concatenate([iids, n_iids])
                ch = np.concatenate([ch, n_ch])
                rows = np.concatenate([rows, n_rows])
                o = np.argsort(iids, kind="stable")
                iids, ch, rows = iids[o], ch[o], rows[o]
            return iids, ch, rows
        return self._incremental("latest", full, update)

    @property
    def iids(self) -> np.ndarray:
        return self.latest()[0]

    @property
    def touched(self) -> FrozenBitMap:
        """Every internal id whose row changed since the version."""
        def full():
            return FrozenBitMap(np.concatenate([c.iids for c in self.chunks]).astype(np.uint32)
                                if self.chunks else ())

        def update(pv, events):
            added = [self.chunks[e.chunk].iids for e in events if e.chunk >= 0]
            return pv | FrozenBitMap(np.concatenate(added).astype(np.uint32)) if added else pv
        return self._incremental("touched", full, update)

    def derived(self) -> Derived:
        """The derived attributes (no search text) of the current rows, aligned with
        latest()'s iids: one derive() of them."""
        def make():
            rows = self.rows_table().drop_columns(["_iid"])
            return derive(rows, {k: self.dicts[k] for k in CUSTOMER_DICTS}, search=False)
        return self._cached("derived", make)

    def search_text(self) -> Dict[str, pa.Array]:
        """The normalised search text of the current rows, aligned with latest()'s iids."""
        return self._cached("search", lambda: derive_search(self.rows_table()))

    def rows_table(self) -> pa.Table:
        """The current rows (canonical + _iid), by internal id."""
        def make():
            iids, ch, rows = self.latest()
            schema = canonical_schema("customers").append(pa.field("_iid", pa.int64()))
            if not iids.size:
                return schema.empty_table()
            offsets = np.cumsum([0] + [c.iids.size for c in self.chunks])
            both = pa.concat_tables([c.rows.cast(schema) for c in self.chunks])
            return both.take(pa.array(offsets[ch] + rows))
        return self._cached("rows", make)

    def rows_of(self, ids: np.ndarray, fields) -> tuple:
        """(which of `ids` changed (bool), their current rows' `fields` in that order)."""
        iids, ch, rows = self.latest()
        ids = np.asarray(ids, np.int64)
        if not iids.size:
            return np.zeros(ids.size, bool), None
        pos = np.searchsorted(iids, ids)
        pc_ = np.minimum(pos, iids.size - 1)
        hit = iids[pc_] == ids
        if not hit.any():
            return hit, None
        sel_ch, sel_rows = ch[pc_[hit]], rows[pc_[hit]]
        parts, order = [], []
        for k in np.unique(sel_ch):
            at = np.flatnonzero(sel_ch == k)
            parts.append(self.chunks[k].rows.select(list(fields)).take(pa.array(sel_rows[at])))
            order.append(at)
        t = pa.concat_tables([p.cast(parts[0].schema) for p in parts]) if len(parts) > 1 else parts[0]
        inverse = np.empty(hit.sum(), np.int64)
        inverse[np.concatenate(order)] = np.arange(inverse.size)
        return hit, t.take(pa.array(inverse))


def _last_by_iid(iids, ch, rows, dead) -> tuple:
    """The last (chunk, row) of each iid, by iid ascending, without erased ones."""
    o = np.argsort(iids, kind="stable")
    iids, ch, rows = iids[o], ch[o], rows[o]
    last = np.ones(iids.size, bool)
    last[:-1] = iids[1:] != iids[:-1]
    iids, ch, rows = iids[last], ch[last], rows[last]
    if len(dead):
        keep = ~np.isin(iids, np.asarray(dead.to_array(), np.int64))
        iids, ch, rows = iids[keep], ch[keep], rows[keep]
    return iids, ch, rows


@dataclass(frozen=True)
class LiveState:
    """The base version plus the batches up to `seq`."""
    seq: int
    overlay: Overlay
    dicts: Dict[str, list]               # live dictionaries (the base's, values appended)
    bufs: Dict[str, Dict[int, LineBuf]]  # line prefix -> shard -> buffer
    counts: Dict[str, Dict[int, int]]    # line prefix -> shard -> rows visible in this state
    pending: Dict[str, int]              # rows applied since the version, per kind

    @property
    def empty(self) -> bool:
        """Nothing applied since the version: readers can use the version as it is."""
        return not any(self.pending.values())

    def lines(self, prefix: str) -> Optional[list]:
        """[(shard, columns)] of a table's appended lines visible in this state, by shard
        (None when there are none)."""
        counts = self.counts[prefix]
        if not counts:
            return None
        return [(sh, self.bufs[prefix][sh].view(n)) for sh, n in sorted(counts.items())]


class BaseDicts(Mapping):
    """The dictionaries `names` of a version, read from it when first looked up (opening a
    dataset parses none; a batch's dict(...) of them reads them all). The lists are the
    version's own: nothing here appends to a dictionary in place (encode copies first)."""

    def __init__(self, base, names):
        self._base, self._names = base, tuple(names)

    def __getitem__(self, name: str) -> list:
        if name not in self._names:
            raise KeyError(name)
        return self._base.dictionary(name) if self._base is not None else []

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def initial_state(base, seq: int) -> LiveState:
    """No changes yet over `base` (a Snapshot, or None for a dataset without a version)."""
    dicts = BaseDicts(base, list(CUSTOMER_DICTS) + list(PRODUCT_FIELDS))  # "shop" is a product field
    overlay = Overlay(base.n if base is not None else 0, np.zeros(0, np.int64), {}, FrozenBitMap(),
                      (), bool(getattr(base, "ordered", True)), BaseDicts(base, CUSTOMER_DICTS))
    return LiveState(seq, overlay, dicts, {p: {} for p in LINE_COLUMNS}, {p: {} for p in LINE_COLUMNS},
                     {"customers": 0, "purchases": 0, "visits": 0, "laybys": 0, "deleted": 0})


# ------------------------------------------------------------------ lookups

def _base_ext(base) -> np.ndarray:
    return base.ext_ids() if base is not None else np.zeros(0, np.int64)


def lookup(base, ov: Overlay, ids: np.ndarray) -> np.ndarray:
    """Internal id of each customer_id (-1 when not in the dataset: never loaded or erased)."""
    ids = np.asarray(ids, dtype=np.int64)
    out = base.lookup(ids) if base is not None else np.full(ids.size, -1, np.int64)
    if len(ov.dead) and (out >= 0).any():
        dead = np.frombuffer(ov.dead.to_array(), np.uint32).astype(np.int64)
        out[np.isin(out, dead)] = -1
    if ov.new_index:
        get = ov.new_index.get
        for i in np.flatnonzero(out < 0):
            out[i] = get(int(ids[i]), -1)
    return out


def ext_ids(base, ov: Overlay) -> np.ndarray:
    """customer_id of every internal id (erased ones included)."""
    if not ov.new_ext.size:
        return _base_ext(base)
    return ov._cached("ext", lambda: np.concatenate([_base_ext(base), ov.new_ext]))


# ------------------------------------------------------------------ applying a batch

def apply(state: LiveState, base, zone, seq: int, parts: Dict[str, object], shard_bits: int) -> tuple:
    """(next state, answer details) after one validated batch: deletes, then customer
    upserts, then appended lines."""
    ov = state.overlay
    pending = dict(state.pending)
    not_found = []
    gone = 0
    dicts = state.dicts
    deleted = parts.get("delete")
    if deleted is not None and deleted.size:
        ov, not_found, gone = _delete(base, ov, np.unique(deleted))
        pending["deleted"] += gone
    cust = parts.get("customers")
    if cust is not None and cust.num_rows:
        ov, dicts = _upsert(base, ov, dicts, cust)
        pending["customers"] += cust.num_rows
    bufs, counts = dict(state.bufs), dict(state.counts)
    for table, prefix in TABLE_PREFIX.items():
        t = parts.get(table)
        if t is None or not t.num_rows:
            continue
        iid = lookup(base, ov, np_column(t.column("customer_id"), np.int64))
        if (iid < 0).any():  # validated before the commit; a replayed log never gets here
            bad = int(np_column(t.column("customer_id"))[np.argmax(iid < 0)])
            raise AssertionError(f"{table}: customer_id {bad} is not in the dataset")
        cols, dicts = _line_columns(prefix, t, iid, zone, dicts)
        bufs[prefix], counts[prefix] = _extend_shards(bufs[prefix], counts[prefix], cols, prefix, shard_bits)
        pending[table] += t.num_rows
    nxt = LiveState(seq, ov, dicts, bufs, counts, pending)
    return nxt, {"not_found": [int(x) for x in not_found], "deleted": gone if deleted is not None and deleted.size else 0}


def _extend_shards(bufs: dict, counts: dict, cols: dict, prefix: str, shard_bits: int):
    """Copies of the shard -> buffer / count maps with the new lines appended by shard."""
    bufs, counts = dict(bufs), dict(counts)
    shard = cols["iid"] >> shard_bits
    order = np.argsort(shard, kind="stable")
    sh = shard[order]
    starts = np.flatnonzero(np.r_[True, sh[1:] != sh[:-1]])
    ends = np.r_[starts[1:], sh.size]
    for a, b in zip(starts, ends):
        k = int(sh[a])
        idx = order[a:b]
        have = counts.get(k, 0)
        buf = bufs.get(k) or LineBuf(prefix, max(256, 2 * (b - a)))
        bufs[k] = buf.extend(have, {name: v[idx] for name, v in cols.items()})
        counts[k] = have + (b - a)
    return bufs, counts


def _delete(base, ov: Overlay, ids: np.ndarray):
    iid = lookup(base, ov, ids)
    found = iid >= 0
    gone = iid[found]
    dead = BitMap(ov.dead)
    dead.update(gone.astype(np.uint32))
    index = ov.new_index
    if (gone >= ov.base_n).any():
        erased = set(gone.tolist())
        index = {k: v for k, v in index.items() if v not in erased}
    out = replace(ov, new_index=index, dead=FrozenBitMap(dead), pos=ov.log.add(ov.pos, Event(-1, gone)), cache={})
    return out, ids[~found], int(found.sum())


def _upsert(base, ov: Overlay, dicts, cust: pa.Table):
    ext = np_column(cust.column("customer_id"), np.int64)
    iid = lookup(base, ov, ext)
    new = np.flatnonzero(iid < 0)
    new = new[np.argsort(ext[new], kind="stable")]  # new ids in customer_id order
    new_ext = ext[new]
    iid[new] = ov.n + np.arange(new_ext.size)
    index = ov.new_index
    if new_ext.size:
        index = dict(index)
        index.update(zip(new_ext.tolist(), iid[new].tolist()))
    last = ov.new_ext[-1] if ov.new_ext.size else (_base_ext(base)[-1] if ov.base_n else None)
    ordered = ov.ordered and (not new_ext.size or last is None or bool(new_ext[0] > last))
    dicts = extend_dicts(dicts, cust)  # codes for the batch's values now; its rows are derived by readers
    chunk = Chunk(cust.append_column("_iid", pa.array(iid, pa.int64())), iid)
    out = Overlay(ov.base_n, np.concatenate([ov.new_ext, new_ext]) if new_ext.size else ov.new_ext,
                  index, ov.dead, ov.chunks + (chunk,), ordered, {k: dicts[k] for k in CUSTOMER_DICTS},
                  log=ov.log, pos=ov.log.add(ov.pos, Event(len(ov.chunks), _NONE)))
    return out, dicts


def extend_dicts(dicts: Dict[str, list], cust: pa.Table) -> Dict[str, list]:
    """The dictionaries with the customer value fields' and tags' new values appended (in
    sorted order, as derive() would append them)."""
    out = dict(dicts)
    cols = {name: cust.column(name) for name in VALUE_FIELDS}
    cols["tag"] = pc.list_flatten(cust.column("tags"))
    for name, col in cols.items():
        have = out.get(name, [])
        known = set(have)
        new = sorted(v for v in pc.unique(col).to_pylist() if v is not None and v not in known)
        if new:
            out[name] = list(have) + new
    return out


def _line_columns(prefix: str, t: pa.Table, iid: np.ndarray, zone, dicts):
    """The buffer columns of appended lines (codes in the live dictionaries, extended)."""
    dicts = dict(dicts)
    if prefix == "l":
        return {"iid": iid, "opened": day_numbers(t.column("opened_on")), "due": day_numbers(t.column("due_on")),
                "balance": np_column(t.column("balance"), np.int64),
                "status": encode(t.column("status"), list(LAYBY_STATUS))[0].astype(np.uint8)}, dicts
    tcol = "purchased_at" if prefix == "p" else "starts_at"
    ts = np_column(pc.cast(t.column(tcol), pa.int64()), np.int64)
    cols = {"iid": iid, "ts": ts, "day": timerange.local_day_of_micros(ts, zone).astype(np.int32)}
    if prefix == "v":
        cols["status"] = encode(t.column("status"), list(VISIT_STATUS))[0].astype(np.uint8)
        cols["shop"], dicts["shop"] = encode(t.column("shop"), dicts["shop"], extend=True)
        return cols, dicts
    cols["amount"] = np_column(t.column("amount"), np.int64)
    cols["quantity"] = filled(t.column("quantity"), int(INT32_NULL), np.int32)
    cols["order"] = order_keys(t.column("order_id"))
    codes = []
    for f in PRODUCT_FIELDS:
        # shop codes are shared with visits (one "shop" dictionary, as in a version)
        name = "shop" if f == "shop" else f
        c, dicts[name] = encode(t.column(f), dicts[name], extend=True)
        codes.append(c)
    cols["codes"] = np.stack(codes, axis=1)
    return cols, dicts


# ------------------------------------------------------------------ what batches touched

def touched(old: LiveState, new: LiveState) -> tuple:
    """(internal ids, tables) that the batches after `old` up to `new` changed: customers
    upserted or erased and customers of appended lines, and the names of the tables those
    batches wrote ("customers", "deleted", "purchases", "visits", "laybys"). Both states
    must be of the same version (`new` a later state of the same Live)."""
    parts = []
    tables = set()
    a, b = old.overlay, new.overlay
    if len(b.chunks) > len(a.chunks):
        tables.add("customers")
        parts.extend(c.iids for c in b.chunks[len(a.chunks):])
    if len(b.dead) > len(a.dead):
        tables.add("deleted")
        parts.append(np.asarray((b.dead - a.dead).to_array(), np.int64))
    for table, prefix in TABLE_PREFIX.items():
        was, now = old.counts[prefix], new.counts[prefix]
        for sh, n in now.items():
            k = was.get(sh, 0)
            if n > k:
                tables.add(table)
                parts.append(new.bufs[prefix][sh].cols["iid"][k:n])
    ids = unique_ids(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    return ids, tables
