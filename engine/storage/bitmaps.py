"""Dense 0/1 masks to roaring bitmaps: a numba kernel writes roaring's portable format
directly, so pyroaring loads a result with one deserialize instead of a per-id insert."""
from __future__ import annotations

import numpy as np
from numba import njit, prange


SUM_BYTES = np.uint64(0x0101010101010101)   # w * this >> 56: the sum of w's eight 0/1 bytes
PACK_BYTES = np.uint64(0x0102040810204080)  # w * this >> 56: byte j of w becomes bit j


@njit(cache=True, nogil=True, parallel=True)
def mask_to_roaring(mask):
    """Serialise a dense 0/1 mask as a portable roaring bitmap (no run containers), so
    pyroaring can load it with one deserialize instead of a per-id insert.

    Eight mask bytes are read as one little-endian word: a multiply sums them
    (cardinalities) and another packs them into the eight bits of a bitset byte. Containers
    are counted and filled in parallel; their offsets come from a serial prefix sum. (No
    small helpers taking arrays: numba's inlining of those costs more than the work.)"""
    n = mask.size
    n8 = n & ~7
    words = mask[:n8].view(np.uint64)
    nkeys = (n + 65535) >> 16
    cards = np.zeros(nkeys, dtype=np.int64)
    for key in prange(nkeys):
        s = key << 16
        e = min(n, s + 65536)
        full = min(e, n8)
        c = np.int64(0)  # int64: a uint8 sum would wrap at 256 without the JIT
        for w in range(s >> 3, full >> 3):
            c += np.int64((words[w] * SUM_BYTES) >> np.uint64(56))
        for i in range(max(full, s), e):
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
    header = np.empty(2 + 2 * nc, np.uint32)  # cookie, count, (key, card - 1) pairs packed below
    header[0] = 12346
    header[1] = nc
    out[0:8] = header[:2].view(np.uint8)
    if nc:
        kc = np.empty(2 * nc, np.uint16)
        for j in range(nc):
            kc[2 * j] = keys[j]
            kc[2 * j + 1] = cards[keys[j]] - 1
        out[8:8 + 4 * nc] = kc.view(np.uint8)
        out[8 + 4 * nc:8 + 8 * nc] = offs.astype(np.uint32).view(np.uint8)
    for j in prange(nc):
        s = keys[j] << 16
        e = min(n, s + 65536)
        p = offs[j]
        full = min(e, n8)
        if cards[keys[j]] <= 4096:
            vals = out[p:p + 2 * cards[keys[j]]].view(np.uint16)
            k = 0
            for w in range(s >> 3, full >> 3):
                if words[w] != 0:
                    for b in range(w << 3, (w << 3) + 8):
                        if mask[b] != 0:
                            vals[k] = b - s
                            k += 1
            for b in range(max(full, s), e):
                if mask[b] != 0:
                    vals[k] = b - s
                    k += 1
        else:
            for w in range(s >> 3, full >> 3):
                out[p + w - (s >> 3)] = np.uint8((words[w] * PACK_BYTES) >> np.uint64(56))
            for b in range(max(full, s), e):
                if mask[b] != 0:
                    out[p + ((b - s) >> 3)] |= np.uint8(1 << ((b - s) & 7))
    return out
