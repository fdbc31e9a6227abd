"""Many datasets in one process: the open-dataset budget, closing and reopening under calls
and changes, and the per-dataset call limits of the server.

Datasets are copies of one small ingested template (bench/tenants_data.py), each then
given changes of its own, so thousands cost seconds. Answers are
checked against plain Python over the same rows (the template's, plus each dataset's own
changes), before and after closes and reopens.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import threading
import time

import grpc
import pyarrow as pa
import pytest

from segments.bench.tenants_data import clone_dataset
from segments.engine.api import Engine
from segments.engine.datasets.priority import run_low
from segments.engine.datasets.residency import Budget, parse_bytes
from segments.engine.model import segment as S
from segments.engine.storage import parts
from tests import datasets as D

AS_OF = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
TAG = "tenant-mark"
ALL = S.Segment(S.All())
MARKED = S.Segment(S.Tags((TAG,)))
VIP = S.Segment(S.Tags(("VIP",)))
SPENDERS = S.Segment(S.Spend(S.Cmp(">=", 10_000)))


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A small dataset (40 customers) and the oracle's counts of it."""
    base = tmp_path_factory.mktemp("tenants")
    tables = D.random_tables(17, n=40)
    eng = Engine(base / "template", auto_compact=False)
    eng.create_dataset("t", "America/New_York")
    eng.ingest("t", D.write_folder(tables, base / "in"))
    eng.close()
    rows = tables["customers"].to_pylist()
    active = {r["customer_id"] for r in rows if r["active"] is not False}
    spend: dict = {}
    for p in tables["purchases"].to_pylist():
        spend[p["customer_id"]] = spend.get(p["customer_id"], 0) + p["amount"]
    oracle = {"all": len(active),
              "vip": sum(1 for r in rows if r["customer_id"] in active and "VIP" in (r["tags"] or ())),
              "spenders": sum(1 for c in active if spend.get(c, 0) >= 10_000)}
    return base / "template" / "t", oracle


def _clones(template, root, n: int) -> list:
    names = [f"m{i:05d}" for i in range(n)]
    for name in names:
        clone_dataset(template, root, name)
    return names


def _marks(i: int) -> list:
    """Dataset i's own customers: i % 5 new ones, tagged."""
    return [{"customer_id": 1 + i * 10 + k, "tags": [TAG], "active": True} for k in range(i % 5)]


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_thousands_of_datasets_answer_within_the_budget(template, tmp_path):
    src, want = template
    names = _clones(src, tmp_path / "data", 1000)
    fds0, parts0 = _fds(), parts.open_parts()
    eng = Engine(tmp_path / "data", auto_compact=False, budget=Budget(datasets=150, files=120))
    try:
        for i, name in enumerate(names[:300]):  # changes of their own for some (acknowledged, then closed)
            if i % 5 and i % 3 == 0:
                eng.upsert_customers(name, _marks(i))
        peak = 0
        for i, name in enumerate(names):
            extra = i % 5 if i < 300 and i % 3 == 0 else 0
            assert eng.count(name, ALL, AS_OF).count == want["all"] + extra
            if i % 25 == 0:
                assert eng.count(name, MARKED, AS_OF).count == extra
                assert eng.count(name, SPENDERS, AS_OF).count == want["spenders"]
            st = eng.open_stats()
            assert st["open_datasets"] <= 150 and st["open_files"] <= 120
            if i % 10 == 0:
                peak = max(peak, parts.open_parts() - parts0, _fds() - fds0)
        assert peak <= 121  # the budget, plus at most the one dataset a call holds
        st = eng.open_stats()
        assert st["opened"] >= 1000 and st["closed"] >= 1000 - 120
        # every dataset closed and reopened since its changes: they are all still there
        for i in range(0, 300, 3):
            assert eng.count(names[i], MARKED, AS_OF).count == i % 5
            assert eng.count(names[i], VIP, AS_OF).count == want["vip"]
    finally:
        eng.close()
    assert parts.open_parts() <= parts0   # every part this engine opened is closed again


