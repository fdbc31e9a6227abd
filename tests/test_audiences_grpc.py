"""AudiencesService over gRPC: Watch (a killed watcher reconnects and loses nothing, sees
nothing twice), Diff, auth, deadlines and shutdown, and the `segments watch` command.

Oracle: the engine's full evaluation (materialize) of the saved segment after the batches:
what a watcher rebuilds from the entered / exited ids of the snapshots it received must equal it.
"""
from __future__ import annotations

import datetime as dt
import threading
import time

import grpc
import numpy as np
import pytest

from segments.engine.model import segment as S

POINTS = S.Segment(S.LoyaltyPoints(S.Cmp(">=", 800)))
TOKENS = {"reader-token-1": {"datasets": ["shop"], "roles": ["read"]},
          "writer-token-1": {"datasets": ["shop"], "roles": ["write"]},
          "other-token-1": {"datasets": ["other"], "roles": ["read", "write"]}}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from segments.bench.generate import generate
    from segments.engine.api import Engine
    from segments.engine.catalog.catalog import Catalog
    from segments.server.app import build_server, stop
    from segments.server.auth import Tokens
    base = tmp_path_factory.mktemp("aud_grpc")
    generate(base / "in", customers=1200, seed=5)
    eng = Engine(base / "data")
    eng.create_dataset("shop", "America/New_York")
    eng.ingest("shop", base / "in")
    cat = Catalog(eng)
    cat.create_segment("shop", "points", POINTS)
    server, port = build_server(eng, 0, catalog=cat)
    auth, auth_port = build_server(eng, 0, catalog=cat, tokens=Tokens(TOKENS), host="127.0.0.1")
    server.start()
    auth.start()
    yield {"engine": eng, "catalog": cat, "port": port, "auth_port": auth_port, "root": base / "data"}
    stop(server, 0)
    stop(auth, 0)
    eng.close()


def _client(env, token=None, auth=False):
    from segments.client.client import SegmentsClient
    return SegmentsClient(f"127.0.0.1:{env['auth_port'] if auth else env['port']}", token=token)


def _flip(c, ids, high: bool):
    c.upsert_customers("shop", [{"customer_id": int(i), "loyalty_points": 900 if high else 5} for i in ids])


def _full(env) -> set:
    return set(env["engine"].materialize("shop", POINTS).customer_ids.tolist())


def _collect(c, after, out: list, stop_after=None, timeout=60.0):
    for m in c.watch("shop", "points", after=after, timeout=timeout):
        out.append(m)
        if stop_after is not None and stop_after(out):
            return


def test_watch_reconnect_misses_nothing_and_repeats_nothing(env):
    eng = env["engine"]
    everyone = eng.materialize("shop", S.Segment(S.All())).customer_ids
    rng = np.random.default_rng(3)
    with _client(env) as c:
        c.track_segment("shop", "points", keep=500)
        got: list = []
        first = threading.Thread(target=_collect, args=(c, 0, got, lambda o: len(o) >= 4))
        first.start()
        deadline = time.monotonic() + 30
        while not got:
            assert time.monotonic() < deadline, "no first snapshot"
            time.sleep(0.02)
        for i in range(6):   # each batch moves customers in and out of the segment
            _flip(c, rng.choice(everyone, 15, replace=False), high=bool(i % 2 == 0))
            time.sleep(0.05)
        first.join(30)
        assert not first.is_alive() and len(got) >= 4
        # the watcher is gone (it stopped iterating: its stream was cancelled); more batches meanwhile
        for i in range(5):
            _flip(c, rng.choice(everyone, 15, replace=False), high=bool(i % 2))
        eng_final = None
        deadline = time.monotonic() + 30
        while True:  # wait until maintenance caught up with every batch
            newest = c.snapshots("shop", "points")["snapshots"][-1]
            if newest["sequence"] == eng.info("shop")["live"]["sequence"]:
                eng_final = newest["number"]
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        rest: list = []
        _collect(c, got[-1]["snapshot"], rest, lambda o: o[-1]["snapshot"] >= eng_final)
    numbers = [m["snapshot"] for m in got + rest]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers   # no gap, no repeat
    assert got[0]["previous_snapshot"] == 0
    assert all(m["previous_snapshot"] == m["snapshot"] - 1 for m in got[1:] + rest)
    members: set = set()
    for m in got + rest:
        assert not (set(m["entered"].tolist()) & members), "entered twice"
        assert set(m["exited"].tolist()) <= members, "exited without having entered"
        members |= set(m["entered"].tolist())
        members -= set(m["exited"].tolist())
        assert len(members) == m["count"]
    assert members == _full(env)


