"""Sorted customer_id sets (engine/storage/id_sets.py) against pyroaring's BitMap64 and numpy.

Oracle: BitMap64(ids, optimize=False).serialize() byte for byte, BitMap64.deserialize (of
these bytes and of what BitMap64 wrote before, with run containers), and np.isin."""
from __future__ import annotations

import numpy as np
import pytest
from pyroaring import BitMap64

from segments.engine.storage.id_sets import deserialize_ids, serialize_ids, sorted_in


def _cases():
    rng = np.random.default_rng(3)
    yield np.zeros(0, np.int64)
    yield np.asarray([0], np.int64)
    yield np.asarray([65535, 65536, 2**32 - 1], np.int64)
    yield np.arange(1000, 301_000, dtype=np.int64)                       # bitset containers
    yield np.unique(rng.integers(0, 2**31, 200_000))                     # array containers
    yield np.unique(np.concatenate([rng.integers(0, 70_000, 9_000),      # both kinds, one bucket
                                    rng.integers(2**20, 2**20 + 3_000, 100)]))
    yield np.unique(rng.integers(0, 2**40, 50_000))                      # many buckets
    yield np.unique(np.concatenate([np.arange(4090, 4100), [2**32, 2**32 + 5, 3 * 2**32 + 7]]))
    yield np.asarray([-5, -1, 3, 2**40], np.int64)                      # negative ids


@pytest.mark.parametrize("ids", list(_cases()), ids=lambda a: f"n{a.size}")
def test_serialize_matches_bitmap64(ids):
    got = serialize_ids(ids)
    assert got == BitMap64(ids.astype(np.uint64), optimize=False).serialize()   # no run containers
    assert BitMap64.deserialize(got) == BitMap64(ids.astype(np.uint64))
    for data in (got, BitMap64(ids.astype(np.uint64)).serialize()):   # as written before: run containers
        back = deserialize_ids(data)
        assert np.array_equal(back, np.asarray(BitMap64.deserialize(data).to_array(), np.uint64).astype(np.int64))
        if ids.size and ids[0] >= 0:
            assert np.array_equal(back, ids)


def test_sorted_in_matches_isin():
    rng = np.random.default_rng(4)
    for na, nb, hi in ((0, 10, 50), (10, 0, 50), (1000, 1000, 3000), (50, 100_000, 10**6), (100_000, 50, 10**6),
                       (200_000, 150_000, 400_000)):
        a = np.unique(rng.integers(0, hi, na))
        b = np.unique(rng.integers(0, hi, nb))
        assert np.array_equal(sorted_in(a, b), np.isin(a, b))
    from segments.engine.catalog.audiences import sorted_in as either
    for na, nb in ((30, 100_000), (100_000, 30), (5000, 6000)):
        a, b = np.unique(rng.integers(0, 10**6, na)), np.unique(rng.integers(0, 10**6, nb))
        assert np.array_equal(either(a, b), np.isin(a, b))
    from segments.engine.storage.id_sets import sorted_in_gallop
    for na, nb, hi in ((0, 10, 50), (10, 0, 50), (1, 1, 3), (50, 100_000, 10**6), (2000, 100_000, 150_000),
                       (100, 1000, 10**9), (5000, 5000, 6000)):
        a = np.unique(rng.integers(-hi, hi, na))
        b = np.unique(rng.integers(-hi, hi, nb))
        a = np.unique(np.concatenate([a, b[::max(1, nb // 7)]]))    # some of b for sure
        assert np.array_equal(sorted_in_gallop(a, b), np.isin(a, b)), (na, nb)


def test_apply_changes_matches_set_operations():
    """A membership with some ids exited and others entered: one merge (id_sets.sorted_apply)
    equals numpy's set difference and union."""
    from segments.engine.catalog.audiences import apply_changes
    rng = np.random.default_rng(5)
    for n, n_in, n_out in ((0, 0, 0), (0, 5, 0), (10, 0, 10), (1000, 30, 40), (200_000, 5000, 3000), (50, 500, 0)):
        ids = np.unique(rng.integers(-10, 10**6, n))
        outside = np.setdiff1d(np.unique(rng.integers(-20, 2 * 10**6, n_in + 100)), ids)[:n_in]
        entered = np.sort(rng.permutation(outside))
        exited = np.sort(rng.choice(ids, min(n_out, ids.size), replace=False)) if ids.size else ids
        got = apply_changes(ids, entered, exited)
        assert got.dtype == np.int64
        assert np.array_equal(got, np.union1d(np.setdiff1d(ids, exited), entered)), (n, n_in, n_out)


@pytest.mark.parametrize("merge_min", [1, 50, 10**9])
def test_membership_changes_match_a_set(merge_min, monkeypatch):
    """A Membership under random rounds of entered / exited (customers entering, leaving and
    coming back, merged into the base at various points) holds what a plain set holds."""
    from segments.engine.catalog.audiences import Membership
    monkeypatch.setattr(Membership, "MERGE_MIN", merge_min)
    rng = np.random.default_rng(6)
    universe = np.unique(rng.integers(-1000, 10**6, 3000))
    ref = set(rng.choice(universe, 800, replace=False).tolist())
    m = Membership(np.asarray(sorted(ref), np.int64))
    for _ in range(60):
        touched = np.unique(rng.choice(universe, rng.integers(1, 200)))
        now = rng.random(touched.size) < 0.5
        was = np.asarray([x in ref for x in touched.tolist()])
        assert np.array_equal(m.contains(touched), was)
        entered, exited = touched[now & ~was], touched[~now & was]
        before = m
        m = m.apply(entered, exited)
        ref = (ref - set(exited.tolist())) | set(entered.tolist())
        assert m.size == len(ref)
        assert before.size == len(ref) - entered.size + exited.size, "apply leaves the old one as it was"
        if rng.random() < 0.3:
            assert np.array_equal(m.array(), np.asarray(sorted(ref), np.int64))
    assert np.array_equal(m.array(), np.asarray(sorted(ref), np.int64))


def test_unique_ids_matches_np_unique():
    from segments.engine.storage.id_sets import unique_ids
    rng = np.random.default_rng(8)
    for n, hi in ((0, 5), (1, 5), (50, 10), (20_000, 10**6), (5000, -1)):
        a = rng.integers(-(2**40), 2**40, n) if hi < 0 else rng.integers(0, hi, n)
        got = unique_ids(a)
        assert got.dtype == np.int64 and np.array_equal(got, np.unique(a))
