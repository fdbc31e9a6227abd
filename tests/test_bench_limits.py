"""The bench's parts for scale L, at tiny scale: DuckDB calls under a time limit, result ids
compared as arrays, suite codes picked one input part at a time, the on-disk peer's local
dates per 15-minute bucket, and one suite segment measured end to end with DuckDB over
its limit and within it."""
from __future__ import annotations

import dataclasses
import json
import time

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from segments.bench import run as bench_run
from segments.bench import report
from segments.bench.duck import DuckPeer
from segments.bench.peer_calls import OverLimit, ids_problem, limited
from segments.bench.suite import BenchSegment, pick_codes, pick_codes_of_parts
from segments.engine.model.segment_json import loads
from tests import datasets as D

SLOW = "SELECT count(*) FROM range(100000000000) t(x) WHERE x % 7 = 3"   # minutes on any machine


def test_limited_interrupts_a_call_past_its_limit_and_the_connection_still_answers():
    con = duckdb.connect(":memory:")
    con.execute("SET threads = 1")
    t0 = time.perf_counter()
    with pytest.raises(OverLimit) as e:
        limited(con, lambda: con.execute(SLOW).fetchone(), 0.3)
    assert time.perf_counter() - t0 < 10 and e.value.limit_s == 0.3
    ms, r = limited(con, lambda: con.execute("SELECT 41 + 1").fetchone(), 5.0)
    assert r == (42,) and 0 <= ms < 5000
    # no limit: the call runs to its end
    assert limited(con, lambda: con.execute("SELECT 7").fetchone(), None)[1] == (7,)
    # an interrupt that is not the limit's is not turned into "over the limit"
    import threading
    threading.Timer(0.2, con.interrupt).start()
    with pytest.raises(duckdb.InterruptException):
        limited(con, lambda: con.execute(SLOW).fetchone(), 60.0)
    con.close()


def test_ids_compared_as_arrays():
    a = np.array([5, 3, 9, 1], np.int64)
    assert ids_problem(a, [5, 3, 9, 1], ordered=True) is None
    assert ids_problem(a, np.array([1, 3, 5, 9], np.int32), ordered=False) is None
    p = ids_problem(a, [3, 5, 9, 1], ordered=True)
    assert p and "position 0" in p and "only engine []" in p
    p = ids_problem(a, [1, 3, 5, 9, 11], ordered=False)
    assert p and "4 ids != duckdb 5" in p and "only duckdb [11]" in p
    assert ids_problem(np.zeros(0, np.int64), [], ordered=True) is None
    with pytest.raises(ValueError, match="NULL"):
        ids_problem(a, np.ma.masked_array([5, 3, 9, 1], mask=[0, 1, 0, 0]), ordered=True)


def test_codes_from_parts_equal_codes_from_the_whole_table():
    purchases = D.random_tables(3, n=300)["purchases"]
    parts = [purchases.slice(i, 700) for i in range(0, purchases.num_rows, 700)]
    assert len(parts) >= 3
    assert pick_codes_of_parts(parts) == pick_codes(purchases)
    # a part without any value of a field adds nothing
    empty = purchases.slice(0, 0)
    assert pick_codes_of_parts([empty] + parts) == pick_codes(purchases)


@pytest.mark.parametrize("tz", [D.NY, D.AKL, "Australia/Lord_Howe", "Asia/Kathmandu"])
def test_local_dates_per_bucket_equal_icu_per_line(tz, tmp_path):
    """The on-disk and Parquet peers' local dates (zone offsets per 15-minute bucket) are
    DuckDB's per line conversion, for zones with half-hour DST and 45-minute offsets too."""
    tables = D.random_tables(5, n=300)
    folder = D.write_folder(tables, tmp_path / "in")
    said = []
    disk = DuckPeer.on_disk(folder, tz, tmp_path / "p.db", threads=2, memory_limit="1GB", log=said.append)
    views = DuckPeer.over_parquet(folder, tz, threads=2, memory_limit="1GB", log=said.append)
    assert len(said) == 4 and all("per 15-minute bucket" in s for s in said), said
    if tz in (D.NY, D.AKL, "Australia/Lord_Howe"):          # zones with DST: several runs
        assert all("1 run(s)" not in s for s in said), said
    for peer in (disk, views):
        for table, col in (("purchases", "purchased_at"), ("visits", "starts_at")):
            n, bad = peer.con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE ld IS DISTINCT FROM CAST(timezone('{tz}', {col}) AS DATE)) "
                f"FROM {table}").fetchone()
            assert n == tables[table].num_rows and bad == 0, (table, bad)
    assert disk.disk_info["reused"] is False and disk.disk_info["database_bytes"] > 0
    disk.close()
    views.close()
    again = DuckPeer.on_disk(folder, tz, tmp_path / "p.db", threads=2, memory_limit="1GB", log=said.append)
    assert again.disk_info["reused"] is True and again.disk_info["build_s"] is not None
    again.close()


