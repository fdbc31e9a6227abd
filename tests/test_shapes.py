"""Every data shape of the generator, small: the engine against DuckDB and the naive reference.

One small dataset per named shape (bench/generate/shapes.py), ingested with shard_bits=10 so
each spans several shards: `catalog` (20 departments, 6 metals, 2,000 brands, 200 strains,
50,000 SKUs, Zipf; at this size most SKUs and brands occur in a handful of lines),
`long_history` (10 years, ~60 lines per customer), `sparse` (random 10-digit ids, 5%
inactive, 30% without purchases) and `default`. On each: the seed examples of conditions.md,
the bench suite's data-dependent segments (one SKU, the rarest SKU, two brands, department x
metal, bounded and all-time, a ranking) with codes picked from the data as the bench picks
them, and filters on the rarest values: SKUs and brands found in one line, long lists of
SKUs, three fields at once, rare shops, customer lists over sparse ids. Each answer (count
triple, preview and materialize in order, ranking values) must equal DuckDB's
(tests/test_segments.check_segment) and the ids the naive Python reference's.

Also the shapes' own promises: cardinalities, skew, history length, lines per customer,
id layout, inactive and non-buying shares, and that worker processes do not change the
bytes written.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from segments.bench import generate as gen
from segments.bench.duck import DuckPeer, read_tables
from segments.bench.generate.lines import make_catalog
from segments.bench.generate.shapes import SHAPES, Shape, vocab
from segments.bench.suite import _code_definitions, _by_lines, pick_codes
from segments.engine.model import segment as S
from segments.engine.model.segment_json import loads
from tests import datasets as D
from tests.conftest import DS
from tests.naive import Naive
from tests.test_segments import SEED_EXAMPLES, check_segment

CUSTOMERS = {"default": 1000, "catalog": 1500, "long_history": 500, "sparse": 1200}
ZONES = {"default": D.NY, "catalog": D.AKL, "long_history": D.NY, "sparse": D.AKL}
SEEDS = {"default": 21, "catalog": 22, "long_history": 23, "sparse": 24}


def _as_ofs(zone: str) -> list:
    """After the anchor's last lines, and a bounded-range instant some months before."""
    z = ZoneInfo(zone)
    return [dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=z), dt.datetime(2026, 8, 31, 9, 30, tzinfo=z)]


@dataclasses.dataclass
class Shaped:
    ds: DS
    naive: Naive
    tables: dict
    codes: dict


@pytest.fixture(scope="module", params=list(SHAPES))
def shaped(request, engine, tmp_path_factory) -> Shaped:
    name = request.param
    folder = tmp_path_factory.mktemp(f"shape_{name}")
    gen.generate(folder, customers=CUSTOMERS[name], seed=SEEDS[name], shape=name, workers=1)
    zone, key = ZONES[name], f"shape_{name}"
    engine.create_dataset(key, zone, shard_bits=10)
    engine.ingest(key, folder)
    tables = read_tables(folder)
    ds = DS(key, engine, key, DuckPeer(tables, zone, threads=2), zone, _as_ofs(zone), folder)
    return Shaped(ds, Naive(tables, zone), tables, pick_codes(tables["purchases"]))


def _segment(definition: dict) -> S.Segment:
    return loads(json.dumps(definition, ensure_ascii=False))


def _check(sh: Shaped, named: dict) -> None:
    """Each segment against DuckDB (count, preview, materialize, rank values) and the naive
    reference (ids in order), at every as-of of the dataset."""
    problems = []
    for name, seg in named.items():
        for as_of in sh.ds.as_ofs:
            problems += [f"{name}: {p}" for p in check_segment(sh.ds, seg, as_of)]
            got = [int(x) for x in sh.ds.engine.materialize(sh.ds.name, seg, as_of=as_of).customer_ids]
            want = sh.naive.result(seg, as_of)
            if got != want:
                problems.append(f"{name} [{sh.ds.key} {as_of.isoformat()}]: engine {len(got)} ids != naive "
                                f"{len(want)} ({sorted(set(got) ^ set(want))[:5]} differ)")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ the engine against both oracles
