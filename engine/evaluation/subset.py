"""Some customers of a view, evaluated at their own cost: tracked segments' maintenance
re-evaluates the customers a batch touched this way (engine/catalog/maintain.py).

`Subset(view, iids)` holds the given internal ids of a view (a LiveView or Snapshot),
renumbered shard by shard: the customers of shard s become s << bits' + 0, 1, ... in
internal id order, with bits' the fewest bits that hold the largest shard's share. It reads
like a LiveView for the leaves that read lines: its runs hold only these customers' lines
(copied once, in the run's order, without posting lists or aggregates), its appended lines
only theirs, its bitmaps and per-customer columns the view's at their rows.

`SubsetContext` evaluates a condition tree on a Subset: leaves that read lines run their
kernels over the subset's lines; every other leaf (profile values, text, groups) is taken
from a Context of the whole view (shared, so the segments of a round evaluate it once) and
restricted. Only kinds whose membership is per customer (model.kinds: Kind.per_customer)
may be evaluated so: the others compare customers with each other.
"""
from __future__ import annotations

import threading

import numpy as np
from pyroaring import BitMap, FrozenBitMap

from . import subset_kernels as SK
from .evaluate import Context, LEAVES
from ..errors import InvalidArgument
from ..live.view import DELTA_COLUMNS
from ..model import kinds
from ..model import segment as S
from ..model.segment import PRODUCT_FIELDS
from ..storage import layout as LY
from ..storage.orders import ORDER_COLUMNS
from ..storage.runs import LINE_COLUMNS
from ..storage.id_sets import unique_ids
from ..storage.snapshot import PIECE_NAMES, PieceSet
from ..storage.views import PieceTable

LINE_KINDS = frozenset(k.cls for k in kinds.KINDS if k.reads_lines)
NOT_PER_CUSTOMER = frozenset(k.cls for k in kinds.KINDS if not k.per_customer)
CUST_COLUMN = {"p": LY.P_CUST, "v": LY.V_CUST, "l": LY.L_CUST}
# Line columns gathered only once a leaf asks for them: purchases' product codes (a product
# filter reads its fields' codes: SubsetContext.product_filter), order keys (order
# conditions: Subset.order_pieces) and quantities (no condition reads them); visits' shops
# (a shop filter: SubsetContext.shop_lut). Gathering a line's column costs a cache line of
# the run wherever it lies, so the fewer columns the better.
LAZY_COLUMNS = {"p": frozenset({"quantity", "order", *(f"c.{f}" for f in PRODUCT_FIELDS)}),
                "v": frozenset({"shop"})}


def _ascending(a: np.ndarray) -> bool:
    """Strictly ascending (sorted, no repeats)?"""
    return a.size < 2 or bool((a[1:] > a[:-1]).all())


class _LutPool:
    """Lookup tables of -1 reused from round to round (a new one of a shard's rows per shard
    costs its page faults each round); whoever takes one gives it back all -1 again."""

    def __init__(self, keep: int = 2):
        self._free: list = []
        self._keep = keep
        self._lock = threading.Lock()

    def take(self, rows: int, width: int, dtype=np.int32) -> np.ndarray:
        rows = max(rows, 1)
        with self._lock:
            for i, a in enumerate(self._free):
                if a.shape[1] == width and a.shape[0] >= rows and a.dtype == dtype:
                    return self._free.pop(i)
        return np.full((rows, width), -1, dtype)

    def give(self, a: np.ndarray) -> None:
        with self._lock:
            self._free.append(a)
            self._free.sort(key=lambda x: x.size)
            del self._free[:-self._keep]


_LUTS = _LutPool()          # shard row -> subset rank, per shard of a subset's runs
_LINE_LUTS = _LutPool(1)    # internal id -> subset id, for a subset's appended lines


