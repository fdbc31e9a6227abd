"""Where an export may be written: <export_dir>/<dataset>/<file_name>, never elsewhere.

A file name is one plain path component (letters, digits, _ . -), so nothing can be written
outside the dataset's export folder; engine.exporter writes it atomically.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
from pathlib import Path
from typing import Optional

from segments.engine.errors import InvalidArgument
from segments.engine.evaluation.exporter import FORMATS

FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


def target_path(export_dir: Path, dataset: str, file_name: str, fmt: str) -> Path:
    """The checked path of an export file; InvalidArgument("file_name") if it could escape."""
    if fmt not in FORMATS:
        raise InvalidArgument("format", f"expected one of: {', '.join(FORMATS)}")
    if not file_name:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        file_name = f"export-{stamp}-{secrets.token_hex(3)}.{fmt}"
    if not FILE_RE.match(file_name) or ".." in file_name:
        raise InvalidArgument("file_name", f"{file_name!r} is not a plain file name "
                                           "(letters, digits, _ . -; no folders)")
    if not file_name.lower().endswith(f".{fmt}"):
        file_name = f"{file_name}.{fmt}"
    folder = (Path(export_dir) / dataset).resolve()
    path = (folder / file_name).resolve()
    if path.parent != folder:  # a symlinked name must not lead elsewhere
        raise InvalidArgument("file_name", f"{file_name!r} leaves the export folder")
    folder.mkdir(parents=True, exist_ok=True)
    return path


def relative_name(export_dir: Path, path: Path) -> str:
    """The file's name relative to the export folder (<dataset>/<file>)."""
    return path.relative_to(Path(export_dir).resolve()).as_posix()


def default_export_dir(data_dir: Optional[Path]) -> Path:
    """<data>/_exports unless told otherwise (no dataset name starts with "_")."""
    return Path(data_dir or ".") / "_exports"
