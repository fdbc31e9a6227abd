"""All-time rollups (plus the scanned tail of the last week) answer "ever" purchase tests
exactly as the line scan and DuckDB do, and only when the as-of instant is after every
rolled-up line."""
import datetime as dt

import numpy as np
import pytest

from segments.engine.model import segment_json
from segments.engine.evaluation.evaluate import Context

EVER_CONDITIONS = [
    '{"bought": {}}',
    '{"spend": {"cmp": {">": 100000}}}',
    '{"purchase_count": {"cmp": {">=": 5}}}',
    '{"bought": {"filter": {"department": ["diamond"]}}}',
    '{"spend": {"cmp": {"between": [50000, 100000]}, "filter": {"department": ["beads", "charms"]}}}',
    '{"bought": {"filter": {"department": ["charms"], "metal": ["gold"]}}}',
    '{"purchase_count": {"cmp": {"==": 0}, "filter": {"metal": ["gold", "platinum"]}}}',
    '{"spend": {"cmp": {"<": 0}, "filter": {"shop": ["Downtown"]}}}',
    '{"bought": {"filter": {"brand": ["no such brand"]}}}',
]


def _segment(cond: str, ranked: bool = False):
    text = f'{{"include": {cond}'
    if ranked:
        text += ', "order_by": {"key": "last_purchase", "filter": {"department": ["diamond"]}}, "limit": 25'
    return segment_json.loads(text + "}")


AS_OFS = [dt.datetime(2026, 11, 21, 12, tzinfo=dt.timezone.utc),   # after the newest line
          dt.datetime(2026, 11, 20, 17, tzinfo=dt.timezone.utc),   # within the anchor day
          dt.datetime(2026, 11, 16, 9, 30, tzinfo=dt.timezone.utc)]  # inside the scanned tail


@pytest.mark.parametrize("cond", EVER_CONDITIONS)
@pytest.mark.parametrize("key", ["gen1", "gen2"])
@pytest.mark.parametrize("after", AS_OFS)
def test_rollup_matches_scan_and_duckdb(get_dataset, key, cond, after, monkeypatch):
    ds = get_dataset(key)
    snap = ds.engine.dataset(ds.name).snapshot()
    seg = _segment(cond)
    ctx = Context(snap, after)
    c = seg.include
    assert ctx.rollup(c.filter, c.range) is not None, "the rollup should answer this"
    got = ds.engine.materialize(ds.name, seg, as_of=after).customer_ids
    with monkeypatch.context() as m:
        m.setattr(Context, "rollup", lambda self, f, r: None)           # force the line scan
        scanned = ds.engine.materialize(ds.name, seg, as_of=after).customer_ids
    assert np.array_equal(got, scanned)
    assert got.tolist() == ds.peer.result(seg, after)


def test_ranking_by_last_purchase_from_rollup(get_dataset):
    ds = get_dataset("gen1")
    after = dt.datetime(2026, 11, 21, 12, tzinfo=dt.timezone.utc)
    seg = _segment('{"bought": {}}', ranked=True)
    got = ds.engine.materialize(ds.name, seg, as_of=after).customer_ids.tolist()
    assert got == ds.peer.result(seg, after)


def test_rollup_not_used_before_the_rolled_up_lines(get_dataset):
    ds = get_dataset("gen1")
    snap = ds.engine.dataset(ds.name).snapshot()
    before = dt.datetime(2026, 8, 31, 12, tzinfo=dt.timezone.utc)
    seg = _segment('{"bought": {"filter": {"department": ["diamond"]}}}')
    assert Context(snap, before).rollup(seg.include.filter, seg.include.range) is None
    assert ds.engine.materialize(ds.name, seg, as_of=before).customer_ids.tolist() == ds.peer.result(seg, before)


def test_bounded_ranges_and_uncovered_filters_scan(get_dataset):
    ds = get_dataset("gen1")
    snap = ds.engine.dataset(ds.name).snapshot()
    ctx = Context(snap, dt.datetime(2026, 11, 21, 12, tzinfo=dt.timezone.utc))
    six = segment_json.parse_range({"last_n_months": 6}, "r")
    dept = segment_json.parse_filter({"department": ["diamond"]}, "f")
    sku = segment_json.parse_filter({"product": ["SKU-000001"]}, "f")
    assert ctx.rollup(dept, six) is None
    assert ctx.rollup(sku, segment_json.parse_range("ever", "r")) is None
