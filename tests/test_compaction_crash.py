"""A process killed at any point of a compaction or a later bulk load leaves a dataset that
opens without repair, holds every acknowledged batch, and compacts again to the same answer."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from segments.engine.storage.failpoints import EXIT_CODE

POINTS = ["shard-written", "parts-written", "version-written", "log-seeded", "current-switched", "cleaned-up"]
AS_OF = "2026-11-21T00:00:00Z"
SEGMENTS = [
    {"include": "all"},
    {"include": {"tags": {"any": ["crash"]}}, "order_by": {"key": "spend", "range": "ever"}},
    {"include": {"bought": {"filter": {"brand": ["Crash"]}}}},
    {"include": {"spend": {"cmp": {">": 0}}}, "order_by": {"key": "last_purchase"}, "limit": 50},
]


def _answers(eng):
    from segments.engine.model.segment_json import loads
    out = []
    for s in SEGMENTS:
        m = eng.materialize("d", loads(json.dumps(s)), (), AS_OF)
        out.append((m.customer_ids.tolist(), None if m.rank_values is None else m.rank_values.tolist()))
    return out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A dataset with a version and acknowledged changes on top (new customers, lines for
    old and new ones, an erasure, an upsert), and its answers before any compaction."""
    from segments.bench.generate import generate
    from segments.engine.api import Engine
    root = tmp_path_factory.mktemp("crash")
    generate(root / "in", customers=3000, seed=11, fmt="parquet")
    eng = Engine(root / "data", auto_compact=False)
    eng.create_dataset("d", "America/New_York", shard_bits=10)
    eng.ingest("d", root / "in")
    ids = eng.materialize("d", __import__("segments.engine.model.segment_json", fromlist=["loads"])
                          .loads('{"include": "all"}')).customer_ids
    for k in range(6):
        cid = 9_000_000_000 + k
        eng.apply_changes("d", customers=[{"customer_id": cid, "tags": ["crash"]}],
                          purchases=[{"customer_id": cid, "purchased_at": "2026-11-19T10:00:00Z", "amount": 100 * (k + 1),
                                      "brand": "Crash"},
                                     {"customer_id": int(ids[k * 300]), "purchased_at": "2026-11-18T10:00:00Z",
                                      "amount": 5_000, "brand": "Crash"}])
    eng.delete_customers("d", [int(ids[7]), 9_000_000_002])
    eng.upsert_customers("d", [{"customer_id": int(ids[11]), "tags": ["crash"]}])
    want = _answers(eng)
    seq = eng.info("d")["live"]["sequence"]
    eng.close()
    return root, want, seq


def _run(root, code: str, point: str) -> int:
    env = dict(os.environ, SEGMENTS_FAILPOINT=point)
    script = textwrap.dedent(f"""
        from segments.engine.api import Engine
        eng = Engine({str(root / 'data')!r}, auto_compact=False)
        {code}
    """)
    return subprocess.run([sys.executable, "-c", script], env=env, timeout=300).returncode


@pytest.mark.parametrize("point", POINTS)
def test_crash_during_compaction_loses_nothing(seeded, tmp_path, point):
    import shutil
    from segments.engine.api import Engine
    root, want, seq = seeded
    work = tmp_path / "w"
    shutil.copytree(root / "data", work / "data")
    rc = _run(work, 'eng.compact("d")', point)
    assert rc == EXIT_CODE, f"the compaction did not reach failpoint {point}"
    eng = Engine(work / "data", auto_compact=False)
    assert eng.info("d")["live"]["sequence"] == seq
    assert _answers(eng) == want, f"answers changed after a crash at {point}"
    # the first open removed what the crash left: parts and folders no version needs
    folder = work / "data" / "d"
    current = (folder / "CURRENT").read_text().strip()
    assert {p.name for p in folder.glob("v[0-9]*")} <= {current, f"{current}.log"}
    assert {p.name for p in (folder / "parts").iterdir()} == set(eng.dataset("d").snapshot().manifest.parts())
    eng.compact("d")
    assert _answers(eng) == want
    assert not any(eng.info("d")["live"]["pending"].values())
    parts = {p.name for p in (work / "data" / "d" / "parts").iterdir()}
    snap = eng.dataset("d").snapshot()
    assert parts == set(snap.manifest.parts()), "parts of the crashed build were left behind"
    eng.close()
