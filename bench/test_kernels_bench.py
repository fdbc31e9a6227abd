"""Micro-benchmarks of engine.kernels on synthetic arrays (pytest-benchmark).

    .venv/bin/pytest bench/test_kernels_bench.py [--benchmark-only] [--benchmark-json out.json]

Outside tests/, so the default test run does not collect it. Arrays are laid out as the
builder lays them out (engine/storage/build.py): LINES purchase lines and VISITS visits spread over
SHARDS shards of 2**16 customers, each shard's lines sorted by day; uint16 shard-local
customer ids and product codes. Each benchmark calls the kernel once before timing (JIT
compile or cache load; its time is in extra_info["first_call_ms"]), and records the bytes
the kernel reads (bench/scan.py's formulas) and the GB/s at the median in extra_info.
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # as bench.run: see there

import numpy as np
import pytest
from numba import typed

from segments.engine.storage import build_kernels as BK
from segments.engine.evaluation import kernels as K
from segments.engine.storage.bitmaps import mask_to_roaring

SHARD = 1 << 16
SHARDS = 4
CUSTOMERS = SHARD * SHARDS
LINES = 2_000_000               # purchase lines, about S scale
VISITS = 500_000
DAYS = 3 * 365
TODAY = 20_000                  # a day number; lines span [TODAY - DAYS + 1, TODAY]
DAY_US = 86_400 * 1_000_000
ASOF = (TODAY * 86_400 + 17 * 3600) * 1_000_000
FIELD_CODES = 64                # distinct codes per product field


def _typed(arrays):
    lst = typed.List()
    for a in arrays:
        lst.append(a)
    return lst


@pytest.fixture(scope="module")
def purchases():
    """Per-shard purchase columns and their per-shard [lo, mid, hi) for `ever`."""
    rng = np.random.default_rng(0)
    per = LINES // SHARDS
    cols = {"cust": [], "amount": [], "ts": [], "codes": [], "day": []}
    for _ in range(SHARDS):
        day = np.sort(rng.integers(TODAY - DAYS + 1, TODAY + 1, per)).astype(np.int32)
        ts = day.astype(np.int64) * DAY_US + rng.integers(0, DAY_US, per)
        order = np.lexsort((ts, day))
        cols["day"].append(day[order])
        cols["ts"].append(ts[order])
        cols["cust"].append(rng.integers(0, SHARD, per).astype(np.uint16))
        amount = rng.lognormal(9, 1, per).astype(np.int64)
        amount[rng.random(per) < 0.03] *= -1
        cols["amount"].append(amount)
        cols["codes"].append(rng.integers(0, FIELD_CODES + 1, (8, per)).astype(np.uint16))
    lists = {k: _typed(v) for k, v in cols.items()}
    lo = np.zeros(SHARDS, np.int64)
    hi = np.array([a.size for a in cols["day"]], np.int64)
    mid = np.array([np.searchsorted(d, np.int32(TODAY - 1)) for d in cols["day"]], np.int64)
    return lists, lo, mid, hi


@pytest.fixture(scope="module")
def visits():
    rng = np.random.default_rng(1)
    per = VISITS // SHARDS
    cols = {"cust": [], "ts": [], "status": [], "shop": []}
    for _ in range(SHARDS):
        day = np.sort(rng.integers(TODAY - DAYS + 1, TODAY + 90, per))
        cols["ts"].append(day.astype(np.int64) * DAY_US + rng.integers(0, DAY_US, per))
        cols["cust"].append(rng.integers(0, SHARD, per).astype(np.uint16))
        status = np.where(day > TODAY, K.VISIT_BOOKED, rng.choice([1, 1, 1, 3, 4], per)).astype(np.uint8)
        cols["status"].append(status)
        cols["shop"].append(rng.integers(1, 7, per).astype(np.int32))
    lists = {k: _typed(v) for k, v in cols.items()}
    days = [(a // DAY_US) for a in cols["ts"]]
    lo = np.zeros(SHARDS, np.int64)
    hi = np.array([np.searchsorted(d, TODAY, "right") for d in days], np.int64)
    mid = np.array([np.searchsorted(d, TODAY - 1) for d in days], np.int64)
    return lists, lo, mid, hi


BASES = np.arange(SHARDS, dtype=np.int64) * SHARD
SIZES = np.full(SHARDS, SHARD, np.int64)


def _run(benchmark, fn, nbytes: int):
    """Warm up (timed separately), benchmark, and note bytes and GB/s at the median."""
    t0 = time.perf_counter()
    fn()
    benchmark.extra_info["first_call_ms"] = round((time.perf_counter() - t0) * 1000, 3)
    benchmark(fn)
    benchmark.extra_info["bytes"] = int(nbytes)
    median = benchmark.stats.stats.median if benchmark.stats else None
    if median:
        benchmark.extra_info["gbps_at_median"] = round(nbytes / median / 1e9, 3)


def _filter(fields):
    rows = np.asarray([f for f, _ in fields], np.int64)
    luts = np.zeros((max(1, len(fields)), FIELD_CODES + 1), np.uint8)
    for j, (_, accepted) in enumerate(fields):
        luts[j, accepted] = 1
    return (rows, luts) if fields else (np.zeros(0, np.int64), np.zeros((0, 1), np.uint8))


def _purchase_bytes(lo, mid, hi, nfields):
    return int((hi - lo).sum()) * (2 + 8 + 2 * nfields) + int((hi - mid).sum()) * 8


@pytest.mark.parametrize("mode,fields", [
    (K.MODE_BOUGHT, ()),
    (K.MODE_SPEND, ()),
    (K.MODE_BOUGHT, ((0, [1, 2, 3]),)),
    (K.MODE_COUNT, ((0, [4]), (1, [1, 2]))),
    (K.MODE_SPEND, ((0, [5, 6]), (2, list(range(1, 40))), (7, [1, 3]))),
], ids=["bought-nofilter", "spend-nofilter", "bought-1field", "count-2fields", "spend-3fields"])
def test_line_agg_mask(benchmark, purchases, mode, fields):
    lists, lo, mid, hi = purchases
    rows, luts = _filter(fields)
    out = np.zeros(CUSTOMERS, np.uint8)

    def fn():
        K.line_agg_mask(lists["cust"], lists["amount"], lists["ts"], lists["codes"], lists["day"],
                        lo, mid, hi, BASES, SIZES, rows, luts, ASOF, mode, 1, 2**62, out)
    _run(benchmark, fn, _purchase_bytes(lo, mid, hi, len(fields)))


@pytest.mark.parametrize("mode", [K.MODE_SPEND, K.MODE_LAST_DAY], ids=["spend", "last-day"])
def test_line_agg_values(benchmark, purchases, mode):
    lists, lo, mid, hi = purchases
    rows, luts = _filter(((0, [1, 2]),))
    out = np.zeros(CUSTOMERS, np.int64)

    def fn():
        K.line_agg_values(lists["cust"], lists["amount"], lists["ts"], lists["codes"], lists["day"],
                          lo, mid, hi, BASES, SIZES, rows, luts, ASOF, mode, out)
    _run(benchmark, fn, _purchase_bytes(lo, mid, hi, 1))


@pytest.mark.parametrize("use_shops", [False, True], ids=["all-shops", "two-shops"])
def test_visit_count_mask(benchmark, visits, use_shops):
    lists, lo, mid, hi = visits
    lut = np.zeros(8, np.uint8)
    lut[[1, 4]] = 1
    out = np.zeros(CUSTOMERS, np.uint8)

    def fn():
        K.visit_count_mask(lists["cust"], lists["ts"], lists["status"], lists["shop"], lo, mid, hi, BASES,
                           SIZES, use_shops, lut, ASOF, 3, 2**62, out)
    nbytes = int((hi - lo).sum()) * (1 + 2 + (4 if use_shops else 0)) + int((hi - mid).sum()) * 8
    _run(benchmark, fn, nbytes)


def test_upcoming_mask(benchmark, visits):
    lists, _, mid, _ = visits
    lut = np.zeros(8, np.uint8)
    out = np.zeros(CUSTOMERS, np.uint8)

    def fn():
        K.upcoming_mask(lists["cust"], lists["ts"], lists["status"], lists["shop"], mid, BASES, False, lut,
                        ASOF, out)
    lines = sum(int(a.size - m) for a, m in zip(lists["status"], mid))
    booked = sum(int(np.count_nonzero(a[m:] == K.VISIT_BOOKED)) for a, m in zip(lists["status"], mid))
    _run(benchmark, fn, lines + booked * 10)


def test_overdue_layby_mask(benchmark):
    rng = np.random.default_rng(2)
    per = 200_000 // SHARDS
    cust = _typed([rng.integers(0, SHARD, per).astype(np.uint16) for _ in range(SHARDS)])
    opened = _typed([rng.integers(TODAY - 400, TODAY + 1, per).astype(np.int32) for _ in range(SHARDS)])
    due = _typed([(o + 90).astype(np.int32) for o in opened])
    bal = _typed([rng.integers(-100, 50_000, per).astype(np.int64) for _ in range(SHARDS)])
    status = _typed([rng.integers(1, 3, per).astype(np.uint8) for _ in range(SHARDS)])
    out = np.zeros(CUSTOMERS, np.uint8)
    _run(benchmark, lambda: K.overdue_layby_mask(cust, opened, due, bal, status, BASES, TODAY, out),
         per * SHARDS * (2 + 4 + 4 + 8 + 1))


N_DENSE = 1_000_000


def test_range_mask(benchmark):
    vals = np.random.default_rng(3).integers(0, 10_000, N_DENSE).astype(np.int64)
    out = np.zeros(N_DENSE, np.uint8)
    _run(benchmark, lambda: K.range_mask(vals, np.int64(-1), np.int64(1000), np.int64(5000), out),
         N_DENSE * (8 + 1))


def test_lut_mask(benchmark):
    md = np.random.default_rng(4).integers(101, 1232, N_DENSE).astype(np.int16)
    lut = np.zeros(1300, np.uint8)
    lut[1120:1135] = 1
    out = np.zeros(N_DENSE, np.uint8)
    _run(benchmark, lambda: K.lut_mask(md, lut, out), N_DENSE * (2 + 1))


def test_age_mask(benchmark):
    rng = np.random.default_rng(5)
    year = rng.integers(1940, 2010, N_DENSE).astype(np.int16)
    md = rng.integers(101, 1232, N_DENSE).astype(np.int16)
    out = np.zeros(N_DENSE, np.uint8)
    _run(benchmark, lambda: K.age_mask(year, md, 2026, 1120, False, 30, 59, out), N_DENSE * (2 + 2 + 1))


@pytest.mark.parametrize("density", [0.01, 0.3], ids=["sparse", "dense"])
def test_mask_to_roaring(benchmark, density):
    mask = (np.random.default_rng(6).random(N_DENSE) < density).astype(np.uint8)
    _run(benchmark, lambda: mask_to_roaring(mask), N_DENSE)


def test_hash_lookup(benchmark):
    rng = np.random.default_rng(7)
    keys = rng.choice(10**15, 1_000_000, replace=False).astype(np.int64)
    tkeys, tvals = BK.build_id_hash(keys)
    queries = keys[rng.integers(0, keys.size, 4_000_000)]
    _run(benchmark, lambda: BK.hash_lookup(tkeys, tvals, queries), queries.size * 8)
