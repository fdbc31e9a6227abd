"""Sustained memory read bandwidth: the physical limit the scan kernels are measured against.

An int64 sum over an array far larger than the last-level cache (default 512 MiB; the L3
here is 32 MiB), compiled by numba (`nogil`, four independent accumulators so the loop is
bound by loads, not by an add chain). Measured two ways, best of N passes each after one
untimed pass (JIT compile and page faults):
  - threads: every core's thread sums its own contiguous blocks (Python threads running the
    nogil kernel; blocks handed out one at a time so a thread slowed by another process
    does not hold the rest back), partial sums reduced serially;
  - one thread: the whole array on one core.
The limit the kernels are compared with is the better of the two: on a machine shared with
other work all threads together can do worse than one. GB = 1e9 bytes.

    python -m segments.bench.bandwidth [--mib 512] [--passes 7]
"""
from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def read_sum(a):
    """Sum of an int64 array, read once front to back."""
    s0 = np.int64(0)
    s1 = np.int64(0)
    s2 = np.int64(0)
    s3 = np.int64(0)
    n = a.size
    i = 0
    while i + 4 <= n:
        s0 += a[i]
        s1 += a[i + 1]
        s2 += a[i + 2]
        s3 += a[i + 3]
        i += 4
    while i < n:
        s0 += a[i]
        i += 1
    return s0 + s1 + s2 + s3


def _best(fn, passes: int) -> float:
    fn()                                     # untimed: compile, fault pages in
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(mib: int = 512, passes: int = 7, threads: int | None = None) -> dict:
    """{"gbps": the limit (best of both), "gbps_threads", "gbps_1thread", "threads", "bytes",
    "passes", "seconds"}."""
    t0 = time.perf_counter()
    threads = threads or os.cpu_count() or 1
    a = np.ones(mib * (1 << 20) // 8, dtype=np.int64)
    blocks = threads * 16
    bounds = (np.arange(blocks + 1, dtype=np.int64) * a.size) // blocks
    views = [a[bounds[k]:bounds[k + 1]] for k in range(blocks)]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bandwidth") as pool:
        def parallel():
            return sum(pool.map(read_sum, views))

        if parallel() != a.size or read_sum(a) != a.size:
            raise RuntimeError("bandwidth kernel summed wrongly")
        t_par = _best(parallel, passes)
        t_one = _best(lambda: read_sum(a), passes)
    g_par, g_one = a.nbytes / t_par / 1e9, a.nbytes / t_one / 1e9
    out = {"gbps": round(max(g_par, g_one), 2), "gbps_threads": round(g_par, 2),
           "gbps_1thread": round(g_one, 2), "threads": threads, "bytes": int(a.nbytes),
           "passes": passes, "method": "numba nogil int64 sum over threads / one thread, best of passes",
           "seconds": round(time.perf_counter() - t0, 1)}
    return out


def main(argv=None) -> None:
    """Print the machine's sustained read bandwidth."""
    p = argparse.ArgumentParser(prog="python -m segments.bench.bandwidth", description=main.__doc__)
    p.add_argument("--mib", type=int, default=512, help="array size in MiB (>> last-level cache)")
    p.add_argument("--passes", type=int, default=7)
    a = p.parse_args(argv)
    r = measure(a.mib, a.passes)
    print(f"sustained read bandwidth: {r['gbps']:.1f} GB/s ({r['gbps_threads']:.1f} with {r['threads']} "
          f"threads, {r['gbps_1thread']:.1f} on one; {r['bytes'] / 2**20:.0f} MiB, best of {r['passes']})")


if __name__ == "__main__":
    main()
