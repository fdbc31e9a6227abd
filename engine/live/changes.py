"""Live changes of one version in one process: its change log and the state readers see.

Writers (one at a time per dataset, across processes: the dataset's write lock) validate a
batch against the state, compute the next state, append the batch to the log in one
fsynced LMDB transaction, and only then publish the state (one reference swap). Readers
take the published (state, view) pair and never wait: a reader sees every batch before
the swap and nothing of the ones after. Batches written by another process (the CLI, a
second server) are read from the log on the next call.
"""
from __future__ import annotations

import threading
from typing import Dict, Optional

import numpy as np
import pyarrow as pa

from . import state as L
from ..errors import IngestError, InvalidArgument
from ..storage.ingest_read import REFERENCING_TABLES, rows_table
from .log import ChangeLog, log_path
from .view import LiveView

MAX_BATCH_ID = 128


class Live:
    """A version (`base` Snapshot), its change log and the published state."""

    def __init__(self, base, zone, shard_bits: int, log: Optional[ChangeLog] = None):
        self.base = base
        self.zone = zone
        self.shard_bits = shard_bits
        self.folded = int(base.meta.get("folded_seq", 0))
        self.log = log or ChangeLog(log_path(base.path))
        self._lock = threading.Lock()
        st = L.initial_state(base, self.folded)
        self._current = (st, base)
        self.refresh()

    def close(self) -> None:
        self.log.close()
        self.base.close()

    @property
    def state(self) -> L.LiveState:
        return self._current[0]

    def view(self):
        """The newest published view (the version itself while nothing has changed)."""
        self.refresh()
        return self._current[1]

    def current(self) -> tuple:
        """(state, view) published together: what one reader sees, never a mix of two."""
        self.refresh()
        return self._current

    def refresh(self) -> None:
        """Apply batches another process (or a restart) left in the log."""
        if self.log.head(self.folded) <= self._current[0].seq:
            return
        with self._lock:
            st = self._current[0]
            for seq, parts in self.log.records(st.seq):
                st, _ = L.apply(st, self.base, self.zone, seq, parts, self.shard_bits)
            self._publish(st)

    def _publish(self, st: L.LiveState) -> None:
        view = self.base if st.empty else LiveView(self.base, st, self.zone, self.shard_bits)
        self._current = (st, view)

    # ------------------------------------------------------------ writing
    def apply_changes(self, tables: Dict[str, pa.Table], delete: np.ndarray, batch_id: Optional[str]) -> dict:
        """Validate, log (durably) and publish one batch; the caller holds the write lock."""
        with self._lock:
            st = self._current[0]
            for seq, parts in self.log.records(st.seq):  # batches of other processes first
                st, _ = L.apply(st, self.base, self.zone, seq, parts, self.shard_bits)
            if batch_id is not None:
                ans = self.log.batch_answer(batch_id)
                if ans is not None:
                    self._publish(st)
                    return {**ans, "duplicate": True}
            _check_batch(self.base, st.overlay, tables, delete)
            parts = dict(tables)
            if delete.size:
                parts["delete"] = delete
            seq = st.seq + 1
            nxt, details = L.apply(st, self.base, self.zone, seq, parts, self.shard_bits)
            answer = {"sequence": seq,
                      "rows": {"customers": _rows(tables, "customers"), "purchases": _rows(tables, "purchases"),
                               "visits": _rows(tables, "visits"), "laybys": _rows(tables, "laybys"),
                               "deleted": details["deleted"]},
                      "not_found": details["not_found"], "duplicate": False}
            self.log.append(seq, parts, batch_id, answer)
            self._publish(nxt)
            return answer


def _rows(tables, name) -> int:
    t = tables.get(name)
    return 0 if t is None else t.num_rows


def prepare_batch(customers=None, purchases=None, visits=None, laybys=None, delete=(),
                  batch_id: Optional[str] = None):
    """Canonical validated tables of a batch (row-level checks) and the ids to delete."""
    if batch_id is not None and (not isinstance(batch_id, str) or not 0 < len(batch_id) <= MAX_BATCH_ID):
        raise InvalidArgument("batch_id", f"must be a non-empty string of at most {MAX_BATCH_ID} characters")
    tables = {}
    for name, rows in (("customers", customers), ("purchases", purchases), ("visits", visits),
                       ("laybys", laybys)):
        if rows is None:
            continue
        t = rows_table(name, rows)
        if t.num_rows:
            tables[name] = t
    try:
        ids = np.asarray(list(delete) if not isinstance(delete, np.ndarray) else delete)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise ValueError
        ids = ids.astype(np.int64)
    except (ValueError, TypeError, OverflowError):
        raise InvalidArgument("delete", "customer ids to delete must be 64-bit integers") from None
    if not tables and not ids.size:
        raise InvalidArgument("batch", "empty batch: no rows and no customer ids to delete")
    return tables, ids


def _check_batch(base, ov: L.Overlay, tables: Dict[str, pa.Table], delete: np.ndarray) -> None:
    """Checks that need the dataset: customer_ids unique within the batch, and every line
    naming a customer that exists after the batch's deletes and upserts."""
    cust = tables.get("customers")
    new_ids = np.zeros(0, np.int64)
    if cust is not None:
        ids = L.np_column(cust.column("customer_id"), np.int64)
        s = np.sort(ids)
        dup = s[1:][s[1:] == s[:-1]]
        if dup.size:
            rows = np.flatnonzero(ids == dup[0])
            raise IngestError("customers", int(rows[1]) + 1, "customer_id",
                              f"duplicate customer_id {int(dup[0])} (first at customers row {int(rows[0]) + 1})")
        new_ids = s
    for table in REFERENCING_TABLES:
        t = tables.get(table)
        if t is None:
            continue
        ids = L.np_column(t.column("customer_id"), np.int64)
        known = (L.lookup(base, ov, ids) >= 0) & ~np.isin(ids, delete)
        known |= np.isin(ids, new_ids)
        if not known.all():
            i = int(np.argmin(known))
            why = " (deleted in this batch)" if ids[i] in delete else ""
            raise IngestError(table, i + 1, "customer_id",
                              f"unknown customer_id {int(ids[i])}: not in this batch's customers "
                              f"nor in the dataset{why}")


def known_customer_ids(view) -> np.ndarray:
    """Sorted customer_ids in the dataset now (erased ones not)."""
    if view is None:
        return np.zeros(0, np.int64)
    ext = view.ext_ids()
    ov = getattr(view, "ov", None)
    if ov is None:
        return ext
    keep = np.ones(ext.size, bool)
    keep[np.frombuffer(ov.dead.to_array(), np.uint32)] = False
    return np.sort(ext[keep])


def erased_customer_ids(view) -> np.ndarray:
    """customer_ids erased since the version and not created again."""
    ov = getattr(view, "ov", None)
    if ov is None or not len(ov.dead):
        return np.zeros(0, np.int64)
    ext = view.ext_ids()[np.frombuffer(ov.dead.to_array(), np.uint32)]
    return np.setdiff1d(ext, known_customer_ids(view))
