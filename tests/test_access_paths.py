"""Purchase conditions answer the same whichever way the stored lines are read: through the
all-time aggregates (plus the lines newer than them), through posting lists, or by scanning
the range; and the cheap paths are taken when they apply. Checked against a forced scan
and against DuckDB at instants after the newest line, inside the aggregates' tail and
before the aggregated lines."""
import datetime as dt

import numpy as np
import pytest

from segments.engine.evaluation import line_kernels as LK
from segments.engine.evaluation.evaluate import Context
from segments.engine.model import segment_json
from segments.engine.storage import layout as LY

CONDITIONS = [
    '{"bought": {}}',
    '{"spend": {"cmp": {">": 100000}}}',
    '{"purchase_count": {"cmp": {">=": 5}}}',
    '{"bought": {"filter": {"department": ["diamond"]}}}',
    '{"spend": {"cmp": {"between": [50000, 100000]}, "filter": {"department": ["beads", "charms"]}}}',
    '{"bought": {"filter": {"department": ["charms"], "metal": ["gold"]}}}',
    '{"purchase_count": {"cmp": {"==": 0}, "filter": {"metal": ["gold", "platinum"]}}}',
    '{"spend": {"cmp": {"<": 0}, "filter": {"shop": ["Downtown"]}}}',
    '{"bought": {"filter": {"brand": ["no such brand"]}}}',
    '{"purchase_count": {"cmp": {">=": 1}, "filter": {"product": ["{sku1}", "{sku2}"]}}}',
    '{"bought": {"filter": {"product": ["{sku1}"]}, "range": {"last_n_months": 6}}}',
    '{"spend": {"cmp": {">": 1000}, "filter": {"product": ["{sku2}"], "shop": ["Downtown"]}}}',
    '{"spend": {"cmp": {">": 0}, "filter": {"department": ["charms"], "metal": ["gold"]}, "range": "year_to_date"}}',
    '{"bought": {"filter": {"department": ["diamond"]}, "range": {"custom": {"end": "2026-03-08"}}}}',
    # unfiltered ranges over whole months: month marks (differences of two) plus partial months
    '{"spend": {"cmp": {">": 20000}, "range": {"last_n_months": 12}}}',
    '{"purchase_count": {"cmp": {">=": 3}, "range": {"custom": {"start": "2025-10-15", "end": "2026-09-10"}}}}',
    '{"spend": {"cmp": {"<": 0}, "range": {"custom": {"start": "2026-02-01", "end": "2026-05-31"}}}}',
    '{"bought": {"range": {"last_n_months": 7}}}',
    '{"order_count": {"cmp": {">=": 2}, "range": {"last_n_months": 12}}}',   # the orders' month marks
    '{"order_count": {"cmp": {"<=": 1}, "range": {"custom": {"start": "2025-11-15", "end": "2026-10-20"}}}}',
]

AS_OFS = [dt.datetime(2026, 11, 21, 12, tzinfo=dt.timezone.utc),   # after the newest line
          dt.datetime(2026, 11, 20, 17, tzinfo=dt.timezone.utc),   # within the anchor day
          dt.datetime(2026, 11, 16, 9, 30, tzinfo=dt.timezone.utc),  # inside the aggregates' tail
          dt.datetime(2026, 8, 31, 12, tzinfo=dt.timezone.utc)]    # before the aggregated lines


def _segment(cond: str, ranked: bool = False):
    text = f'{{"include": {cond}'
    if ranked:
        text += ', "order_by": {"key": "last_purchase", "filter": {"department": ["diamond"]}}, "limit": 25'
    return segment_json.loads(text + "}")


def _skus(ds) -> dict:
    """Two products of this dataset with a few dozen lines each (the generator's codes are random)."""
    rows = ds.peer.con.execute("SELECT product FROM purchases WHERE product IS NOT NULL GROUP BY product "
                               "HAVING COUNT(*) BETWEEN 5 AND 60 ORDER BY product LIMIT 2").fetchall()
    return {"sku1": rows[0][0], "sku2": rows[1][0]}


def _fill(cond: str, ds) -> str:
    if "{sku" not in cond:
        return cond
    for k, v in _skus(ds).items():
        cond = cond.replace("{" + k + "}", v)
    return cond


def _ids(ds, seg, as_of, paths, monkeypatch):
    with monkeypatch.context() as m:
        init = Context.__init__

        def patched(self, *a, **k):
            init(self, *a, **k)
            self.access_paths = paths
        m.setattr(Context, "__init__", patched)
        return ds.engine.materialize(ds.name, seg, as_of=as_of).customer_ids.tolist()


@pytest.mark.parametrize("cond", CONDITIONS)
@pytest.mark.parametrize("key", ["gen1", "gen2"])
@pytest.mark.parametrize("as_of", AS_OFS)
def test_every_access_path_gives_the_same_answer(get_dataset, key, cond, as_of, monkeypatch):
    ds = get_dataset(key)
    seg = _segment(_fill(cond, ds))
    want = ds.peer.result(seg, as_of)
    for paths in (LK.ALL_PATHS, LK.PATH_AGGREGATES, LK.PATH_POSTINGS, 0):
        assert _ids(ds, seg, as_of, paths, monkeypatch) == want, (cond, paths)


