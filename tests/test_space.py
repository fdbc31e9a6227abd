"""Disk-space checks (engine/storage/space.py) with the free space faked, so they run on any
machine; tests/test_full_disk.py does the same on a real full tmpfs where it can.
"""
from __future__ import annotations

import errno
import os

import pyarrow as pa
import pytest

from segments.engine.api import Engine
from segments.engine.catalog.catalog import Catalog
from segments.engine.errors import InsufficientSpace
from segments.engine.evaluation.exporter import write_table
from segments.engine.model import segment as S
from segments.engine.storage import space

ALL = S.Segment(S.All())


@pytest.fixture
def low_disk(monkeypatch):
    """Set how many bytes the disk has free (None: the truth)."""
    real = space.free_bytes
    state = {"free": None}
    monkeypatch.setattr(space, "free_bytes", lambda p: real(p) if state["free"] is None else state["free"])
    monkeypatch.setenv("SEGMENTS_DISK_MARGIN", str(1 << 20))

    def set_free(n):
        state["free"] = n
    return set_free


def test_reserve_refuses_what_does_not_fit_and_says_how_much(tmp_path, low_disk):
    low_disk(5 << 20)
    with space.reserve(tmp_path, 3 << 20, "a thing"):
        with pytest.raises(InsufficientSpace) as e:     # the first 3 MiB are promised already
            with space.reserve(tmp_path, 3 << 20, "another thing"):
                pass
    assert e.value.needed == (3 << 20) + (1 << 20) and e.value.free == 2 << 20
    assert "for another thing: it needs about 3.0 MiB plus 1.0 MiB kept free, and 2.0 MiB is free" in e.value.message
    with space.reserve(tmp_path, 3 << 20, "again"):     # released on exit
        pass


def test_a_write_that_fails_for_space_becomes_insufficient_space(tmp_path, low_disk):
    low_disk(100 << 20)
    with pytest.raises(InsufficientSpace):
        with space.reserve(tmp_path, 1, "x"):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(PermissionError):
        with space.reserve(tmp_path, 1, "x"):
            raise PermissionError(errno.EACCES, "denied")


def test_an_lmdb_lock_file_is_allocated_before_lmdb_maps_it(tmp_path):
    env = space.open_env(tmp_path / "env", map_size=1 << 20)
    st = os.stat(tmp_path / "env" / "lock.mdb")
    assert st.st_size >= space.LOCK_FILE_BYTES and st.st_blocks * 512 >= space.LOCK_FILE_BYTES
    with env.begin(write=True) as txn:
        txn.put(b"k", b"v")
    env.close()


@pytest.fixture
def engine(tmp_path):
    from segments.bench.generate import generate
    generate(tmp_path / "in", customers=300, seed=5)
    generate(tmp_path / "more", customers=100, seed=6)
    eng = Engine(tmp_path / "data", auto_compact=False)
    eng.create_dataset("t", "UTC")
    eng.ingest("t", tmp_path / "in")
    yield eng
    eng.close()


def test_every_engine_write_checks_space_and_changes_nothing_when_short(engine, tmp_path, low_disk):
    cid = int(engine.materialize("t", ALL).customer_ids[0])
    catalog = Catalog(engine)
    engine.append("t", "purchases", [{"customer_id": cid, "purchased_at": "2026-01-01T00:00:00Z", "amount": 1}])
    before = engine.info("t")   # a change is pending, so a compaction has something to write
    low_disk(1 << 20)     # exactly the margin: nothing fits
    writes = {
        "apply_changes": lambda: engine.append("t", "purchases", [
            {"customer_id": cid, "purchased_at": "2026-01-01T00:00:00Z", "amount": 5}]),
        "ingest": lambda: engine.ingest("t", tmp_path / "more"),
        "compact": lambda: engine.compact("t"),
        "save": lambda: catalog.create_segment("t", "s1", ALL),
        "group": lambda: catalog.create_group("t", "g1", ALL),
        "export": lambda: write_table(pa.table({"a": [1, 2]}), tmp_path / "out.parquet"),
        "create_dataset": lambda: engine.create_dataset("u", "UTC"),
    }
    for name, call in writes.items():
        with pytest.raises(InsufficientSpace):
            call()
            print("not refused:", name)
    assert engine.info("t")["rows"] == before["rows"] and engine.info("t")["version"] == before["version"]
    assert engine.count("t", ALL).count == before["active_customers"]          # reads go on
    assert not (tmp_path / "out.parquet").exists() and "u" not in engine.datasets()
    low_disk(None)        # space is back: the same calls succeed, no restart
    for name, call in writes.items():
        call()
    assert engine.info("t")["rows"]["customers"] >= before["rows"]["customers"]
