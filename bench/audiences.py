"""Tracked-segments bench: how soon after a batch's acknowledgement its entered / exited are recorded.

    python -m segments.bench.audiences --scale S [--tracked 100] [--seconds 20] [--rate 50000]

Works on a copy of the cached dataset (bench/cache). --tracked saved segments (the bench
suite's, cycled with numbered copies until there are that many) are tracked; the
maintenance thread (engine/catalog/maintain.py) keeps them fresh while one writer appends
purchase batches of --batch lines (bench/live.make_batches: the day before the suite's
as-of instant) paced at --rate lines/s. The clock of the maintenance is the suite's as-of
instant (relative ranges resolve as the suite's do), then moved to the next local day to
time a midnight round (every tracked segment evaluated fully).
Latency of a batch: from its acknowledgement (apply_changes returned) to the end of the
first maintenance round that read its sequence (its snapshots recorded and watchers
notified; a batch that changes no membership records none): `ack_to_snapshot_ms` for the
segments whose membership is per customer (recorded first in a round), and
`ack_to_every_snapshot_ms` until every tracked segment had been evaluated at that sequence
or a later one (the full lane, which runs at its own pace, included). Checked at the end: every
tracked segment's newest snapshot equals a full evaluation (materialize) of the final state.
Results: bench/results/audiences-<scale>.json.
"""
from __future__ import annotations

import argparse
import bisect
import datetime as dt
import itertools
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from . import cache
from .live import make_batches
from .loadtest import percentiles
from .suite import AS_OF, segments


