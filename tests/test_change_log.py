"""The change log file: records survive reopening, a record cut short by a crash is dropped
(and cut off by the next append), a corrupted one is never read, another reader follows
the file as it grows, and a compaction's seed carries records and batch ids."""
import numpy as np
import pyarrow as pa

from segments.engine.live.log import ChangeLog


def _batch(k: int) -> dict:
    return {"purchases": pa.table({"customer_id": pa.array([k, k + 1], pa.int64()),
                                   "amount": pa.array([100 * k, -5], pa.int64())}),
            "delete": np.array([k * 10], np.int64)}


def _same(got, k):
    want = _batch(k)
    assert got["purchases"].equals(want["purchases"])
    assert np.array_equal(got["delete"], want["delete"])


def test_append_reopen_and_follow(tmp_path):
    log = ChangeLog(tmp_path / "v1.log", create=True)
    other = ChangeLog(tmp_path / "v1.log")          # another process's reader
    assert log.head(0) == 0 and other.head(7) == 7
    for k in (1, 2, 3):
        log.append(k, _batch(k), f"id-{k}", {"sequence": k, "rows": {"purchases": 2}})
        assert other.head(0) == k                    # it sees each batch once it is written
    again = ChangeLog(tmp_path / "v1.log")
    assert again.head(0) == 3
    recs = list(again.records(1))
    assert [s for s, _ in recs] == [2, 3]
    for s, parts in recs:
        _same(parts, s)
    assert again.batch_answer("id-2") == {"sequence": 2, "rows": {"purchases": 2}}
    assert again.batch_answer("nope") is None


def test_a_record_cut_short_is_dropped_and_cut_off(tmp_path):
    log = ChangeLog(tmp_path / "v1.log", create=True)
    for k in (1, 2):
        log.append(k, _batch(k), None, {"sequence": k})
    whole = (tmp_path / "v1.log" / "wal").read_bytes()
    log.append(3, _batch(3), "id-3", {"sequence": 3})
    torn = (tmp_path / "v1.log" / "wal").read_bytes()[:len(whole) + 30]   # a crash mid-append
    (tmp_path / "v1.log" / "wal").write_bytes(torn)
    reopened = ChangeLog(tmp_path / "v1.log")
    assert reopened.head(0) == 2 and [s for s, _ in reopened.records(0)] == [1, 2]
    assert reopened.batch_answer("id-3") is None    # never acknowledged: not remembered
    reopened.append(3, _batch(4), None, {"sequence": 3})
    assert (tmp_path / "v1.log" / "wal").stat().st_size > len(whole)
    fresh = ChangeLog(tmp_path / "v1.log")
    recs = list(fresh.records(0))
    assert [s for s, _ in recs] == [1, 2, 3]
    _same(recs[2][1], 4)


def test_a_corrupted_record_is_never_read(tmp_path):
    log = ChangeLog(tmp_path / "v1.log", create=True)
    for k in (1, 2):
        log.append(k, _batch(k), None, {"sequence": k})
    data = bytearray((tmp_path / "v1.log" / "wal").read_bytes())
    data[-3] ^= 0xFF                                  # the last record's payload
    (tmp_path / "v1.log" / "wal").write_bytes(bytes(data))
    assert [s for s, _ in ChangeLog(tmp_path / "v1.log").records(0)] == [1]


def test_seed_carries_records_and_batch_ids(tmp_path):
    log = ChangeLog(tmp_path / "v1.log", create=True)
    for k in (1, 2, 3, 4):
        log.append(k, _batch(k), f"id-{k}", {"sequence": k})
    new = ChangeLog(tmp_path / "v2.log", create=True)
    new.seed(log.head(2), list(log.raw_records(2)), log.batch_ids())
    new = ChangeLog(tmp_path / "v2.log")
    assert new.head(2) == 4
    assert [s for s, _ in new.records(2)] == [3, 4]
    _same(dict(new.records(3))[4], 4)
    assert new.batch_answer("id-1") == {"sequence": 1}   # a retry of a folded batch is recognised
    empty = ChangeLog(tmp_path / "v3.log", create=True)
    empty.seed(9, [], [])
    assert ChangeLog(tmp_path / "v3.log").head(0) == 9