def test_mapped_bytes_and_idle_time_close_datasets(template, tmp_path):
    src, want = template
    names = _clones(src, tmp_path / "data", 40)
    size = os.path.getsize(next((src / "parts").iterdir()) / "data.mdb")
    eng = Engine(tmp_path / "data", auto_compact=False, budget=Budget(datasets=0, files=0, mapped_bytes=5 * size))
    try:
        for name in names:
            assert eng.count(name, ALL, AS_OF).count == want["all"]
            assert eng.open_stats()["mapped_bytes"] <= 5 * size
        assert eng.open_stats()["open_datasets"] == 5
    finally:
        eng.close()
    eng = Engine(tmp_path / "data", auto_compact=False, budget=Budget(idle_seconds=0.2))
    try:
        for name in names[:10]:
            eng.count(name, ALL, AS_OF)
        assert eng.open_stats()["open_datasets"] == 10
        deadline = time.monotonic() + 10
        while eng.open_stats()["open_datasets"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert eng.open_stats()["open_datasets"] == 0
        assert eng.count(names[3], ALL, AS_OF).count == want["all"]  # reopened on demand
    finally:
        eng.close()


def test_closed_and_reopened_under_concurrent_calls_and_changes(template, tmp_path):
    """Readers and writers on 30 datasets while only 4 may stay open: every acknowledged
    batch is in every later answer, and in a new process-like engine afterwards."""
    src, want = template
    names = _clones(src, tmp_path / "data", 30)
    eng = Engine(tmp_path / "data", auto_compact=False, budget=Budget(datasets=4))
    acked = {n: 0 for n in names}
    lock = threading.Lock()
    errors = []
    stop = time.monotonic() + 3.0

    def writer(seed):
        rng = random.Random(seed)
        k = 0
        while time.monotonic() < stop:
            name = rng.choice(names)
            cid = 10**6 + seed * 10**5 + k
            k += 1
            try:
                eng.upsert_customers(name, [{"customer_id": cid, "tags": [TAG], "active": True}],
                                     batch_id=f"w{seed}-{k}")
            except Exception as e:  # noqa: BLE001
                errors.append(e)
                return
            with lock:
                acked[name] += 1

    def reader(seed):
        rng = random.Random(seed)
        while time.monotonic() < stop:
            name = rng.choice(names)
            with lock:
                floor = acked[name]
            try:
                got = eng.count(name, MARKED, AS_OF).count
                assert got >= floor, (name, got, floor)   # nothing acknowledged is ever missing
                assert eng.count(name, ALL, AS_OF).count >= want["all"] + got
            except Exception as e:  # noqa: BLE001
                errors.append(e)
                return

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(2)]
    threads += [threading.Thread(target=reader, args=(s,)) for s in range(10, 14)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors[:3]
        assert sum(acked.values()) > 20
        st = eng.open_stats()
        assert st["closed"] > 20 and st["open_datasets"] <= 4
        for name in names:
            assert eng.count(name, MARKED, AS_OF).count == acked[name]
    finally:
        eng.close()
    again = Engine(tmp_path / "data", auto_compact=False)
    try:
        for name in names:
            assert again.count(name, MARKED, AS_OF).count == acked[name]
            assert again.count(name, SPENDERS, AS_OF).count == want["spenders"]
    finally:
        again.close()


def test_a_compaction_and_a_load_on_a_closed_dataset_keep_every_change(template, tmp_path):
    src, want = template
    names = _clones(src, tmp_path / "data", 6)
    eng = Engine(tmp_path / "data", auto_compact=False, budget=Budget(datasets=1))
    try:
        for i, name in enumerate(names):
            if _marks(i + 1):
                eng.upsert_customers(name, _marks(i + 1))
        eng.compact(names[2])
        extra = D.random_tables(99, n=10)["customers"]
        extra = extra.set_column(0, "customer_id", pa.array([7 * 10**12 + k for k in range(extra.num_rows)],
                                                             pa.int64()))  # none of the template's ids
        eng.ingest(names[3], D.write_folder({"customers": extra}, tmp_path / "more"))
        for i, name in enumerate(names):
            active_more = sum(1 for r in extra.to_pylist() if r["active"] is not False) if i == 3 else 0
            assert eng.count(name, MARKED, AS_OF).count == (i + 1) % 5
            assert eng.count(name, ALL, AS_OF).count == want["all"] + (i + 1) % 5 + active_more
        assert eng.open_stats()["open_datasets"] == 1
    finally:
        eng.close()


def test_budget_settings_are_checked():
    assert parse_bytes("64G") == 64 << 30 and parse_bytes("512MiB") == 512 << 20 and parse_bytes("1000") == 1000
    with pytest.raises(ValueError, match="64Q"):
        parse_bytes("64Q")
    with pytest.raises(ValueError, match="datasets"):
        Budget(datasets=-1).resolved()
    with pytest.raises(ValueError, match="SEGMENTS_MAX_OPEN_DATASETS"):
        Budget.from_env({"SEGMENTS_MAX_OPEN_DATASETS": "many"})
    b = Budget.from_env({"SEGMENTS_MAX_OPEN_DATASETS": "7", "SEGMENTS_MAX_MAPPED_BYTES": "1G"}).resolved()
    assert (b.datasets, b.mapped_bytes) == (7, 1 << 30) and b.files > 0


def test_builds_run_below_the_readers_priority():
    me = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, me)
    seen = run_low(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), 5)
    assert seen == min(19, before + 5)
    assert os.getpriority(os.PRIO_PROCESS, me) == before   # the caller's own priority is untouched
    with pytest.raises(ZeroDivisionError):
        run_low(lambda: 1 / 0, 5)


