"""The contract from another language: clients/node/contract.js, a Node.js client built from
proto/ alone, against a live server (Count, Preview pages, Materialize, StreamExport, an
invalid segment, reflection v1) with customer ids above 2^53."""
from __future__ import annotations

import json
import subprocess

from tests.grpc_support import grpc_env  # noqa: F401  (fixture)
from tests.node_support import node_packages

BIG_IDS = [2**60 + 1, 2**53 + 1, 2**63 - 1, 9_007_199_254_740_993 + 2, 7]


def test_node_client_from_the_proto_alone(grpc_env):
    folder = node_packages()
    eng = grpc_env.engine
    eng.create_dataset("node_ids", "UTC")
    eng.upsert_customers("node_ids", [{"customer_id": i, "email": f"c{i}@example.com"} for i in BIG_IDS])
    cfg = {"target": f"127.0.0.1:{grpc_env.port}", "dataset": "node_ids", "ids": [str(i) for i in BIG_IDS]}
    r = subprocess.run(["node", "contract.js", json.dumps(cfg)], cwd=folder, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["count"] == str(len(BIG_IDS)) and report["materialized"] == len(BIG_IDS)
    assert report["preview_pages"] == 3 and report["invalid"] == "INVALID_ARGUMENT"
