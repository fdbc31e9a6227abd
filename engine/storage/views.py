"""Arrays by address, for kernels that read columns made of many pieces.

A column of a version is many pieces: one per shard and sorted run, each a zero-copy view
into the map of an LMDB part. Kernels take a table of piece addresses and lengths
(`PieceTable`) and make each piece an array again with `view_*(address, length)`, so one
compiled kernel serves any number of pieces. (numba typed Lists would do the same, but
their methods compile in every process: a second of latency on a server's first call.)

Invariant: whoever builds a PieceTable keeps the arrays it points to alive (it holds
them) for as long as kernels may read it. With NUMBA_DISABLE_JIT the views are ctypes
arrays over the same addresses.
"""
from __future__ import annotations

import ctypes

import numpy as np
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic, overload


@intrinsic
def _voidptr(typingctx, addr):
    sig = types.voidptr(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return sig, codegen


def _python_view(ctype, dtype):
    def view(addr, n):
        n = int(n)
        if n == 0:
            return np.zeros(0, dtype)
        return np.ctypeslib.as_array(ctypes.cast(int(addr), ctypes.POINTER(ctype)), (n,))
    return view


view_u8 = _python_view(ctypes.c_uint8, np.uint8)
view_u16 = _python_view(ctypes.c_uint16, np.uint16)
view_i16 = _python_view(ctypes.c_int16, np.int16)
view_i32 = _python_view(ctypes.c_int32, np.int32)
view_u32 = _python_view(ctypes.c_uint32, np.uint32)
view_i64 = _python_view(ctypes.c_int64, np.int64)
view_u64 = _python_view(ctypes.c_uint64, np.uint64)


def _register(fn, dtype):
    @overload(fn, inline="always")
    def _impl(addr, n):
        def impl(addr, n):
            return carray(_voidptr(addr), n, dtype)
        return impl


for _fn, _dt in ((view_u8, np.uint8), (view_u16, np.uint16), (view_i16, np.int16), (view_i32, np.int32),
                 (view_u32, np.uint32), (view_i64, np.int64), (view_u64, np.uint64)):
    _register(_fn, _dt)


class PieceTable:
    """Addresses and lengths of named columns over pieces: `addr[c, p]`, `size[c, p]` for
    column c of piece p (0 when a piece lacks the column). Holds the arrays it points to."""

    def __init__(self, columns: tuple, n_pieces: int):
        self.columns = {name: i for i, name in enumerate(columns)}
        self.addr = np.zeros((len(columns), n_pieces), np.uint64)
        self.size = np.zeros((len(columns), n_pieces), np.int64)
        self._keep: list = []

    @classmethod
    def of_shards(cls, columns: tuple, per_shard: list) -> "PieceTable":
        """One piece per (shard, {column: array}) of `per_shard`, in that order."""
        pt = cls(columns, len(per_shard))
        for k, (_, cols) in enumerate(per_shard):
            for name in columns:
                pt.set(name, k, cols[name])
        return pt

    def set(self, column: str, piece: int, array: np.ndarray) -> None:
        """Point column `column` of piece `piece` at `array` (contiguous, aligned)."""
        if array is None:
            return
        a = np.ascontiguousarray(array)
        if not a.flags.aligned:
            a = a.copy()
        self._keep.append(a)
        c = self.columns[column]
        self.addr[c, piece] = a.ctypes.data if a.size else 0
        self.size[c, piece] = a.size
