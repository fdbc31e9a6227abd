"""Write a result table to Parquet or CSV (chosen by the file's extension), atomically."""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ..errors import InvalidArgument
from ..storage import space

FORMATS = ("parquet", "csv")


def format_of(path: str | os.PathLike) -> str:
    """"parquet" or "csv" from the extension; InvalidArgument otherwise."""
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise InvalidArgument("out", f"{str(path)!r}: expected a .parquet or .csv file name")
    return ext


def _csv_ready(table: pa.Table) -> pa.Table:
    """Lists become ;-separated text, as in the input CSV format."""
    cols = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            col = pc.binary_join(col, ";")
        cols[name] = col
    return pa.table(cols)


def write_table(table: pa.Table, path: str | os.PathLike) -> int:
    """Write table to path (.parquet or .csv) via a temp file and rename; returns rows."""
    fmt = format_of(path)
    path = Path(path)
    if not path.parent.is_dir():
        raise InvalidArgument("out", f"{str(path.parent)!r} is not a folder")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with space.reserve(path.parent, space.export_bytes(table, fmt), "the export"):
            if fmt == "parquet":
                pq.write_table(table, tmp, compression="zstd")
            else:
                pcsv.write_csv(_csv_ready(table), tmp)
            os.replace(tmp, path)
    except PermissionError:
        raise InvalidArgument("out", f"{str(path)!r}: permission denied") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return table.num_rows
