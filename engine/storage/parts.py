"""Parts: the immutable LMDB environments a version is made of.

A part is written once by one writer (`PartWriter`) and then only read (`PartReader`). Its
map is sized to what it holds, never a fixed terabyte: the writer grows the map before each
transaction to fit the values it is about to put, and a reader maps exactly the file. So a
process can hold thousands of parts without running out of address space, and a part costs
one file descriptor while open.

Parts live in <dataset>/parts/<name>/ and are shared between versions: a version's manifest
names the parts it reads, and a part no manifest names any more is deleted.

Small values are packed: LMDB gives every value over ~2 KB whole 4 KB pages (half a page
lost per value on average) and keeps smaller ones in B-tree leaves filled to about half, so
a small dataset's part of a few hundred values was ~7 % padding (more for smaller ones).
Values under PACK_MAX bytes are written back to back (each PACK_ALIGN-aligned) into pack
values of up to PACK_BYTES under the keys `\0pack.<n>`, and their own keys hold a 12-byte
pointer (pack, offset, length). A part written so carries the key `\0format` = `packed-1`;
a part without it (written before) is read as before, value by value. Readers still get
zero-copy views: a packed value is a slice of its pack's page-aligned map.
"""
from __future__ import annotations

import os
import struct
import threading
from pathlib import Path
from typing import Optional

import lmdb
import numpy as np

PAGE = 4096
_SLACK = 1 << 20  # B-tree pages for keys, meta pages, free-list: small and bounded
PACK_MAX = 1 << 20      # values shorter than this are packed
PACK_BYTES = 4 << 20    # a pack is sealed once it holds this much
PACK_ALIGN = 16         # packed values start at multiples of this (an overflow value's data
                        # starts 16 bytes into its page, so the values keep that alignment)
_PACK_MIN = PAGE        # packs are padded to a page: shorter ones would sit in a B-tree leaf
                        # at an odd address, and every value in them would be misaligned
FORMAT_KEY = b"\0format"
PACKED = b"packed-1"
_POINTER = struct.Struct("<III")  # pack number, offset, length


