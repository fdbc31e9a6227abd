"""Storage: ingest round trips, all-or-nothing loads, CSV = Parquet, reopen, later loads."""
import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segments.engine.model import segment_json
from segments.engine.api import Engine
from segments.engine.errors import AlreadyExists, IngestError, InvalidArgument, NotFound
from segments.engine.storage.export_tables import snapshot_tables
from segments.bench.generate import generate
from segments.engine.storage.ingest_read import read_folder

AS_OF = dt.datetime(2026, 11, 20, 17, 0, tzinfo=dt.timezone.utc)
SORT_KEYS = {
    "customers": ["customer_id"],
    "purchases": ["customer_id", "purchased_at", "amount", "product", "quantity"],
    "visits": ["customer_id", "starts_at", "status", "shop"],
    "laybys": ["customer_id", "opened_on", "due_on", "balance", "status"],
}


def _sorted(t: pa.Table, table: str) -> pa.Table:
    return t.sort_by([(k, "ascending") for k in SORT_KEYS[table]])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("gen")
    generate(base / "pq", customers=2500, seed=7, fmt="parquet")
    generate(base / "csv", customers=2500, seed=7, fmt="csv")
    return base


@pytest.fixture()
def engine(tmp_path):
    e = Engine(tmp_path / "data")
    yield e
    e.close()


def test_round_trip_column_by_column(files, engine):
    engine.create_dataset("rt", "America/New_York", shard_bits=10)
    engine.ingest("rt", files / "pq")
    want = read_folder(files / "pq")
    got = snapshot_tables(engine.dataset("rt").snapshot())
    assert engine.dataset("rt").snapshot().n_shards == 3  # 2500 customers, 1024 per shard
    for table, t in want.items():
        g = _sorted(got[table], table)
        w = _sorted(t, table)
        assert g.num_rows == w.num_rows, table
        for name in w.column_names:
            assert g.column(name).equals(w.column(name)), f"{table}.{name} differs"


def test_csv_and_parquet_give_identical_datasets(files, engine):
    for name, sub in (("a", "pq"), ("b", "csv")):
        engine.create_dataset(name, "Europe/Zurich", shard_bits=10)
        engine.ingest(name, files / sub)
    ta = snapshot_tables(engine.dataset("a").snapshot())
    tb = snapshot_tables(engine.dataset("b").snapshot())
    for table in ta:
        assert _sorted(ta[table], table).equals(_sorted(tb[table], table)), table


def test_info_counts_tables_shards_and_bytes(files, engine):
    engine.create_dataset("inf", "UTC", shard_bits=10)
    rows = engine.ingest("inf", files / "pq")
    info = engine.info("inf")
    want = {k: v.num_rows for k, v in read_folder(files / "pq").items()}
    assert info["rows"] == {**{"customers": 0, "purchases": 0, "visits": 0, "laybys": 0}, **want}
    assert rows == want
    assert info["shards"] == 3 and info["bytes_on_disk"] > 0 and info["timezone"] == "UTC"


def test_bad_load_changes_nothing(files, engine, tmp_path):
    engine.create_dataset("aon", "America/New_York", shard_bits=10)
    engine.ingest("aon", files / "pq")
    seg = segment_json.loads('{"include": {"bought": {}}}')
    before_count = engine.count("aon", seg, AS_OF).count
    before_info = engine.info("aon")
    bad = tmp_path / "bad"
    bad.mkdir()
    p = pq.read_table(files / "pq" / "purchases.parquet")
    rows = p.slice(0, 50).to_pydict()
    rows["customer_id"][37] = 123  # nobody has this id
    pq.write_table(pa.table(rows, schema=p.schema), bad / "purchases.parquet")
    with pytest.raises(IngestError) as e:
        engine.ingest("aon", bad)
    assert "purchases.parquet" in str(e.value) and "row 38" in str(e.value) and "customer_id" in str(e.value)
    assert engine.count("aon", seg, AS_OF).count == before_count
    assert engine.info("aon")["rows"] == before_info["rows"]


def test_failure_during_build_leaves_previous_version(files, engine, monkeypatch):
    engine.create_dataset("crash", "America/New_York", shard_bits=10)
    engine.ingest("crash", files / "pq")
    seg = segment_json.loads('{"include": "all"}')
    before = engine.count("crash", seg, AS_OF).count
    from segments.engine.storage import build

    def boom(*a, **k):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(build, "build_run", boom)
    with pytest.raises(RuntimeError):
        engine.ingest("crash", files / "pq")
    monkeypatch.undo()
    assert engine.count("crash", seg, AS_OF).count == before
    d = engine.dataset("crash").dir
    current = (d / "CURRENT").read_text()
    assert sorted(p.name for p in d.glob("v*")) == [current, current + ".log"]  # version + change log