def test_seed_examples(shaped):
    _check(shaped, {n: _segment(d) for n, d in SEED_EXAMPLES.items()})


def test_bench_code_segments(shaped):
    """The bench suite's one-SKU, rarest-SKU, brand-pair and department x metal segments,
    with the codes the bench would pick from this dataset."""
    segs = {name: _segment(d) for name, _, d in _code_definitions(shaped.codes)}
    assert len(segs) >= 9
    _check(shaped, segs)
    # the picks select something: the code segments are not all empty
    counts = {n: shaped.ds.engine.count(shaped.ds.name, s, shaped.ds.as_ofs[0]).count for n, s in segs.items()}
    assert counts["sku_rare_ever"] >= 1 and counts["brand_pair_ever"] >= 1 and counts["dept_metal_6m"] >= 1, counts


def _rare(tables, field: str, k: int) -> list:
    """The k values of `field` with the fewest lines (one line each where there are any)."""
    return [r[0] for r in _by_lines(tables["purchases"], [field])[::-1][:k]]


def test_rare_and_high_cardinality_filters(shaped):
    """Values found in one or a few lines, long value lists, three fields at once, shops."""
    t = shaped.tables
    rare_skus = _rare(t, "product", 200)
    one_line = [r[0] for r in _by_lines(t["purchases"], ["product"]) if r[1] == 1][:3] or rare_skus[:1]
    rare_brands = _rare(t, "brand", 2)
    rare_strain = _rare(t, "strain", 1)
    rare_shop = _rare(t, "shop", 1)
    triple = _by_lines(t["purchases"], ["department", "metal", "brand"])
    dmb = triple[len(triple) // 3]
    f_dmb = {"department": [dmb[0]], "metal": [dmb[1]], "brand": [dmb[2]]}
    six = {"last_n_months": 6}
    segs = {
        "one_line_sku_ever": {"include": {"bought": {"filter": {"product": one_line[:1]}}}},
        "one_line_skus_spend": {"include": {"spend": {"filter": {"product": one_line}, "cmp": {">": 0}}}},
        "200_rare_skus_ever": {"include": {"bought": {"filter": {"product": rare_skus}}}},
        "200_rare_skus_12m": {"include": {"purchase_count": {"filter": {"product": rare_skus},
                                                             "range": {"last_n_months": 12}, "cmp": {">=": 1}}}},
        "rare_brands_ever_and_6m": {"include": {"any_of": [
            {"bought": {"filter": {"brand": rare_brands}}},
            {"spend": {"filter": {"brand": rare_brands}, "range": six, "cmp": {">": 5000}}}]}},
        "rare_strain_count": {"include": {"purchase_count": {"filter": {"strain": rare_strain}, "cmp": {">=": 1}}}},
        "dept_metal_brand_ever": {"include": {"bought": {"filter": f_dmb}}},
        "dept_metal_brand_ranked_6m": {"include": {"bought": {"filter": f_dmb, "range": six}},
                                       "order_by": {"key": "last_purchase", "filter": f_dmb}, "limit": 7},
        "rare_shop_bought_and_visited": {"include": {"all_of": [
            {"bought": {"filter": {"shop": rare_shop}, "range": {"last_n_months": 24}}},
            {"not": {"visited": {"shops": rare_shop, "range": six}}}]}},
        "rare_sku_count_ranked": {"include": {"bought": {"filter": {"product": rare_skus[-20:]}}},
                                  "order_by": {"key": "purchase_count", "filter": {"product": rare_skus[-20:]}},
                                  "limit": 5},
        "not_rare_skus_but_bought": {"include": {"all_of": [
            {"bought": {"range": {"last_n_months": 12}}},
            {"not": {"bought": {"filter": {"product": rare_skus[:50]}}}}]}},
    }
    _check(shaped, {n: _segment(d) for n, d in segs.items()})


def test_customer_lists_inactive_and_non_buyers(shaped):
    """Lists of existing (sparse) ids with missing ones, inactive customers left out,
    customers without purchases."""
    ids = np.sort(shaped.tables["customers"]["customer_id"].to_numpy())
    inactive = pc.filter(shaped.tables["customers"]["customer_id"],
                         pc.equal(shaped.tables["customers"]["active"], False)).to_pylist()
    listed = [int(x) for x in ids[::17]] + inactive[:5] + [5, int(ids.max()) + 1]
    segs = {
        "list_with_missing_and_inactive": {"include": {"customers": listed}},
        "list_and_never_bought": {"include": {"all_of": [{"customers": listed}, {"not": {"bought": {}}}]}},
        "never_bought": {"include": {"not": {"bought": {}}}},
        "all_ranked_spend": {"include": "all", "order_by": {"key": "spend"}, "limit": 30},
    }
    _check(shaped, {n: _segment(d) for n, d in segs.items()})
    m = shaped.ds.engine.materialize(shaped.ds.name, _segment(segs["list_with_missing_and_inactive"]),
                                     as_of=shaped.ds.as_ofs[0])
    assert 5 in m.missing_ids and int(ids.max()) + 1 in m.missing_ids
    assert not set(inactive) & set(int(x) for x in m.customer_ids)


# ------------------------------------------------------------------ what each shape promises
def test_catalog_shape_cardinalities_and_skew():
    shape = SHAPES["catalog"]
    cat = make_catalog(gen._rng(0, gen._CATALOG_CHUNK, 0), shape)
    distinct = {k: len(pc.unique(pc.drop_null(v))) for k, v in cat.attrs.items()}
    assert distinct["department"] == 20 and distinct["metal"] == 6
    assert distinct["product"] == 50_000
    assert 1_500 <= distinct["brand"] <= 2_000 and 150 <= distinct["strain"] <= 200
    voc = vocab(shape)
    assert len(voc.shops) == 40 and len(voc.jewellery_brands) + len(voc.dispensary_brands) == 2_000
    # the spec's named values are kept, so every suite segment means something on every shape
    assert {"diamond", "beads", "charms"} <= set(d for d, *_ in voc.departments) and "gold" in voc.metals
    assert {"Pandora", "Cookies"} <= set(voc.jewellery_brands + voc.dispensary_brands)
    assert {"Blue Dream", "Gelato"} <= set(voc.strains) and {"Downtown", "Østerbro"} <= set(voc.shops)
    # Zipf: brands over SKUs are skewed (the top brand on far more SKUs than the median one)
    counts = sorted(pc.value_counts(pc.drop_null(cat.attrs["brand"])).field("counts").to_pylist(), reverse=True)
    assert counts[0] > 50 * counts[len(counts) // 2]


def test_default_shape_is_todays_vocabulary():
    from segments.bench.generate import vocab as V
    voc = vocab(SHAPES["default"])
    assert voc.departments == V.DEPARTMENTS and voc.metals == V.METALS and voc.strains == V.STRAINS
    assert voc.metal_weights == V.METAL_WEIGHTS and voc.shops == V.SHOPS and voc.shop_weights == V.SHOP_WEIGHTS
    assert voc.jewellery_brands == V.JEWELLERY_BRANDS and voc.dispensary_brands == V.DISPENSARY_BRANDS
    assert voc.brand_weights is None and voc.strain_weights is None


def test_long_history_and_sparse_shapes(tmp_path):
    n = 3000
    gen.generate(tmp_path / "long", customers=n, seed=3, shape="long_history", workers=1)
    p = read_tables(tmp_path / "long")["purchases"]
    assert 55 * n <= p.num_rows <= 66 * n
    us = p["purchased_at"].cast(pa.int64()).to_numpy()
    assert (us.max() - us.min()) / 86_400e6 / 365.25 > 9.9

    gen.generate(tmp_path / "sparse", customers=n, seed=3, shape="sparse", workers=1)
    t = read_tables(tmp_path / "sparse")
    ids = t["customers"]["customer_id"].to_numpy()
    assert len(np.unique(ids)) == n and ids.min() >= 10**9 and ids.max() < 10**10     # 10 digits
    assert (np.diff(ids) < 0).mean() > 0.4                                            # not in order
    inactive = pc.sum(pc.cast(pc.equal(t["customers"]["active"], False), pa.int64())).as_py() / n
    assert 0.04 <= inactive <= 0.06
    buyers = len(np.unique(t["purchases"]["customer_id"].to_numpy()))
    assert 0.27 <= 1 - buyers / n <= 0.33
    assert 17 * n <= t["purchases"].num_rows <= 23 * n


def test_workers_do_not_change_the_output(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "CHUNK_CUSTOMERS", 700)        # 3 chunks
    for w in (1, 2):
        gen.generate(tmp_path / f"w{w}", customers=2000, seed=5, shape="catalog", workers=w)
    for name in ("customers", "purchases", "visits", "laybys"):
        assert (tmp_path / "w1" / f"{name}.parquet").read_bytes() == \
            (tmp_path / "w2" / f"{name}.parquet").read_bytes(), name


@pytest.mark.parametrize("kwargs", [dict(shape="huge"), dict(shape="catalog", workers=0)])
def test_bad_shape_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError, match="shape|workers"):
        gen.generate(tmp_path, customers=10, **kwargs)


@pytest.mark.parametrize("bad", [dict(skus=0), dict(ids="dense"), dict(inactive=1.5), dict(no_purchases=0.01),
                                 dict(departments=2)])
def test_bad_shapes(bad):
    with pytest.raises(ValueError):
        Shape("bad", **bad)


def test_shapes_of_ten_digit_ids_refuse_too_many_customers(tmp_path):
    with pytest.raises(ValueError, match="do not fit"):
        gen.generate(tmp_path, customers=10**10, shape="sparse")


def test_bench_reads_bytes_from_explain(shaped):
    """The bench's per-segment and per-leaf bytes are explain's, and its shape section renders."""
    from segments.bench import report, scan
    from segments.bench.run import explain_bytes

    segs = {n: _segment(d) for n, _, d in _code_definitions(shaped.codes)}
    as_of = shaped.ds.as_ofs[0]
    rows = []
    for name, seg in segs.items():
        row = explain_bytes(shaped.ds.engine, shaped.ds.name, seg, as_of, gbps=10.0, engine_ms=1.0, repeat=1)
        root = shaped.ds.engine.explain(shaped.ds.name, seg, as_of)
        assert row["bytes_read"] == root.bytes_read and row["bytes_read"] >= sum(lf["bytes_read"] for lf in row["leaves"])
        assert row["floor_ms"] == pytest.approx(root.bytes_read / 1e7, abs=1e-4)
        for lf in row["leaves"]:
            assert lf["within_target"] == (lf["ms"] <= 3 * lf["floor_ms"] + 1.0)
        row.update(segment=name, count=root.size, engine_ms=1.0, duckdb_ms=2.0, ratio=2.0, match=True)
        row.update(scan.segment_gbps(row, 10.0))
        rows.append(row)
    assert any(r["bytes_read"] > 0 for r in rows)
    assert len(scan.leaf_table(rows, 10.0)) >= 5
    res = {"scale": "S", "shape": shaped.ds.key, "segments": rows, "suite_codes": shaped.codes,
           "machine": {"cpu": "x", "cores": 2}, "load_average": {"start": [1.0], "end": [1.0]},
           "date": "2026-12-02", "bandwidth": {"gbps": 10.0}, "duckdb": {"load_s": 1.0},
           "dataset": {"rows": {"customers": 1}, "generate_s": 1, "ingest_s": 1, "ingest_peak_rss_mb": 1,
                       "bytes_on_disk": 1},
           "summary": {"geomean_ratio": 2.0, "geomean_materialize_ratio": None, "mismatches": [],
                       "segments": len(rows), "engine_max_ms": 1.0, "segments_over_25ms": [],
                       "leaves_over_floor_target": 0}}
    text = report.shape_section(res)
    assert all(f"`{r['segment']}`" in text for r in rows) and shaped.codes["sku"] in text
