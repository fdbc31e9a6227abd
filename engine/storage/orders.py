"""Order keys: purchases.order_id as one int64 per line.

A line's order key is the FNV-1a 64 of its order_id's UTF-8 text (never 0), or 0 when the
order_id is null (such lines form orders by (customer_id, purchased_at): shared/spec
behaviour.md). Orders are per customer, so a hash collision would have to fall between two
order ids of one customer to matter.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import build_kernels as K


def order_keys(col) -> np.ndarray:
    """int64 order key of each value of a string (or integer) column; None: every key 0."""
    if col is None:
        return np.zeros(0, np.int64)
    if isinstance(col, pa.ChunkedArray):
        chunks = col.chunks
        n = len(col)
    else:
        chunks, n = [col], len(col)
    out = np.zeros(n, np.int64)
    at = 0
    for ch in chunks:
        if not pa.types.is_string(ch.type):
            ch = pc.cast(ch, pa.string())
        m = len(ch)
        if m:
            bufs = ch.buffers()
            offsets = np.frombuffer(bufs[1], np.int32)[ch.offset: ch.offset + m + 1]
            data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(1, np.uint8)
            valid = np.asarray(ch.is_valid().to_numpy(zero_copy_only=False), np.uint8)
            K.order_keys(data, offsets, valid, out[at:at + m])
        at += m
    return out
