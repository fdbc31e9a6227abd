"""Values the storage format and the kernels that read it agree on.

Line kernels read a table's runs through a PieceTable (engine.storage.views) whose rows are
the columns below, in this order; a kernel names a column by its index here. Product
fields are numbered as engine.model.segment.PRODUCT_FIELDS.
"""
from __future__ import annotations

import os

import numpy as np

NO_DAY = np.int64(-(2**62))
FIRST_NONE = np.int32(2**31 - 1)   # stored first sale day of a customer without one
LAST_NONE = np.int32(-(2**31))     # stored last sale day of a customer without one

VISIT_COMPLETED = 1
VISIT_BOOKED = 2
LAYBY_OPEN = 1

N_PRODUCT_FIELDS = 8

# A shard of fewer customers than this is built lean: its purchases runs keep lines and
# posting lists only (no per-code aggregates, pair indexes or order summaries) and its
# customer object no trigram index. Each of those has a reader that works without it (lines
# read through the posting lists, text scanned row by row), so answers are the same; what
# changes is bytes on disk and build time against query time (docs/benchmarks.md, "Many
# tenants"). 0 (the default): no shard is lean. $SEGMENTS_LEAN_CUSTOMERS sets it.
LEAN_CUSTOMERS = int(os.environ.get("SEGMENTS_LEAN_CUSTOMERS") or 0)


def lean_shard(n: int) -> bool:
    """Is a shard of n customers built lean (LEAN_CUSTOMERS)?"""
    return n < LEAN_CUSTOMERS

# ---- purchases: per-line columns, then per field: codes, posting lists, aggregates
P_CUST, P_DAY, P_TS, P_AMOUNT, P_QTY = 0, 1, 2, 3, 4
P_CODE = 5                       # + field: uint32 code of each line
P_XCODES = P_CODE + 8            # + field: uint32 codes with postings (ascending)
P_XPTR = P_XCODES + 8            # + field: int64 CSR offsets
P_XPOS = P_XPTR + 8              # + field: uint32 line positions
P_ACODES = P_XPOS + 8            # + field: uint32 codes with aggregates
P_APTR = P_ACODES + 8            # + field: int64 CSR offsets
P_ACUST = P_APTR + 8             # + field: uint16 local customer of each entry
P_ASPEND = P_ACUST + 8           # + field: int64 net spend
P_ACOUNT = P_ASPEND + 8          # + field: int32 sale count
P_AFIRST = P_ACOUNT + 8          # + field: int32 first sale day
P_ALAST = P_AFIRST + 8           # + field: int32 last sale day
P_ALL_SPEND = P_ALAST + 8        # per customer (dense): int64
P_ALL_COUNT = P_ALL_SPEND + 1    # int32
P_ALL_FIRST = P_ALL_COUNT + 1    # int32
P_ALL_LAST = P_ALL_FIRST + 1     # int32
MAX_PAIRS = 6                    # pair index slots (engine.storage.runs.MAX_PAIRS)
P_PXCODES = P_ALL_LAST + 1       # + slot: uint64 composite codes with postings
P_PXPTR = P_PXCODES + MAX_PAIRS  # + slot
P_PXPOS = P_PXPTR + MAX_PAIRS    # + slot
P_PACODES = P_PXPOS + MAX_PAIRS  # + slot: uint64 composite codes with aggregates
P_PAPTR = P_PACODES + MAX_PAIRS
P_PACUST = P_PAPTR + MAX_PAIRS
P_PASPEND = P_PACUST + MAX_PAIRS
P_PACOUNT = P_PASPEND + MAX_PAIRS
P_PAFIRST = P_PACOUNT + MAX_PAIRS
P_PALAST = P_PAFIRST + MAX_PAIRS
P_ORDER = P_PALAST + MAX_PAIRS   # int64 order key of each line (engine.storage.orders; absent in older runs)
# month marks (engine.storage.runs): K local month-start days, then per mark j and customer c
# (index j * n + c, n the run's customers at build) the sums over the run's lines dated before it
P_MDAYS = P_ORDER + 1            # int32 [K] ascending
P_MSPEND = P_MDAYS + 1           # int64 [K * n] net spend
P_MCOUNT = P_MSPEND + 1          # int32 [K * n] sale count
P_MLAST = P_MCOUNT + 1           # int32 [K * n] last sale day (LAST_NONE: none)
P_NCOLS = P_MLAST + 1

# ---- a purchases run's orders (engine.storage.orders; Snapshot.order_pieces, one piece per run)
O_DAY, O_TS, O_CUST, O_NET, O_SALE, O_LAST = 0, 1, 2, 3, 4, 5
O_ALL_NUM, O_ALL_NET, O_ALL_SALE, O_TAIL, O_SPREAD, O_KEYS, O_META = 6, 7, 8, 9, 10, 11, 12
O_MDAYS, O_MSALE = 13, 14   # the run's month marks (P_MDAYS) and per mark and customer the orders
                            # with a sale dated before it (int32 [K * n]; engine.storage.runs)
O_NCOLS = 15

# ---- visits and laybys
V_CUST, V_DAY, V_TS, V_STATUS, V_SHOP = 0, 1, 2, 3, 4
V_ALL_COUNT, V_ALL_FIRST, V_ALL_LAST = 5, 6, 7   # per customer: completed visits, first / last day
V_NCOLS = 8
L_CUST, L_OPENED, L_DUE, L_BALANCE, L_STATUS = 0, 1, 2, 3, 4
L_NCOLS = 5

# ---- per-piece facts (PieceSet.meta[piece, k])
M_ROWS = 0          # lines in the run
M_AGG = 1           # 1 when the run has all-time aggregates
M_CUTOFF = 2        # ... over lines on days <= this
M_AGG_MICROS = 3    # ... whose newest instant is this (usable as of this instant or later)
M_AGG_FIELDS = 4    # bit f set: field f has per-code aggregates; bit 8 + s: pair slot s has
M_PAIRS = 5         # bit s set: the run has pair slot s's posting lists
M_NMETA = 6

# ---- appended (live) lines: columns of one shard's buffer
D_IID, D_DAY, D_TS, D_AMOUNT, D_CODES, D_ORDER = 0, 1, 2, 3, 4, 5   # purchases; D_CODES: (n, 8) int32 row-major
DV_IID, DV_DAY, DV_TS, DV_STATUS, DV_SHOP = 0, 1, 2, 3, 4
DL_IID, DL_OPENED, DL_DUE, DL_BALANCE, DL_STATUS = 0, 1, 2, 3, 4
