"""Lean shards (engine.storage.layout.LEAN_CUSTOMERS): a shard of few customers keeps its
lines and single-field posting lists only, and its customer rows compressed, with no
per-code aggregates, pair indexes, order summaries or trigram index; a purchases run whose
lines carry no order_id stores no order column.

The dataset of tests/test_code_aggregates.py (codes that keep or drop their aggregates,
department x metal pairs) and a generated one (bench/generate, no order_id) are ingested
lean; every segment of both test files' sets, the seed examples, searches and surnames must
equal DuckDB's answer and the naive reference's ids at every as-of, with every access path
and with the fast paths off; then again over appended live lines and after a compaction
(which must stay lean).
"""
from __future__ import annotations

import datetime as dt
import json
import random

import pyarrow as pa
import pytest

from segments.bench import generate as gen
from segments.bench.duck import DuckPeer, read_tables
from segments.engine.evaluation import line_kernels as LK
from segments.engine.model.segment_json import loads
from segments.engine.storage import layout as LY
from tests import datasets as D
from tests import test_code_aggregates as CA
from tests.conftest import DS
from tests.naive import Naive
from tests.test_segments import SEED_EXAMPLES, check_segment

LEAN = 1 << 17   # every shard lean


@pytest.fixture(scope="module")
def lean_build():
    mp = pytest.MonkeyPatch()
    mp.setattr(LY, "LEAN_CUSTOMERS", LEAN)
    yield
    mp.undo()


def _seg(d: dict):
    return loads(json.dumps(d, ensure_ascii=False))


def _text_segments(tables) -> dict:
    """Searches and surnames of values present in the rows (and one absent)."""
    rows = tables["customers"].to_pylist()
    rng = random.Random(3)
    picks = rng.sample([r for r in rows if len(r.get("email") or "") >= 6 and len(r.get("last_name") or "") >= 2], 5)
    out = {}
    for k, r in enumerate(picks):
        out[f"search_email_{k}"] = _seg({"include": {"search": {"text": r["email"][1:6]}}})
        if r.get("last_name"):
            out[f"surname_{k}"] = _seg({"include": {"surname": {"text": r["last_name"]}}})
            out[f"search_name_{k}"] = _seg({"include": {"search": {"text": r["last_name"][:2],
                                                                   "fields": ["last_name"]}}})
    out["search_absent"] = _seg({"include": {"search": {"text": "zzqqzzqq"}}})
    return out


def _check(ds: DS, naive: Naive, segs: dict, paths=(LK.ALL_PATHS, 0)) -> None:
    problems = []
    for name, seg in segs.items():
        for as_of in ds.as_ofs:
            problems += [f"{name}: {p}" for p in check_segment(ds, seg, as_of)]
            want = naive.result(seg, as_of)
            for p in paths:
                got = CA._materialize(ds.engine, seg, as_of, p) if ds.name == "c" else \
                    [int(x) for x in ds.engine.materialize(ds.name, seg, as_of=as_of).customer_ids]
                if got != want:
                    problems.append(f"{name} {as_of} paths={p}: {len(got)} ids != naive {len(want)} "
                                    f"({sorted(set(got) ^ set(want))[:5]} differ)")
    assert not problems, "\n".join(problems)


def _assert_lean(snap) -> None:
    """No aggregates, pair indexes, order summaries, trigram index or all-zero order column."""
    for s, sh in enumerate(snap.manifest.shards):
        for r in sh.table_runs("p"):
            assert r.agg_cutoff_day is None and not r.agg_fields and not r.pairs, (s, r)
            for key in ("o.meta", "o.ts", "a.all.spend", "order"):
                assert snap.value(r.part, f"{r.key}/{key}") is None, (s, r.key, key)
            assert snap.value(r.part, f"{r.key}/x.department.pos") is not None
        for r in sh.table_runs("v"):
            assert r.agg_cutoff_day is None, (s, r)
        part, prefix = sh.customers
        assert snap.value(part, f"{prefix}/t/email/keys") is None, s
        assert snap.value(part, f"{prefix}/e/last_name/hash") is not None, s


@pytest.fixture(scope="module")
def coded(lean_build, tmp_path_factory):
    from segments.engine.api import Engine
    tables = CA._tables()
    folder = D.write_folder(tables, tmp_path_factory.mktemp("lean_in"))
    eng = Engine(tmp_path_factory.mktemp("lean"), auto_compact=False)
    eng.create_dataset("c", CA.ZONE, shard_bits=11)
    eng.ingest("c", folder)
    yield {"engine": eng, "tables": tables, "folder": folder}
    eng.close()


