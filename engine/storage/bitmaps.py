"""Dense 0/1 masks to roaring bitmaps: a numba kernel writes roaring's portable format
directly, so pyroaring loads a result with one deserialize instead of a per-id insert."""
from __future__ import annotations

import numpy as np
from numba import njit, prange


SUM_BYTES = np.uint64(0x0101010101010101)   # w * this >> 56: the sum of w's eight 0/1 bytes
PACK_BYTES = np.uint64(0x0102040810204080)  # w * this >> 56: byte j of w becomes bit j


@njit(cache=True, nogil=True, inline="always")
def _word(mask, i):
    """Bytes mask[i:i+8] as a little-endian uint64 (i is a multiple of 8 within bounds)."""
    w = np.uint64(0)
    for j in range(8):
        w |= np.uint64(mask[i + j]) << np.uint64(8 * j)
    return w


@njit(cache=True, nogil=True, parallel=True)
def mask_to_roaring(mask):
    """Serialise a dense 0/1 mask as a portable roaring bitmap (no run containers), so
    pyroaring can load it with one deserialize instead of a per-id insert.

    Eight mask bytes are handled as one word: a multiply sums them (cardinalities) and
    another packs them into the eight bits of a bitset byte. Containers are counted and
    filled in parallel; their offsets come from a serial prefix sum."""
    n = mask.size
    nkeys = (n + 65535) >> 16
    cards = np.zeros(nkeys, dtype=np.int64)
    for key in prange(nkeys):
        s = key << 16
        e = min(n, s + 65536)
        full = s + ((e - s) & ~7)
        c = np.int64(0)  # int64: a uint8 sum would wrap at 256 without the JIT
        for i in range(s, full, 8):
            c += np.int64((_word(mask, i) * SUM_BYTES) >> np.uint64(56))
        for i in range(full, e):
            c += np.int64(mask[i])
        cards[key] = c
    nc = 0
    for key in range(nkeys):
        if cards[key] > 0:
            nc += 1
    keys = np.empty(nc, dtype=np.int64)
    offs = np.empty(nc, dtype=np.int64)
    pos = 8 + 8 * nc
    j = 0
    for key in range(nkeys):
        if cards[key] > 0:
            keys[j] = key
            offs[j] = pos
            pos += 2 * cards[key] if cards[key] <= 4096 else 8192
            j += 1
    out = np.zeros(pos, dtype=np.uint8)
    _put32(out, 0, 12346)
    _put32(out, 4, nc)
    for j in range(nc):
        _put16(out, 8 + 4 * j, keys[j])
        _put16(out, 8 + 4 * j + 2, cards[keys[j]] - 1)
        _put32(out, 8 + 4 * nc + 4 * j, offs[j])
    for j in prange(nc):
        s = keys[j] << 16
        e = min(n, s + 65536)
        p = offs[j]
        full = s + ((e - s) & ~7)
        if cards[keys[j]] <= 4096:
            for i in range(s, full, 8):
                if _word(mask, i) != 0:
                    for b in range(i, i + 8):
                        if mask[b] != 0:
                            _put16(out, p, b - s)
                            p += 2
            for b in range(full, e):
                if mask[b] != 0:
                    _put16(out, p, b - s)
                    p += 2
        else:
            for i in range(s, full, 8):
                out[p + ((i - s) >> 3)] = np.uint8((_word(mask, i) * PACK_BYTES) >> np.uint64(56))
            for b in range(full, e):
                if mask[b] != 0:
                    out[p + ((b - s) >> 3)] |= np.uint8(1 << ((b - s) & 7))
    return out


@njit(cache=True, nogil=True, inline="always")
def _put16(out, pos, v):
    out[pos] = v & 0xFF
    out[pos + 1] = (v >> 8) & 0xFF


@njit(cache=True, nogil=True, inline="always")
def _put32(out, pos, v):
    out[pos] = v & 0xFF
    out[pos + 1] = (v >> 8) & 0xFF
    out[pos + 2] = (v >> 16) & 0xFF
    out[pos + 3] = (v >> 24) & 0xFF
