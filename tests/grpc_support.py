"""Shared pieces of the gRPC tests: a data directory with three datasets, servers on port 0.

Datasets (built once per test module that imports the fixture, so modules stay independent):
"shop" (engine.generate, 2000 customers, New York), "other" (random tables, 300 customers,
Auckland) and "big" (300,000 customers with only an id, an email and points).
"""
from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests import datasets as D

ANCHOR = dt.datetime(2026, 11, 20, 17, 0, tzinfo=dt.timezone.utc)
BIG_N = 300_000
TOKENS = {
    "reader-token-A": {"datasets": ["shop"], "roles": ["read"]},
    "export-token-A": {"datasets": ["shop"], "roles": ["export"]},
    "writer-token-A": {"datasets": ["shop"], "roles": ["write"]},
    "admin-token-A": {"datasets": ["shop"], "roles": ["admin"]},
    "all-token-B": {"datasets": ["other"], "roles": ["read", "export", "write", "admin"]},
    "root-token": {"datasets": ["*"], "roles": ["read", "export", "write", "admin"]},
}


REPO = Path(__file__).resolve().parents[1]


class Output:
    """A subprocess's merged stdout/stderr, read by a daemon thread so that waiting for a
    line has a deadline (a bare readline() blocks for as long as the process lives)."""

    def __init__(self, proc: subprocess.Popen):
        self.text = ""
        self._cond = threading.Condition()
        self._eof = False
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        for chunk in iter(stream.readline, ""):
            with self._cond:
                self.text += chunk
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 60.0) -> list:
        """The matches of `pattern` anywhere in the output once there are `count` of them;
        AssertionError with the output so far at the deadline or when the output ends."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = re.findall(pattern, self.text)
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise AssertionError(f"{count} x {pattern!r} not seen in the output:\n{self.text}")
                self._cond.wait(left)

    def rest(self, timeout: float = 60.0) -> str:
        """All output once the stream ends (the process and its children exited)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("output did not end:\n" + self.text)
                self._cond.wait(left)
            return self.text


def spawn_server(data: Path, *args) -> tuple:
    """`segments --data DATA serve ARGS` in a subprocess: (process, Output), at once.
    Without a --warm flag it does not warm up (SEGMENTS_WARM=none): tests/test_warm.py
    covers the warm-up, the others want a server quickly."""
    proc = subprocess.Popen([sys.executable, "-m", "segments.cli.main", "--data", str(data), "serve", *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "SEGMENTS_WARM": "none", "PYTHONUNBUFFERED": "1"})
    return proc, Output(proc)


def start_server(data: Path, *extra) -> tuple:
    """`segments --data DATA serve --port 0 ...` in a subprocess: (process, port, Output)
    once it says where it serves (AssertionError after 60 s)."""
    proc, out = spawn_server(data, "--port", "0", *extra)
    try:
        port = int(out.wait_for(r"serving .* on \S+:(\d+)")[0])
    except AssertionError:
        proc.kill()
        proc.wait()
        raise
    return proc, port, out


class Clock:
    """A settable clock for group expiry."""

    def __init__(self):
        self.shift = dt.timedelta(0)

    def __call__(self):
        return dt.datetime.now(dt.timezone.utc) + self.shift


@dataclass
class Env:
    engine: object
    root: Path
    folders: dict
    clock: Clock
    port: int
    auth_port: int
    export_dir: Path
    ingest_root: Path

    def client(self, token=None, auth=False, **kw):
        from segments.client.client import SegmentsClient
        return SegmentsClient(f"127.0.0.1:{self.auth_port if auth else self.port}", token=token, **kw)


def _big_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    ids = np.sort(rng.choice(10**12, BIG_N, replace=False)).astype(np.int64)
    rng.shuffle(ids)
    pq.write_table(pa.table({"customer_id": ids,
                             "email": pa.array([f"c{i}@example.com" for i in range(BIG_N)]),
                             "email_opt_in": pa.array(np.arange(BIG_N) % 3 == 0),
                             "loyalty_points": pa.array(np.arange(BIG_N, dtype=np.int64) % 997)}),
                   folder / "customers.parquet")
    return folder


@pytest.fixture(scope="session")
def grpc_env(tmp_path_factory):
    """An Engine with the three datasets, served twice in-process: open, and with tokens."""
    from segments.engine.api import Engine
    from segments.engine.catalog.catalog import Catalog
    from segments.bench.generate import generate
    from segments.server.app import build_server, stop
    from segments.server.auth import Tokens

    base = tmp_path_factory.mktemp("grpc")
    folders = {"shop": base / "in-shop", "other": base / "in-other", "big": base / "in-big"}
    generate(folders["shop"], customers=2000, seed=1)
    D.write_folder(D.random_tables(3, 300), folders["other"])
    _big_folder(folders["big"])
    engine = Engine(base / "data")
    for name, tz in (("shop", D.NY), ("other", D.AKL), ("big", "UTC")):
        engine.create_dataset(name, tz)
        engine.ingest(name, folders[name])
    clock = Clock()
    catalog = Catalog(engine, clock=clock)
    export_dir = base / "exports"
    uploads = base / "uploads"   # Ingest reads <uploads>/<dataset>/... only
    uploads.mkdir()
    open_server, port = build_server(engine, 0, catalog=catalog, export_dir=export_dir, ingest_root=uploads)
    auth_server, auth_port = build_server(engine, 0, tokens=Tokens(TOKENS), host="127.0.0.1",
                                          catalog=catalog, export_dir=export_dir, ingest_root=uploads)
    open_server.start()
    auth_server.start()
    yield Env(engine, base / "data", folders, clock, port, auth_port, export_dir, uploads)
    stop(open_server, 0)
    stop(auth_server, 0)
    engine.close()


@pytest.fixture(scope="session")
def client(grpc_env):
    with grpc_env.client() as c:
        yield c
