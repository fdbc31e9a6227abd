"""The gRPC side of the bench: a server in a child process, and a load test against it.

The server runs in its own process (`python -m segments.bench.loadtest --serve DATA`: server.app's
build_server on port 0, localhost, no tokens) so its threads never share a GIL with the
clients. The load test runs N client threads, each with its own channel (SegmentsClient),
taking calls from a shared bounded budget (every segment of the suite in turn) until it is
spent or --max-seconds pass; it reports throughput and latency percentiles.

    python -m segments.bench.loadtest --scale S --clients 8 --calls 400 [--call count|preview]
"""
from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
UNAVAILABLE = "gRPC layer not available"


def grpc_layer() -> Optional[str]:
    """None when server.app.build_server and client.client.SegmentsClient import, else why not."""
    import importlib

    try:
        for module, name in (("segments.server.app", "build_server"), ("segments.client.client", "SegmentsClient")):
            getattr(importlib.import_module(module), name)
    except Exception as e:  # noqa: BLE001 - any failure means: skip, and say why
        return f"{UNAVAILABLE} ({type(e).__name__}: {e})"
    return None


class ServerProcess:
    """A segments gRPC server over a data directory, in a child process; a context manager."""

    def __init__(self, data_dir: str, workers: Optional[int] = None, start_timeout: float = 120.0):
        cmd = [sys.executable, "-m", "segments.bench.loadtest", "--serve", str(data_dir)]
        if workers:
            cmd += ["--workers", str(workers)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.monotonic() + start_timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("PORT "):
                self.port = int(line.split()[1])
                break
        if self.port is None:
            self.close()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"the bench gRPC server did not start: {line.strip()} {err.strip()}")
        self.target = f"127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop the child (closing its stdin asks it to stop; SIGTERM, then kill, if it lingers)."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, OSError):
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _serve(data_dir: str, workers: Optional[int]) -> None:
    """Child process body: serve until stdin closes or SIGTERM."""
    from segments.engine.api import Engine
    from segments.server.app import build_server, stop

    engine = Engine(data_dir)
    server, port = build_server(engine, 0, max_workers=workers)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    server.start()
    print(f"PORT {port}", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    stop(server, 2)
    engine.close()


def percentiles(ms: Sequence[float]) -> dict:
    """p50 / p95 / p99 / max / mean of latencies in ms."""
    if not len(ms):
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    a = np.asarray(ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3),
            "max_ms": round(float(a.max()), 3), "mean_ms": round(float(a.mean()), 3)}


def run_load(target: str, dataset: str, segments: Sequence, as_of, clients: int = 8, calls: int = 400,
             call: str = "count", max_seconds: float = 120.0, warm_up: bool = True) -> dict:
    """`calls` calls over `clients` concurrent clients (one channel each), segments in turn.

    segments: engine Segment objects. With warm_up, each segment is asked once first,
    untimed (the server's JIT compile and lazy loading). Returns throughput, percentiles,
    errors and what ran."""
    from segments.client.client import SegmentsClient

    if warm_up:
        with SegmentsClient(target, timeout=max(60.0, max_seconds)) as c:
            for seg in segments:
                c.count(dataset, seg, as_of) if call == "count" else c.preview(dataset, seg, 20, (), as_of)

    budget = itertools.count()
    lock = threading.Lock()
    latencies: list = []
    errors: list = []
    stop_at = time.monotonic() + max_seconds
    start = threading.Barrier(clients + 1)

    def worker():
        with SegmentsClient(target, timeout=max(60.0, max_seconds)) as c:
            c.count(dataset, segments[0], as_of)         # connect before the clock starts
            start.wait()
            mine, errs = [], []
            while True:
                with lock:
                    k = next(budget)
                if k >= calls or time.monotonic() > stop_at:
                    break
                seg = segments[k % len(segments)]
                t0 = time.perf_counter()
                try:
                    if call == "count":
                        c.count(dataset, seg, as_of)
                    else:
                        c.preview(dataset, seg, 20, (), as_of)
                    mine.append((time.perf_counter() - t0) * 1000)
                except Exception as e:  # noqa: BLE001 - counted and reported
                    errs.append(f"{type(e).__name__}: {e}")
            with lock:
                latencies.extend(mine)
                errors.extend(errs)

    threads = [threading.Thread(target=worker, name=f"load-{i}") for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    out = {"clients": clients, "calls_planned": calls, "calls_done": len(latencies), "errors": len(errors),
           "first_errors": errors[:3], "call": call, "segments": len(segments), "wall_s": round(wall, 3),
           "throughput_per_s": round(len(latencies) / wall, 2) if wall > 0 else None,
           "stopped_early": len(latencies) + len(errors) < calls}
    out.update(percentiles(latencies))
    return out


def main(argv=None) -> None:
    """Load-test a bench server over a cached dataset, or (--serve) be that server."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # as bench.run: see there
    p = argparse.ArgumentParser(prog="python -m segments.bench.loadtest", description=main.__doc__)
    p.add_argument("--serve", metavar="DATA", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, help="server thread pool size (default: build_server's)")
    p.add_argument("--scale", default="S", choices=("S", "M", "L"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--calls", type=int, default=400)
    p.add_argument("--call", default="count", choices=("count", "preview"))
    p.add_argument("--max-seconds", type=float, default=120.0)
    p.add_argument("--segments", help="comma-separated suite names (default: all)")
    a = p.parse_args(argv)
    if a.serve:
        return _serve(a.serve, a.workers)
    why = grpc_layer()
    if why:
        print(f"load test skipped: {why}")
        return
    from . import cache, suite

    c = cache.ensure(a.scale, a.seed)
    segs = [s.segment for s in suite.select(suite.segments(cache.sample_ids(c)), a.segments)]
    with ServerProcess(c.data_dir, a.workers) as srv:
        r = run_load(srv.target, c.dataset, segs, suite.AS_OF, a.clients, a.calls, a.call, a.max_seconds)
    print(f"{r['calls_done']} {a.call} calls by {r['clients']} clients in {r['wall_s']:.1f} s: "
          f"{r['throughput_per_s']:.1f}/s, p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, "
          f"p99 {r['p99_ms']:.1f} ms, {r['errors']} errors")


if __name__ == "__main__":
    main()
