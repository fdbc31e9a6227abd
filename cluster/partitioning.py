"""Which partition owns a customer: a hash of customer_id, and tables split by it.

Hash, not ranges: customer_ids are the merchant's own numbers (sparse, any sign, new ones
often larger than all before), so ranges fixed at the first load drift out of balance as
customers arrive and would need rebalancing; a hash keeps every partition about 1/P of
the customers for any id scheme. Nothing is lost for evaluation: a dataset's customers are
independent, every call scatters to all partitions anyway, and the merge (counts summed,
ordered outputs merged by ranking value then customer_id) does not care where an id lives.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import pyarrow as pa

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def partition_of(customer_ids, partitions: int) -> np.ndarray:
    """The partition (0..partitions-1) of each customer_id: splitmix64's finaliser mod P
    (stable across processes and machines, unlike Python's hash)."""
    x = np.asarray(customer_ids, dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _M1
        x = x ^ (x >> np.uint64(27))
        x = x * _M2
        x = x ^ (x >> np.uint64(31))
    return (x % np.uint64(partitions)).astype(np.int64)


def split_rows(customer_ids, partitions: int) -> List[np.ndarray]:
    """Row positions of each partition, ascending within each."""
    part = partition_of(customer_ids, partitions)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(partitions + 1))
    return [order[bounds[p]:bounds[p + 1]] for p in range(partitions)]


def split_table(table: pa.Table, partitions: int) -> List[tuple]:
    """(sub-table, original row positions) per partition, by its customer_id column."""
    ids = table.column("customer_id").to_numpy(zero_copy_only=False)
    return [(table.take(pa.array(rows)), rows) for rows in split_rows(ids, partitions)]


def split_ids(ids, partitions: int) -> Dict[int, np.ndarray]:
    """Customer ids grouped by partition (partitions without any left out)."""
    ids = np.asarray(ids, dtype=np.int64)
    return {p: ids[rows] for p, rows in enumerate(split_rows(ids, partitions)) if rows.size}
