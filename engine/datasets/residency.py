"""Which datasets are open in this process: a budget of open datasets, descriptors and
mapped bytes, kept by closing the least recently used idle ones.

A dataset is *open* while its live version is loaded (its parts mapped, one descriptor
each, and its caches in memory). Closing one (`Dataset.unload`) drops the engine's
reference to that version; its parts are closed once no reader holds the snapshot any
more, so a call in flight is never cut short. Nothing is lost by closing: acknowledged
changes are in the version's change log (fsynced before the answer), and the next call
loads the version and its log again.

Every engine call on a dataset holds it (`hold`) for the call's length: a held dataset is
never closed, and a call on a closed one reopens it. After a call opens a dataset, the
least recently used datasets that nobody holds are closed until the open ones fit the
budget again; an optional sweeper also closes datasets idle for longer than
`idle_seconds`. A single dataset larger than the whole budget still opens (the budget
then holds that one alone).
"""
from __future__ import annotations

import os
import resource
import threading
import time
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Optional


def default_max_files() -> int:
    """Half the process's descriptor limit (the rest is for sockets, logs, exports)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(64, soft // 2)


@dataclass(frozen=True)
class Budget:
    """How much the open datasets may hold at once; 0 means no limit on that measure.

    datasets: open datasets; files: descriptors of their parts (one per part);
    mapped_bytes: bytes of their mapped parts; idle_seconds: close a dataset nobody has
    called for this long (0: only when over budget)."""
    datasets: int = 2000
    files: int = -1          # -1: default_max_files()
    mapped_bytes: int = 0
    idle_seconds: float = 0.0

    def resolved(self) -> "Budget":
        """This budget with defaults filled in and values checked (ValueError naming one)."""
        for name in ("datasets", "mapped_bytes"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"open-dataset budget: {name} must be >= 0 (0: no limit), got {getattr(self, name)!r}")
        if self.idle_seconds < 0:
            raise ValueError(f"open-dataset budget: idle_seconds must be >= 0, got {self.idle_seconds!r}")
        files = default_max_files() if self.files is None or self.files < 0 else int(self.files)
        return Budget(int(self.datasets), files, int(self.mapped_bytes), float(self.idle_seconds))

    @classmethod
    def from_env(cls, environ=None) -> "Budget":
        """Defaults overridden by SEGMENTS_MAX_OPEN_DATASETS, SEGMENTS_MAX_OPEN_FILES,
        SEGMENTS_MAX_MAPPED_BYTES and SEGMENTS_IDLE_CLOSE_SECONDS (ValueError naming a bad one)."""
        environ = os.environ if environ is None else environ
        kw = {}
        for field, var, kind in (("datasets", "SEGMENTS_MAX_OPEN_DATASETS", int),
                                 ("files", "SEGMENTS_MAX_OPEN_FILES", int),
                                 ("mapped_bytes", "SEGMENTS_MAX_MAPPED_BYTES", parse_bytes),
                                 ("idle_seconds", "SEGMENTS_IDLE_CLOSE_SECONDS", float)):
            if environ.get(var):
                try:
                    kw[field] = kind(environ[var])
                except ValueError:
                    raise ValueError(f"{var}: expected a number, got {environ[var]!r}") from None
        return cls(**kw)


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def parse_bytes(text) -> int:
    """'64G', '512MiB', '1000000' -> bytes (binary units); ValueError otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    s = str(text).strip().lower().replace(" ", "")
    num = s.rstrip("kmgtib")
    unit = s[len(num):]
    try:
        if unit not in _UNITS or float(num) < 0:
            raise ValueError
        return int(float(num) * _UNITS[unit])
    except ValueError:
        raise ValueError(f"expected a size such as 64G or 512M, got {text!r}") from None