def run(scale: str, tracked: int, seconds: float, rate: float, batch: int, log=print) -> dict:
    from segments.engine.api import Engine
    from segments.engine.catalog.catalog import Catalog
    from segments.engine.catalog.maintain import Maintainer, evaluation_scope
    c = cache.ensure(scale, log=log)
    load_start = round(os.getloadavg()[0], 2)
    work = Path(tempfile.mkdtemp(prefix="audiences-bench-"))
    try:
        shutil.copytree(c.data_dir, work / "data")
        eng = Engine(work / "data", auto_compact=False)
        ds = c.dataset
        clock_at = [AS_OF]
        cat = Catalog(eng, clock=lambda: clock_at[0])
        suite = segments(cache.sample_ids(c))
        names = []
        for i in range(tracked):
            s = suite[i % len(suite)]
            name = s.name if i < len(suite) else f"{s.name}.{i // len(suite)}"
            cat.create_segment(ds, name, s.segment)
            cat.audiences.track(ds, name, keep=100_000)
            names.append(name)
        per_customer = sum(evaluation_scope(cat.get_segment(ds, n).segment).per_customer for n in names)
        rounds = []
        m = Maintainer(eng, cat, clock=lambda: clock_at[0], poll=0.5, run_tasks=False,
                       on_round=lambda st: rounds.append((st["sequence"], time.perf_counter(), st)))
        t = time.perf_counter()
        m.run_once()
        first_s = time.perf_counter() - t
        log(f"{tracked} tracked segments ({per_customer} per customer): first round (full) {first_s:.2f} s")

        ids = np.asarray(cache.sample_ids(c, 100_000), np.int64)
        n_batches = int(seconds * (rate or 200_000) / batch) + 1
        batches = make_batches(ids, n_batches, batch)
        eng.apply_changes(ds, purchases=batches[0].slice(0, 1))   # warm the write path
        m.run_once()
        rounds.clear()
        m.start()
        acks, write_ms = [], []
        start = time.perf_counter()
        sent = 0
        for b in batches[1:]:
            now = time.perf_counter() - start
            if now >= seconds:
                break
            if rate:
                due = sent / rate
                if due > now:
                    time.sleep(due - now)
            t = time.perf_counter()
            ack = eng.apply_changes(ds, purchases=b)
            done = time.perf_counter()
            write_ms.append((done - t) * 1e3)
            acks.append((ack["sequence"], done))
            sent += b.num_rows
        elapsed = time.perf_counter() - start
        last_seq = acks[-1][0]
        deadline = time.perf_counter() + 120
        while not rounds or max(r[2]["settled"] for r in rounds) < last_seq:
            if time.perf_counter() > deadline:
                break
            time.sleep(0.05)
        m.stop()
        fast = [r for r in rounds if r[2].get("phase") in ("per_customer", "all")]
        seqs = [r[0] for r in fast]
        settled = list(itertools.accumulate((r[2]["settled"] for r in rounds), max))
        lat, lat_all = [], []
        for seq, t_ack in acks:
            k = bisect.bisect_left(seqs, seq)
            if k < len(fast):
                lat.append((fast[k][1] - t_ack) * 1e3)
            k = bisect.bisect_left(settled, seq)
            if k < len(rounds):
                lat_all.append((rounds[k][1] - t_ack) * 1e3)
        modes = {k: sum(r[2][k] for r in rounds) for k in ("full", "incremental", "skipped")}
        round_s = [r[2]["seconds"] for r in fast]
        lane_runs = sum(1 for r in rounds if r[2].get("phase") == "full")
        load_during = os.getloadavg()[0]

        # midnight: every tracked segment evaluated fully on a new local day
        clock_at[0] = AS_OF + dt.timedelta(days=1)
        t = time.perf_counter()
        midnight = m.run_once()
        midnight_s = time.perf_counter() - t

        wrong = []
        for n in names:
            snap = cat.audiences.latest(ds, n)
            got = set(cat.audiences.members(ds, n, snap.number))
            want = set(eng.materialize(ds, cat.get_segment(ds, n).segment, (), clock_at[0]).customer_ids.tolist())
            if got != want:
                wrong.append(n)
        eng.close()
        return {"scale": scale, "tracked": tracked, "per_customer": per_customer, "batch": batch,
                "target_rate": rate, "seconds": round(elapsed, 2), "lines": sent,
                "lines_per_s": round(sent / elapsed), "batches": len(acks), "write_ms": percentiles(write_ms),
                "ack_to_snapshot_ms": percentiles(lat), "ack_to_every_snapshot_ms": percentiles(lat_all),
                "rounds": len(fast), "full_lane_runs": lane_runs, "round_s": percentiles(
                    [x * 1e3 for x in round_s]), "segment_rounds": modes,
                "load_average": {"start": load_start, "during": round(load_during, 2),
                                 "end": round(os.getloadavg()[0], 2)},
                "first_full_round_s": round(first_s, 2), "midnight_round_s": round(midnight_s, 2),
                "midnight_snapshots": len(midnight),
                "check": {"newest_snapshot_equals_full_evaluation": not wrong, "wrong": wrong}}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="S", choices=("S", "M", "L"))
    ap.add_argument("--tracked", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=50_000, help="lines/s (0 = unpaced)")
    ap.add_argument("--batch", type=int, default=1000)
    a = ap.parse_args(argv)
    r = run(a.scale, a.tracked, a.seconds, a.rate, a.batch)
    tag = "" if a.rate == 50_000 else f"-rate{int(a.rate)}"
    out = Path(__file__).parent / "results" / f"audiences-{a.scale}{tag}.json"
    out.write_text(json.dumps(r, indent=1))
    la, wm = r["ack_to_snapshot_ms"], r["write_ms"]
    print(f"{r['scale']}: {r['tracked']} tracked ({r['per_customer']} per customer); {r['lines']:,} lines in "
          f"{r['seconds']} s = {r['lines_per_s']:,} lines/s (write p50 {wm['p50_ms']} ms, p99 {wm['p99_ms']} ms); "
          f"ack -> snapshot p50 {la['p50_ms']} ms, p99 {la['p99_ms']} ms over {r['rounds']} rounds "
          f"{r['segment_rounds']} (every segment's: p50 {r['ack_to_every_snapshot_ms']['p50_ms']} ms, p99 "
          f"{r['ack_to_every_snapshot_ms']['p99_ms']} ms, full lane ran {r['full_lane_runs']} times); "
          f"midnight round {r['midnight_round_s']} s; load {r['load_average']}; check {r['check']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