def test_diff_auth_and_errors(env):
    from segments.client.errors import ServerError
    with _client(env) as c:
        c.track_segment("shop", "points", keep=500)
        snaps = c.snapshots("shop", "points")["snapshots"]
        d = c.diff("shop", "points", snaps[0]["number"], fields=("email",))
        full = _full(env)
        old = set(env["catalog"].audiences.members("shop", "points", snaps[0]["number"]))
        assert set(d["entered_ids"].tolist()) == full - old and set(d["exited_ids"].tolist()) == old - full
        assert d["entered"].column_names == ["customer_id", "email"]
        with pytest.raises(ServerError) as e:
            list(c.watch("shop", "points", after=10**9, timeout=5))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(ServerError) as e:
            list(c.watch("shop", "nope", timeout=5))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        c.create_saved_segment("shop", "plain", {"include": {"all": {}}})
        with pytest.raises(ServerError) as e:
            list(c.watch("shop", "plain", timeout=5))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with _client(env, "reader-token-1", auth=True) as r:
        first = next(iter(r.watch("shop", "points", timeout=10)))
        assert first["previous_snapshot"] == 0 and first["count"] == len(first["entered"])
        with pytest.raises(ServerError) as e:
            r.diff("shop", "points", 1, fields=("email",))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(ServerError) as e:
            r.track_segment("shop", "points")
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with _client(env, "writer-token-1", auth=True) as w:
        with pytest.raises(ServerError) as e:
            list(w.watch("shop", "points", timeout=5))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with _client(env, "other-token-1", auth=True) as o:
        with pytest.raises(ServerError) as e:
            list(o.watch("shop", "points", timeout=5))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_watch_deadline_and_shutdown(env):
    """A deadline ends the stream (the client's watch returns); a server beginning to stop
    ends every Watch at once with UNAVAILABLE naming after_snapshot, and drains quickly."""
    from segments.proto import segments_pb2 as pb
    from segments.proto import segments_pb2_grpc as pbg
    from segments.server.app import begin_stop, build_server
    with _client(env) as c:
        c.track_segment("shop", "points", keep=500)
        t0 = time.monotonic()
        seen = list(c.watch("shop", "points", timeout=1.5))
        assert 1.0 < time.monotonic() - t0 < 10 and len(seen) == 1
    server, port = build_server(env["engine"], 0, catalog=env["catalog"])
    server.start()
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    stream = pbg.AudiencesServiceStub(ch).Watch(pb.WatchRequest(dataset="shop", name="points"), timeout=60)
    first = next(stream)
    t0 = time.monotonic()
    stopped = begin_stop(server, 30)
    with pytest.raises(grpc.RpcError) as e:
        next(stream)
    assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    if e.value.code() == grpc.StatusCode.UNAVAILABLE:
        assert f"after_snapshot={first.snapshot}" in e.value.details()
    assert stopped.wait(10) and time.monotonic() - t0 < 10
    ch.close()
    # the shared catalog's maintenance still runs for the other servers
    with _client(env) as c:
        n = c.snapshots("shop", "points")["snapshots"][-1]["number"]
        ids = env["engine"].materialize("shop", S.Segment(S.Not(POINTS.include))).customer_ids[:3]
        _flip(c, ids, True)
        deadline = time.monotonic() + 20
        while c.snapshots("shop", "points")["snapshots"][-1]["number"] == n:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_watch_command_prints_one_json_line_per_snapshot(env):
    import json
    import subprocess
    import sys
    with _client(env) as c:
        c.track_segment("shop", "points", keep=500)
        newest = c.snapshots("shop", "points")["snapshots"][-1]["number"]
        after = max(newest - 2, 1)
    r = subprocess.run([sys.executable, "-m", "segments.cli.main", "watch", "shop", "points",
                        "--server", f"127.0.0.1:{env['port']}", "--after", str(after), "--timeout", "3"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["snapshot"] for x in lines] == list(range(after + 1, newest + 1))
    assert all(isinstance(i, int) for x in lines for i in x["entered"] + x["exited"])


def test_daily_tasks_over_grpc(env):
    from segments.client.errors import ServerError
    with _client(env) as c:
        t = c.set_daily_task("shop", "points", "07:00", "csv", ("email",), "mornings")
        assert t["at"] == "07:00" and t["format"] == "csv" and t["folder"] == "mornings" and t["last_run_day"] is None
        assert t["next_run"] > dt.datetime.now(dt.timezone.utc)
        assert [x["name"] for x in c.list_daily_tasks("shop")] == ["points"]
        assert c.run_daily_tasks("shop") == []   # set now: its first day has not come
        with pytest.raises(ServerError) as e:
            c.set_daily_task("shop", "points", "07:00", folder="../../etc")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(ServerError) as e:
            c.set_daily_task("shop", "nope", "07:00")
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        c.delete_daily_task("shop", "points")
        assert c.list_daily_tasks("shop") == []
    with _client(env, "reader-token-1", auth=True) as r:
        with pytest.raises(ServerError) as e:
            r.run_daily_tasks("shop")
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_sigterm_ends_watch_streams_and_drains(tmp_path):
    """`segments serve` on SIGTERM: a Watch in progress ends with UNAVAILABLE naming the
    snapshot to reconnect after, and the server exits 0 well inside its grace period."""
    import signal
    from segments.client.client import SegmentsClient
    from segments.client.errors import ServerError
    from segments.engine.api import Engine
    from segments.engine.catalog.catalog import Catalog
    from tests import datasets as D
    from tests.grpc_support import start_server
    D.write_folder(D.random_tables(4, 300), tmp_path / "in")
    eng = Engine(tmp_path / "data")
    eng.create_dataset("shop", D.NY)
    eng.ingest("shop", tmp_path / "in")
    cat = Catalog(eng)
    cat.create_segment("shop", "points", POINTS)
    cat.audiences.track("shop", "points")
    eng.close()
    proc, port, out = start_server(tmp_path / "data", "--grace", "30")
    try:
        errors, got = [], []
        with SegmentsClient(f"127.0.0.1:{port}") as c:
            def watch():
                try:
                    for m in c.watch("shop", "points", reconnect=False):
                        got.append(m)
                except ServerError as e:
                    errors.append(e)
            th = threading.Thread(target=watch)
            th.start()
            deadline = time.monotonic() + 60
            while not got:
                assert time.monotonic() < deadline, out.text
                time.sleep(0.05)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, out.text
            assert time.monotonic() - t0 < 15
            th.join(10)
        assert errors and errors[0].code() == grpc.StatusCode.UNAVAILABLE, (errors, out.text)
        assert f"after_snapshot={got[-1]['snapshot']}" in errors[0].details()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_watches_take_at_most_half_the_threads(env):
    """A server with 2 threads streams one Watch; a second is RESOURCE_EXHAUSTED, and
    other calls are still answered meanwhile."""
    from segments.proto import segments_pb2 as pb
    from segments.proto import segments_pb2_grpc as pbg
    from segments.server.app import build_server, stop
    with _client(env) as c:
        c.track_segment("shop", "points", keep=500)
    server, port = build_server(env["engine"], 0, catalog=env["catalog"], max_workers=2)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pbg.AudiencesServiceStub(ch)
            first = stub.Watch(pb.WatchRequest(dataset="shop", name="points"), timeout=30)
            assert next(first).snapshot >= 1
            with pytest.raises(grpc.RpcError) as e:
                next(stub.Watch(pb.WatchRequest(dataset="shop", name="points"), timeout=30))
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert stub.ListSnapshots(pb.ListSnapshotsRequest(dataset="shop", name="points"), timeout=30).snapshots
            first.cancel()
    finally:
        stop(server, 0)