class _SlowPeer:
    """A DuckPeer whose count runs a query that never ends in time."""

    def __init__(self, peer):
        self.peer, self.con = peer, peer.con

    def count(self, seg, as_of):
        return self.con.execute(SLOW).fetchone()

    def sql(self, seg, as_of):
        return self.peer.sql(seg, as_of)


@pytest.fixture(scope="module")
def small(engine, tmp_path_factory):
    tables = D.random_tables(7, n=300)
    folder = D.write_folder(tables, tmp_path_factory.mktemp("bench_small"))
    engine.create_dataset("bench_small", D.NY, shard_bits=10)
    engine.ingest("bench_small", folder)
    peer = DuckPeer(tables, D.NY, threads=1)
    yield engine, peer
    peer.close()


def _bench_segment(definition: dict, name: str) -> BenchSegment:
    text = json.dumps(definition)
    return BenchSegment(name, "test", text, loads(text))


def test_measure_segment_within_and_over_the_duckdb_limit(small):
    engine, peer = small
    ranked = _bench_segment({"include": {"bought": {}},
                             "order_by": {"key": "spend", "direction": "desc"}, "limit": 25}, "ranked")
    plain = _bench_segment({"include": {"bought": {"filter": {"department": ["charms"]}}}}, "plain")
    for bs in (ranked, plain):
        row = bench_run.measure_segment(bs, engine, "bench_small", peer, None, repeat=2,
                                        duck_limit_s=30.0, duck_repeat=1)
        assert row["match"] and not row["problems"] and not row["unchecked"], row["problems"]
        assert row["count"] > 0 and row["duckdb_ms"] > 0 and row["ratio"] > 0 and not row["duckdb_over_limit"]
        assert len(row["runs_ms"]["engine_count"]) == 2 and len(row["runs_ms"]["duckdb_count"]) == 1
        assert row["result_ids"] == row["count"]

    # no timed call after the first: the first call is DuckDB's figure
    row = bench_run.measure_segment(plain, engine, "bench_small", peer, None, repeat=1,
                                    duck_limit_s=30.0, duck_repeat=0)
    assert row["match"] and row["runs_ms"]["duckdb_count"] == [row["first_call_ms"]["duckdb_count"]]

    # DuckDB's count past the limit: the engine's time stands, the ratio is a lower bound,
    # DuckDB's materialize is skipped and the ids are reported unchecked, not mismatched
    row = bench_run.measure_segment(plain, engine, "bench_small", _SlowPeer(peer), None, repeat=1,
                                    duck_limit_s=0.5, duck_repeat=1)
    assert row["duckdb_over_limit"] == ["duckdb_count"] and row["duckdb_skipped"] == ["duckdb_materialize"]
    assert row["duckdb_ms"] is None and row["ratio"] is None and row["match"]
    assert row["ratio_lower_bound"] == pytest.approx(500 / row["engine_ms"], rel=1e-2)
    assert row["unchecked"] == ["count", "materialize ids"]
    assert "> limit" in report.progress_line(row)

    # a wrong DuckDB answer is caught on the arrays
    class _Wrong(_SlowPeer):
        def count(self, seg, as_of):
            c = self.peer.count(seg, as_of)
            return (c[0] + 1,) + tuple(c[1:])
    row = bench_run.measure_segment(plain, engine, "bench_small", _Wrong(peer), None, repeat=1,
                                    duck_limit_s=30.0, duck_repeat=1)
    assert not row["match"] and any("count engine" in p for p in row["problems"])
    wrong_ids = dataclasses.replace(plain.segment, exclude=loads(json.dumps(
        {"include": {"customers": [int(engine.materialize("bench_small", plain.segment, (),
                                                           bench_run.suite.AS_OF).customer_ids[0])]}})).include)

    class _WrongIds(_SlowPeer):
        def count(self, seg, as_of):
            return self.peer.count(seg, as_of)

        def sql(self, seg, as_of):
            return self.peer.sql(wrong_ids, as_of)
    row = bench_run.measure_segment(plain, engine, "bench_small", _WrongIds(peer), None, repeat=1,
                                    duck_limit_s=30.0, duck_repeat=1)
    assert not row["match"] and any(p.startswith("materialize:") for p in row["problems"]), row["problems"]


