"""Per-customer aggregates are kept or dropped code by code (engine.storage.runs.keep_codes).

A dataset made so that, in one field and in the department x metal pair index, some codes
keep their aggregates and others do not: `charms` is bought again and again by few
customers (few entries per line: kept), `tiaras` once each by many (an entry per line, few
lines: dropped, read through its posting list), `rings` once or twice by every customer
(an entry per line but thousands of lines: kept). Filters on each code alone and on mixes
of them (a field's codes, a pair's composite codes) answer as DuckDB and the naive
reference do, at instants that use the aggregates and at instants before them, also with
every fast path off; then with appended live lines on top; then after a compaction that
adds a run where `tiaras` keeps its aggregates (its new lines repeat) and rewrites a shard
without an erased customer.
"""
from __future__ import annotations

import datetime as dt
import json
import random

import numpy as np
import pyarrow as pa
import pytest

from segments.bench.duck import DuckPeer
from segments.engine.evaluation import line_kernels as LK
from segments.engine.evaluation.evaluate import Context
from segments.engine.model.segment_json import loads
from segments.engine.storage import runs as R
from tests import datasets as D
from tests.conftest import DS
from tests.naive import Naive
from tests.test_segments import check_segment

ZONE = D.NY
N = 4000                    # customers; shard_bits=11: two shards of ~2,000
FIRST_DAY = dt.datetime(2025, 1, 1, tzinfo=D.UTC)
LAST_DAY = dt.datetime(2026, 11, 19, 20, tzinfo=D.UTC)
AS_OFS = [dt.datetime(2026, 11, 20, 17, tzinfo=D.UTC),     # after every line: aggregates + their tail
          dt.datetime(2026, 11, 15, 12, tzinfo=D.UTC),     # inside the aggregates' tail
          dt.datetime(2026, 6, 30, 12, tzinfo=D.UTC)]      # before the aggregated lines: lines only


def _at(rng, lo=FIRST_DAY, hi=LAST_DAY) -> dt.datetime:
    return lo + dt.timedelta(seconds=rng.randrange(int((hi - lo).total_seconds())))


def _line(rng, cid, dept, metal, at=None) -> dict:
    amount = rng.choice([1500, 4000, 12000, rng.randrange(100, 90000)])
    if rng.random() < 0.08:
        amount = -amount
    return {"customer_id": cid, "purchased_at": at or _at(rng), "amount": amount, "quantity": 1,
            "shop": None, "department": dept, "metal": metal, "brand": None, "strain": None,
            "inventory_group": None, "inventory_type": None, "product": None, "order_id": None}


def _tables(seed: int = 5) -> dict:
    rng = random.Random(seed)
    ids = [1_000_000 + 7 * i for i in range(N)]
    customers = [D._rand_customer(rng, cid) for cid in ids]
    lines = []
    for i, cid in enumerate(ids):
        if i % 10 == 0:       # charms: the same few customers again and again
            lines += [_line(rng, cid, "charms", rng.choice(["gold", "gold", "silver"])) for _ in range(8)]
        if i % 10 == 1:       # tiaras: once per customer, a few hundred lines a shard
            lines.append(_line(rng, cid, "tiaras", rng.choice(["gold", "silver"])))
        lines += [_line(rng, cid, "rings", rng.choice(D.METALS)) for _ in range(1 + (i % 4 == 0))]
        lines += [_line(rng, cid, rng.choice(["beads", "watches"]), rng.choice(D.METALS + [None]))
                  for _ in range(2)]
    rng.shuffle(lines)
    return {"customers": pa.Table.from_pylist(customers, schema=D.CUSTOMER_SCHEMA),
            "purchases": pa.Table.from_pylist(lines, schema=D.PURCHASE_SCHEMA),
            "visits": D.VISIT_SCHEMA.empty_table(), "laybys": D.LAYBY_SCHEMA.empty_table()}


def _seg(include, order_by=None, limit=None):
    d = {"include": include}
    if order_by is not None:
        d["order_by"] = order_by
    if limit is not None:
        d["limit"] = limit
    return loads(json.dumps(d))


