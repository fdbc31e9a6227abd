"""What evaluation calls return: plain values and numpy / pyarrow arrays, no protobuf."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np


@dataclass(frozen=True)
class CountResult:
    """Result size and how many are reachable by email (present and opted in) and SMS."""
    count: int
    email_reachable: int
    sms_reachable: int
    missing_ids: Tuple[int, ...] = ()   # ids of `customers` conditions that do not exist
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class Preview:
    """The first rows (ranking order, else ascending customer_id) and the total size.

    Each row is a dict: customer_id, the requested profile fields (None for null; dates as
    datetime.date; tags as a list) and, when the segment is ranked, "rank_value" (cents for
    spend, a count, points, or a datetime.date for last_purchase; None when absent)."""
    rows: List[Dict[str, Any]]
    total: int
    missing_ids: Tuple[int, ...] = ()
    elapsed_ms: float = 0.0
    next_page_token: str = ""   # through a server: the token of the next page ("" on the last)


@dataclass
class Materialized:
    """Every customer of a result, in preview order.

    customer_ids: int64 array; columns: field name -> pyarrow Array aligned with it;
    rank_values: numpy array aligned with it when the segment is ranked (float64 with NaN
    for absent values for last_purchase/loyalty_points ranks, int64 otherwise), else None;
    rank_array() is the same typed by the key (date / int64, null when absent).
    as_of and sequence: the instant evaluated and the dataset's change sequence read
    (None when not known, e.g. for a group's members)."""
    customer_ids: np.ndarray
    columns: Dict[str, Any] = field(default_factory=dict)
    rank_values: Optional[np.ndarray] = None
    rank_key: Optional[str] = None
    missing_ids: Tuple[int, ...] = ()
    elapsed_ms: float = 0.0
    as_of: Optional[Any] = None
    sequence: Optional[int] = None

    def rank_array(self):
        """rank_values as a pyarrow Array typed by rank_key: date32 for last_purchase, int64
        otherwise, null where a customer has no value; None when not ranked."""
        if self.rank_values is None:
            return None
        return rank_array(self.rank_values, self.rank_key)

    def to_arrow(self):
        """A pyarrow Table: customer_id, the fields, and rank_value (typed) when ranked."""
        import pyarrow as pa

        cols = {"customer_id": pa.array(self.customer_ids, type=pa.int64())}
        cols.update(self.columns)
        if self.rank_values is not None:
            cols["rank_value"] = self.rank_array()
        return pa.table(cols)

    def rows(self, start: int, stop: int, compact: bool = False) -> "Materialized":
        """Rows [start, stop): views, or compact copies (to be pickled: a pyarrow slice
        pickles its whole buffer)."""
        import pyarrow as pa

        cols = {f: _whole(a).slice(start, stop - start) for f, a in self.columns.items()}
        ids = self.customer_ids[start:stop]
        rv = None if self.rank_values is None else self.rank_values[start:stop]
        if compact:
            cols = {f: pa.concat_arrays([a]) for f, a in cols.items()}
            ids, rv = ids.copy(), None if rv is None else rv.copy()
        return Materialized(ids, cols, rv, self.rank_key)


def _whole(a):
    """A pyarrow Array of an Array or ChunkedArray."""
    return a.combine_chunks() if hasattr(a, "combine_chunks") else a


@dataclass
class MaterializedStream:
    """A materialize answer in pieces: its size and header first, then `chunks`, the rows in
    output order as Materialized pieces (each at most the chunk size asked; at least one,
    empty for an empty result), so that whoever sends them never holds the whole result
    (cluster mode merges partition streams taken with back-pressure)."""
    total: int
    chunks: Iterator[Materialized]
    rank_key: Optional[str] = None
    missing_ids: Tuple[int, ...] = ()
    elapsed_ms: float = 0.0
    as_of: Optional[Any] = None
    sequence: Optional[int] = None

    @classmethod
    def of(cls, m: Materialized, chunk_ids: int) -> "MaterializedStream":
        """A whole Materialized, sent chunk_ids rows at a time."""
        n = len(m.customer_ids)
        pieces = (m.rows(a, min(n, a + chunk_ids)) for a in range(0, max(n, 1), chunk_ids)) if n > chunk_ids \
            else iter([m])
        return cls(n, pieces, m.rank_key, tuple(m.missing_ids), m.elapsed_ms, m.as_of, m.sequence)


def rank_array(values: np.ndarray, key: Optional[str]):
    """Rank values (numpy, NaN = absent) as a typed pyarrow Array (see Materialized)."""
    import pyarrow as pa

    v = np.asarray(values)
    absent = np.isnan(v) if v.dtype.kind == "f" else np.zeros(v.shape, bool)
    whole = np.where(absent, 0, v).astype(np.int64)
    if key == "last_purchase":
        return pa.array(whole.astype(np.int32), pa.int32(), mask=absent).cast(pa.date32())
    return pa.array(whole, pa.int64(), mask=absent if absent.any() else None)


def rank_values_of(array, key: Optional[str]) -> np.ndarray:
    """The inverse of rank_array: numpy rank values as the engine returns them."""
    import pyarrow as pa

    if pa.types.is_date32(array.type):
        array = array.cast(pa.int32())
    if key in ("last_purchase", "loyalty_points", "average_order_value"):
        return np.asarray(array.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.asarray(array.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


@dataclass(frozen=True)
class ExplainNode:
    """One node of an evaluated tree: its label (the condition as JSON text), result size
    (active customers matching it, summed over shards), time in ms, children, and the bytes
    of stored arrays its leaves read (approximate: what a condition costs in memory traffic)."""
    label: str
    size: int
    ms: float
    children: Tuple["ExplainNode", ...] = ()
    bytes_read: int = 0

    def to_dict(self) -> dict:
        return {"label": self.label, "size": self.size, "ms": round(self.ms, 3), "bytes_read": self.bytes_read,
                "children": [c.to_dict() for c in self.children]}

    def render(self, indent: int = 0) -> str:
        """An indented text tree."""
        line = f"{'  ' * indent}{self.label}  size={self.size}  {self.ms:.3f} ms  {_size(self.bytes_read)} read"
        return "\n".join([line] + [c.render(indent + 1) for c in self.children])


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