# ---------------------------------------------------------------- the server's per-dataset limits

class _SlowEngine:
    """An engine whose counts on dataset "slow" wait for a gate (to hold its slots)."""

    def __init__(self, engine):
        self._engine = engine
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def count(self, name, *args, **kwargs):
        if name == "slow":
            self.started.release()
            self.gate.wait(30)
        return self._engine.count(name, *args, **kwargs)


def test_a_busy_dataset_is_refused_with_a_retry_hint_while_others_are_served(template, tmp_path):
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    from segments.client.client import SegmentsClient as Client
    from segments.proto import segments_pb2 as pb
    from segments.proto import segments_pb2_grpc as pbg
    from segments.server.app import build_server, stop
    from segments.server.codec import encode_segment

    src, want = template
    for name in ("slow", "other"):
        clone_dataset(src, tmp_path / "data", name)
    eng = Engine(tmp_path / "data", auto_compact=False)
    slow = _SlowEngine(eng)
    server, port = build_server(slow, 0, export_dir=tmp_path / "exports", max_workers=8,
                                tenant_concurrency=1, tenant_queue=1)
    server.start()
    pool = []
    try:
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = pbg.SegmentsServiceStub(ch)
        req = lambda ds: pb.CountRequest(dataset=ds, source=pb.SegmentSource(segment=encode_segment(ALL)))  # noqa: E731
        results = []
        for _ in range(2):   # one runs (held at the gate), one waits in the queue
            t = threading.Thread(target=lambda: results.append(stub.Count(req("slow"), timeout=30).count))
            t.start()
            pool.append(t)
        assert slow.started.acquire(timeout=10)
        time.sleep(0.2)
        with pytest.raises(grpc.RpcError) as e:
            stub.Count(req("slow"), timeout=10)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailer = dict(e.value.trailing_metadata())
        assert int(trailer["grpc-retry-pushback-ms"]) >= 20
        details = rpc_status.from_call(e.value).details
        kinds = {d.type_url.rsplit(".", 1)[-1]: d for d in details}
        info = error_details_pb2.RetryInfo()
        kinds["RetryInfo"].Unpack(info)
        assert info.retry_delay.ToMilliseconds() == int(trailer["grpc-retry-pushback-ms"])
        t0 = time.perf_counter()
        assert stub.Count(req("other"), timeout=10).count == want["all"]   # another tenant: served at once
        assert time.perf_counter() - t0 < 5
        # the Python client waits as asked and retries until the dataset has room
        with Client(f"127.0.0.1:{port}") as c:
            later = threading.Thread(target=lambda: results.append(c.count("slow", ALL).count))
            later.start()
            pool.append(later)
            time.sleep(0.3)
            slow.gate.set()
            later.join(30)
        for t in pool:
            t.join(30)
        assert results == [want["all"]] * 3
        ch.close()
    finally:
        slow.gate.set()
        stop(server, 1)
        eng.close()


def test_a_cold_count_of_profile_values_reads_no_dictionary(template, tmp_path, monkeypatch):
    """Opening a dataset parses no value dictionary (most of a small version's metadata):
    a count of profile bitmaps needs none, a tag names one and reads it, and a batch after a
    reopen codes its values after the version's (answers as before)."""
    from segments.engine.storage import snapshot as SN
    src, want = template
    names = _clones(src, tmp_path / "data", 2)
    reads = []
    real = SN.read_dicts
    monkeypatch.setattr(SN, "read_dicts", lambda folder: reads.append(folder) or real(folder))
    eng = Engine(tmp_path / "data", auto_compact=False, budget=Budget(datasets=1))
    try:
        assert eng.count(names[0], ALL, AS_OF).count == want["all"]
        assert eng.count(names[0], SPENDERS, AS_OF).count == want["spenders"]
        assert reads == []
        assert eng.count(names[0], VIP, AS_OF).count == want["vip"]
        assert len(reads) == 1
        eng.count(names[1], ALL, AS_OF)            # closes names[0] (one open at a time)
        eng.upsert_customers(names[0], _marks(4))  # reopened: the batch codes its new tag
        assert eng.count(names[0], MARKED, AS_OF).count == 4
        assert eng.count(names[0], VIP, AS_OF).count == want["vip"]
        assert eng.count(names[0], ALL, AS_OF).count == want["all"] + 4
    finally:
        eng.close()


