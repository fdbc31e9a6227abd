"""The coordinator's P-way merge (cluster/merge.py, cluster/merge_kernels.py) against a
sort of the concatenation: runs each in output order, ranked both ways with absent values
and ties, unranked, empty runs, and a first-n cut; the whole-population percentile cut from
per-partition histograms (cluster/population.py) against behaviour.md in plain Python.
Needs no Ray."""
from __future__ import annotations

import bisect

import numpy as np
import pytest

from segments.cluster import merge, population
from segments.engine.model import segment as S


def _runs(rng, sizes, ranked, float_ranks):
    """Runs of unique ids, each sorted in output order by (key, id) for the descending order."""
    ids_all = rng.choice(10**6, size=sum(sizes), replace=False).astype(np.int64) - 500_000
    ids, ranks, start = [], [], 0
    for n in sizes:
        i = ids_all[start:start + n]
        start += n
        if not ranked:
            ids.append(np.sort(i))
            continue
        v = rng.integers(0, 5, n).astype(np.float64 if float_ranks else np.int64)   # many ties
        absent = rng.random(n) < 0.2
        v[absent] = np.nan if float_ranks else np.iinfo(np.int64).min
        key = merge.order_key(v, True)
        o = np.lexsort((i, key))
        ids.append(i[o])
        ranks.append(v[o])
    return ids, ranks


