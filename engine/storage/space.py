"""Disk space: checked and reserved before a write, and a full disk reported, never fatal.

Every writer of the engine (a version build, a change batch, a catalog record, an export)
runs inside `reserve(folder, bytes, what)`: the write starts only if the folder's volume
keeps `margin()` bytes free after it and after the other writes reserved in this process,
and a write that fails for lack of space anyway (an estimate too low, another process
filling the disk) comes out as InsufficientSpace. InsufficientSpace says how much was
needed and is free; nothing acknowledged is lost, readers keep reading, and the same call
succeeds once space is back (nothing is left half-done that needs a restart).

LMDB maps its lock file and writes into the map: on a file system that cannot back a page
of it (a full disk, a full tmpfs) the process dies of SIGBUS. `open_env` allocates the
lock file's blocks before LMDB maps it, so a full disk is an error at open, not a signal:
an environment opened with a lock file must open through it. The engine's own have none:
parts are written once with lock=False, and the change log is a plain file (engine.live.log)
whose failed append is cut back. Data files are written with pwrite, never through a
writable map: the engine never opens an environment with writemap.
"""
from __future__ import annotations

import errno
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import lmdb

from ..errors import InsufficientSpace

DEFAULT_MARGIN = 64 << 20       # bytes kept free on a volume after any write
LOCK_FILE_BYTES = 64 << 10      # an LMDB lock file of this size holds ~1000 reader slots
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)

_lock = threading.Lock()
_reserved: dict = {}            # st_dev -> bytes promised to writes in progress


def margin() -> int:
    """Bytes kept free after a write: $SEGMENTS_DISK_MARGIN or DEFAULT_MARGIN."""
    try:
        return max(int(os.environ.get("SEGMENTS_DISK_MARGIN", DEFAULT_MARGIN)), 0)
    except ValueError:
        return DEFAULT_MARGIN


def _existing(path: Path) -> Path:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_bytes(path) -> int:
    """Bytes an unprivileged writer may still use on the volume of path (or its nearest
    existing ancestor)."""
    st = os.statvfs(_existing(Path(path)))
    return st.f_bavail * st.f_frsize


def used_bytes(path) -> int:
    """Bytes the files under path occupy on disk (0 when it does not exist)."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_blocks * 512
    total = 0
    for root, _, files in os.walk(p):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def human(n: float) -> str:
    """1.5 MiB, 320 KiB, 12 B."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} B"


def _shortage(what: str, needed: int, free: int) -> InsufficientSpace:
    return InsufficientSpace(
        "disk", f"not enough disk space for {what}: it needs about {human(needed)} plus {human(margin())} "
                f"kept free, and {human(max(free, 0))} is free; free some space and retry "
                "(nothing was changed)", needed=needed + margin(), free=max(free, 0))


def is_disk_full(exc: BaseException) -> bool:
    """An error a full disk causes: ENOSPC / EDQUOT, or LMDB's failed page writes."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return True
    text = str(exc)
    return "No space left" in text or "Disk quota exceeded" in text


@contextmanager
def reserve(folder, needed: int, what: str) -> Iterator[None]:
    """Check that `needed` bytes fit on folder's volume (keeping margin() free, net of the
    other reservations in progress), hold them while the body writes, and turn a write that
    fails for lack of space into InsufficientSpace."""
    folder = _existing(Path(folder))
    needed = max(int(needed), 0)
    dev = os.stat(folder).st_dev
    with _lock:
        free = free_bytes(folder) - _reserved.get(dev, 0)
        if free - needed < margin():
            raise _shortage(what, needed, free)
        _reserved[dev] = _reserved.get(dev, 0) + needed
    try:
        yield
    except InsufficientSpace:
        raise
    except (OSError, lmdb.Error, MemoryError) as e:
        if isinstance(e, MemoryError):
            raise
        # LMDB reports a short page write as EIO: blame the disk when it is (nearly) full
        if is_disk_full(e) or free_bytes(folder) < margin() + (1 << 20):
            raise _shortage(what, needed, free_bytes(folder)) from None
        raise
    finally:
        with _lock:
            left = _reserved.get(dev, 0) - needed
            if left > 0:
                _reserved[dev] = left
            else:
                _reserved.pop(dev, None)


def open_env(path, **kwargs) -> lmdb.Environment:
    """lmdb.open with the lock file's blocks allocated first (unless lock=False or readonly),
    so LMDB never writes through its map into a page the file system cannot back."""
    path = Path(path)
    if kwargs.get("lock", True) and not kwargs.get("readonly", False):
        folder = path if kwargs.get("subdir", True) else path.parent
        folder.mkdir(parents=True, exist_ok=True)
        lock = folder / "lock.mdb" if kwargs.get("subdir", True) else Path(f"{path}-lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.posix_fallocate(fd, 0, LOCK_FILE_BYTES)
        except OSError as e:
            if e.errno in DISK_FULL_ERRNOS:
                raise _shortage("opening a store", LOCK_FILE_BYTES, free_bytes(folder)) from None
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
        finally:
            os.close(fd)
    try:
        return lmdb.open(str(path), **kwargs)
    except lmdb.Error as e:
        if is_disk_full(e):
            raise _shortage("opening a store", LOCK_FILE_BYTES, free_bytes(path)) from None
        raise


# ---------------------------------------------------------------- estimates

def table_bytes(tables) -> int:
    """In-memory bytes of a dict of arrow tables (None values skipped)."""
    return sum(t.nbytes for t in (tables or {}).values() if t is not None)


def export_bytes(table, fmt: str) -> int:
    """A generous estimate of an export file: CSV text can be a few times the arrow bytes."""
    return int(table.nbytes * (3 if fmt == "csv" else 1.2)) + (64 << 10)
