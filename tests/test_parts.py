"""Parts: values of every size read back byte for byte, packed values aligned and zero-copy,
parts written before packing read as before, and small values no longer padded to pages."""
from __future__ import annotations

import os

import lmdb
import numpy as np
import pytest

from segments.engine.storage import parts as P

SIZES = (0, 1, 7, 12, 15, 16, 17, 100, 2000, 2100, 4095, 4096, 4097, 40_000,
         P.PACK_MAX - 1, P.PACK_MAX, P.PACK_MAX + 5, 3 << 20)


def _values(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for i, n in enumerate(SIZES):
        out[f"s{i:03d}/raw"] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    out["s900/i64"] = rng.integers(-2**62, 2**62, 1001, dtype=np.int64)
    out["s900/u16"] = rng.integers(0, 2**16, 3, dtype=np.uint16)
    out["s900/text"] = "zürich"
    return out


def _write(path, values: dict, commit_every: int = 0) -> int:
    w = P.PartWriter(path)
    for i, (k, v) in enumerate(values.items()):
        w.put(k, v)
        if commit_every and i % commit_every == commit_every - 1:
            w.commit()
    return w.finish()


def _bytes(v) -> bytes:
    if isinstance(v, np.ndarray):
        return v.tobytes()
    return v.encode() if isinstance(v, str) else v


@pytest.mark.parametrize("commit_every", [0, 3])
def test_every_value_reads_back_and_packed_ones_are_aligned_views(tmp_path, monkeypatch, commit_every):
    monkeypatch.setattr(P, "PACK_BYTES", 64 << 10)  # several packs, sealed at commits and when full
    values = _values(commit_every)
    _write(tmp_path / "p", values, commit_every)
    r = P.PartReader(tmp_path / "p")
    try:
        assert r.packed
        for k, v in values.items():
            got = r.get(k)
            assert bytes(got) == _bytes(v), k
            if len(got) < P.PACK_MAX and len(got):
                assert np.frombuffer(got, np.uint8).ctypes.data % P.PACK_ALIGN == 0, k
        a = np.frombuffer(r.get("s900/i64"), np.int64)
        assert a.flags.aligned and not a.flags.writeable and not a.flags.owndata
        assert r.get("s900/missing") is None
        with r.env.begin() as txn:  # more than one pack was written
            assert txn.get(b"\0pack.1") is not None
    finally:
        r.close()


def test_a_part_written_before_packing_reads_as_before(tmp_path):
    """Old parts have no format key: a 12-byte value there is a value, not a pointer."""
    values = {k: _bytes(v) for k, v in _values(5).items()}
    values["s901/twelve"] = bytes(range(12))
    path = tmp_path / "old"
    path.mkdir()
    env = lmdb.open(str(path), map_size=64 << 20, subdir=True, lock=False)
    with env.begin(write=True) as txn:
        for k, v in values.items():
            txn.put(k.encode(), v)
    env.close()
    r = P.PartReader(path)
    try:
        assert not r.packed
        for k, v in values.items():
            assert bytes(r.get(k)) == v, k
    finally:
        r.close()


def test_keys_of_the_pack_namespace_are_refused(tmp_path):
    w = P.PartWriter(tmp_path / "p")
    try:
        with pytest.raises(ValueError, match="NUL"):
            w.put("\0pack.0", b"x")
    finally:
        w.abort()


def test_small_values_cost_their_bytes_not_pages(tmp_path):
    """300 values of 3 KB: LMDB alone gives each a page (1.2 MB); packed, ~0.9 MB."""
    rng = np.random.default_rng(1)
    values = {f"s{i:04d}/v": rng.integers(0, 256, 3000, dtype=np.uint8).tobytes() for i in range(300)}
    size = _write(tmp_path / "p", values)
    content = sum(len(v) for v in values.values())
    assert size == os.path.getsize(tmp_path / "p" / "data.mdb")
    assert size < content * 1.08, (size, content)
