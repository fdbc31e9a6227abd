"""DuckDB calls under a time limit, and result ids compared as arrays.

At scale L the DuckDB peer answers some questions in seconds and others not in minutes (on
2 cores, over an on-disk database). `limited` runs one call on a connection and interrupts
the connection from a timer when the call runs past its limit: the bench then records the
engine's time and "DuckDB > limit", so the ratio is a stated lower bound instead of a wait
without end.

`ids_problem` compares two result id lists as int64 numpy arrays (in order for ranked
segments, sorted otherwise): an L answer holds up to 10M ids, which as Python lists of ints
cost gigabytes.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import numpy as np


class OverLimit(Exception):
    """The call was interrupted at its time limit."""

    def __init__(self, limit_s: float, elapsed_s: float):
        super().__init__(f"interrupted at the {limit_s:g} s limit (after {elapsed_s:.1f} s)")
        self.limit_s, self.elapsed_s = limit_s, elapsed_s


def limited(con, fn: Callable, limit_s: Optional[float]):
    """(ms, fn()) for a call that runs queries on DuckDB connection `con`; OverLimit when
    it ran past limit_s seconds (None or <= 0: no limit). The timer interrupts `con` only
    while the call is running: the interrupt and the call's end are ordered by a lock."""
    import duckdb

    if not limit_s or limit_s <= 0:
        t0 = time.perf_counter()
        r = fn()
        return (time.perf_counter() - t0) * 1000, r
    lock = threading.Lock()
    state = {"running": True, "fired": False}

    def fire():
        with lock:
            if state["running"]:
                state["fired"] = True
                con.interrupt()

    timer = threading.Timer(limit_s, fire)
    timer.daemon = True
    t0 = time.perf_counter()
    timer.start()
    try:
        r = fn()
    except duckdb.InterruptException:
        with lock:
            state["running"] = False
            fired = state["fired"]
        if fired:
            raise OverLimit(limit_s, time.perf_counter() - t0) from None
        raise
    finally:
        timer.cancel()
    with lock:
        state["running"] = False
        fired = state["fired"]
    ms = (time.perf_counter() - t0) * 1000
    if fired:
        # the interrupt landed after the last query of the call had finished: the answer
        # is whole, but the call took the limit; count it as over
        raise OverLimit(limit_s, ms / 1000)
    return ms, r


def as_ids(values) -> np.ndarray:
    """Result ids as a contiguous int64 array (engine Materialized.customer_ids, a DuckDB
    fetchnumpy column, a list)."""
    a = np.asarray(values)
    if np.ma.isMaskedArray(values) and np.ma.getmaskarray(values).any():
        raise ValueError("result ids hold NULLs")
    return np.ascontiguousarray(a, dtype=np.int64)


def ids_problem(engine_ids, duck_ids, ordered: bool) -> Optional[str]:
    """None when the engine's ids equal DuckDB's (in order when `ordered`, both sorted
    otherwise); else what differs: sizes, the first differing position, a few ids only
    one side has."""
    e, d = as_ids(engine_ids), as_ids(duck_ids)
    if not ordered:
        e, d = np.sort(e), np.sort(d)
    if e.size == d.size and np.array_equal(e, d):
        return None
    n = min(e.size, d.size)
    neq = np.flatnonzero(e[:n] != d[:n])
    first = int(neq[0]) if neq.size else n
    only_e = np.setdiff1d(e, d)[:5].tolist()
    only_d = np.setdiff1d(d, e)[:5].tolist()
    what = "ids (or their order)" if ordered else "ids"
    return (f"materialize: engine {e.size:,} {what} != duckdb {d.size:,}: first difference at "
            f"position {first:,}; only engine {only_e}, only duckdb {only_d}")