def _coded_ds(made) -> DS:
    t = made["tables"]
    return DS("lean_code_aggs", made["engine"], "c", DuckPeer(t, CA.ZONE, threads=2), CA.ZONE, CA.AS_OFS,
              made["folder"])


def _coded_segments(tables) -> dict:
    return {**CA.SEGMENTS, **{n: _seg(d) for n, d in SEED_EXAMPLES.items()}, **_text_segments(tables)}


def test_a_lean_bulk_load_keeps_lines_and_postings_only_and_answers_the_same(coded):
    _assert_lean(coded["engine"].snapshot("c"))
    _check(_coded_ds(coded), Naive(coded["tables"], CA.ZONE), _coded_segments(coded["tables"]))


def test_lean_with_live_lines_and_after_a_compaction(coded):
    eng, t = coded["engine"], coded["tables"]
    rng = random.Random(11)
    ids = [1_000_000 + 7 * i for i in range(0, CA.N, 13)]
    at = dt.datetime(2026, 11, 19, 21, tzinfo=D.UTC)
    lines = [CA._line(rng, cid, rng.choice(["tiaras", "charms", "rings"]), rng.choice(["gold", "silver"]),
                      at + dt.timedelta(minutes=k)) for k, cid in enumerate(ids)]
    for k, ln in enumerate(lines[:40]):
        ln["order_id"] = f"o-{k // 2}"   # some lines with order ids: the new run stores its order column
    new = pa.Table.from_pylist(lines, schema=D.PURCHASE_SCHEMA)
    eng.append("c", "purchases", new)
    tables = dict(t, purchases=pa.concat_tables([t["purchases"], new]))
    made = dict(coded, tables=tables)
    segs = _coded_segments(tables)
    _check(_coded_ds(made), Naive(tables, CA.ZONE), segs, paths=(LK.ALL_PATHS,))
    eng.compact("c")
    snap = eng.snapshot("c")
    for sh in snap.manifest.shards:
        for r in sh.table_runs("p"):
            assert r.agg_cutoff_day is None and not r.agg_fields and not r.pairs
            assert snap.value(r.part, f"{r.key}/o.meta") is None
    assert any(snap.value(r.part, f"{r.key}/order") is not None
               for sh in snap.manifest.shards for r in sh.table_runs("p"))
    _check(_coded_ds(made), Naive(tables, CA.ZONE), segs)


def test_a_generated_lean_dataset_answers_as_duckdb(lean_build, engine, tmp_path_factory):
    """bench/generate's default shape (no order_id: orders by instant), 1,000 customers."""
    folder = tmp_path_factory.mktemp("lean_gen")
    gen.generate(folder, customers=1000, seed=31, workers=1)
    engine.create_dataset("lean_gen", D.NY, shard_bits=9)
    engine.ingest("lean_gen", folder)
    _assert_lean(engine.snapshot("lean_gen"))
    tables = read_tables(folder)
    z = D.NY
    from zoneinfo import ZoneInfo
    as_ofs = [dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=ZoneInfo(z)),
              dt.datetime(2026, 8, 31, 9, 30, tzinfo=ZoneInfo(z))]
    ds = DS("lean_gen", engine, "lean_gen", DuckPeer(tables, z, threads=2), z, as_ofs, folder)
    segs = {n: _seg(d) for n, d in SEED_EXAMPLES.items()}
    segs.update(_text_segments(tables))
    segs["orders_3"] = _seg({"include": {"order_count": {"cmp": {">=": 3}, "range": {"last_n_months": 12}}}})
    segs["aov"] = _seg({"include": {"average_order_value": {"cmp": {">=": 5000}}}})
    _check(ds, Naive(tables, z), segs, paths=(LK.ALL_PATHS,))


def test_lean_shards_take_less_disk(lean_build, tmp_path_factory):
    """The same 600 customers, lean and not: the lean folder is at least a third smaller."""
    from segments.engine.api import Engine
    folder = tmp_path_factory.mktemp("lean_size_in")
    gen.generate(folder, customers=600, seed=32, workers=1)
    sizes = {}
    for lean in (0, LEAN):
        LY.LEAN_CUSTOMERS = lean
        root = tmp_path_factory.mktemp(f"lean_size_{lean}")
        eng = Engine(root, auto_compact=False)
        eng.create_dataset("d", D.NY)
        eng.ingest("d", folder)
        eng.close()
        sizes[lean] = sum(p.stat().st_size for p in (root / "d" / "parts").rglob("*") if p.is_file())
    LY.LEAN_CUSTOMERS = LEAN
    assert sizes[LEAN] < 0.67 * sizes[0], sizes