def test_compaction_copy_links_parts_and_leaves_the_original_as_it_was(tmp_path):
    """bench.compaction's copy of a dataset: parts hard-linked, the rest copied; changes and
    a compaction on the copy leave the original's files and answers as they were."""
    import os

    from segments.bench.compaction import copy_dataset
    from segments.bench.live import make_batches
    from segments.engine.api import Engine

    tables = D.random_tables(9, n=200)
    folder = D.write_folder(tables, tmp_path / "in")
    src = tmp_path / "src"
    eng = Engine(src)
    eng.create_dataset("b", D.NY, shard_bits=10)
    eng.ingest("b", folder)
    seg = loads(json.dumps({"include": {"bought": {}}}))
    as_of = bench_run.suite.AS_OF
    before = eng.count("b", seg, as_of).count
    eng.close()
    files = {p: (p.stat().st_ino, p.read_bytes()) for p in src.rglob("*") if p.is_file()}
    assert any("parts" in p.parts for p in files)

    copy_dataset(src, tmp_path / "copy", link_parts=True)
    for p, (ino, _) in files.items():
        q = tmp_path / "copy" / p.relative_to(src)
        assert (q.stat().st_ino == ino) == ("parts" in p.parts), q
    ids = np.asarray(tables["customers"]["customer_id"].to_numpy(), np.int64)
    copy = Engine(tmp_path / "copy", auto_compact=False)
    for b in make_batches(ids, 2, 500, seed=3):
        copy.apply_changes("b", purchases=b)
    copy.compact("b")
    assert copy.count("b", seg, as_of).count >= before
    copy.close()
    linked = {p.relative_to(src) for p in files if "parts" in p.parts}
    now = {p.relative_to(tmp_path / "copy") for p in (tmp_path / "copy").rglob("*") if p.is_file() and "parts" in p.parts}
    assert now != linked            # the compaction wrote parts (and unlinked some) in the copy

    for p, (ino, data) in files.items():
        assert p.exists() and p.stat().st_ino == ino and p.read_bytes() == data, p
    again = Engine(src)
    assert again.count("b", seg, as_of).count == before
    again.close()


def test_scale_l_defaults_bound_the_run():
    """At L: DuckDB calls limited, one call each, gRPC and the load test skipped with a
    reason unless asked for; at S and M nothing changes."""
    a = bench_run.parse_args(["--scale", "L"])
    assert a.duckdb_limit == 20.0 and a.duckdb_repeat == 0 and a.skip_grpc and "--grpc" in a.skip_grpc
    a = bench_run.parse_args(["--scale", "L", "--grpc", "--duckdb-limit", "0", "--duckdb-repeat", "2"])
    assert a.skip_grpc is None and a.duckdb_limit == 0 and a.duckdb_repeat == 2
    a = bench_run.parse_args(["--scale", "M"])
    assert a.duckdb_limit == 0 and a.duckdb_repeat == a.repeat == 5 and a.skip_grpc is None
    assert (a.clients, a.load_seconds) == (8, 60.0)


def test_reference_segments_are_measured_against_the_peers_own_group(small):
    """prepare_references puts the saved segment and the group in the catalog, twice in a
    row (a cached dataset keeps them), and the peer's group is its own answer: in_segment
    and in_group then match DuckDB; a group frozen wrong on the engine's side would not."""
    engine, peer = small
    for _ in range(2):
        refs = bench_run.suite.prepare_references(engine, "bench_small", peer)
    assert refs[bench_run.suite.REF_GROUP[0]] > 0
    names = {"bh_in_segment", "bh_in_group"}
    segs = [s for s in bench_run.suite.segments(references=True) if s.name in names]
    assert {s.name for s in segs} == names
    assert not {s.name for s in bench_run.suite.segments()} & names   # only when asked
    for bs in segs:
        row = bench_run.measure_segment(bs, engine, "bench_small", peer, None, repeat=1, duck_limit_s=30.0,
                                        duck_repeat=1)
        assert row["match"] and not row["problems"] and row["count"] > 0, (bs.name, row["problems"])
    # the peer's group differs from the engine's frozen one: the comparison notices
    gname = bench_run.suite.REF_GROUP[0]
    members = sorted(peer.groups[gname])
    peer.set_group(gname, members[1:])
    row = bench_run.measure_segment(segs[1], engine, "bench_small", peer, None, repeat=1, duck_limit_s=30.0,
                                    duck_repeat=1)
    peer.set_group(gname, members)
    assert not row["match"]