GOLD_CHARMS_TIARAS = {"department": ["charms", "tiaras"], "metal": ["gold"]}
SEGMENTS = {
    "charms_ever": _seg({"bought": {"filter": {"department": ["charms"]}}}),
    "tiaras_ever": _seg({"bought": {"filter": {"department": ["tiaras"]}}}),
    "rings_twice": _seg({"purchase_count": {"filter": {"department": ["rings"]}, "cmp": {">=": 2}}}),
    "charms_tiaras_spend": _seg({"spend": {"filter": {"department": ["charms", "tiaras"]},
                                           "cmp": {"between": [5000, 60000]}}}),
    "tiaras_rings_count_ranked": _seg({"purchase_count": {"filter": {"department": ["tiaras", "rings"]},
                                                          "cmp": {">=": 2}}},
                                      {"key": "spend", "filter": {"department": ["tiaras", "rings"]}}, 40),
    "gold_charms": _seg({"bought": {"filter": {"department": ["charms"], "metal": ["gold"]}}}),
    "gold_tiaras": _seg({"bought": {"filter": {"department": ["tiaras"], "metal": ["gold"]}}}),
    "gold_charms_or_tiaras_ranked": _seg({"bought": {"filter": GOLD_CHARMS_TIARAS}},
                                         {"key": "spend", "filter": GOLD_CHARMS_TIARAS, "direction": "desc"}, 25),
    "four_pairs_spend": _seg({"spend": {"filter": {"department": ["charms", "tiaras"], "metal": ["gold", "silver"]},
                                        "cmp": {">": 20000}}}),
    "tiaras_last_purchase": _seg({"bought": {"filter": {"department": ["tiaras", "charms"]}}},
                                 {"key": "last_purchase", "filter": {"department": ["tiaras", "charms"]}}, 30),
}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    from segments.engine.api import Engine
    tables = _tables()
    folder = D.write_folder(tables, tmp_path_factory.mktemp("code_aggs_in"))
    eng = Engine(tmp_path_factory.mktemp("code_aggs"), auto_compact=False)
    eng.create_dataset("c", ZONE, shard_bits=11)
    eng.ingest("c", folder)
    yield {"engine": eng, "tables": tables, "folder": folder}
    eng.close()


def _ds(made) -> DS:
    t = made["tables"]
    return DS("code_aggs", made["engine"], "c", DuckPeer(t, ZONE, threads=2), ZONE, AS_OFS, made["folder"])


def _kept(snap, field: str) -> list:
    """Per purchase run: the set of codes with aggregates of `field` (None: none at all)."""
    out = []
    for s, sh in enumerate(snap.manifest.shards):
        for r in sh.table_runs("p"):
            if field not in r.agg_fields:
                out.append(None)
                continue
            dt_ = np.uint64 if "+" in field else np.uint32
            out.append(set(int(c) for c in snap.part_array(r.part, f"{r.key}/a.{field}.codes", dt_)))
    return out


def _pair(snap, dept: str, metal: str) -> int:
    return (snap.code_of("department")[dept] << 32) | snap.code_of("metal")[metal]


def _check_all(made, paths=(LK.ALL_PATHS,)) -> None:
    ds = _ds(made)
    naive = Naive(made["tables"], ZONE)
    problems = []
    for name, seg in SEGMENTS.items():
        for as_of in AS_OFS:
            problems += [f"{name}: {p}" for p in check_segment(ds, seg, as_of)]
            want = naive.result(seg, as_of)
            for p in paths:
                got = _materialize(made["engine"], seg, as_of, p)
                if got != want:
                    problems.append(f"{name} {as_of} paths={p}: {len(got)} ids != naive {len(want)}")
    assert not problems, "\n".join(problems)


def _materialize(eng, seg, as_of, paths) -> list:
    init = Context.__init__

    def patched(self, *a, **k):
        init(self, *a, **k)
        self.access_paths = paths
    Context.__init__ = patched
    try:
        return [int(x) for x in eng.materialize("c", seg, as_of=as_of).customer_ids]
    finally:
        Context.__init__ = init


def _stats(eng, seg, as_of):
    ctx = Context(eng.snapshot("c"), as_of)
    ctx.eval(seg.include)
    return ctx.stats


