"""The change log of a version: every acknowledged change batch since the version was built.

  <dataset>/<version>.log/wal    an append-only file of records next to the version it extends

A record is a header (magic, kind, sequence, payload length, CRC-32 of the payload) and its
payload. A batch record's payload holds the batch's parts (customers | purchases | visits |
laybys as Arrow IPC streams of canonical tables, delete as int64 customer_ids), its
batch_id and the answer given for it. A seed record (first in a log a compaction made)
holds the sequence the log starts after and the batch ids carried over.

A batch is one append followed by one fdatasync before it is acknowledged, so a crash
(kill -9, power loss) keeps every acknowledged batch; a record cut short by a crash fails
its length or CRC check and is cut off by the next writer, so the log opens without repair.
Records are in the merchant's terms (customer_id, instants, text), never internal ids: a
compaction copies the records it did not fold verbatim into the next version's log.
Appends come from one writer at a time per dataset (the dataset's write lock); readers in
any process follow the file as it grows.
"""
from __future__ import annotations

import json
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import pyarrow as pa

MAGIC = b"SGL1"
HEADER = struct.Struct("<4sIQII")   # magic, kind, seq, payload length, crc32
KIND_BATCH, KIND_SEED = 1, 2
PARTS = ("customers", "purchases", "visits", "laybys")
RECENT_BATCH_IDS = 100_000  # batch ids carried over a compaction (retries of recent batches)


def log_path(version_dir: Path) -> Path:
    return version_dir.with_name(version_dir.name + ".log")


def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as wr:
        wr.write_table(table)
    return sink.getvalue().to_pybytes()


def _encode_batch(parts: Dict[str, object], batch_id: Optional[str], answer: dict) -> bytes:
    blobs, index = [], []
    for name, value in parts.items():
        data = np.asarray(value, np.int64).tobytes() if name == "delete" else ipc_bytes(value)
        index.append([name, len(data)])
        blobs.append(data)
    head = json.dumps({"parts": index, "batch_id": batch_id, "answer": answer}).encode()
    return struct.pack("<I", len(head)) + head + b"".join(blobs)


def _decode_batch(payload: bytes) -> Tuple[Dict[str, object], Optional[str], dict]:
    (n,) = struct.unpack_from("<I", payload, 0)
    head = json.loads(payload[4:4 + n])
    at = 4 + n
    parts: Dict[str, object] = {}
    for name, size in head["parts"]:
        data = payload[at:at + size]
        at += size
        if name == "delete":
            parts[name] = np.frombuffer(data, dtype=np.int64).copy()
        else:
            parts[name] = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    return parts, head.get("batch_id"), head.get("answer") or {}


def _frame(kind: int, seq: int, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, kind, seq, len(payload), zlib.crc32(payload)) + payload


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ChangeLog:
    """One version's change log, shared by the threads of a process."""

    def __init__(self, path: Path, create: bool = False):
        self.path = Path(path)
        self.file = self.path / "wal"
        self._lock = threading.Lock()
        self._offset = 0                       # bytes of the file read (whole records)
        self._head: Optional[int] = None       # the newest batch's sequence
        self._records: List[Tuple[int, int, int]] = []   # (seq, payload offset, length) of batches
        self._ids: Dict[str, dict] = {}        # batch_id -> answer
        if create:
            self.path.mkdir(parents=True, exist_ok=True)
            self.file.touch()
            _fsync_dir(self.path)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------ reading
    def _scan(self) -> None:
        """Read the records appended since the last scan (stops at a cut-off record)."""
        try:
            size = os.path.getsize(self.file)
        except FileNotFoundError:
            return
        if size <= self._offset:
            return
        with open(self.file, "rb") as f:
            f.seek(self._offset)
            data = f.read(size - self._offset)
        at = 0
        while at + HEADER.size <= len(data):
            magic, kind, seq, length, crc = HEADER.unpack_from(data, at)
            end = at + HEADER.size + length
            if magic != MAGIC or end > len(data):
                break
            payload = data[at + HEADER.size:end]
            if zlib.crc32(payload) != crc:
                break
            if kind == KIND_SEED:
                seed = json.loads(payload)
                self._head = max(self._head or 0, seed["head"])
                for bid, answer in seed["batch_ids"]:
                    self._ids[bid] = answer
            else:
                self._records.append((seq, self._offset + at + HEADER.size, length))
                self._head = seq
                head = json.loads(payload[4:4 + struct.unpack_from("<I", payload, 0)[0]])
                if head.get("batch_id") is not None:
                    self._ids[head["batch_id"]] = head["answer"]
            at = end
        self._offset += at

    def head(self, default: int = 0) -> int:
        """Sequence number of the newest batch (default when the log is empty)."""
        with self._lock:
            self._scan()
            return default if self._head is None else self._head

    def _payloads(self, after: int):
        with self._lock:
            self._scan()
            wanted = [(s, o, n) for s, o, n in self._records if s > after]
        if not wanted:
            return
        with open(self.file, "rb") as f:
            for s, o, n in wanted:
                f.seek(o)
                yield s, f.read(n)

    def records(self, after: int) -> Iterator[Tuple[int, Dict[str, object]]]:
        """(seq, parts) of every batch with seq > after, oldest first; parts are pa.Tables
        (tables) and an int64 array (delete)."""
        for s, payload in self._payloads(after):
            yield s, _decode_batch(payload)[0]

    def raw_records(self, after: int) -> Iterator[Tuple[int, bytes]]:
        """(seq, payload) of every batch with seq > after, as stored (for seed)."""
        yield from self._payloads(after)

    def batch_answer(self, batch_id: str) -> Optional[dict]:
        with self._lock:
            self._scan()
            return self._ids.get(batch_id)

    def batch_ids(self) -> list:
        """[(batch_id, answer)] of the remembered batch ids, the newest RECENT_BATCH_IDS."""
        with self._lock:
            self._scan()
            items = sorted(self._ids.items(), key=lambda kv: kv[1].get("sequence", 0))
        return items[-RECENT_BATCH_IDS:]

    # ------------------------------------------------------------ writing
    def _write(self, data: bytes) -> None:
        """Append and fdatasync; on failure the file is cut back to what it held, so a
        failed write (a full disk) leaves no partial record behind."""
        if not self.file.exists():
            self.path.mkdir(parents=True, exist_ok=True)
            self.file.touch()
            _fsync_dir(self.path)
        fd = os.open(self.file, os.O_WRONLY | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fdatasync(fd)
            except BaseException:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)

    def append(self, seq: int, parts: Dict[str, object], batch_id: Optional[str], answer: dict) -> None:
        """Write one batch as one record and fsync it."""
        with self._lock:
            self._scan()
            size = os.path.getsize(self.file) if self.file.exists() else 0
            if size > self._offset:   # a cut-off record at the end (a crash mid-append): drop it
                with open(self.file, "r+b") as f:
                    f.truncate(self._offset)
            self._write(_frame(KIND_BATCH, seq, _encode_batch(parts, batch_id, answer)))
            self._scan()

    def seed(self, head: int, records, batch_ids) -> None:
        """Fill a new log (a compaction's): the sequence it starts after, the carried
        records (from raw_records) and batch ids (from batch_ids)."""
        seed = json.dumps({"head": head, "batch_ids": [list(x) for x in batch_ids]}).encode()
        data = [_frame(KIND_SEED, head, seed)]
        data += [_frame(KIND_BATCH, s, payload) for s, payload in records]
        with self._lock:
            self._write(b"".join(data))
            self._scan()