class _Selected:
    """The subset's lines of one table's runs (positions `pos` in the runs, pieces' bounds
    `ptr`) and the piece table of the subset's runs, whose columns are gathered on demand.
    `addr`, `size`, `rows`: the runs' piece table columns and line counts."""

    def __init__(self, dtypes: dict, pt: PieceTable, addr, size, rows, ptr, pos):
        self.dtypes, self.pt = dtypes, pt
        self.addr, self.size, self.rows, self.ptr, self.pos = addr, size, rows, ptr, pos
        self.some = np.diff(ptr) > 0

    def place(self, name: str, out: np.ndarray, has: np.ndarray) -> None:
        """Point column `name` of the pieces with lines (and `has`) at their rows of `out`."""
        c = self.pt.columns[name]
        has = has & self.some
        self.pt.addr[c] = np.where(has, np.uint64(out.ctypes.data) + (self.ptr[:-1] * out.itemsize).astype(np.uint64), 0)
        self.pt.size[c] = np.where(has, np.diff(self.ptr), 0)
        self.pt._keep.append(out)

    def gather(self, names) -> None:
        """Gather these line columns of the selected lines, in one kernel call."""
        named = [(n, np.dtype(d)) for n, d in self.dtypes.items() if n in names and n != "cust"]
        if not named:
            return
        total = int(self.ptr[-1])
        cidx = np.asarray([self.pt.columns[n] for n, _ in named], np.int64)
        outs = [np.empty(total, d) for _, d in named]
        if total:
            SK.gather_lines(self.addr, self.size, self.rows, cidx, np.asarray([d.itemsize for _, d in named], np.int64),
                            np.asarray([o.ctypes.data for o in outs], np.uint64), self.ptr, self.pos)
        for (n, _), c, out in zip(named, cidx, outs):
            self.place(n, out, self.size[c] == self.rows)   # a column a run lacks (order keys may) stays empty


class _Lines:
    """The subset's appended lines by shard, as LiveState.lines gives them."""

    def __init__(self, subset: "Subset"):
        self._subset = subset

    def lines(self, prefix: str):
        return self._subset._lines(prefix)