# ------------------------------------------------------------------ the bulk load
def test_codes_of_one_field_keep_or_drop_their_aggregates(made):
    snap = made["engine"].snapshot("c")
    dc = snap.code_of("department")
    runs = _kept(snap, "department")
    assert len(runs) == 2 and all(k is not None for k in runs)
    for kept in runs:
        assert dc["charms"] in kept and dc["rings"] in kept and dc["tiaras"] not in kept
    pairs = _kept(snap, "department+metal")
    assert all(k is not None for k in pairs), "department x metal is a pair index with aggregates"
    for kept in pairs:
        assert _pair(snap, "charms", "gold") in kept and _pair(snap, "tiaras", "gold") not in kept


def test_keep_codes_rule():
    lines = np.array([0, 10, 10, 100, R.AGG_CODE_LINES, R.AGG_CODE_LINES - 1])
    ents = np.array([0, 5, 6, 100, R.AGG_CODE_LINES, R.AGG_CODE_LINES - 1])
    assert R.keep_codes(lines, ents).tolist() == [False, True, False, False, True, False]


def test_answers_equal_the_oracles(made):
    _check_all(made, paths=(LK.ALL_PATHS, LK.PATH_AGGREGATES, 0))


def test_a_mixed_filter_reads_aggregates_and_postings(made):
    """Aggregates for the codes that have them, posting lists for the others; only the
    lines newer than the aggregates (a week's) are scanned."""
    eng = made["engine"]
    tail = made["tables"]["purchases"].num_rows / 40
    for name in ("charms_tiaras_spend", "gold_charms_or_tiaras_ranked"):
        st = _stats(eng, SEGMENTS[name], AS_OFS[0])
        assert st[LK.STAT_AGG] > 0 and st[LK.STAT_POSTED] > 0 and st[LK.STAT_SCANNED] < tail, (name, st)
    st = _stats(eng, SEGMENTS["tiaras_ever"], AS_OFS[0])   # no aggregates: its posting list only
    assert st[LK.STAT_AGG] == 0 and st[LK.STAT_SCANNED] < tail and st[LK.STAT_POSTED] > 0, st


# ------------------------------------------------------------------ live lines, then a compaction
def test_live_lines_on_top_then_compaction(made):
    eng, t = made["engine"], made["tables"]
    rng = random.Random(9)
    ids = t["customers"]["customer_id"].to_pylist()
    shard0 = ids[:2048]
    # tiaras bought again and again by 300 customers of shard 0 (its new run keeps them),
    # charms and rings lines here and there, some dated inside the aggregates' tail
    new = [_line(rng, cid, "tiaras", rng.choice(["gold", "silver"]), _at(rng, hi=LAST_DAY))
           for cid in shard0[:300] for _ in range(14)]
    new += [_line(rng, rng.choice(ids), rng.choice(["charms", "rings"]), "gold",
                  _at(rng, dt.datetime(2026, 11, 13, tzinfo=D.UTC))) for _ in range(200)]
    eng.append("c", "purchases", new)
    made["tables"] = dict(t, purchases=pa.concat_tables(
        [t["purchases"], pa.Table.from_pylist(new, schema=D.PURCHASE_SCHEMA)]))
    _check_all(made)

    # erase a charms buyer of shard 1: the compaction rewrites that shard's runs without them
    gone = ids[2050]
    eng.delete_customers("c", [gone])
    t = made["tables"]
    made["tables"] = dict(t, customers=t["customers"].filter(pa.compute.not_equal(t["customers"]["customer_id"], gone)),
                          purchases=t["purchases"].filter(pa.compute.not_equal(t["purchases"]["customer_id"], gone)))
    _check_all(made)
    eng.compact("c")
    snap = eng.snapshot("c")
    assert len(snap.manifest.shards[0].table_runs("p")) == 2     # the old run and the appended one's
    dc = snap.code_of("department")
    kept = _kept(snap, "department")
    assert kept[0] is not None and dc["tiaras"] not in kept[0]   # the bulk run: tiaras dropped ...
    assert kept[1] is not None and dc["tiaras"] in kept[1]       # ... the new run: tiaras kept
    _check_all(made, paths=(LK.ALL_PATHS, 0))
