"""Readers never see half a batch: reader threads evaluate segments while a writer thread
applies batches.

Batch k (1-based) appends one purchase of product MARK (amount X) to each of a fixed set P
of existing customers spread over every shard, creates three new customers tagged TAG with
one MARK purchase each, and (from k = 2) deletes one TAG customer created by batch k-1. So
in every consistent snapshot after k batches:
  * every customer of P has purchase_count(MARK) == k and spend(MARK) == k * X;
  * exactly 2k + 1 customers carry TAG (0 before the first batch), each with one MARK line;
  * no TAG customer lacks its MARK line and no MARK buyer outside P lacks TAG.
Each check reads ONE call's answer (one snapshot); k never goes down for a reader. Run
with the changes kept in the log, and with compactions starting in the background.
test_close_during_background_compaction closes an engine under a background compaction
(in a subprocess, so a crash fails the test instead of the session).
"""
from __future__ import annotations

import datetime as dt
import threading
import time
import traceback

import pytest

from segments.engine.model import segment as S
from tests import datasets as D

UTC = dt.timezone.utc
AS_OF = dt.datetime(2029, 1, 1, tzinfo=UTC)
MARK = "SKU-CONCURRENT"
TAG = "concurrency-mark"
X = 1234
WRITE_SECONDS = 2.0
MAX_BATCHES = 60
MARK_F = S.ProductFilter((("product", (MARK,)),))


