"""Failpoints: named places in a build where a test can make the process die at once.

With SEGMENTS_FAILPOINT=<name> in the environment, `failpoint(name)` ends the process with
os._exit (no cleanup, no flush: as a kill -9 would), so tests can prove that a crash at
that point of a build or compaction loses nothing acknowledged. Unset, it does nothing.
"""
from __future__ import annotations

import os

EXIT_CODE = 137


def failpoint(name: str) -> None:
    if os.environ.get("SEGMENTS_FAILPOINT") == name:
        os._exit(EXIT_CODE)