@pytest.mark.parametrize("as_of", AS_OFS[:3])
def test_ranking_by_last_purchase(get_dataset, as_of, monkeypatch):
    ds = get_dataset("gen1")
    seg = _segment('{"bought": {}}', ranked=True)
    want = ds.peer.result(seg, as_of)
    for paths in (LK.ALL_PATHS, 0):
        assert _ids(ds, seg, as_of, paths, monkeypatch) == want
    # the last sale day over a range (month marks' last day before a mark) and spend together
    seg = segment_json.loads('{"include": {"bought": {"range": {"last_n_months": 12}}}, "order_by": '
                             '{"key": "last_purchase", "range": {"last_n_months": 12}, "direction": "asc"}, '
                             '"limit": 40}')
    want = ds.peer.result(seg, as_of)
    for paths in (LK.ALL_PATHS, 0):
        assert _ids(ds, seg, as_of, paths, monkeypatch) == want


def test_whole_months_of_a_range_read_month_marks(get_dataset):
    """An unfiltered 12-month range folds its whole months from two month marks and reads
    only the lines of its partial months; before the marks' days nothing changes."""
    ds = get_dataset("gen1")
    snap = ds.engine.dataset(ds.name).snapshot()
    ps = snap.pieces("p")
    assert (ps.size[LY.P_MDAYS] > 0).any(), "no run has month marks: the test data is too small"
    cond = '{"spend": {"cmp": {">": 0}, "range": {"last_n_months": 12}}}'
    st, _ = _stats(ds, cond, AS_OFS[0])
    scanned_with = st[LK.STAT_SCANNED] + st[LK.STAT_GATHERED]
    assert st[LK.STAT_DENSE] > 0
    ctx = Context(snap, AS_OFS[0])
    ctx.access_paths = LK.PATH_POSTINGS
    ctx.eval(_segment(cond).include)
    assert ctx.stats[LK.STAT_DENSE] == 0 and scanned_with < ctx.stats[LK.STAT_SCANNED] / 3


def _stats(ds, cond, as_of):
    snap = ds.engine.dataset(ds.name).snapshot()
    ctx = Context(snap, as_of)
    c = _segment(cond).include
    ctx.eval(c)
    return ctx.stats, ctx.bytes_read


def test_all_time_single_field_reads_aggregates_not_lines(get_dataset):
    ds = get_dataset("gen1")
    st, _ = _stats(ds, '{"bought": {"filter": {"department": ["diamond"]}}}', AS_OFS[0])
    assert st[LK.STAT_AGG] > 0 and st[LK.STAT_SCANNED] == 0
    st, _ = _stats(ds, '{"spend": {"cmp": {">": 0}}}', AS_OFS[0])
    assert st[LK.STAT_DENSE] > 0 and st[LK.STAT_AGG] == 0


def test_aggregates_unused_before_the_lines_they_hold(get_dataset):
    ds = get_dataset("gen1")
    st, _ = _stats(ds, '{"bought": {"filter": {"department": ["diamond"]}}}', AS_OFS[3])
    assert st[LK.STAT_AGG] == 0 and st[LK.STAT_DENSE] == 0


def test_a_rare_code_reads_its_posting_list_only(get_dataset):
    ds = get_dataset("gen1")
    lines = ds.engine.info(ds.name)["rows"]["purchases"]
    sku = ds.peer.con.execute("SELECT product FROM purchases WHERE product IS NOT NULL GROUP BY product "
                              "HAVING COUNT(*) BETWEEN 5 AND 40 ORDER BY product LIMIT 1").fetchone()[0]
    st, nbytes = _stats(ds, f'{{"bought": {{"filter": {{"product": ["{sku}"]}}, "range": "ever"}}}}', AS_OFS[3])
    assert st[LK.STAT_SCANNED] == 0 and 0 < st[LK.STAT_POSTED] < lines / 100
    assert nbytes < lines  # well under a byte per stored line


def test_a_filter_on_a_pair_of_fields_reads_the_pair_index(get_dataset):
    ds = get_dataset("gen1")
    pairs = ds.engine.dataset(ds.name).snapshot().manifest.pairs
    assert ("department", "metal") in pairs, pairs  # chosen from the data: they go together
    st, _ = _stats(ds, '{"bought": {"filter": {"department": ["charms"], "metal": ["gold"]}}}', AS_OFS[0])
    assert st[LK.STAT_AGG] > 0 and st[LK.STAT_SCANNED] == 0
    lines = ds.engine.info(ds.name)["rows"]["purchases"]
    st, _ = _stats(ds, '{"bought": {"filter": {"department": ["charms"], "metal": ["gold"]}, "range": "year_to_date"}}',
                   AS_OFS[0])
    assert st[LK.STAT_SCANNED] == 0 and st[LK.STAT_POSTED] < lines / 5


VISIT_CONDITIONS = ['{"visited": {}}', '{"visited": {"cmp": {"==": 1}}}', '{"visited": {"cmp": {">=": 4}}}',
                    '{"visited": {"shops": ["Downtown"], "cmp": {">=": 2}}}',
                    '{"visited": {"range": {"last_n_months": 12}, "cmp": {">=": 3}}}',
                    '{"not": {"visited": {"range": "ever"}}}']


@pytest.mark.parametrize("cond", VISIT_CONDITIONS)
@pytest.mark.parametrize("as_of", AS_OFS)
def test_visits_answer_the_same_from_counts_or_lines(get_dataset, cond, as_of, monkeypatch):
    ds = get_dataset("gen1")
    seg = _segment(cond)
    want = ds.peer.result(seg, as_of)
    for paths in (LK.ALL_PATHS, 0):
        assert _ids(ds, seg, as_of, paths, monkeypatch) == want, (cond, paths)


def test_visited_ever_reads_the_counts(get_dataset):
    ds = get_dataset("gen1")
    st, _ = _stats(ds, '{"visited": {"cmp": {"==": 1}}}', AS_OFS[0])
    visits = ds.engine.info(ds.name)["rows"]["visits"]
    assert st[LK.STAT_DENSE] > 0 and st[LK.STAT_SCANNED] < visits / 10
