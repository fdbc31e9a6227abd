"""`segments serve` in a subprocess: SIGTERM with a call in flight drains it, then exits 0."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np

from tests.grpc_support import BIG_N, grpc_env, start_server  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]


def test_sigterm_drains_the_call_in_flight_then_exits(grpc_env):
    from client.client import SegmentsClient

    proc, port, lines = start_server(grpc_env.root, "--chunk-ids", "2000", "--grace", "20")
    try:
        assert any("localhost only" in x for x in lines)
        with SegmentsClient(f"127.0.0.1:{port}", timeout=30) as c:
            want = grpc_env.engine.materialize("big", _all()).customer_ids
            stream = c.iter_materialize("big", _all(), ["email"])
            got = [np.frombuffer(next(stream).customer_ids, "<i8")]   # the call is now in flight
            proc.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert proc.poll() is None, "the server quit with a call in flight"
            with SegmentsClient(f"127.0.0.1:{port}", timeout=2, retries=0) as late:
                try:
                    late.count("big", _all())
                    raise AssertionError("a new call was accepted while draining")
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.UNAVAILABLE
            got += [np.frombuffer(ch.customer_ids, "<i8") for ch in stream]
        assert np.array_equal(np.concatenate(got), want) and len(want) == BIG_N
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _all():
    from engine import segment as S
    return S.Segment(S.All())


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_processes_share_one_port_and_all_drain_on_sigterm(grpc_env):
    from client.client import SegmentsClient

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "--data", str(grpc_env.root), "serve",
                             "--port", str(port), "--processes", "2"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        served = 0
        deadline = time.monotonic() + 60
        while served < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            served += bool(re.search(r"serving .* on \S+:%d" % port, line))
        assert served == 2, "two server processes did not both start"
        want = grpc_env.engine.count("big", _all()).count
        for _ in range(4):  # new channels: the kernel may route each to either process
            with SegmentsClient(f"127.0.0.1:{port}", timeout=30) as c:
                assert c.count("big", _all()).count == want
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.count("stopped") == 2, out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_processes_need_a_fixed_port(grpc_env):
    r = subprocess.run([sys.executable, "-m", "cli.main", "--data", str(grpc_env.root), "serve",
                        "--port", "0", "--processes", "2"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "fixed --port" in r.stderr
