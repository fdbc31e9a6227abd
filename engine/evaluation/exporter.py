"""Write a result table to Parquet or CSV (chosen by the file's extension), atomically, with
where it came from: the segment, the ranking key, the as-of instant and the dataset's change
sequence. Parquet carries them as key-value metadata ("segments.segment", ...); a CSV gets a
sidecar `<file>.json` with the same keys (without the prefix) and the column types.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Optional

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


def provenance(m, segment_json: Optional[str], dataset: str, version: str = "") -> dict:
    """What an export records of its origin (a Materialized result): text values keyed
    dataset, segment (JSON text), rank_key, as_of (ISO-8601 UTC), change_sequence, rows,
    exported_at and by; keys with unknown values are left out."""
    out = {"dataset": dataset}
    if segment_json is not None:
        out["segment"] = segment_json
    out["rank_key"] = m.rank_key or ""
    if m.as_of is not None:
        out["as_of"] = _iso(m.as_of)
    if m.sequence is not None:
        out["change_sequence"] = str(int(m.sequence))
    out["rows"] = str(len(m.customer_ids))
    out["exported_at"] = _iso(dt.datetime.now(dt.timezone.utc))
    if version:
        out["by"] = version
    return out


def _iso(instant: dt.datetime) -> str:
    return instant.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def sidecar_path(path: str | os.PathLike) -> Path:
    """The metadata file beside a CSV export: <file>.json."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def sidecar(table: pa.Table, metadata: dict) -> dict:
    """The CSV sidecar's content: the metadata with typed values and the column types."""
    out = dict(metadata)
    if "segment" in out:
        out["segment"] = json.loads(out["segment"])
    for k in ("change_sequence", "rows"):
        if k in out:
            out[k] = int(out[k])
    out["rank_key"] = out.get("rank_key") or None
    out["columns"] = [{"name": f.name, "type": str(f.type)} for f in table.schema]
    return out


def write_table(table: pa.Table, path: str | os.PathLike, metadata: Optional[dict] = None) -> int:
    """Write table to path (.parquet or .csv) via a temp file and rename; returns rows.
    metadata (text -> text, see provenance()) goes into the Parquet file as
    "segments.<key>" key-value metadata, or into the CSV's sidecar <file>.json."""
    fmt = format_of(path)
    path = Path(path)
    if not path.parent.is_dir():
        raise InvalidArgument("out", f"{str(path.parent)!r} is not a folder")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with space.reserve(path.parent, space.export_bytes(table, fmt), "the export"):
            if fmt == "parquet":
                if metadata:
                    kv = dict(table.schema.metadata or {})
                    kv.update({f"segments.{k}".encode(): str(v).encode() for k, v in metadata.items()})
                    table = table.replace_schema_metadata(kv)
                pq.write_table(table, tmp, compression="zstd")
            else:
                pcsv.write_csv(_csv_ready(table), tmp)
                if metadata:
                    side = sidecar_path(path)
                    side_tmp = side.with_name(f".{side.name}.tmp")
                    side_tmp.write_text(json.dumps(sidecar(table, metadata), indent=2) + "\n")
                    os.replace(side_tmp, side)
            os.replace(tmp, path)
    except PermissionError:
        raise InvalidArgument("out", f"{str(path)!r}: permission denied") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return table.num_rows