def _page_bytes(n: int) -> int:
    """Bytes LMDB needs for one value of n bytes (overflow pages, header included)."""
    return ((n + 64 + PAGE - 1) // PAGE) * PAGE


class PartWriter:
    """Write one part: put() values, commit() a unit of them, finish() once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.mkdir(parents=True)
        self._map = 4 * _SLACK
        self.env = lmdb.open(str(self.path), map_size=self._map, subdir=True, sync=False,
                             metasync=False, lock=False, max_dbs=0)
        self._pending: list = [(FORMAT_KEY, PACKED)]
        self._pending_bytes = 64
        self._pack = bytearray()
        self._packs = 0
        self.written = 0

    def put(self, key: str, value) -> None:
        """Queue a value (numpy array, bytes or str) under key; written at the next commit."""
        if isinstance(value, np.ndarray):  # kept (not copied) until the commit writes it
            value = memoryview(np.ascontiguousarray(value).reshape(-1)).cast("B")
        elif isinstance(value, str):
            value = value.encode()
        kb = key.encode()
        if kb.startswith(b"\0"):
            raise ValueError(f"part keys may not start with a NUL byte: {key!r}")
        n = len(value)
        if n < PACK_MAX:
            off = -len(self._pack) % PACK_ALIGN + len(self._pack)
            self._pack.extend(bytes(off - len(self._pack)))
            self._pack.extend(value)
            value = _POINTER.pack(self._packs, off, n)
            if len(self._pack) >= PACK_BYTES:
                self._seal()
        self._pending.append((kb, value))
        self._pending_bytes += _page_bytes(len(value)) + len(key) + 64
        if self._pending_bytes > (256 << 20):
            self.commit()

    def _seal(self) -> None:
        """Queue the current pack under its key; later small values start the next one."""
        if not self._pack:
            return
        if len(self._pack) < _PACK_MIN:
            self._pack.extend(bytes(_PACK_MIN - len(self._pack)))
        self._pending.append((b"\0pack.%d" % self._packs, bytes(self._pack)))
        self._pending_bytes += _page_bytes(len(self._pack)) + 64
        self._pack = bytearray()
        self._packs += 1

    def commit(self) -> None:
        """Write the queued values in one transaction, growing the map first to fit them."""
        self._seal()  # a pointer is committed with (or after) its pack, never before
        if not self._pending:
            return
        used = (self.env.info()["last_pgno"] + 1) * PAGE
        need = used + self._pending_bytes + _SLACK
        if need > self._map:
            self._map = max(need, self._map + self._map // 4)
            self.env.set_mapsize(self._map)
        with self.env.begin(write=True) as txn:
            for k, v in self._pending:
                txn.put(k, v)
        self.written += self._pending_bytes
        self._pending.clear()
        self._pending_bytes = 0

    def finish(self) -> int:
        """Commit, flush to disk, close; returns the part's size in bytes."""
        self.commit()
        self.env.sync(True)
        self.env.close()
        size = os.path.getsize(self.path / "data.mdb")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return size

    def abort(self) -> None:
        try:
            self.env.close()
        except lmdb.Error:
            pass


class PartReader:
    """One part opened read-only through a single long-lived read transaction; values are
    zero-copy memoryviews into the map, valid while the reader is open.

    LMDB allows one open handle per environment and process, and versions share parts: get
    readers with `open_part` and give them back with `release_part`, which count users."""

    def __init__(self, path: Path, size: Optional[int] = None):
        self.path = Path(path)
        self.key = None  # open_part's key
        if size is None:
            size = os.path.getsize(self.path / "data.mdb")
        self.env = lmdb.open(str(self.path), readonly=True, lock=False, subdir=True,
                             map_size=max(size, PAGE), max_readers=1)
        self.txn = self.env.begin(buffers=True)
        self.size = size
        fmt = self.txn.get(FORMAT_KEY)
        self.packed = fmt is not None and bytes(fmt) == PACKED
        self._packs: dict = {}

    def get(self, key: str) -> Optional[memoryview]:
        v = self.txn.get(key.encode())
        if v is None or not self.packed or len(v) != _POINTER.size:
            return v  # in a packed part every value this short is a pointer
        pack, off, n = _POINTER.unpack(v)
        buf = self._packs.get(pack)
        if buf is None:
            buf = self._packs[pack] = self.txn.get(b"\0pack.%d" % pack)
        return buf[off:off + n]

    def close(self) -> None:
        if self.env is not None:
            self._packs = {}
            self.txn.abort()
            self.env.close()
            self.env = None


_open: dict = {}
# Reentrant: a Snapshot collected while open_part builds a reader (garbage collection runs
# inside any allocation) releases its parts from __del__ on the same thread; with a plain
# lock that thread waited for itself (seen under concurrent closes and reopens).
_open_lock = threading.RLock()


def open_part(path: Path) -> PartReader:
    """The process's reader of a part (opened on first use); release_part when done."""
    # keyed by the data file's identity, as LMDB sees it: one stat, where resolving the
    # path took one per folder of it
    st = os.stat(os.path.join(path, "data.mdb"))
    key = (st.st_dev, st.st_ino)
    with _open_lock:
        hit = _open.get(key)
        if hit is not None:
            hit[1] += 1
            return hit[0]
        r = PartReader(Path(path), st.st_size)
        r.key = key
        _open[key] = [r, 1]
        return r


def release_part(reader: PartReader) -> None:
    """One user fewer; the last one closes the part."""
    key = reader.key
    with _open_lock:
        hit = _open.get(key)
        if hit is None or hit[0] is not reader:
            return
        hit[1] -= 1
        if hit[1] <= 0:
            del _open[key]
            reader.close()


def open_parts() -> int:
    """How many parts this process has open."""
    with _open_lock:
        return len(_open)
