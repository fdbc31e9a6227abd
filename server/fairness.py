"""Fairness between tenants: a per-dataset limit on engine work running and waiting.

Every engine call of a request (count, preview, materialize, export, explain, groups,
changes) takes one of its dataset's `concurrency` slots for its length (bulk loads and
compactions take none: they run one at a time per dataset, below the readers' priority); a call finding them taken waits in the dataset's queue (at most `queue` calls, in
arrival order, up to its deadline), and a call finding the queue full is refused at once
with RESOURCE_EXHAUSTED, reason DATASET_BUSY, a google.rpc.RetryInfo detail and a
`grpc-retry-pushback-ms` trailer: how long to wait before retrying, from the dataset's
recent call times. So one tenant's burst holds at most concurrency + queue of the pool's
threads and the other tenants' calls still find threads and cores.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Dict, Optional

from segments.engine import errors as E

from .errors import Overloaded

MIN_RETRY_MS = 20
MAX_RETRY_MS = 5_000


class _Lane:
    """One dataset's running calls, its queue and its recent call time."""
    __slots__ = ("running", "waiting", "ewma_ms")

    def __init__(self):
        self.running = 0
        self.waiting: deque = deque()   # threading.Event per queued call, oldest first
        self.ewma_ms = 10.0


class TenantGate:
    """Admission per dataset: `concurrency` calls at once, `queue` more waiting."""

    def __init__(self, concurrency: int, queue: int):
        if concurrency < 1:
            raise ValueError(f"tenant concurrency must be >= 1, got {concurrency!r}")
        if queue < 0:
            raise ValueError(f"tenant queue must be >= 0, got {queue!r}")
        self.concurrency = int(concurrency)
        self.queue = int(queue)
        self._lock = threading.Lock()
        self._lanes: Dict[str, _Lane] = {}
        self.refused = 0

    def retry_ms(self, lane: _Lane) -> int:
        """About when a slot frees: the queue ahead drained at the dataset's recent pace."""
        ahead = len(lane.waiting) + lane.running
        est = lane.ewma_ms * ahead / self.concurrency
        return int(min(MAX_RETRY_MS, max(MIN_RETRY_MS, est)))

    @contextmanager
    def admit(self, dataset: str, deadline: Optional[float] = None):
        """Run the block in one of the dataset's slots (waiting for one in its queue);
        Overloaded when the queue is full, Cancelled when the deadline passes waiting."""
        ev = None
        with self._lock:
            lane = self._lanes.get(dataset)
            if lane is None:
                lane = self._lanes[dataset] = _Lane()
            if lane.running < self.concurrency and not lane.waiting:
                lane.running += 1
            elif len(lane.waiting) < self.queue:
                ev = threading.Event()
                lane.waiting.append(ev)
            else:
                self.refused += 1
                ms = self.retry_ms(lane)
                raise Overloaded("dataset", f"dataset {dataset!r} has {lane.running} calls running and "
                                            f"{len(lane.waiting)} waiting, its limit; retry in {ms} ms", ms)
        if ev is not None:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not ev.wait(timeout):
                with self._lock:
                    if not ev.is_set():       # still queued: leave the queue
                        lane.waiting.remove(ev)
                        self._drop(dataset, lane)
                        raise E.Cancelled("", "deadline exceeded waiting for the dataset's earlier calls")
                # handed a slot just as the deadline passed: use it
        t0 = time.perf_counter()
        try:
            yield
        finally:
            ms = (time.perf_counter() - t0) * 1e3
            with self._lock:
                lane.ewma_ms = 0.8 * lane.ewma_ms + 0.2 * ms
                if lane.waiting:              # hand the slot to the oldest waiting call
                    lane.waiting.popleft().set()
                else:
                    lane.running -= 1
                    self._drop(dataset, lane)

    def _drop(self, dataset: str, lane: _Lane) -> None:
        if lane.running == 0 and not lane.waiting:
            self._lanes.pop(dataset, None)

    def stats(self) -> dict:
        """Datasets with calls running or waiting, and calls refused since start."""
        with self._lock:
            return {"busy_datasets": len(self._lanes), "running": sum(x.running for x in self._lanes.values()),
                    "waiting": sum(len(x.waiting) for x in self._lanes.values()), "refused": self.refused}