@pytest.mark.parametrize("ranked,float_ranks", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("sizes", [[0, 0, 0], [5, 0, 7], [1, 1, 1, 1], [300, 17, 0, 250], [40_000, 0, 30_000, 35_000]])
def test_merge_order_is_the_sort_of_the_concatenation(ranked, float_ranks, sizes):
    rng = np.random.default_rng(sum(sizes) + 7 * ranked + float_ranks)
    ids, ranks = _runs(rng, sizes, ranked, float_ranks)
    cat = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    ob = S.OrderBy("loyalty_points") if ranked else None
    rv = np.concatenate(ranks) if ranked else None
    want = np.lexsort((cat, merge.order_key(rv, True))) if ranked else np.argsort(cat, kind="stable")
    for n in (None, 0, 1, 10, sum(sizes) + 5):
        perm, taken = merge.merge_order(cat, rv, ob, sizes, n)
        k = len(want) if n is None else min(n, len(want))
        assert perm.tolist() == want[:k].tolist(), (sizes, n)
        owner = np.repeat(np.arange(len(sizes)), sizes)
        assert taken.tolist() == np.bincount(owner[want[:k]], minlength=len(sizes)).tolist(), (sizes, n)


@pytest.mark.parametrize("spread", [1, 3, 8, 9, 10**9])   # dense (a table of marks) to sparse (pairwise merge)
@pytest.mark.parametrize("sizes", [[0, 0, 0], [0, 6, 0], [5, 0, 7], [1, 1, 1, 1], [300, 17, 0, 250, 41]])
def test_merged_ids_are_the_sort_of_the_concatenation(spread, sizes):
    rng = np.random.default_rng(sum(sizes) * 31 + spread % 1000)
    n = sum(sizes)
    ids_all = rng.choice(max(1, n * spread), size=n, replace=False).astype(np.int64) - 7 * spread
    runs, start = [], 0
    for k in sizes:
        runs.append(np.sort(ids_all[start:start + k]))
        start += k
    got = merge.merged_ids(runs)
    assert got.dtype == np.int64 and got.flags.writeable
    assert got.tolist() == sorted(ids_all.tolist()), (sizes, spread)


def _pct_reference(values: list, lo: int, hi: int) -> list:
    """Plain Python, behaviour.md: member i matches when floor(100 * below / N) is in [lo, hi],
    below = the members with a value strictly lower than its own."""
    n = len(values)
    ordered = sorted(values)
    out = []
    for v in values:
        below = bisect.bisect_left(ordered, v)
        out.append(lo <= (100 * below) // n <= hi)
    return out


@pytest.mark.parametrize("parts", [1, 3, 5])
@pytest.mark.parametrize("shape", ["ties", "spread", "absent", "one", "empty_part"])
def test_value_cut_is_the_whole_population_percentile(parts, shape):
    """cluster/population.value_cut over per-partition histograms selects exactly the members
    whose percentile over the whole population lies in the bounds: heavy ties, absent values
    (the lowest int64), a population of one, empty partitions, every bound from 0 to 99."""
    rng = np.random.default_rng([parts, sum(map(ord, shape))])
    n = {"one": 1, "ties": 400, "spread": 237, "absent": 150, "empty_part": 60}[shape]
    if shape == "spread":
        v = rng.integers(-10**12, 10**12, n)
    else:
        v = rng.integers(0, 6, n)
    if shape == "absent":
        v[rng.random(n) < 0.4] = np.iinfo(np.int64).min
    owner = rng.integers(0, parts, n) if shape != "empty_part" else np.zeros(n, np.int64)
    hists = [np.unique(v[owner == p], return_counts=True) for p in range(parts)]
    hists = [(np.sort(v[owner == p]), None) if p % 2 else h for p, h in enumerate(hists)]   # both forms
    bounds = [(0, 99), (80, 99), (0, 29), (50, 89), (0, 0), (99, 99), (20, 39), (33, 34), (60, 59)]
    bounds += [tuple(sorted(rng.integers(0, 100, 2).tolist())) for _ in range(12)]
    for lo, hi in bounds:
        want = _pct_reference(v.tolist(), lo, hi)
        a, b = population.value_cut(hists, lo, hi)
        got = [a <= x <= b for x in v.tolist()]
        assert got == want, (shape, parts, lo, hi, (a, b))
    assert population.value_cut([(np.zeros(0, np.int64), None)] * parts, 0, 99) == population.EMPTY


@pytest.mark.parametrize("ranked,float_ranks", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("sizes,chunk", [([0, 0, 0], 4), ([5, 0, 7], 3), ([300, 17, 0, 250], 64),
                                         ([1000, 999, 1001], 1000), ([40, 41], 1)])
def test_merge_streams_is_the_whole_merge_in_chunks(ranked, float_ranks, sizes, chunk):
    """merge.merge_streams over runs sent a random number of rows at a time gives the rows
    of merge.materialized (ids, a field, rank values) in pieces of exactly `chunk` rows
    (the last shorter), and has taken at most one chunk per run beyond the rows it sent."""
    import pyarrow as pa
    from segments.engine.results import Materialized

    rng = np.random.default_rng(sum(sizes) * 7 + chunk + 3 * ranked + float_ranks)
    ids, ranks = _runs(rng, sizes, ranked, float_ranks)
    key = "loyalty_points" if float_ranks else "spend"
    ob = S.OrderBy(key) if ranked else None
    answers = [Materialized(i, {"email": pa.array([f"c{x}@x" for x in i.tolist()], pa.string())},
                            ranks[p] if ranked else None, key if ranked else None) for p, i in enumerate(ids)]
    seg = S.Segment(S.All(), order_by=ob)
    want = merge.materialized(answers, seg, ("email",), len(sizes), 0.0)
    pulled = [0] * len(sizes)

    def run(p, m):
        n, a = len(m.customer_ids), 0
        while a < n:
            b = min(n, a + int(rng.integers(1, 2 * chunk + 2)))
            pulled[p] += b - a
            yield m.rows(a, b, compact=True)
            a = b
    empty = answers[0].rows(0, 0, compact=True)
    pieces = []
    for piece in merge.merge_streams([run(p, m) for p, m in enumerate(answers)], ob, ("email",), chunk, empty):
        pieces.append(piece)
        ahead = sum(pulled) - sum(len(x.customer_ids) for x in pieces)
        assert ahead <= len(sizes) * (2 * chunk + 1) + chunk, ahead   # a chunk per run and one out
    got_ids = np.concatenate([x.customer_ids for x in pieces])
    assert got_ids.tolist() == want.customer_ids.tolist()
    assert [len(x.customer_ids) for x in pieces[:-1]] == [chunk] * (len(pieces) - 1) and len(pieces[-1].customer_ids) <= chunk
    assert pa.concat_arrays([x.columns["email"] for x in pieces]).to_pylist() == want.columns["email"].to_pylist()
    if ranked:
        got_rv = np.concatenate([x.rank_values for x in pieces])
        assert np.array_equal(got_rv, want.rank_values, equal_nan=True)


def test_packed_histograms_round_trip():
    """population.pack_sorted / unpack_sorted (a partition's sorted values as uint16 gaps and
    the gaps that do not fit): every value back, the int64 ends and absent values included."""
    rng = np.random.default_rng(3)
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    cases = [[], [5], [lo], [hi], [lo, lo, -3, 0, 10**18, hi], rng.integers(-10**12, 10**12, 5000),
             rng.integers(0, 10**7, 24000), rng.integers(0, 3, 1000), np.r_[[lo] * 40, rng.integers(0, 99, 60)]]
    for v in cases:
        v = np.sort(np.asarray(v, np.int64))
        assert np.array_equal(population.unpack_sorted(population.pack_sorted(v)), v)
        u, k = np.unique(v, return_counts=True)
        for h in ((v, None), (u, k)):
            back = population.unpack_histogram(population.pack_histogram(h))
            assert np.array_equal(back[0], h[0]) and (back[1] is None) == (h[1] is None)
            assert h[1] is None or np.array_equal(back[1], h[1])
