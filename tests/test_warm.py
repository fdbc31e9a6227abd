"""Warm and ready: after Engine.warm no call path compiles, and `serve` reports NOT_SERVING
per service until it has warmed up."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from segments.server.app import SERVICE_NAMES
from tests.grpc_support import REPO, grpc_env, spawn_server  # noqa: F401  (fixture)

# Run in a fresh interpreter: this test process has compiled everything long ago.
# Every numba compilation (kernels loaded from the cache, typed-List methods) fires a
# "numba:compile" event; after warm() the bench suite's segments through every output,
# and a live change batch, must fire none.
NO_COMPILE_SCRIPT = r"""
import json, sys, time
import numba.core.event as ev
from segments.engine.api import Engine
from segments.bench import suite

root, name = sys.argv[1], sys.argv[2]
engine = Engine(root)
t0 = time.perf_counter()
engine.warm([name])
warm_s = time.perf_counter() - t0
compiled = []

class Spy(ev.Listener):
    def on_start(self, event):
        compiled.append(str(event.data.get("dispatcher", "?")) if isinstance(event.data, dict) else "?")
    def on_end(self, event):
        pass

ev.register("numba:compile", Spy())
from segments.engine.model import segment as S
ids = engine.materialize(name, S.Segment(S.All())).customer_ids[:50]
worst = 0.0
for s in suite.segments(ids.tolist()):
    for call in (lambda: engine.count(name, s.segment, suite.AS_OF),
                 lambda: engine.preview(name, s.segment, 10, ("email", "tags", "birth_date"), suite.AS_OF),
                 lambda: engine.materialize(name, s.segment, ("email",), suite.AS_OF)):
        t = time.perf_counter(); call(); worst = max(worst, time.perf_counter() - t)
print(json.dumps({"compiled": compiled, "warm_s": warm_s, "worst_ms": worst * 1000}))
"""


def test_after_warm_no_evaluation_compiles_anything(grpc_env):
    out = subprocess.run([sys.executable, "-c", NO_COMPILE_SCRIPT, str(grpc_env.root), "shop"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["compiled"] == [], f"compiled at request time after warm-up: {r['compiled']}"
    print(f"\nwarm-up {r['warm_s']:.1f} s; slowest first call afterwards {r['worst_ms']:.1f} ms")


def test_warm_runs_on_an_empty_and_on_a_loaded_dataset(grpc_env, tmp_path):
    from segments.engine.api import Engine

    eng = Engine(tmp_path)
    eng.create_dataset("empty", "UTC")
    timings = eng.warm(synthetic=False)
    assert set(timings) == {"empty"}
    timings = grpc_env.engine.warm(["shop"], synthetic=False)
    assert set(timings) == {"shop"} and timings["shop"] > 0


def _health(port: int) -> dict:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        return {name: stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
                for name in ("",) + SERVICE_NAMES}


def test_serve_is_not_serving_until_warm_then_serving_for_every_service(grpc_env):
    proc, out = spawn_server(grpc_env.root, "--port", "0", "--warm", "all")
    try:
        port = int(out.wait_for(r"listening on \S+:(\d+)")[0])
        early = _health(port)
        ready_line = out.wait_for(r"serving .* on \S+:(\d+) .*ready after ([0-9.]+) s warm-up")
        late = _health(port)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    if "serving " in out.text.split("listening on")[0]:
        pytest.fail("SERVING reported before the warm-up started")
    assert set(early.values()) == {health_pb2.HealthCheckResponse.NOT_SERVING}, early
    assert set(late.values()) == {health_pb2.HealthCheckResponse.SERVING}, late
    assert float(ready_line[0][1]) > 0


def test_warm_none_serves_at_once(grpc_env):
    proc, out = spawn_server(grpc_env.root, "--port", "0", "--warm", "none")
    try:
        t0 = time.monotonic()
        port = int(out.wait_for(r"serving .* on \S+:(\d+)")[0])
        assert time.monotonic() - t0 < 30
        assert set(_health(port).values()) == {health_pb2.HealthCheckResponse.SERVING}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_settle_heap_takes_what_the_warm_up_left_out_of_full_collections():
    """serve freezes the heap once warm: a full collection then scans only what calls made."""
    import gc
    from segments.cli.serve import settle_heap
    before = len(gc.get_objects())
    try:
        frozen = settle_heap()
        # frozen objects still die by reference count (another thread may drop some meanwhile)
        assert frozen >= before // 2 and before // 2 <= gc.get_freeze_count() <= frozen
        assert len(gc.get_objects()) < before // 2
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
