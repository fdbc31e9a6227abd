"""kill -9 of a serving process during a stream of change batches: after a restart every
acknowledged batch is there, whole, and the dataset opens and takes writes without repair."""
from __future__ import annotations

import json
import signal
import threading
import time

import numpy as np
import pytest

from tests.grpc_support import start_server

LINES = 40            # purchase lines per batch, all for the batch's new customer
FIRST_ID = 7_000_000_000


def _batch(k: int):
    cid = FIRST_ID + k
    ts = [f"2026-11-20T{10 + i % 8:02d}:{i % 60:02d}:00Z" for i in range(LINES)]
    return ([{"customer_id": cid, "first_name": f"K{k}", "tags": ["durable"]}],
            [{"customer_id": cid, "purchased_at": t, "amount": k + 1, "brand": "Durable"} for t in ts])


@pytest.fixture()
def data_dir(tmp_path):
    from segments.engine.api import Engine
    from segments.bench.generate import generate
    generate(tmp_path / "in", customers=400, seed=5, fmt="parquet")
    eng = Engine(tmp_path / "data")
    eng.create_dataset("d", "America/New_York", shard_bits=10)
    eng.ingest("d", tmp_path / "in")
    eng.close()
    return tmp_path / "data"


def test_kill_9_keeps_every_acknowledged_batch(data_dir):
    from segments.client.client import SegmentsClient
    from segments.engine.api import Engine
    from segments.engine.model.segment_json import loads

    proc, port, _ = start_server(data_dir)
    acked, stop = [], threading.Event()

    def writer():
        with SegmentsClient(f"127.0.0.1:{port}", timeout=10, retries=0) as c:
            k = 0
            while not stop.is_set():
                cust, lines = _batch(k)
                try:
                    c.apply_changes("d", customers=cust, purchases=lines)
                except Exception:
                    return  # the server is gone
                acked.append(k)
                k += 1

    t = threading.Thread(target=writer)
    try:
        t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 25 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # mid-stream: a batch is normally in flight
        proc.wait(timeout=10)
    finally:
        stop.set()
        t.join(timeout=20)
        if proc.poll() is None:
            proc.kill()
    assert len(acked) >= 25, "the writer did not get going"

    eng = Engine(data_dir, auto_compact=False)  # opens without any repair step
    ever = {"include": {"tags": {"any": ["durable"]}},
            "order_by": {"key": "spend", "filter": {"brand": ["Durable"]}, "range": "ever"}}
    m = eng.materialize("d", loads(json.dumps(ever)), (), "2026-11-21T00:00:00Z")
    present = dict(zip(m.customer_ids.tolist(), m.rank_values.tolist()))
    for k in acked:
        assert present.get(FIRST_ID + k) == LINES * (k + 1), f"acknowledged batch {k} lost or partial"
    for cid, spend in present.items():  # a batch in flight at the kill: all of it or none
        assert spend == LINES * (cid - FIRST_ID + 1)
    assert set(present) - {FIRST_ID + k for k in acked} <= {FIRST_ID + len(acked)}
    info = eng.info("d")
    assert info["live"]["sequence"] >= len(acked)

    # the dataset takes writes again, and a compaction keeps the answer
    cust, lines = _batch(10_000)
    eng.apply_changes("d", customers=cust, purchases=lines)
    before = eng.materialize("d", loads(json.dumps(ever)), (), "2026-11-21T00:00:00Z")
    eng.compact("d")
    after = eng.materialize("d", loads(json.dumps(ever)), (), "2026-11-21T00:00:00Z")
    assert np.array_equal(before.customer_ids, after.customer_ids)
    assert np.array_equal(before.rank_values, after.rank_values)
    eng.close()
