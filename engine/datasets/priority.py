"""Loads and compactions at a lower CPU priority than the calls that read.

Linux schedules threads one by one, and a thread's nice value is its own (a thread it
starts inherits it). A build runs in a thread of its own whose nice value is raised by
`nice` (`run_low`); a caller of a load waits for it. A thread can raise its nice value but
not lower it again without privilege, which is why the build gets a new thread rather than
the caller's. Numba's worker pool is started first from the caller's thread, so that the
kernels every read uses keep the normal priority.
"""
from __future__ import annotations

import os
import threading
from typing import Callable

DEFAULT_NICE = 10


def default_nice(environ=None) -> int:
    """$SEGMENTS_BUILD_NICE, else 10 (0: builds at the readers' priority)."""
    environ = os.environ if environ is None else environ
    text = environ.get("SEGMENTS_BUILD_NICE")
    if not text:
        return DEFAULT_NICE
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"SEGMENTS_BUILD_NICE: expected an integer 0..19, got {text!r}") from None
    if not 0 <= value <= 19:
        raise ValueError(f"SEGMENTS_BUILD_NICE: expected an integer 0..19, got {text!r}")
    return value


def _start_kernel_threads() -> None:
    try:
        from numba.np.ufunc import parallel
        parallel._launch_threads()
    except Exception:  # noqa: BLE001 - an older or newer numba: the pool starts on first use
        pass


def lower_this_thread(nice: int) -> None:
    """Raise the calling thread's nice value by `nice` (Linux; elsewhere nothing)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError:
        pass


def run_low(fn: Callable, nice: int, name: str = "build"):
    """fn() in a new thread at `nice` above the caller's priority; waits, returns its
    result or raises its exception. nice <= 0 runs fn in the calling thread."""
    if nice <= 0:
        return fn()
    _start_kernel_threads()
    out: dict = {}

    def body():
        lower_this_thread(nice)
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out["error"] = e
    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")