def test_the_bench_disk_guard_deletes_its_data_when_the_disk_fills(tmp_path):
    """bench-tenants' guard: free space below what it keeps -> its processes killed and
    its data folder deleted (here: keep more than the disk holds)."""
    import shutil
    import subprocess
    import sys
    from segments.bench.tenants import DiskGuard
    data = tmp_path / "data"
    (data / "t00000").mkdir(parents=True)
    (data / "t00000" / "x").write_bytes(b"x" * 100)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    guard = DiskGuard(data, shutil.disk_usage(tmp_path).total + 1, lambda msg: None)
    guard.procs.append(proc)
    try:
        deadline = time.monotonic() + 20
        while data.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert guard.tripped and not data.exists()
        assert proc.wait(timeout=20) != 0
    finally:
        guard.stop()
        proc.kill()
    kept = tmp_path / "kept"
    kept.mkdir()
    quiet = DiskGuard(kept, 1, lambda msg: None)
    time.sleep(1.5)
    quiet.stop()
    assert kept.exists() and not quiet.tripped


def test_a_snapshot_held_across_a_compaction_still_reads_its_dictionaries(template, tmp_path):
    """Dictionaries are read on first use, and a compaction elsewhere (another process;
    here another engine) removes the old version's folder at once: a reader still holding
    the old snapshot reads the new version's (dictionaries only grow), answers as before."""
    from segments.engine.evaluation import output
    src, want = template
    names = _clones(src, tmp_path / "data", 1)
    reader = Engine(tmp_path / "data", auto_compact=False)
    writer = Engine(tmp_path / "data", auto_compact=False)
    try:
        old = reader.snapshot(names[0])
        assert old._dicts is None
        writer.upsert_customers(names[0], _marks(3))
        writer.compact(names[0])
        assert not (tmp_path / "data" / names[0] / old.path.name).exists()
        assert output.count(old, VIP, AS_OF).count == want["vip"]
        assert output.count(old, MARKED, AS_OF).count == 0  # a value newer than the snapshot
        assert reader.count(names[0], MARKED, AS_OF).count == 3
    finally:
        writer.close()
        reader.close()


def test_the_bench_generates_and_ingests_each_dataset_and_resumes(tmp_path):
    """bench-tenants' build: each dataset generated with its own seed and size and
    ingested by a worker process (lean), answering with the generated customers (counted
    from the input files by pyarrow); a second build over the same folder keeps them; a
    disk that cannot keep what is asked free builds none."""
    import pyarrow.parquet as pq
    from segments.bench import tenants as T
    from segments.bench.generate import generate
    built = T.build(tmp_path, 3, 20, 7, lambda msg: None, workers=2)
    assert built["names"] == ["t00000", "t00001", "t00002"] and built["resumed"] == 0
    assert 2000 in built["customers"] and len(set(built["customers"])) > 1   # one forced to 100x the median
    eng = Engine(tmp_path / "data", auto_compact=False)
    try:
        for i, (name, n) in enumerate(zip(built["names"], built["customers"])):
            snap = eng.snapshot(name)
            assert all(r.agg_cutoff_day is None and not r.pairs for sh in snap.manifest.shards
                       for r in sh.table_runs("p")), f"{name} is not lean"
            ref = tmp_path / "ref" / name   # the same seed again: the same customers
            generate(ref, customers=n, seed=7 * 1_000_003 + i, workers=1)
            want = {t: pq.read_metadata(ref / f"{t}.parquet").num_rows for t in ("customers", "purchases", "visits")}
            assert want["customers"] == n and eng.info(name)["rows"] == {**eng.info(name)["rows"], **want}, name
            ids = set(pq.read_table(ref / "customers.parquet", columns=["customer_id"]).column(0).to_pylist())
            got = [int(x) for x in eng.materialize(name, ALL, as_of=AS_OF).customer_ids]
            assert 0.9 * n <= len(got) and set(got) <= ids, name   # All: the active ones
    finally:
        eng.close()
    assert not any((tmp_path / "inputs").iterdir())   # input files deleted once ingested
    again = T.build(tmp_path, 3, 20, 7, lambda msg: None, workers=1)
    assert again["resumed"] == 3 and again["names"] == built["names"]
    import shutil
    full = T.build(tmp_path / "full", 2, 20, 7, lambda msg: None, shutil.disk_usage(tmp_path).total, workers=1)
    assert full["names"] == [] and full["customers"] == []

