"""Where an Ingest call may read: <ingest_root>/<dataset>/..., never elsewhere.

A server reads bulk-load files only below its configured ingest root, and a call for
dataset D only below <ingest_root>/D/: a token for one dataset cannot load another
tenant's uploads, exports, data folders or anything else on the server. The folder of a
request is relative to <ingest_root>/D/ ("." for that folder itself; an absolute path is
accepted when it lies inside it). It is resolved with symbolic links followed, and a
folder that resolves outside is refused with one message whatever is there, so an error
never tells whether a path outside exists. The root itself may not overlap the data
directory or the export folder (checked when the server is built).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from segments.engine.errors import FailedPrecondition, InvalidArgument
from segments.engine.model.limits import check_text

MAX_FOLDER_CHARS = 1024


def check_root(root: Path, data_dir: Path, export_dir: Path) -> Path:
    """The resolved ingest root; ValueError when it overlaps the data or export folders."""
    r = Path(root).resolve()
    for other, what in ((Path(data_dir).resolve(), "the data directory"),
                        (Path(export_dir).resolve(), "the export folder")):
        if r == other or other in r.parents or r in other.parents:
            raise ValueError(f"ingest root {r} overlaps {what} {other}: give a folder apart from both")
    return r


def resolve(root: Optional[Path], dataset: str, folder: str) -> Path:
    """The folder an Ingest of `dataset` reads; InvalidArgument("folder") outside
    <root>/<dataset>/, FailedPrecondition when the server has no ingest root."""
    if root is None:
        raise FailedPrecondition("folder", "this server takes no Ingest calls: start it with --ingest-root DIR "
                                           "and put each dataset's files under DIR/<dataset>/",
                                 reason="INGEST_DISABLED")
    check_text(folder, "folder", MAX_FOLDER_CHARS)
    if "\0" in folder:
        raise InvalidArgument("folder", "a folder name may not contain NUL")
    base = (Path(root) / dataset).resolve()
    target = Path(os.path.realpath(base / folder)) if folder else base
    if target != base and base not in target.parents:
        raise InvalidArgument("folder", f"must be a folder inside this dataset's ingest folder "
                                        f"(<ingest root>/{dataset}/), given relative to it",
                              reason="FOLDER_OUTSIDE_INGEST_ROOT")
    return target


def shown(root: Path, dataset: str, path: Path) -> str:
    """How an error names a folder: relative to the dataset's ingest folder."""
    try:
        rel = Path(path).relative_to((Path(root) / dataset).resolve()).as_posix()
    except ValueError:
        return "<outside>"
    return rel or "."