@pytest.fixture(params=["log_only", "background_compaction"])
def setup(request, tmp_path_factory):
    """The engine (with or without compactions starting in the background every few
    batches) and P."""
    from segments.engine.api import Engine
    tables = D.random_tables(41, 2100)
    folder = D.write_folder(tables, tmp_path_factory.mktemp("live_conc_in"))
    if request.param == "log_only":
        eng = Engine(tmp_path_factory.mktemp("live_conc_data"), auto_compact=False)
    else:
        eng = Engine(tmp_path_factory.mktemp("live_conc_data"), compact_after_lines=30,
                     compact_after_customers=10)
    eng.create_dataset("conc", D.AKL, shard_bits=10)
    eng.ingest("conc", folder)
    ids_in_load_order = tables["customers"]["customer_id"].to_pylist()
    ids_sorted = sorted(ids_in_load_order)
    n = len(ids_sorted)
    # spread over the shards whichever way internal ids are assigned (load order or sorted)
    p = sorted({ids_sorted[i] for i in (0, n // 3, 2 * n // 3, n - 1)} |
               {ids_in_load_order[i] for i in (5, n // 2, n - 5)})
    # P must be active so it appears in answers. The warm-up batch (no MARK, no TAG) and
    # one pass of the readers' calls compile what evaluating live changes needs, so that
    # readers run while the writer writes instead of waiting for the JIT.
    eng.apply_changes("conc", customers=[{"customer_id": cid, "first_name": "P"} for cid in p] +
                      [{"customer_id": 7, "tags": ["warm-up"]}],
                      purchases=[{"customer_id": cid, "purchased_at": dt.datetime(2026, 5, 1, tzinfo=UTC),
                                  "amount": 1, "product": "SKU-WARM-UP"} for cid in p + [7]],
                      visits=[{"customer_id": 7, "starts_at": dt.datetime(2026, 5, 1, tzinfo=UTC),
                               "status": "completed"}])
    _reader(eng, p, _Once(), [], set(), "warm-up")
    yield eng, p
    settle(eng, "conc")
    eng.close()


def settle(eng, name):
    """Wait for a background compaction to finish (the engine's private lock): closing an
    engine under one is test_close_during_background_compaction's subject, not this one's."""
    lock = getattr(eng.dataset(name), "_compacting", None)
    if lock is not None:
        with lock:
            pass


class _Once:
    """A stop event that lets the reader loop run one round of its calls."""

    def is_set(self):
        return True


def _writer(eng, p, stop, done, errors):
    created = []
    k = 0
    next_id = 10**17
    try:
        t_end = time.monotonic() + WRITE_SECONDS
        while time.monotonic() < t_end and k < MAX_BATCHES and not stop.is_set():
            k += 1
            at = dt.datetime(2026, 6, 1, tzinfo=UTC) + dt.timedelta(minutes=k)
            new = [next_id + k * 10 + j for j in range(3)]
            new[0] = k                     # some below every existing id
            batch = dict(
                customers=[{"customer_id": cid, "tags": [TAG], "first_name": f"b{k}"} for cid in new],
                purchases=[{"customer_id": cid, "purchased_at": at, "amount": X, "product": MARK}
                           for cid in p + new],
                delete=[created[-1][0]] if created else [])
            eng.apply_changes("conc", **batch)
            created.append(new)
    except Exception as e:  # noqa: BLE001
        errors.append(f"writer: {type(e).__name__}: {e}\n{traceback.format_exc()}")
    finally:
        done.append(k)
        stop.set()


def _reader(eng, p, stop, errors, observed, which):
    pset = set(p)
    last_k = 0
    ranked = S.Segment(S.AnyOf((S.Customers(tuple(p)), S.Tags((TAG,)))),
                       order_by=S.OrderBy("purchase_count", MARK_F))
    spend = S.Segment(S.Customers(tuple(p)), order_by=S.OrderBy("spend", MARK_F))
    broken = S.Segment(S.AnyOf((S.AllOf((S.Tags((TAG,)), S.Not(S.Spend(S.Cmp("==", X), MARK_F)))),
                                S.AllOf((S.Bought(MARK_F), S.Not(S.Tags((TAG,))), S.Not(S.Customers(tuple(p))))))))
    tagged = S.Segment(S.Tags((TAG,)))
    calls = 0
    try:
        while not stop.is_set() or calls < 6:
            step = calls % 4
            calls += 1
            if step == 0 or step == 1:
                seg = ranked if step == 0 else spend
                m = eng.materialize("conc", seg, as_of=AS_OF)
                ids = [int(x) for x in m.customer_ids]
                vals = [int(v) for v in m.rank_values]
                pv = {v for cid, v in zip(ids, vals) if cid in pset}
                if set(ids) & pset != pset or len(pv) != 1:
                    errors.append(f"reader {which}: P values {sorted(pv)} ids {len(set(ids) & pset)}/{len(pset)}")
                    continue
                k = pv.pop()
                if step == 1:
                    if k % X:
                        errors.append(f"reader {which}: spend {k} not a multiple of {X}")
                    k //= X
                else:
                    others = [v for cid, v in zip(ids, vals) if cid not in pset]
                    if len(others) != (2 * k + 1 if k else 0) or any(v != 1 for v in others):
                        errors.append(f"reader {which}: k={k} but {len(others)} tagged, counts {sorted(set(others))}")
            elif step == 2:
                c = eng.count("conc", broken, as_of=AS_OF)
                if c.count:
                    errors.append(f"reader {which}: {c.count} customers of a half-applied batch")
                continue
            else:
                n = eng.count("conc", tagged, as_of=AS_OF).count
                if n and n % 2 != 1:
                    errors.append(f"reader {which}: {n} tagged customers (not 2k+1)")
                k = (n - 1) // 2 if n else 0
            if k < last_k:
                errors.append(f"reader {which}: k went back from {last_k} to {k}")
            last_k = max(last_k, k)
            observed.add(k)
    except Exception as e:  # noqa: BLE001
        errors.append(f"reader {which}: {type(e).__name__}: {e}\n{traceback.format_exc()}")


def test_readers_never_see_half_a_batch(setup):
    eng, p = setup
    stop = threading.Event()
    errors, done, observed = [], [], set()
    readers = [threading.Thread(target=_reader, args=(eng, p, stop, errors, observed, i)) for i in range(2)]
    writer = threading.Thread(target=_writer, args=(eng, p, stop, done, errors))
    for t in readers:
        t.start()
    writer.start()
    writer.join(timeout=60)
    stop.set()
    for t in readers:
        t.join(timeout=60)
    assert not writer.is_alive() and not any(t.is_alive() for t in readers)
    assert not errors, "\n".join(errors[:20])
    k = done[0]
    assert k >= 3, f"only {k} batches in {WRITE_SECONDS} s"
    assert len(observed) >= 5, f"readers saw only {sorted(observed)} of {k} batches"
    # the final state, after the writer stopped: visible to the next call
    assert eng.count("conc", S.Segment(S.Tags((TAG,))), as_of=AS_OF).count == 2 * k + 1
    m = eng.materialize("conc", S.Segment(S.Customers(tuple(p)), order_by=S.OrderBy("spend", MARK_F)), as_of=AS_OF)
    assert [int(v) for v in m.rank_values] == [k * X] * len(p)
    assert eng.info("conc")["live"]["sequence"] >= k + 1


CLOSE_SCENARIO = r"""
import datetime as dt, sys, time
from segments.engine.api import Engine
from tests import datasets as D
UTC = dt.timezone.utc
work = sys.argv[1]
tables = D.random_tables(43, 1200)
folder = D.write_folder(tables, work + "/in")
ids = sorted(tables["customers"]["customer_id"].to_pylist())[:6]
lines = [{"customer_id": cid, "purchased_at": dt.datetime(2026, 5, 1, tzinfo=UTC), "amount": 5,
          "product": "SKU-CLOSE"} for cid in ids]
for n, delay in enumerate((0.0, 0.01, 0.05, 0.2, 0.5)):
    root = f"{work}/data{n}"
    eng = Engine(root, compact_after_lines=5)
    eng.create_dataset("c", D.NY, shard_bits=10)
    eng.ingest("c", folder)
    base = eng.info("c")["rows"]["purchases"]
    eng.append("c", "purchases", lines)            # starts a background compaction
    time.sleep(delay)
    eng.close()                                    # ... and closes the engine under it
    eng = Engine(root, compact_after_lines=5)
    got = eng.info("c")["rows"]["purchases"]
    assert got == base + len(lines), (delay, got, base)
    eng.append("c", "purchases", lines)
    eng.compact("c")
    assert eng.info("c")["rows"]["purchases"] == base + 2 * len(lines), delay
    eng.close()
    eng = Engine(root, auto_compact=False)
    assert eng.info("c")["rows"]["purchases"] == base + 2 * len(lines), delay
    assert not any(eng.info("c")["live"]["pending"].values()), delay
    eng.close()
print("OK")
"""


def test_close_during_background_compaction(tmp_path):
    """An engine closed while a background compaction runs must not crash the process nor
    lose an acknowledged batch, and a new Engine over the same data directory (same process)
    must open. Run in a subprocess: a crash there is this test failing, not the session."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(repo), PYTHONFAULTHANDLER="1")
    r = subprocess.run([sys.executable, "-c", CLOSE_SCENARIO, str(tmp_path)], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), \
        f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