def test_reopen_after_restart(files, tmp_path):
    root = tmp_path / "data"
    e1 = Engine(root)
    e1.create_dataset("re", "Asia/Kolkata", shard_bits=10)
    e1.ingest("re", files / "pq")
    seg = segment_json.loads('{"include": {"spend": {"cmp": {">": 10000}, "range": {"last_n_months": 12}}}}')
    c1 = e1.count("re", seg, AS_OF)
    e1.close()
    e2 = Engine(root)
    assert e2.count("re", seg, AS_OF) == pytest.approx(c1) or e2.count("re", seg, AS_OF).count == c1.count
    assert e2.info("re")["timezone"] == "Asia/Kolkata"


def test_later_load_upserts_customers_and_appends_lines(files, engine, tmp_path):
    engine.create_dataset("up", "America/New_York", shard_bits=10)
    engine.ingest("up", files / "pq")
    first = read_folder(files / "pq")
    cust = first["customers"]
    cid = cust.column("customer_id")[0].as_py()
    upd = tmp_path / "upd"
    upd.mkdir()
    changed = cust.slice(0, 1).set_column(cust.schema.get_field_index("first_name"), "first_name",
                                          pa.array(["Renée"]))
    new_cust = changed.set_column(0, "customer_id", pa.array([cid], pa.int64()))
    brand_new = cust.slice(1, 1).set_column(0, "customer_id", pa.array([42], pa.int64()))
    pq.write_table(pa.concat_tables([new_cust, brand_new]), upd / "customers.parquet")
    line = first["purchases"].slice(0, 1).set_column(0, "customer_id", pa.array([42], pa.int64()))
    pq.write_table(line, upd / "purchases.parquet")
    rows = engine.ingest("up", upd)
    assert rows == {"customers": 2, "purchases": 1}
    got = snapshot_tables(engine.dataset("up").snapshot())
    assert got["customers"].num_rows == cust.num_rows + 1
    assert got["purchases"].num_rows == first["purchases"].num_rows + 1
    prev = engine.preview("up", segment_json.loads(f'{{"include": {{"customers": [{cid}, 42]}}}}'),
                          fields=["first_name"], as_of=AS_OF)
    names = {r["customer_id"]: r["first_name"] for r in prev.rows}
    assert names[cid] == "Renée" and 42 in names


def test_dataset_names_and_timezones_are_validated(engine):
    for bad in ("../x", "a/b", "", ".hidden", "x" * 200):
        with pytest.raises(InvalidArgument):
            engine.create_dataset(bad, "UTC")
    with pytest.raises(InvalidArgument) as e:
        engine.create_dataset("tz", "Mars/Olympus_Mons")
    assert "Mars/Olympus_Mons" in str(e.value)
    engine.create_dataset("tz", "UTC")
    with pytest.raises(AlreadyExists):
        engine.create_dataset("tz", "UTC")
    with pytest.raises(NotFound):
        engine.info("nope")
    engine.delete_dataset("tz")
    assert engine.datasets() == []


def test_empty_dataset_answers_empty(engine):
    engine.create_dataset("empty", "UTC")
    r = engine.count("empty", segment_json.loads('{"include": "all"}'), AS_OF)
    assert (r.count, r.email_reachable, r.sms_reachable) == (0, 0, 0)
    assert engine.info("empty")["rows"]["customers"] == 0


def test_many_shards_evaluate_in_batches_like_duckdb(tmp_path, engine):
    """More shards than one kernel batch (16): the batched path answers like DuckDB."""
    from segments.bench.duck import DuckPeer
    from segments.engine.evaluation.evaluate import SHARD_BATCH

    folder = tmp_path / "many"
    generate(folder, customers=700, seed=3, fmt="parquet")
    engine.create_dataset("many", "America/New_York", shard_bits=4)
    engine.ingest("many", folder)
    assert engine.dataset("many").snapshot().n_shards > 2 * SHARD_BATCH
    peer = DuckPeer.from_folder(folder, "America/New_York")
    for text in ('{"include": {"spend": {"cmp": {">": 20000}, "range": {"last_n_months": 12}}}}',
                 '{"include": {"bought": {"filter": {"department": ["diamond"]}}}, '
                 '"order_by": {"key": "last_purchase"}, "limit": 30}',
                 '{"include": {"visited": {"cmp": {">=": 2}}}, "exclude": "upcoming_appointment"}'):
        seg = segment_json.loads(text)
        for as_of in (AS_OF, dt.datetime(2026, 11, 21, 12, tzinfo=dt.timezone.utc)):
            assert engine.materialize("many", seg, as_of=as_of).customer_ids.tolist() == peer.result(seg, as_of)