class Residency:
    """The open datasets of one Engine, least recently used first, and the budget they keep.

    `open_of(name)` gives the Dataset object (kept for the process's life: it is small);
    whether its version is loaded is the Dataset's own business (`loaded()`, `unload()`)."""

    def __init__(self, budget: Budget, get: Callable[[str], object]):
        self.budget = budget.resolved()
        self._get = get
        self._lock = threading.Lock()
        self._lru: "OrderedDict[str, float]" = OrderedDict()   # open (loaded) datasets -> last use
        self._held: Dict[str, int] = {}
        self._foot: Dict[str, tuple] = {}                        # name -> (files, bytes) when last seen
        self._files = 0
        self._bytes = 0
        self.opened = 0       # loads of a closed dataset (cold calls) since start
        self.closed = 0       # datasets closed to keep the budget or when idle
        self._stop = threading.Event()
        self._sweeper: Optional[threading.Thread] = None
        if self.budget.idle_seconds > 0:
            self._start_sweeper()

    # ------------------------------------------------------------ calls
    @contextmanager
    def hold(self, name: str):
        """The Dataset `name`, held open for the block (reopened when it was closed)."""
        ds = self._get(name)
        with self._lock:
            self._held[name] = self._held.get(name, 0) + 1
            self._lru[name] = time.monotonic()
            self._lru.move_to_end(name)
        try:
            yield ds
        finally:
            self._release(name, ds)

    def touch(self, name: str, ds) -> None:
        """Account for a dataset used without holding it (a snapshot handed out)."""
        with self._lock:
            self._lru[name] = time.monotonic()
            self._lru.move_to_end(name)
        self._release(name, ds, held=False)

    def _release(self, name: str, ds, held: bool = True) -> None:
        foot = ds.footprint()
        with self._lock:
            if held:
                n = self._held.get(name, 1) - 1
                if n > 0:
                    self._held[name] = n
                else:
                    self._held.pop(name, None)
            old = self._foot.get(name)
            if old is not None:
                self._files -= old[0]
                self._bytes -= old[1]
            if foot is None:
                self._foot.pop(name, None)
                if name not in self._held:
                    self._lru.pop(name, None)
            else:
                self._foot[name] = foot
                self._files += foot[0]
                self._bytes += foot[1]
                if old is None:
                    self.opened += 1
            victims = self._over_budget()
        for victim, vds in victims:
            self._close(victim, vds)

    def forget(self, name: str) -> None:
        """A deleted dataset: no longer counted."""
        with self._lock:
            self._lru.pop(name, None)
            old = self._foot.pop(name, None)
            if old is not None:
                self._files -= old[0]
                self._bytes -= old[1]

    # ------------------------------------------------------------ closing
    def _over_budget(self) -> list:
        """Datasets to close (least recently used first, none held) for the open ones to
        fit the budget; the caller holds the lock. Their accounting is removed here."""
        b = self.budget
        out = []
        n, files, size = len(self._foot), self._files, self._bytes

        def over():
            return ((b.datasets and n > b.datasets) or (b.files and files > b.files)
                    or (b.mapped_bytes and size > b.mapped_bytes))
        if not over():
            return out
        for name in list(self._lru):
            if not over():
                break
            if name in self._held or name not in self._foot:
                continue
            f = self._foot.pop(name)
            self._lru.pop(name, None)
            n, files, size = n - 1, files - f[0], size - f[1]
            out.append((name, self._get(name)))
        self._files, self._bytes = files, size
        return out

    def _close(self, name: str, ds) -> None:
        if ds.unload():
            self.closed += 1
        else:  # busy (a compaction runs): still open, counted again at its next call
            with self._lock:
                if name not in self._foot:
                    foot = ds.footprint()
                    if foot is not None:
                        self._foot[name] = foot
                        self._files += foot[0]
                        self._bytes += foot[1]
                        self._lru[name] = time.monotonic()
                        self._lru.move_to_end(name, last=False)

    def close_idle(self, older_than: Optional[float] = None) -> int:
        """Close every dataset nobody holds and nobody called for `older_than` seconds
        (default: the budget's idle_seconds); returns how many were closed."""
        age = self.budget.idle_seconds if older_than is None else older_than
        cutoff = time.monotonic() - age
        victims = []
        with self._lock:
            for name, last in list(self._lru.items()):
                if last > cutoff:
                    break
                if name in self._held or name not in self._foot:
                    continue
                f = self._foot.pop(name)
                self._lru.pop(name, None)
                self._files -= f[0]
                self._bytes -= f[1]
                victims.append((name, self._get(name)))
        for name, ds in victims:
            self._close(name, ds)
        return len(victims)

    def _start_sweeper(self) -> None:
        period = max(0.05, min(self.budget.idle_seconds / 4, 30.0))
        me = weakref.ref(self)
        stop = self._stop

        def run():
            while not stop.wait(period):
                r = me()
                if r is None:
                    return
                try:
                    r.close_idle()
                finally:
                    del r
        self._sweeper = threading.Thread(target=run, name="segments-idle-close", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        """Stop the idle sweeper and forget every dataset (the engine closes them)."""
        self._stop.set()
        with self._lock:
            self._lru.clear()
            self._foot.clear()
            self._files = self._bytes = 0

    # ------------------------------------------------------------ inspection
    def stats(self) -> dict:
        """Open datasets, their descriptors and mapped bytes, the budget, and counters."""
        with self._lock:
            return {"open_datasets": len(self._foot), "open_files": self._files, "mapped_bytes": self._bytes,
                    "held": len(self._held), "opened": self.opened, "closed": self.closed,
                    "budget": {"datasets": self.budget.datasets, "files": self.budget.files,
                               "mapped_bytes": self.budget.mapped_bytes,
                               "idle_seconds": self.budget.idle_seconds}}
