"""Live-update bench: purchase lines appended in batches while count calls run concurrently.

    python -m segments.bench.live --scale M [--seconds 20] [--rate 50000] [--readers 2] [--upserts 0]

Works on a copy of the cached dataset (bench/cache), so the cache stays as ingested. One
writer thread appends batches of --batch purchase lines (random existing customers, sale
instants in the day before the as-of instant, a marker brand) through Engine.apply_changes,
paced at --rate lines/s (0 = as fast as it goes); with --upserts K each batch also replaces K
existing customers' rows (new loyalty points: the overlay of changed customers grows through
the run). --readers threads call count on a mix of the suite's segments and record latencies. Then the run is checked: the marker brand's
buyers and spend equal what was appended (a plain numpy sum), and the counts of the suite
segments after the run equal a fresh engine's after a compaction of the same changes.
Results: bench/results/live-<scale>.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import cache
from .loadtest import percentiles
from .suite import AS_OF, segments
from segments.engine.model.segment_json import loads

READ_MIX = ("seed_lapsing_regulars", "seed_married_today", "seed_birthday_today",
            "seed_birthday_month_member", "seed_december_200", "profile_bitmaps",
            "spend_brand_90d", "count_dispensary_prev_month", "bought_anything_ever", "spend_ever_5000")
MARKER = "LiveBenchBrand"


def make_batches(ids: np.ndarray, n_batches: int, size: int, seed: int = 0) -> list:
    """Purchase batches as arrow tables (built before the clock starts)."""
    rng = np.random.default_rng(seed)
    end = int(AS_OF.timestamp() * 1_000_000)
    ts_type = pa.timestamp("us", tz="UTC")
    out = []
    for _ in range(n_batches):
        cust = rng.choice(ids, size)
        ts = end - rng.integers(1, 86_400_000_000, size)
        out.append(pa.table({
            "customer_id": pa.array(cust, pa.int64()),
            "purchased_at": pa.array(ts, pa.int64()).cast(ts_type),
            "amount": pa.array(rng.integers(-2_000, 50_000, size), pa.int64()),
            "quantity": pa.array(rng.integers(1, 4, size), pa.int32()),
            "department": pa.array(rng.choice(["rings", "charms", "diamond"], size)),
            "brand": pa.array([MARKER] * size),
        }))
    return out


def make_upserts(input_dir: str, n_batches: int, size: int, seed: int = 1) -> list:
    """Customer rows to upsert per batch: existing customers (distinct within a batch) with
    new loyalty points."""
    import pyarrow.dataset as pads
    src = Path(input_dir)
    cust = pads.dataset(str(src / "customers" if (src / "customers").is_dir() else src / "customers.parquet"),
                        format="parquet").to_table()
    rng = np.random.default_rng(seed)
    points = cust.schema.get_field_index("loyalty_points")
    out = []
    for _ in range(n_batches):
        rows = cust.take(pa.array(rng.choice(cust.num_rows, size, replace=False)))
        out.append(rows.set_column(points, "loyalty_points", pa.array(rng.integers(0, 5000, size), pa.int64())))
    return out


def run(scale: str, seconds: float, rate: float, batch: int, readers: int, upserts: int = 0, log=print) -> dict:
    from segments.engine.api import Engine
    c = cache.ensure(scale, log=log)
    work = Path(tempfile.mkdtemp(prefix="live-bench-"))
    try:
        t0 = time.perf_counter()
        shutil.copytree(c.data_dir, work / "data")
        log(f"copied the {scale} dataset in {time.perf_counter() - t0:.1f} s")
        eng = Engine(work / "data", auto_compact=False)
        ds = c.dataset
        ids = np.asarray(cache.sample_ids(c, 100_000), np.int64)
        n_batches = int(seconds * (rate or 200_000) / batch) + 1
        batches = make_batches(ids, n_batches, batch)
        customers = make_upserts(c.input_dir, n_batches, upserts) if upserts else [None] * n_batches
        suite = {s.name: s for s in segments(cache.sample_ids(c))}
        mix = [suite[n].segment for n in READ_MIX]
        for s in mix:  # warm: compile, map, cache
            eng.count(ds, s, AS_OF)
        eng.apply_changes(ds, purchases=batches[0].slice(0, 1))  # warm the write path (1 line)
        appended = [batches[0].slice(0, 1)]

        stop = threading.Event()
        lat = {n: [] for n in READ_MIX}
        write_ms = []

        def reader(k):
            i = k
            while not stop.is_set():
                name = READ_MIX[i % len(mix)]
                t = time.perf_counter()
                eng.count(ds, mix[i % len(mix)], AS_OF)
                lat[name].append((time.perf_counter() - t) * 1e3)
                i += 1

        threads = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(readers)]
        for t in threads:
            t.start()
        start = time.perf_counter()
        sent = 0
        for b, cu in zip(batches[1:], customers[1:]):
            now = time.perf_counter() - start
            if now >= seconds:
                break
            if rate:
                due = sent / rate
                if due > now:
                    time.sleep(due - now)
            t = time.perf_counter()
            eng.apply_changes(ds, purchases=b, customers=cu)
            write_ms.append((time.perf_counter() - t) * 1e3)
            appended.append(b)
            sent += b.num_rows
        elapsed = time.perf_counter() - start
        stop.set()
        for t in threads:
            t.join()

        # correctness: the marker brand's buyers and spend are what was appended (active
        # customers only: inactive ones are in no segment)
        allp = pa.concat_tables(appended)
        active = eng.materialize(ds, loads('{"include": "all"}'), (), AS_OF).customer_ids
        keep = np.isin(allp.column("customer_id").to_numpy(), active)
        cust = allp.column("customer_id").to_numpy()[keep]
        amount = allp.column("amount").to_numpy()[keep]
        buyers = np.unique(cust[amount >= 0]).size
        spend_total = int(amount.sum())
        seg_b = loads(json.dumps({"include": {"bought": {"filter": {"brand": [MARKER]}, "range": "ever"}}}))
        got_buyers = eng.count(ds, seg_b, AS_OF).count
        seg_r = loads(json.dumps({"include": "all", "order_by": {"key": "spend", "filter": {"brand": [MARKER]},
                                                                   "range": "ever"}}))
        m = eng.materialize(ds, seg_r, (), AS_OF)
        got_spend = int(np.nansum(m.rank_values)) if m.rank_values is not None else None
        before = {n: eng.count(ds, s.segment, AS_OF).count for n, s in suite.items()}
        t = time.perf_counter()
        compaction = eng.compact(ds)
        compact_s = time.perf_counter() - t
        after = {n: eng.count(ds, s.segment, AS_OF).count for n, s in suite.items()}
        eng.close()

        every = [x for v in lat.values() for x in v]
        result = {
            "scale": scale, "batch": batch, "target_rate": rate, "readers": readers, "upserts_per_batch": upserts,
            "customers_upserted": upserts * len(write_ms),
            "seconds": round(elapsed, 2), "lines": sent, "lines_per_s": round(sent / elapsed),
            "batches": len(write_ms), "write_ms": percentiles(write_ms),
            "count_calls": len(every), "count_calls_per_s": round(len(every) / elapsed, 1),
            "count_ms": percentiles(every),
            "count_ms_by_segment": {n: percentiles(v) for n, v in lat.items()},
            "check": {"marker_buyers": [buyers, got_buyers], "marker_spend": [spend_total, got_spend],
                      "suite_counts_equal_after_compaction": before == after,
                      "differences": {n: [before[n], after[n]] for n in suite if before[n] != after[n]}},
            "compaction_s": round(compact_s, 1), "compaction": compaction,
        }
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="S", choices=("S", "M", "L"))
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=50_000, help="lines/s (0 = unpaced)")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--upserts", type=int, default=0, help="existing customers replaced per batch")
    a = ap.parse_args(argv)
    r = run(a.scale, a.seconds, a.rate, a.batch, a.readers, a.upserts)
    tag = ('' if a.rate else '-unpaced') + (f'-upserts{a.upserts}' if a.upserts else '')
    out = Path(__file__).parent / "results" / f"live-{a.scale}{tag}.json"
    out.write_text(json.dumps(r, indent=1))
    cm, wm = r["count_ms"], r["write_ms"]
    print(f"{r['scale']}: {r['lines']:,} lines in {r['seconds']} s = {r['lines_per_s']:,} lines/s "
          f"(batches of {r['batch']}{f' + {a.upserts} customers' if a.upserts else ''}, write p50 {wm['p50_ms']} ms p99 {wm['p99_ms']} ms); "
          f"{r['count_calls']} counts from {r['readers']} threads: p50 {cm['p50_ms']} ms, p99 {cm['p99_ms']} ms")
    print(f"check: {json.dumps(r['check'])}; compaction {r['compaction_s']} s")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