def test_a_small_memory_budget_builds_the_same_dataset_in_more_buckets(files, tmp_path, monkeypatch):
    """A load read in small batches and built in one-shard buckets (the budget's minimum,
    with the per-shard cost overstated) equals the default build, table by table."""
    from segments.engine.storage import load
    a = Engine(tmp_path / "a")
    a.create_dataset("d", "America/New_York", shard_bits=8)
    a.ingest("d", files / "pq")
    monkeypatch.setattr(load, "DEFAULT_BATCH_ROWS", 997)      # many batches, cut mid-customer
    monkeypatch.setattr(load, "BYTES_PER_LINE", 1 << 20)       # every shard its own bucket
    b = Engine(tmp_path / "b")
    b.create_dataset("d", "America/New_York", shard_bits=8)
    b.ingest("d", files / "pq", memory=64 << 20)
    sa, sb = a.dataset("d").snapshot(), b.dataset("d").snapshot()
    assert sb.n_shards == sa.n_shards > 8
    assert len(sb.manifest.parts()) == sb.n_shards > len(sa.manifest.parts())
    ta, tb = snapshot_tables(sa), snapshot_tables(sb)
    for table in ta:
        assert _sorted(ta[table], table).equals(_sorted(tb[table], table)), table
    seg = segment_json.loads('{"include": {"spend": {"cmp": {">": 0}, "filter": {"department": ["diamond"]}}}}')
    assert a.materialize("d", seg, as_of=AS_OF).customer_ids.tolist() == \
        b.materialize("d", seg, as_of=AS_OF).customer_ids.tolist()


def test_parts_of_files_are_read_at_once_and_the_earliest_error_is_named(tmp_path):
    """Lines in many row groups and part files are read by parallel workers; a bad row in
    two places is reported at the earlier one, whichever worker met the later one first."""
    from segments.engine.storage import load
    from segments.engine.storage.ingest_read import table_units
    generate(tmp_path / "in", customers=600, seed=3, fmt="parquet")
    p = pq.read_table(tmp_path / "in" / "purchases.parquet")
    (tmp_path / "in" / "purchases.parquet").unlink()
    parts = tmp_path / "in" / "purchases"
    parts.mkdir()
    half = p.num_rows // 2
    for k, t in enumerate((p.slice(0, half), p.slice(half))):
        pq.write_table(t, parts / f"part-{k}.parquet", row_group_size=1000)
    assert len(table_units(parts / "part-0.parquet", 1000)) > 3
    e = Engine(tmp_path / "data")
    e.create_dataset("d", "America/New_York", shard_bits=8)
    old = load.DEFAULT_BATCH_ROWS
    load.DEFAULT_BATCH_ROWS = 1000
    try:
        e.ingest("d", tmp_path / "in")
        want = {"purchases": p.num_rows}
        assert e.info("d")["rows"]["purchases"] == want["purchases"]
        bad = [p.slice(0, half), p.slice(half)]
        for k, row in ((0, 2500), (1, 30)):   # part-1's bad row is met first by a worker, part-0's is earlier
            t = bad[k]
            ids = t.column("customer_id").to_numpy().copy()
            ids[row] = 123456789
            bad[k] = t.set_column(0, "customer_id", pa.array(ids))
        for k, t in enumerate(bad):
            pq.write_table(t, parts / f"part-{k}.parquet", row_group_size=1000)
        with pytest.raises(IngestError) as err:
            e.ingest("d", tmp_path / "in")
        assert (err.value.file, err.value.row) == ("purchases/part-0.parquet", 2501)
    finally:
        load.DEFAULT_BATCH_ROWS = old
    e.close()


def test_merge_lookup_of_sorted_ids_equals_a_binary_search_per_id():
    """Snapshot.lookup of an ascending list (a frozen group) merges instead of searching:
    same answers with duplicates, absent ids below, between and above the dataset's."""
    from segments.engine.storage.snapshot import _ascending, _merge_lookup
    rng = np.random.default_rng(3)
    ext = np.unique(rng.integers(10, 10**12, 50_000))
    iid = rng.permutation(ext.size).astype(np.int64)
    ids = np.sort(np.concatenate([rng.choice(ext, 20_000), rng.integers(0, 2 * 10**12, 5_000), [0, 2**62]]))
    assert _ascending(ids) and not _ascending(ids[::-1])
    pos = np.minimum(np.searchsorted(ext, ids), ext.size - 1)
    want = np.where(ext[pos] == ids, iid[pos], -1)
    got = np.full(ids.size, -1, np.int64)
    _merge_lookup(ext, iid, ids, got)
    assert np.array_equal(got, want) and (got >= 0).sum() >= 20_000