class Subset:
    """The customers `iids` (internal ids of `view`) renumbered densely per shard."""

    empty = False
    ordered = True
    manifest = None      # no pair indexes: the subset's runs hold lines only

    def __init__(self, view, iids: np.ndarray):
        self.view = view
        iids = np.asarray(iids, np.int64)
        self.iids = iids if _ascending(iids) else unique_ids(iids)
        self.zone = view.zone
        self.meta = getattr(view, "meta", {})
        bits = int(view.shard_bits)
        self.view_bits = bits
        shard = self.iids >> bits
        starts = np.flatnonzero(np.r_[True, shard[1:] != shard[:-1]]) if shard.size else np.zeros(0, np.int64)
        self.shards = shard[starts]
        counts = np.diff(np.r_[starts, shard.size])
        self.shard_bits = max(1, int(counts.max() - 1).bit_length()) if counts.size else 1
        rank = np.arange(self.iids.size, dtype=np.int64) - np.repeat(starts, counts)
        self.ids = (shard << self.shard_bits) + rank          # the subset id of each of iids
        self.rank = rank
        self.n = int(self.ids[-1]) + 1 if self.ids.size else 0
        self.state = _Lines(self)
        self._cache: dict = {}
        self._bitmap = BitMap(self.iids.astype(np.uint32))
        # line columns gathered into the subset's runs: the others when a leaf asks for them
        self._wanted = {prefix: set(cols) - LAZY_COLUMNS.get(prefix, frozenset())
                        for prefix, cols in LINE_COLUMNS.items()}
        self._selected: dict = {}

    def _mine(self, key, make):
        v = self._cache.get(key)
        if v is None:
            v = self._cache[key] = make()
        return v

    # ------------------------------------------------------------ ids
    def to_view(self, ids: np.ndarray) -> np.ndarray:
        """The view's internal ids of subset ids (of real customers, not the gaps)."""
        ids = np.asarray(ids, np.int64)
        shard = ids >> self.shard_bits
        at = np.searchsorted(self.shards, shard)
        starts = np.searchsorted(self.iids >> self.view_bits, self.shards)
        return self.iids[starts[at] + (ids - (shard << self.shard_bits))]

    def restrict(self, bm) -> BitMap:
        """A bitmap of the view's internal ids as this subset's ids (those in the subset)."""
        hit = np.asarray((bm & self._bitmap).to_array(), np.int64) if len(bm) else np.zeros(0, np.int64)
        if not hit.size:
            return BitMap()
        return BitMap(self.ids[np.searchsorted(self.iids, hit)].astype(np.uint32))

    # ------------------------------------------------------------ what leaves read
    def bitmap(self, field: str, code: int = 1) -> FrozenBitMap:
        return self._mine(("b", field, code), lambda: FrozenBitMap(self.restrict(self.view.bitmap(field, code))))

    @property
    def alive(self) -> FrozenBitMap:
        return self.bitmap("alive")

    def array(self, key: str, dtype) -> np.ndarray:
        def make():
            full = np.asarray(self.view.array(key, dtype))
            out = np.zeros(self.n, full.dtype)
            out[self.ids] = full[self.iids]
            return out
        return self._mine(("a", key), make)

    def ext_ids(self) -> np.ndarray:
        return self.array("c/ext_id", np.int64)

    def dictionary(self, name: str) -> list:
        return self.view.dictionary(name)

    def code_of(self, name: str) -> dict:
        return self.view.code_of(name)

    def pieces(self, prefix: str) -> PieceSet:
        """The version's runs of a line table, each with only the subset's lines."""
        return self._mine(("pieces", prefix), lambda: self._pieces(prefix))

    def _pieces(self, prefix: str) -> PieceSet:
        names = PIECE_NAMES[prefix]
        ps = self.view.pieces(prefix)
        k_of = {int(s): k for k, s in enumerate(ps.shard)}
        take = [(int(s), k_of[int(s)]) for s in self.shards if int(s) in k_of]
        # lut rows: shard row -> subset rank (-1: not in the subset); the shard's customers
        # past the version's shard size (created since) stay out, as the view's kernels do
        luts = _LUTS.take(len(take), 1 << self.view_bits)
        out = self._select(prefix, names, ps, take, luts)
        _LUTS.give(luts)    # not after an error: it may not be all -1 again
        return out

    def _select(self, prefix, names, ps, take, luts) -> PieceSet:
        """_pieces with the lookup tables it fills (all -1 on entry, left as they were)."""
        pieces, lut_of, shard_ptr, base, nn, set_at = [], [], [0], [], [], []
        starts = np.searchsorted(self.iids >> self.view_bits, self.shards)
        j_of = {int(s): j for j, s in enumerate(self.shards)}
        for row, (s, k) in enumerate(take):
            j = j_of[s]
            lo, hi = starts[j], (starts[j + 1] if j + 1 < starts.size else self.iids.size)
            local = self.iids[lo:hi] - int(ps.base[k])
            inside = local < int(ps.n[k])
            luts[row, local[inside]] = self.rank[lo:hi][inside]
            set_at.append((row, local[inside]))
            for p in range(int(ps.shard_ptr[k]), int(ps.shard_ptr[k + 1])):
                pieces.append(p)
                lut_of.append(row)
            shard_ptr.append(len(pieces))
            base.append(s << self.shard_bits)
            nn.append(int(inside.sum()))
        lut_of = np.asarray(lut_of, np.int64)
        src = np.asarray(pieces, np.int64)
        col = CUST_COLUMN[prefix]
        addr = np.ascontiguousarray(ps.addr[:, src]) if src.size else np.zeros((len(names), 0), np.uint64)
        size = np.ascontiguousarray(ps.size[:, src]) if src.size else np.zeros((len(names), 0), np.int64)
        counts = np.zeros(src.size, np.int64)
        if src.size:
            SK.count_lines(addr, size, col, lut_of, luts, counts)
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        pos = np.empty(int(ptr[-1]), np.int64)
        cust = np.empty(int(ptr[-1]), np.uint16)
        if src.size:
            SK.select_lines(addr, size, col, lut_of, luts, ptr, pos, cust)
        for row, at in set_at:
            luts[row, at] = -1
        pt = PieceTable(names, src.size)
        meta = np.zeros((src.size, LY.M_NMETA), np.int64)
        meta[:, LY.M_ROWS] = counts
        assert pt.columns == ps.table.columns
        sel = self._selected[prefix] = _Selected(LINE_COLUMNS[prefix], pt, addr, size,
                                                 np.ascontiguousarray(ps.meta[src, LY.M_ROWS], np.int64), ptr, pos)
        sel.place("cust", cust, np.ones(src.size, bool))
        sel.gather(self._wanted[prefix])
        return PieceSet(pt, meta, np.asarray(shard_ptr, np.int64), np.asarray([s for s, _ in take], np.int64),
                        np.asarray(base, np.int64), np.asarray(nn, np.int64), [ps.runs[p] for p in src])

    def want(self, prefix: str, names) -> None:
        """Line columns of a table that a leaf is about to read: gathered now if the subset's
        runs were already made without them (see LAZY_COLUMNS)."""
        new = [n for n in names if n not in self._wanted[prefix]]
        if not new:
            return
        self._wanted[prefix].update(new)
        sel = self._selected.get(prefix)
        if sel is not None:
            sel.gather(new)

    def _lines(self, prefix: str):
        """[(shard, columns)] of the subset's appended lines (None when none)."""
        def make():
            per_shard = self.view.state.lines(prefix) if hasattr(self.view, "state") else None
            if not per_shard:
                return False
            # the view's internal id -> subset id (-1 outside the subset), all -1 again after
            width = max(int(self.view.n), int(self.iids[-1]) + 1 if self.iids.size else 0)
            table = _LINE_LUTS.take(1, width, np.int64)
            lut = table[0]
            lut[self.iids] = self.ids
            out = []
            for s, cols in per_shard:
                sub = lut[cols["iid"]]
                sel = np.flatnonzero(sub >= 0)
                if not sel.size:
                    continue
                mine = {k: np.ascontiguousarray(a[sel]) for k, a in cols.items() if k != "iid"}
                mine["iid"] = sub[sel]
                out.append((int(s), {k: mine[k] for k in cols}))
            lut[self.iids] = -1
            _LINE_LUTS.give(table)   # not after an error: it may not be all -1 again
            return out or False
        return self._mine(("lines", prefix), make) or None

    def order_pieces(self) -> PieceTable:
        """No stored orders (a subset's runs hold lines only; its context has no access path
        to aggregates, so order conditions group the lines): one empty piece per run. Asked
        by order conditions before they read lines: their lines' order keys are gathered."""
        self.want("p", ("order",))
        return self._mine(("order_pieces",),
                          lambda: PieceTable(tuple(ORDER_COLUMNS), self.pieces("p").table.addr.shape[1]))

    def delta(self, prefix: str):
        """The subset's appended lines of a line table as a PieceTable (as LiveView.delta)."""
        def make():
            per_shard = self._lines(prefix)
            if per_shard is None:
                return False
            return PieceTable.of_shards(DELTA_COLUMNS[prefix], per_shard)
        return self._mine(("delta", prefix), make) or None


