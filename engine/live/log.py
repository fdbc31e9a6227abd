"""The change log of a version: every acknowledged change batch since the version was built.

  <dataset>/<version>.log/      an LMDB environment next to the version it extends
    head                        the sequence number of the newest batch (ASCII)
    r/<seq:016d>/<part>         one batch: parts customers | purchases | visits | laybys
                                (Arrow IPC streams of canonical tables) and delete
                                (int64 customer_ids)
    id/<batch_id>               the JSON answer of the batch that carried this id

A batch is one write transaction, committed with fsync before it is acknowledged, so a
crash (kill -9, power loss) keeps every acknowledged batch and LMDB opens without repair.
Records are in the merchant's terms (customer_id, instants, text), never internal ids: a
compaction copies the records it did not fold verbatim into the next version's log.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import pyarrow as pa

from ..storage.space import open_env

LOG_MAP_SIZE = 1 << 36
PARTS = ("customers", "purchases", "visits", "laybys")
RECENT_BATCH_IDS = 100_000  # batch ids carried over a compaction (retries of recent batches)


def log_path(version_dir: Path) -> Path:
    return version_dir.with_name(version_dir.name + ".log")


def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as wr:
        wr.write_table(table)
    return sink.getvalue().to_pybytes()


def _rkey(seq: int, part: str) -> bytes:
    return f"r/{seq:016d}/{part}".encode()


class ChangeLog:
    """One version's change log (one LMDB environment, shared by the threads of a process)."""

    def __init__(self, path: Path, create: bool = False):
        self.path = Path(path)
        if not create and not (self.path / "data.mdb").exists():
            self.env = None  # a version without changes yet: created on the first batch
            return
        self.env = open_env(self.path, map_size=LOG_MAP_SIZE, subdir=True, sync=True,
                            metasync=True, max_dbs=0)

    def _open_for_write(self) -> None:
        if self.env is None:
            self.env = open_env(self.path, map_size=LOG_MAP_SIZE, subdir=True, sync=True,
                                metasync=True, max_dbs=0)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None

    def head(self, default: int = 0) -> int:
        """Sequence number of the newest batch (default when the log is empty)."""
        if self.env is None:
            if (self.path / "data.mdb").exists():  # another process wrote the first batch
                self._open_for_write()
            else:
                return default
        with self.env.begin() as txn:
            v = txn.get(b"head")
        return default if v is None else int(v)

    def records(self, after: int) -> Iterator[Tuple[int, Dict[str, object]]]:
        """(seq, parts) of every batch with seq > after, oldest first; parts are pa.Tables
        (tables) and an int64 array (delete)."""
        if self.env is None:
            return
        with self.env.begin(buffers=True) as txn:
            cur = txn.cursor()
            if not cur.set_range(_rkey(after + 1, "")):
                return
            seq, parts = None, {}
            for k, v in cur:
                k = bytes(k)
                if not k.startswith(b"r/"):
                    break
                s, part = int(k[2:18]), k[19:].decode()
                if s != seq:
                    if seq is not None:
                        yield seq, parts
                    seq, parts = s, {}
                if part == "delete":
                    parts[part] = np.frombuffer(bytes(v), dtype=np.int64)
                else:
                    parts[part] = pa.ipc.open_stream(pa.py_buffer(bytes(v))).read_all()
            if seq is not None:
                yield seq, parts

    def raw_records(self, after: int) -> Iterator[Tuple[bytes, bytes]]:
        """(key, value) bytes of every record part with seq > after."""
        if self.env is None:
            return
        with self.env.begin() as txn:
            cur = txn.cursor()
            if cur.set_range(_rkey(after + 1, "")):
                for k, v in cur:
                    if not k.startswith(b"r/"):
                        break
                    yield k, v

    def batch_answer(self, batch_id: str) -> Optional[dict]:
        if self.env is None:
            return None
        with self.env.begin() as txn:
            v = txn.get(b"id/" + batch_id.encode())
        return None if v is None else json.loads(v)

    def batch_ids(self) -> list:
        """(key, value) of the remembered batch ids, newest RECENT_BATCH_IDS by sequence."""
        if self.env is None:
            return []
        with self.env.begin() as txn:
            cur = txn.cursor()
            out = []
            if cur.set_range(b"id/"):
                for k, v in cur:
                    if not k.startswith(b"id/"):
                        break
                    out.append((k, v))
        out.sort(key=lambda kv: json.loads(kv[1])["sequence"])
        return out[-RECENT_BATCH_IDS:]

    def append(self, seq: int, parts: Dict[str, object], batch_id: Optional[str], answer: dict) -> None:
        """Write one batch in one transaction and fsync it."""
        self._open_for_write()
        with self.env.begin(write=True) as txn:
            for name, value in parts.items():
                data = value.astype(np.int64).tobytes() if name == "delete" else ipc_bytes(value)
                txn.put(_rkey(seq, name), data)
            if batch_id is not None:
                txn.put(b"id/" + batch_id.encode(), json.dumps(answer).encode())
            txn.put(b"head", str(seq).encode())

    def seed(self, head: int, records, batch_ids) -> None:
        """Fill a new log (a compaction's): the head, the carried records and batch ids."""
        self._open_for_write()
        with self.env.begin(write=True) as txn:
            for k, v in records:
                txn.put(k, v)
            for k, v in batch_ids:
                txn.put(k, v)
            txn.put(b"head", str(head).encode())
        self.env.sync(True)
