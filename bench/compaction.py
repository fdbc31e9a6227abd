"""Compaction bench: what a compaction costs for what changed.

    python -m segments.bench.compaction --scale M

Works on a copy of the cached dataset (bench/cache). Scenarios, each on a fresh copy:
- `few`: 1,000 purchase lines appended for 100 customers;
- `spread`: 100,000 lines spread over all customers;
- `upserts`: 10,000 customer rows replaced (new loyalty points), spread over all shards;
- `million` (L only, or --million): 1,000,000 lines spread over all customers.
For each: the apply time, the compaction's wall time, shards rewritten and bytes written,
and a check that every suite segment counts the same before and after the compaction.
Results: bench/results/compaction-<scale>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from . import cache
from .live import make_batches, make_upserts
from .suite import AS_OF, segments

OUT = Path(__file__).resolve().parent / "results"


def copy_dataset(src: Path, dst: Path) -> None:
    """A copy of the data folder (not hard links: LMDB refuses to open one file twice in a
    process, and the process may still hold the cached dataset's parts)."""
    shutil.copytree(src, dst)


def scenario(c, name: str, lines: int, customers: int, spread_over: np.ndarray, log=print) -> dict:
    from segments.engine.api import Engine
    work = Path(tempfile.mkdtemp(prefix="compaction-bench-"))
    try:
        copy_dataset(Path(c.data_dir), work / "data")
        eng = Engine(work / "data", auto_compact=False)
        ds = c.dataset
        suite = {s.name: s.segment for s in segments(cache.sample_ids(c))}
        t = time.perf_counter()
        if lines:
            ids = np.random.default_rng(7).choice(spread_over, customers, replace=False) if customers else spread_over
            for b in make_batches(ids, max(1, lines // 10_000), min(lines, 10_000), seed=3):
                eng.apply_changes(ds, purchases=b)
        if customers and not lines:
            for rows in make_upserts(c.input_dir, customers // 1000, 1000, seed=5):
                eng.apply_changes(ds, customers=rows)
        apply_s = time.perf_counter() - t
        before = {n: eng.count(ds, s, AS_OF).count for n, s in suite.items()}
        t = time.perf_counter()
        info = eng.compact(ds)
        compact_s = time.perf_counter() - t
        after = {n: eng.count(ds, s, AS_OF).count for n, s in suite.items()}
        eng.close()
        out = {"scenario": name, "lines": lines, "customers": customers, "apply_s": round(apply_s, 2),
               "compaction_s": round(compact_s, 3), "compaction": info,
               "counts_equal": before == after,
               "differences": {n: [before[n], after[n]] for n in suite if before[n] != after[n]}}
        log(f"{name}: {lines:,} lines / {customers:,} customers: compaction {compact_s:.2f} s "
            f"(shards rewritten {info.get('shards_rewritten') if isinstance(info, dict) else '?'}), "
            f"counts equal: {out['counts_equal']}")
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="S", choices=("S", "M", "L"))
    ap.add_argument("--million", action="store_true", help="also the 1M-line scenario below L")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    c = cache.ensure(a.scale)
    everyone = np.asarray(cache.sample_ids(c, 10**9), np.int64)
    runs = [scenario(c, "few", 1_000, 100, everyone),
            scenario(c, "spread", 100_000, 0, everyone),
            scenario(c, "upserts", 0, 10_000, everyone)]
    if a.scale == "L" or a.million:
        runs.append(scenario(c, "million", 1_000_000, 0, everyone))
    result = {"scale": a.scale, "load_average": os.getloadavg(), "scenarios": runs}
    path = Path(a.out) / f"compaction-{a.scale}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    if not all(r["counts_equal"] for r in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
