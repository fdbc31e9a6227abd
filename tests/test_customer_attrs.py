"""The live overlay carries derivations from batch to batch (take_derived / concat_derived,
several batches' chunks derived in one call) instead of re-deriving every changed customer:
each must equal derive() of the same rows, which is what the bulk builder runs."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from segments.engine.storage.customer_attrs import concat_derived, derive, take_derived
from segments.engine.storage.ingest_read import rows_table
from segments.engine.live.state import CUSTOMER_DICTS, Chunk, derive_chunks
from tests import datasets as D


def _customers(seed: int, n: int):
    return rows_table("customers", D.random_tables(seed, n)["customers"])


def _same(a, b) -> None:
    for part in ("dense", "flags", "groups"):
        x, y = getattr(a, part), getattr(b, part)
        assert x.keys() == y.keys()
        for k in x:
            assert np.array_equal(x[k], y[k]), (part, k)
    assert sorted(zip(a.tag_rows.tolist(), a.tag_codes.tolist())) == \
        sorted(zip(b.tag_rows.tolist(), b.tag_codes.tolist()))
    assert a.search.keys() == b.search.keys()
    for k in a.search:
        assert a.search[k].equals(b.search[k]), k


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_carried_derivations_equal_derive_of_the_rows(seed):
    a, b = _customers(seed, 300), _customers(seed + 100, 200)
    base = derive(a.slice(0, 0))
    dicts = {k: list(base.dicts[k]) for k in CUSTOMER_DICTS}
    da = derive(a, dicts)                                  # first batch extends the dictionaries
    db = derive(b, {k: da.dicts[k] for k in CUSTOMER_DICTS})  # the second extends them further
    both = concat_derived([da, db])
    rows = pa.concat_tables([a, b])
    _same(both, derive(rows, {k: db.dicts[k] for k in CUSTOMER_DICTS}))
    rng = np.random.default_rng(seed)
    for size in (0, 1, 37, rows.num_rows):
        idx = rng.choice(rows.num_rows, size, replace=False)
        _same(take_derived(both, idx), derive(rows.take(pa.array(idx, pa.int64())),
                                              {k: db.dicts[k] for k in CUSTOMER_DICTS}))


def test_chunks_derived_together_equal_each_derived_alone():
    parts = [_customers(seed, n) for seed, n in ((7, 50), (8, 1), (9, 120))]
    rows = pa.concat_tables(parts)
    dicts = {k: list(derive(rows).dicts[k]) for k in CUSTOMER_DICTS}
    chunks = []
    for p in parts:
        iids = np.arange(p.num_rows, dtype=np.int64)
        chunks.append(Chunk(p.append_column("_iid", pa.array(iids)), iids))
    chunks[1].derived(dicts)           # one already derived: left as it is
    derive_chunks(chunks, dicts)
    for c, p in zip(chunks, parts):
        _same(c._derived, derive(p, dicts, search=False))
    assert all(not c._derived.search for c in chunks)
