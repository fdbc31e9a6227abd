"""Compaction bench: what a compaction costs for what changed.

    python -m segments.bench.compaction --scale M

Works on a copy of the cached dataset (bench/cache): its immutable parts hard-linked (never
written again; a compaction writes new parts and unlinks old ones from the copy only), the
rest copied; `--copy` copies the parts too (at L they are 34 GB). Each scenario runs in a
child process of its own on a fresh copy, so no process opens two links of one part (LMDB
refuses a file already open in the process). Scenarios (`--scenarios`, default all):
- `few`: 1,000 purchase lines appended for 100 customers;
- `spread`: 100,000 lines spread over all customers;
- `upserts`: 10,000 customer rows replaced (new loyalty points), spread over all shards;
- `million` (L only, or --million): 1,000,000 lines spread over all customers.
For each: the apply time, the compaction's wall time, shards rewritten and bytes written,
peak RSS of the child, and a check that every suite segment counts the same before and
after the compaction.
Results: bench/results/compaction-<scale>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import cache
from .live import make_batches, make_upserts
from .suite import AS_OF, segments

OUT = Path(__file__).resolve().parent / "results"


SCENARIOS = {  # name: (lines, customers)
    "few": (1_000, 100),
    "spread": (100_000, 0),
    "upserts": (0, 10_000),
    "million": (1_000_000, 0),
}


def copy_dataset(src: Path, dst: Path, link_parts: bool = True) -> None:
    """The data folder: files under a `parts` folder hard-linked when link_parts (parts are
    written once and only read after), everything else copied."""
    def link_or_copy(a, b):
        if link_parts and f"{os.sep}parts{os.sep}" in a:
            os.link(a, b)
        else:
            shutil.copy2(a, b)
    shutil.copytree(src, dst, copy_function=link_or_copy)


def scenario(c, name: str, lines: int, customers: int, spread_over: np.ndarray, log=print,
             link_parts: bool = True) -> dict:
    from segments.engine.api import Engine
    # beside the cached dataset: a hard link cannot cross file systems
    work = Path(tempfile.mkdtemp(prefix="compaction-bench-", dir=Path(c.data_dir).parent))
    try:
        copy_dataset(Path(c.data_dir), work / "data", link_parts)
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
               "compaction_s": round(compact_s, 3), "compaction": info, "parts_linked": link_parts,
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               "counts_equal": before == after,
               "differences": {n: [before[n], after[n]] for n in suite if before[n] != after[n]}}
        log(f"{name}: {lines:,} lines / {customers:,} customers: compaction {compact_s:.2f} s "
            f"(shards rewritten {info.get('shards_rewritten') if isinstance(info, dict) else '?'}), "
            f"counts equal: {out['counts_equal']}")
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _child(scale: str, name: str, link_parts: bool) -> dict:
    """Run one scenario in a child process; its JSON line."""
    cmd = [sys.executable, "-m", "segments.bench.compaction", "--scale", scale, "--child", name]
    if not link_parts:
        cmd.append("--copy")
    r = subprocess.run(cmd, capture_output=True, text=True)
    lines = r.stdout.strip().splitlines()
    print("\n".join(lines[:-1]), flush=True)          # the child's log; its last line is the JSON
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="S", choices=("S", "M", "L"))
    ap.add_argument("--million", action="store_true", help="also the 1M-line scenario below L")
    ap.add_argument("--scenarios", help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all but "
                                        "million below L)")
    ap.add_argument("--copy", action="store_true", help="copy the parts instead of hard-linking them")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    c = cache.ensure(a.scale)
    if a.child:
        lines, customers = SCENARIOS[a.child]
        everyone = cache.all_ids(c)
        print(json.dumps(scenario(c, a.child, lines, customers, everyone, link_parts=not a.copy)))
        return
    names = ([n.strip() for n in a.scenarios.split(",") if n.strip()] if a.scenarios else
             [n for n in SCENARIOS if n != "million" or a.scale == "L" or a.million])
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}: {', '.join(SCENARIOS)}")
    load_start = os.getloadavg()
    runs = [_child(a.scale, n, not a.copy) for n in names]
    result = {"scale": a.scale, "load_average": {"start": [round(x, 2) for x in load_start],
                                                 "end": [round(x, 2) for x in os.getloadavg()]},
              "scenarios": runs}
    path = Path(a.out) / f"compaction-{a.scale}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path}")
    if not all(r["counts_equal"] for r in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
