"""The segments-client distribution (clients/python): built from this repository, installed
into a fresh virtualenv without the engine's dependencies, and used against a server."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.grpc_support import REPO, grpc_env  # noqa: F401  (fixture)

ENGINE_ONLY = ("numba", "llvmlite", "lmdb", "pyroaring")
OFFLINE = ("No matching distribution", "Could not find a version", "Failed to establish a new connection",
           "Temporary failure in name resolution", "Network is unreachable", "ProxyError", "Max retries exceeded")

USE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from segments.client.client import SegmentsClient
    out = {}
    with SegmentsClient(sys.argv[1]) as c:
        out["count"] = c.count("shop", {"include": {"loyalty_member": {}}}, "2026-11-20T17:00:00Z").count
        p = c.preview("shop", {"include": {"all": {}}}, 3, ["email", "birth_date"])
        out["preview"] = [r["customer_id"] for r in p.rows]
        m = c.materialize("shop", {"include": {"all": {}}}, ["email"])
        out["materialized"] = int(m.customer_ids.size)
        c.create_dataset("client_dist", "UTC")
        c.upsert_customers("client_dist", [{"customer_id": 2**60 + 1, "email": "a@example.com"}])
        out["live"] = c.materialize("client_dist", {"include": {"customers": [str(2**60 + 1)]}}).customer_ids.tolist()
        c.delete_dataset("client_dist")
    import importlib.util
    out["engine_modules"] = [m for m in %r if importlib.util.find_spec(m)]
    print(json.dumps(out))
""" % (ENGINE_ONLY,))


def test_the_client_installs_alone_and_talks_to_a_server(grpc_env, tmp_path):
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                        str(REPO / "clients" / "python")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    wheel = next(wheels.glob("segments_client-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-compile",
                        "--disable-pip-version-check", str(wheel)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 and any(s in r.stdout + r.stderr for s in OFFLINE):
        pytest.skip(f"pip cannot reach a package index here: {(r.stdout + r.stderr).strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([str(py), "-c", USE, f"127.0.0.1:{grpc_env.port}"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)   # not the repository: nothing of it on sys.path
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["engine_modules"] == [], f"the client installed engine dependencies: {got['engine_modules']}"
    eng = grpc_env.engine
    from segments.engine.model import segment as S
    assert got["count"] == eng.count("shop", S.Segment(S.LoyaltyMember()), "2026-11-20T17:00:00Z").count
    assert got["materialized"] == eng.count("shop", S.Segment(S.All())).count
    assert len(got["preview"]) == 3 and got["live"] == [2**60 + 1]
    r = subprocess.run([str(py), "-c", "import segments.engine.api"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0   # the engine is not part of the client
