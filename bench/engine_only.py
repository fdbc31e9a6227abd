"""The suite's counts on the engine alone, with the process's memory outside the page cache.

    python -m segments.bench.engine_only --scale L

For a scale where the DuckDB peer costs more than the run can wait (at L its on-disk
tables take ~10 minutes to load and minutes per ranked query on 2 cores): each suite
segment counted once cold (first_ms: page faults from disk, JIT cache loads) and --repeat
times warm (the median), with VmRSS / RssAnon / RssFile after each (RssAnon is the memory
that is not file pages). The answers are checked elsewhere (make bench at S and M, tests).
Results: bench/results/engine-<scale>.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from . import cache, suite

OUT = Path(__file__).resolve().parent / "results"


def memory_mb() -> dict:
    keys = ("VmRSS", "RssAnon", "RssFile")
    with open("/proc/self/status") as f:
        return {line.split(":")[0]: int(line.split()[1]) // 1024 for line in f if line.startswith(keys)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="L", choices=("S", "M", "L"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--behaviour", action="store_true", help="include the behaviour kinds' segments")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    from segments.engine.api import Engine
    c = cache.ensure(a.scale)
    eng = Engine(c.data_dir)
    rows, peak_anon = [], 0
    suite.prepare_references(eng, c.dataset)
    for bs in suite.segments(cache.sample_ids(c), references=True):
        if bs.name.startswith("bh_") and not a.behaviour:
            continue
        t = time.perf_counter()
        n = eng.count(c.dataset, bs.segment, suite.AS_OF).count
        first = (time.perf_counter() - t) * 1e3
        runs = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            eng.count(c.dataset, bs.segment, suite.AS_OF)
            runs.append((time.perf_counter() - t) * 1e3)
        mem = memory_mb()
        peak_anon = max(peak_anon, mem.get("RssAnon", 0))
        rows.append({"segment": bs.name, "count": n, "first_ms": round(first, 1),
                     "engine_ms": round(statistics.median(runs), 2), "memory_mb": mem})
        print(f"{bs.name:32s} n={n:<9d} first {first:9.1f} ms  warm {rows[-1]['engine_ms']:8.2f} ms  {mem}", flush=True)
    result = {"scale": a.scale, "rows": c.rows, "repeat": a.repeat, "segments": rows, "peak_rss_anon_mb": peak_anon}
    path = Path(a.out) / f"engine-{a.scale}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"peak RssAnon {peak_anon} MB; wrote {path}")


if __name__ == "__main__":
    main()
