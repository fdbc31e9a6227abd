"""Dataset folders on disk: names, creation and deletion, the CURRENT pointer, and locks.

  <root>/<name>/dataset.json    name, timezone, shard_bits (fixed at creation)
  <root>/<name>/CURRENT         the live version's folder name, replaced atomically
  <root>/<name>/v000001/        a version (engine.storage.build), and v000001.log/ its change log
  <root>/<name>/catalog/        saved segments and customer groups (engine.catalog)
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from ..errors import AlreadyExists, InvalidArgument, NotFound
from ..model import limits, timerange
from ..storage import space

DEFAULT_SHARD_BITS = 16
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(name: str) -> str:
    """A dataset name: letters, digits, _ . - ; no path tricks."""
    limits.check_name(name, "dataset")
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise InvalidArgument("dataset", f"invalid dataset name {name!r} (letters, digits, _ . -; "
                                         "starting with a letter or digit)")
    return name


def dataset_dir(root: Path, name: str) -> Path:
    """The folder of dataset `name` under root (the name checked)."""
    return Path(root) / check_name(name)


def create_dataset(root: Path, name: str, timezone: str, shard_bits: int = DEFAULT_SHARD_BITS) -> None:
    """Create an empty dataset folder; AlreadyExists if present."""
    timerange.load_zone(timezone)
    if not isinstance(shard_bits, int) or not 4 <= shard_bits <= 16:
        raise InvalidArgument("shard_bits", f"must be between 4 and 16, got {shard_bits!r}")
    d = dataset_dir(root, name)
    if (d / "dataset.json").exists():
        raise AlreadyExists("dataset", f"dataset {name!r} already exists", reason="DATASET_EXISTS")
    with space.reserve(root, 1 << 16, "the new dataset"):
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / "dataset.json.tmp"
        try:
            tmp.write_text(json.dumps({"name": name, "timezone": timezone, "shard_bits": shard_bits}))
            os.replace(tmp, d / "dataset.json")
        except OSError:
            tmp.unlink(missing_ok=True)
            if not any(d.iterdir()):
                d.rmdir()
            raise


def delete_dataset(root: Path, name: str) -> None:
    """Remove a dataset folder entirely; NotFound if absent."""
    d = dataset_dir(root, name)
    if not (d / "dataset.json").exists():
        raise NotFound("dataset", f"no dataset named {name!r}", reason="DATASET_NOT_FOUND")
    shutil.rmtree(d)


def list_datasets(root: Path) -> list:
    """Names of the datasets under root."""
    root = Path(root)
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "dataset.json").exists())


@contextmanager
def write_lock(d: Path):
    """One writer per dataset across processes."""
    with open(d / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def build_lock(d: Path, wait: bool = True):
    """One build (bulk load, compaction) per dataset across processes; writers of change
    batches do not wait for it. With wait=False, yields False at once when another holds it."""
    with open(d / ".build.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_current(d: Path, version: str) -> None:
    tmp = d / "CURRENT.tmp"
    with open(tmp, "w") as f:
        f.write(version)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, d / "CURRENT")
    fsync_dir(d)


def fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