SUBSET_THREADS = 1   # threads a subset's kernels use (see kernel_threads)


class kernel_threads:
    """Run the kernels called inside on at most `n` threads of the calling thread (numba's
    count is per calling thread). A subset's shards hold few lines each: waking the pool's
    threads for each of its many small kernels costs more than they save, and on a busy
    machine they wait to be scheduled (and spin, taking the writer's core)."""

    def __init__(self, n: int = SUBSET_THREADS):
        self.n = n

    def __enter__(self):
        import numba
        self.before = numba.get_num_threads()
        numba.set_num_threads(max(1, min(self.n, self.before)))
        return self

    def __exit__(self, *exc):
        import numba
        numba.set_num_threads(self.before)
        return False


class SubsetContext(Context):
    """A Context over a Subset: leaves that read lines run on the subset's lines, the
    others come from `whole` (a Context of the whole view at the same instant), restricted."""

    def __init__(self, subset: Subset, whole: Context):
        super().__init__(subset, whole.asof.instant, whole.deadline)
        self.whole = whole
        self.access_paths = 0    # the subset's runs hold lines only: scan them

    def product_filter(self, f: S.ProductFilter):
        """Context.product_filter, the subset's runs given the codes of the filter's fields."""
        self.snap.want("p", [f"c.{name}" for name, _ in f.fields])
        return super().product_filter(f)

    def shop_lut(self, shops):
        """Context.shop_lut, the subset's visit runs given their shops when some are named."""
        if shops:
            self.snap.want("v", ("shop",))
        return super().shop_lut(shops)

    def leaf(self, cond: S.Condition) -> BitMap:
        t = type(cond)
        if t in NOT_PER_CUSTOMER or getattr(t, "per_customer", True) is False:
            raise InvalidArgument("segment", f"{t.__name__} compares customers with each other: "
                                  "it cannot be evaluated for some customers alone")
        if t in LINE_KINDS:
            return LEAVES[t](self, cond)
        self.whole.references = self.references
        self.whole.reference_path = self.reference_path
        return self.snap.restrict(self.whole.eval(cond))
