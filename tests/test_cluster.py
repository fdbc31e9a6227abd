"""Cluster mode (segments.cluster) against the one-machine Engine: the same answers, order
included, on small datasets split into 3 partitions by customer_id.

Differential: every condition of tests/test_conditions.py, the seed examples, every
ranking both ways with limits and appends (tests/test_segments.py), random segments
(tests/test_properties.py), and the live-change corpus after change batches, erasure
and compaction (tests/test_live_oracle.py), each through ClusterEngine and through the
Engine that the other tests check against DuckDB. Then the faults: a killed actor is
retried transparently, a slow partition gives DEADLINE_EXCEEDED at the caller's deadline
(through the gRPC server, unchanged), a killed replica is backed up by the other.

Skipped without ray (pip install -e '.[cluster]'). Ray runs with a temporary HOME and temp
folder (it writes an auth token under HOME on its first start) and 2 CPUs, once per module.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import tempfile
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from segments.engine import errors as E  # noqa: E402
from segments.engine.model import segment as S  # noqa: E402
from segments.engine.model.segment_json import loads  # noqa: E402
from tests.test_conditions import CATALOG, RANGES, F, values_of  # noqa: E402
from tests.test_properties import ORDERS, build_segment, random_segment_spec  # noqa: E402
from tests.test_segments import SEED_EXAMPLES  # noqa: E402

P = 3
KEYS = ("gen1", "edge_ny")


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module: 2 CPUs, its own HOME and temp folder."""
    home = tempfile.mkdtemp(prefix="segments-rayhome-")
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")   # short: Ray's socket paths must stay < 108 bytes
    saved = {k: os.environ.get(k) for k in ("HOME", "RAY_TMPDIR")}
    os.environ["HOME"], os.environ["RAY_TMPDIR"] = home, temp
    if ray.is_initialized():
        ray.shutdown()
    from segments.cluster.engine import RAY_SYSTEM_CONFIG
    for attempt in range(2):   # Ray gives its raylet a fixed 30 s to register: a busy machine can miss it
        try:
            ray.init(num_cpus=2, _temp_dir=temp, include_dashboard=False, log_to_driver=False,
                     _system_config=RAY_SYSTEM_CONFIG,
                     runtime_env={"env_vars": {"HOME": home}})
            break
        except Exception as e:  # noqa: BLE001 - ray raises a bare Exception for this
            ray.shutdown()
            if attempt or "timed out during startup" not in str(e):
                raise
    try:
        yield
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(ray_session, tmp_path_factory):
    from segments.cluster.engine import ClusterEngine
    return ClusterEngine(tmp_path_factory.mktemp("cluster"), partitions=P, hedge_after=30.0)


@pytest.fixture(scope="module")
def pair(cluster, get_dataset):
    """key -> (single-process DS, cluster engine holding the same dataset)."""
    out = {}
    for key in KEYS:
        ds = get_dataset(key)
        cluster.create_dataset(key, ds.timezone, shard_bits=10)
        cluster.ingest(key, ds.folder)
        out[key] = ds
    return out


# ---------------------------------------------------------------- comparing answers

def _rank_list(m):
    if m.rank_values is None:
        return None
    v = np.asarray(m.rank_values)
    return [None if (v.dtype.kind == "f" and np.isnan(x)) else int(x) for x in v]


def answers(eng, name, seg, as_of, n=30, fields=(), full=True) -> dict:
    """Everything a caller sees of a segment: count, reachables, missing ids, preview rows
    (order, fields, rank values) and total, materialized ids (order) and rank values."""
    c = eng.count(name, seg, as_of=as_of)
    out = {"count": (c.count, c.email_reachable, c.sms_reachable, tuple(c.missing_ids))}
    m = eng.materialize(name, seg, fields, as_of=as_of)
    out["ids"] = [int(x) for x in m.customer_ids]
    out["ranks"] = _rank_list(m)
    out["columns"] = {f: m.columns[f].to_pylist() for f in fields}
    out["missing"] = tuple(m.missing_ids)
    if full:
        p = eng.preview(name, seg, n, fields, as_of=as_of)
        out["preview"] = (p.rows, p.total, tuple(p.missing_ids))
    return out


def differences(ds, cluster, seg, as_of, where, **kw) -> list:
    from segments.engine.model.segment_json import dumps
    want = answers(ds.engine, ds.name, seg, as_of, **kw)
    got = answers(cluster, ds.name, seg, as_of, **kw)
    bad = [k for k in want if got[k] != want[k]]
    if not bad:
        return []
    k = bad[0]
    return [f"[{where} as_of={as_of.isoformat()}] {dumps(seg)}: {', '.join(bad)} differ; "
            f"{k}: cluster {str(got[k])[:200]} engine {str(want[k])[:200]}"]


def some_ids(ds, n: int) -> list:
    return [r[0] for r in ds.peer.con.execute(
        f"SELECT customer_id FROM customers ORDER BY hash(customer_id) LIMIT {n}").fetchall()]


# ---------------------------------------------------------------- differential corpus

@pytest.mark.parametrize("key", KEYS)
def test_every_condition(pair, cluster, key):
    """Each condition of the oracle corpus as a segment: count, reachables, missing ids, ids
(percentiles and RFM ranked over the whole population: tests/test_cluster.py below)."""
    ds = pair[key]
    v = values_of(ds)
    problems = []
    for name, make in CATALOG.items():
        seg = S.Segment(make(v))
        problems += differences(ds, cluster, seg, ds.as_ofs[0], f"{key} {name}", full=False)
    assert not problems, "\n".join(problems[:20])
    assert sum(_population(S.Segment(make(v))) for make in CATALOG.values()) >= 10   # percentiles and rfm ran


@pytest.mark.parametrize("key", KEYS)
def test_seed_examples_and_rankings(pair, cluster, key):
    """Seed examples, every ranking both ways with limit + exclude + append, limits without
    ranking, empty and full results: counts, preview pages and materialize order."""
    ds = pair[key]
    v = values_of(ds)
    segs = [loads(json.dumps(x)) for x in SEED_EXAMPLES.values()]
    for order in sorted(ORDERS):
        for desc in (True, False):
            o = ORDERS[order](v)
            ob = S.OrderBy(o.key, o.filter, o.range, desc)
            segs += [S.Segment(S.All(), order_by=ob, limit=25),
                     S.Segment(S.AnyOf((S.InValues("city", v("customers.city", 2)),
                                        S.Bought(F(department=v("purchases.department"))))),
                               exclude=S.Reachable("has_phone"), append=(S.Tags(v("tags", 1)),),
                               order_by=ob, limit=40),
                     S.Segment(S.Bought(S.NO_FILTER, RANGES["months12"]), order_by=ob)]
    segs += [S.Segment(S.All()), S.Segment(S.All(), limit=7), S.Segment(S.All(), limit=1),
             S.Segment(S.Customers((-1,))), S.Segment(S.All(), exclude=S.All()),
             S.Segment(S.Not(S.All()), append=(S.LoyaltyMember(),)),
             S.Segment(S.AnyOf((S.Customers(tuple(v.ids[:3]) + (-7, 123_456_789_012_345_678)),
                                S.Customers((-7, 42))))),
             S.Segment(S.All(), order_by=S.OrderBy("loyalty_points"), limit=60)]
    fields = ("first_name", "email", "birth_date", "tags", "loyalty_points")
    problems = []
    for i, seg in enumerate(segs):
        problems += differences(ds, cluster, seg, ds.as_ofs[i % 2], key, fields=fields if i % 5 == 0 else ())
    assert not problems, "\n".join(problems[:20])


def test_random_segments(pair, cluster):
    """Random trees with exclude, appends, rankings and limits (1, 7, 50, 400)."""
    rng = random.Random(12)
    problems = []
    for i in range(40):
        ds = pair[KEYS[i % 2]]
        seg = build_segment(random_segment_spec(rng), values_of(ds))
        problems += differences(ds, cluster, seg, ds.as_ofs[i % len(ds.as_ofs)], f"random {i}")
    assert not problems, "\n".join(problems[:20])


def test_explain_and_rows_of(pair, cluster):
    """Explain: sizes summed per node, the result's size exact, one node per partition;
    rows_of: the given customers, ascending, missing ones listed."""
    ds = pair["gen1"]
    as_of = ds.as_ofs[0]
    seg = loads(json.dumps(SEED_EXAMPLES["vip_not_staff_plus_append"]))
    want, got = ds.engine.explain(ds.name, seg, as_of=as_of), cluster.explain(ds.name, seg, as_of=as_of)
    assert got.size == want.size
    assert [(c.label, c.size) for c in got.children[:len(want.children)]] == \
        [(c.label, c.size) for c in want.children]
    parts = got.children[len(want.children):]
    assert [c.label for c in parts] == [f"partition {p}" for p in range(P)]
    assert sum(c.size for c in parts) == want.size
    ids = some_ids(ds, 40) + [-3, 99_999_999]
    a = ds.engine.rows_of(ds.name, ids, ("email", "city"))
    b = cluster.rows_of(ds.name, ids, ("email", "city"))
    assert b.customer_ids.tolist() == a.customer_ids.tolist()
    assert b.columns["email"].to_pylist() == a.columns["email"].to_pylist()
    assert set(b.missing_ids) == set(a.missing_ids) == {-3, 99_999_999}


def test_info_and_partition_balance(pair, cluster):
    """Rows summed over partitions equal the dataset's; no partition is empty or holds
    more than half (a hash of customer_id, not ranges)."""
    ds = pair["gen1"]
    a, b = ds.engine.info(ds.name), cluster.info(ds.name)
    assert b["rows"] == a["rows"] and b["active_customers"] == a["active_customers"]
    per = [i["rows"]["customers"] for i in b["partition_info"]]
    assert len(per) == P and sum(per) == a["rows"]["customers"]
    assert all(0.5 / P * sum(per) < x < 0.5 * sum(per) for x in per), per


def test_bad_input_named_as_given(cluster, engine, tmp_path):
    """A load whose purchases name an unknown customer: the same error as one machine, the
    input's own file and row (not the partition's share); a bad definition is rejected
    before any partition works. (A throwaway dataset: the partitions without the bad row
    load their share.)"""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "bad"
    folder.mkdir()
    pq.write_table(pa.table({"customer_id": pa.array(range(1, 21), pa.int64())}), folder / "customers.parquet")
    cids = [1, 2, 3, 4, 5, 424_242_424_242, 6, 7]
    pq.write_table(pa.table({"customer_id": pa.array(cids, pa.int64()),
                             "purchased_at": pa.array([dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc)] * len(cids),
                                                      pa.timestamp("us", tz="UTC")),
                             "amount": pa.array([100] * len(cids), pa.int64())}), folder / "purchases.parquet")
    errors = []
    for eng in (engine, cluster):
        eng.create_dataset("bad_input", "UTC", shard_bits=10)
        with pytest.raises(E.IngestError) as err:
            eng.ingest("bad_input", folder)
        errors.append((err.value.file, err.value.row, err.value.column, err.value.message))
    assert errors[1] == errors[0]
    assert errors[0][:2] == ("purchases.parquet", 6)
    with pytest.raises(E.InvalidArgument):
        cluster.preview("bad_input", S.Segment(S.All()), 5, ("no_such_field",))
    with pytest.raises(E.NotFound):
        cluster.count("no_such_dataset", S.Segment(S.All()))
    for eng in (engine, cluster):
        eng.delete_dataset("bad_input")


# ---------------------------------------------------------------- live changes and erasure

def test_live_changes_and_erasure(cluster, engine, tmp_path_factory):
    """The live corpus after random change batches (upserts, lines, deletes, re-creations),
    after erasure and after compaction: the same answers both ways, acks summed."""
    from segments.bench.duck import read_tables
    from segments.bench.generate import generate
    from tests.live_ref import ChangeGen, LiveRef, as_ofs
    from tests.test_live_oracle import segments

    tz, name = "America/New_York", "live_cluster"
    folder = tmp_path_factory.mktemp("live_cluster_base")
    generate(folder, customers=1500, seed=303, fmt="parquet")
    for eng in (engine, cluster):
        eng.create_dataset(name, tz, shard_bits=10)
        eng.ingest(name, folder)
    ref = LiveRef(read_tables(folder), tz)
    gen = ChangeGen(303, ref)
    instants = as_ofs(tz)

    class One:
        pass
    ds = One()
    ds.engine, ds.name = engine, name
    problems = []

    def check(label, every=1):
        for i, (k, seg) in enumerate(segments(gen).items()):
            if i % every == 0:
                problems.extend(differences(ds, cluster, seg, instants["end"], f"{label} {k}", full=i % 3 == 0))

    for i in range(6):
        batch = gen.next()
        ref.apply(batch)
        a = engine.apply_changes(name, **batch.kwargs())
        b = cluster.apply_changes(name, **batch.kwargs())
        if (a["rows"], sorted(a["not_found"]), a["duplicate"]) != (b["rows"], b["not_found"], b["duplicate"]):
            problems.append(f"batch {i}: ack {b} != {a}")
    check("after 6 batches")
    again = cluster.apply_changes(name, **batch.kwargs(), batch_id="fixed-id")
    assert cluster.apply_changes(name, **batch.kwargs(), batch_id="fixed-id")["duplicate"] is True
    engine.apply_changes(name, **batch.kwargs(), batch_id="fixed-id")
    assert again["sequence"] == cluster.info(name)["live"]["sequence"]
    gone = sorted(ref.ids())[:25]
    for eng in (engine, cluster):
        eng.delete_customers(name, gone)
    check("after erasure", every=3)
    engine.compact(name)
    cluster.compact(name)
    check("after compaction", every=2)
    assert not any(int(x) in set(gone) for x in cluster.materialize(name, S.Segment(S.All())).customer_ids)
    assert not problems, "\n".join(problems[:20])


def _population(seg) -> bool:
    from segments.cluster.engine import POPULATION_KINDS
    return any(isinstance(c, POPULATION_KINDS) for top in S.segment_conditions(seg) for c in S.walk(top))


# ---------------------------------------------------------------- whole-population kinds

def _pct(key, cm, among=None, f=S.NO_FILTER, r=S.EVER):
    return S.Percentile(S.Value(key, f, r), cm, among)


def ranked_segments(v) -> list:
    """Percentiles and RFM over every value, bounds that cut through ties, populations
    (among, empty, with missing ids), nested in all_of / any_of / not / exclude / append /
    limit, and a percentile whose population is another percentile's."""
    from tests.test_conditions import cmp
    m12, dept = RANGES["months12"], F(department=v("purchases.department"))
    segs = []
    for key in ("spend", "purchase_count", "order_count", "last_purchase", "loyalty_points"):
        for cm in (cmp(">=", 80), cmp("<", 30), cmp("==", 0), cmp("between", 33, 34), cmp("between", 50, 89),
                   cmp(">", 98), cmp("<=", 99), cmp("<", 0)):
            segs.append(S.Segment(_pct(key, cm)))
        segs.append(S.Segment(_pct(key, cmp(">=", 50), S.LoyaltyMember(), r=m12)))
        segs.append(S.Segment(_pct(key, cmp("between", 10, 60), S.Bought(dept), f=dept)))
    rfms = [S.Rfm(S.NO_FILTER, m12, None, cmp(">=", 4), cmp(">=", 4), cmp(">=", 4)),
            S.Rfm(S.NO_FILTER, S.EVER, None, cmp("==", 1), cmp("between", 2, 3), cmp("<=", 2)),
            S.Rfm(r=cmp("==", 5)), S.Rfm(f=cmp("<", 2)), S.Rfm(m=cmp(">", 3)),
            S.Rfm(dept, S.EVER, S.Bought(), None, cmp("==", 5), cmp(">=", 3)),
            S.Rfm(among=S.Reachable("email_opt_in")), S.Rfm(r=cmp(">", 7)), S.Rfm(m=cmp("between", 0, 9))]
    segs += [S.Segment(c) for c in rfms]
    top_spend, low_points = _pct("spend", cmp(">=", 80)), _pct("loyalty_points", cmp("<", 50))
    segs += [
        S.Segment(S.AllOf((top_spend, S.Not(low_points)))),
        S.Segment(S.AnyOf((rfms[2], _pct("purchase_count", cmp("==", 0))))),
        S.Segment(S.Not(rfms[0])),
        S.Segment(S.All(), exclude=top_spend, append=(rfms[0],)),
        S.Segment(top_spend, order_by=S.OrderBy("spend"), limit=40, append=(low_points,)),
        S.Segment(rfms[1], order_by=S.OrderBy("last_purchase", descending=False), limit=15, exclude=low_points),
        S.Segment(_pct("spend", cmp(">=", 50), _pct("purchase_count", cmp(">=", 20)))),
        S.Segment(_pct("spend", cmp("<", 50), S.AllOf((S.LoyaltyMember(), S.Not(rfms[3]))))),
        S.Segment(S.Rfm(r=cmp(">=", 3), among=_pct("loyalty_points", cmp(">=", 30), top_spend))),
        S.Segment(_pct("spend", cmp(">=", 0), S.Customers((-1,)))),
        S.Segment(_pct("order_count", cmp(">=", 40), S.Customers(tuple(v.ids) + (-5, 77_777_777_777)))),
    ]
    return segs


@pytest.mark.parametrize("key", KEYS)
def test_percentiles_and_rfm_over_the_whole_population(pair, cluster, key):
    """Percentile and RFM conditions through ClusterEngine (two rounds: histograms, then
    value intervals) give the one-machine answers: ties, absent values, among, nesting."""
    ds = pair[key]
    v = values_of(ds)
    problems = []
    segs = ranked_segments(v)
    for i, seg in enumerate(segs):
        problems += differences(ds, cluster, seg, ds.as_ofs[i % 2], f"{key} ranked {i}", full=i % 4 == 0)
    assert not problems, "\n".join(problems[:20])
    for seg in segs[-11:-2]:   # explain: every node's size summed over partitions is one machine's
        want, got = ds.engine.explain(ds.name, seg, as_of=ds.as_ofs[0]), cluster.explain(ds.name, seg, as_of=ds.as_ofs[0])

        def sizes(node):
            return [node.size] + [x for c in node.children for x in sizes(c)]
        assert got.size == want.size and sizes(got)[:len(sizes(want))] == sizes(want), seg


def _error(eng, name, seg, as_of):
    try:
        eng.count(name, seg, as_of=as_of)
    except E.EngineError as e:
        return type(e).__name__, e.path, str(e)
    return None


def test_references_and_groups(cluster, engine, tmp_path_factory):
    """in_segment (with and without a limit, nested, holding percentiles and RFM) and in_group
    through the coordinator's catalog: the one-machine answers, also after live changes;
    reference cycles, unknown names, an inactive segment and an expired group raise the
    one-machine errors."""
    from segments.bench.generate import generate
    from tests.live_ref import ChangeGen, LiveRef, as_ofs
    from segments.bench.duck import read_tables

    tz, name = "America/New_York", "refs_cluster"
    folder = tmp_path_factory.mktemp("refs_cluster")
    generate(folder, customers=1500, seed=404, fmt="parquet")
    cats = []
    for eng in (engine, cluster):
        eng.create_dataset(name, tz, shard_bits=10)
        eng.ingest(name, folder)
        cats.append(eng.references(name).catalog)
    instants = as_ofs(tz)
    at = instants["end"]
    m12 = RANGES["months12"]
    from tests.test_conditions import cmp
    saved = {
        "vip": S.Segment(S.Spend(cmp(">=", 10000)), order_by=S.OrderBy("spend"), limit=25),
        "members": S.Segment(S.LoyaltyMember(), exclude=S.Bought(range=S.TimeRange("last_n_months", n=1)),
                             append=(S.Reachable("email_opt_in"),)),
        "nested": S.Segment(S.AllOf((S.InSegment("vip"), S.Not(S.InSegment("members"))))),
        "top_pct": S.Segment(S.Percentile(S.Value("spend"), cmp(">=", 80), S.InSegment("members"))),
        "rfm_best": S.Segment(S.Rfm(S.NO_FILTER, m12, None, cmp(">=", 4), cmp(">=", 3), cmp(">=", 4)),
                              order_by=S.OrderBy("last_purchase"), limit=30, append=(S.InSegment("top_pct"),)),
        "deep": S.Segment(S.AnyOf((S.InSegment("nested"), S.InSegment("rfm_best"), S.InGroup("buyers")))),
    }
    for cat in cats:
        cat.create_group(name, "buyers", S.Segment(S.PurchaseCount(cmp(">=", 3))), as_of=at)
        for k, seg in saved.items():
            cat.create_segment(name, k, seg)
        cat.create_group(name, "vip_now", saved_segment="vip", as_of=at)
        cat.create_segment(name, "off", S.Segment(S.All()), active=False)
    for g in ("buyers", "vip_now"):
        assert cats[0].group_members(name, g).tolist() == cats[1].group_members(name, g).tolist()
    assert cats[0].group_members(name, "buyers").size > 50

    conds = [S.InSegment(k) for k in saved] + [
        S.Not(S.InSegment("vip")), S.InGroup("buyers"), S.InGroup("vip_now"),
        S.AllOf((S.InGroup("buyers"), S.Bought(S.NO_FILTER, m12))),
        S.Percentile(S.Value("spend"), cmp(">=", 50), S.InGroup("buyers")),
        S.Rfm(r=cmp(">=", 4), among=S.InSegment("members")),
        S.AnyOf((S.Not(S.InGroup("buyers")), S.InSegment("top_pct"))),
    ]
    segs = [S.Segment(c) for c in conds] + [
        S.Segment(S.InSegment("deep"), order_by=S.OrderBy("spend"), limit=20, append=(S.InGroup("vip_now"),)),
        S.Segment(S.All(), exclude=S.InSegment("rfm_best"), order_by=S.OrderBy("loyalty_points"), limit=50),
    ]

    class One:
        pass
    ds = One()
    ds.engine, ds.name = engine, name
    problems = []

    def check(label):
        for i, seg in enumerate(segs):
            problems.extend(differences(ds, cluster, seg, at, f"{label} {i}", full=i % 3 == 0))
    check("loaded")
    assert cluster.count(name, S.Segment(S.InSegment("deep")), as_of=at).count > 0

    # errors: as one machine, before any partition evaluates
    with pytest.raises(E.InvalidArgument, match="reference cycle"):   # refused when saved, as on one machine
        cats[1].create_segment(name, "self", S.Segment(S.InSegment("self")))
    for cat in cats:   # cycles on disk (written past the save-time check: a race of two saves)
        cat.check_references = lambda *a: None
        try:
            cat.create_segment(name, "cyc-a", S.Segment(S.InSegment("cyc-b")))
            cat.create_segment(name, "cyc-b", S.Segment(S.LoyaltyMember(),
                                                         append=(S.AnyOf((S.All(), S.InSegment("cyc-a"))),)))
            cat.create_segment(name, "cyc-l", S.Segment(S.InSegment("cyc-m"), order_by=S.OrderBy("spend"), limit=5))
            cat.create_segment(name, "cyc-m", S.Segment(S.AllOf((S.InGroup("buyers"), S.InSegment("cyc-l")))))
        finally:
            del cat.check_references
    bad = [S.Segment(S.InSegment("cyc-a")), S.Segment(S.AllOf((S.InSegment("members"), S.InSegment("cyc-b")))),
           S.Segment(S.InSegment("cyc-m")), S.Segment(S.Percentile(S.Value("spend"), cmp(">", 1), S.InSegment("cyc-l"))),
           S.Segment(S.InSegment("no-such")), S.Segment(S.All(), append=(S.InGroup("no-such"),)),
           S.Segment(S.InSegment("off"))]
    for seg in bad:
        want = _error(engine, name, seg, at)
        assert want is not None
        assert _error(cluster, name, seg, at) == want, seg
    assert _error(engine, name, bad[2], at)[2].endswith("cyc-m -> cyc-l -> cyc-m")
    clocks = [cat.clock for cat in cats]
    for cat in cats:
        cat.clock = lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=181)
    try:
        seg = S.Segment(S.Percentile(S.Value("spend"), cmp(">=", 50), S.InGroup("buyers")))
        want = _error(engine, name, seg, at)
        assert want is not None and want[:2] == ("FailedPrecondition", "in_group")
        got = _error(cluster, name, seg, at)   # each catalog made its group: their times differ
        assert got[:2] == want[:2] and got[2].split(" expired at")[0] == want[2].split(" expired at")[0]
    finally:
        for cat, clock in zip(cats, clocks):
            cat.clock = clock

    # after live changes (members of groups deleted, new customers, new lines)
    ref = LiveRef(read_tables(folder), tz)
    gen = ChangeGen(404, ref)
    for _ in range(4):
        batch = gen.next()
        ref.apply(batch)
        for eng in (engine, cluster):
            eng.apply_changes(name, **batch.kwargs())
    gone = [int(x) for x in cats[0].group_members(name, "buyers")[:7]]
    for eng in (engine, cluster):
        eng.delete_customers(name, gone)
    check("after changes")
    assert not problems, "\n".join(problems[:20])


# ---------------------------------------------------------------- streamed materialize

def _joined(stream):
    import pyarrow as pa
    pieces = list(stream.chunks)
    ids = np.concatenate([x.customer_ids for x in pieces]).tolist()
    cols = {f: pa.concat_arrays([x.columns[f] for x in pieces]).to_pylist() for f in pieces[0].columns}
    ranks = None if pieces[0].rank_values is None else _rank_list(
        type("M", (), {"rank_values": np.concatenate([x.rank_values for x in pieces])}))
    return pieces, ids, cols, ranks


def test_materialize_streams_in_pieces(pair, cluster):
    """ClusterEngine.materialize_stream: the one-machine materialize (ids, order, fields,
    rank values, total, missing ids) in pieces of exactly chunk_ids rows, merged from the
    partitions' streams with back-pressure (a partition runs at most STREAM_AHEAD chunks
    ahead of the merge), and the same through the gRPC server's Materialize."""
    from segments.cluster.engine import STREAM_AHEAD
    from segments.client.client import SegmentsClient
    from segments.server.app import build_server
    from tests.test_conditions import cmp

    ds = pair["gen1"]
    v = values_of(ds)
    as_of = ds.as_ofs[0]
    segs = [S.Segment(S.All()), S.Segment(S.All(), order_by=S.OrderBy("spend")),
            S.Segment(S.Bought(F(department=v("purchases.department"))), order_by=S.OrderBy("last_purchase", descending=False)),
            S.Segment(S.Percentile(S.Value("purchase_count"), cmp(">=", 40)), order_by=S.OrderBy("loyalty_points")),
            S.Segment(S.Customers(tuple(v.ids) + (-9,)), order_by=S.OrderBy("order_count")),
            S.Segment(S.All(), order_by=S.OrderBy("spend"), limit=130, append=(S.LoyaltyMember(),)),
            S.Segment(S.All(), exclude=S.All())]
    fields = ("email", "city")
    for i, seg in enumerate(segs):
        f = fields if i % 2 else ()
        want = ds.engine.materialize(ds.name, seg, f, as_of=as_of)
        for chunk in (97, 5000):
            stream = cluster.materialize_stream(ds.name, seg, f, as_of=as_of, chunk_ids=chunk)
            assert (stream.total, stream.missing_ids, stream.rank_key) == (len(want.customer_ids), want.missing_ids,
                                                                           want.rank_key), seg
            pieces, ids, cols, ranks = _joined(stream)
            assert ids == want.customer_ids.tolist(), (i, chunk)
            assert cols == {k: want.columns[k].to_pylist() for k in f}
            assert ranks == _rank_list(want)
            assert all(len(x.customer_ids) == chunk for x in pieces[:-1]) and len(pieces[-1].customer_ids) <= chunk

    # back-pressure: with 10-row chunks (~100 per partition), after the first piece every
    # partition has sent only what the merge took plus STREAM_AHEAD
    before = [a["streamed"] for a in cluster.ping()]
    stream = cluster.materialize_stream(ds.name, S.Segment(S.All(), order_by=S.OrderBy("spend")), as_of=as_of,
                                        chunk_ids=10)
    it = iter(stream.chunks)
    next(it)
    time.sleep(1.0)
    sent = [x["streamed"] - b for x, b in zip(cluster.ping(), before)]
    print(f"chunks each partition sent when the first piece was merged (+1 s): {sent}")
    assert all(1 <= s <= 3 + STREAM_AHEAD for s in sent), sent
    rest = sum(len(x.customer_ids) for x in it)
    assert 10 + rest == stream.total > 2000
    sent = [x["streamed"] - b for x, b in zip(cluster.ping(), before)]
    assert sum(sent) >= stream.total // 10

    with pytest.raises(E.InvalidArgument):   # a partition's error, raised by the stream's head
        cluster.materialize_stream(ds.name, segs[1], ("no_such_field",), as_of=as_of)
    ray.get(cluster.actor(1).set_delay.remote(3.0))
    try:
        t0 = time.monotonic()
        with pytest.raises(E.Cancelled):
            cluster.materialize_stream(ds.name, segs[1], as_of=as_of, deadline=time.monotonic() + 0.4)
        assert time.monotonic() - t0 < 2.0
    finally:
        ray.get(cluster.actor(1).set_delay.remote(0.0))

    server, port = build_server(cluster, port=0, chunk_ids=100)
    server.start()
    try:
        with SegmentsClient(f"127.0.0.1:{port}") as client:
            for seg in segs[1:5]:
                got = client.materialize(ds.name, seg, fields, as_of=as_of)
                want = ds.engine.materialize(ds.name, seg, fields, as_of=as_of)
                assert list(got.customer_ids) == want.customer_ids.tolist()
                assert got.columns["email"].to_pylist() == want.columns["email"].to_pylist()
    finally:
        server.stop(0)


# ---------------------------------------------------------------- faults

def _count_all(eng, name, as_of):
    c = eng.count(name, S.Segment(S.All(), order_by=S.OrderBy("spend"), limit=50), as_of=as_of)
    return c.count, c.email_reachable


def test_killed_actor_is_retried(pair, cluster):
    """A partition's actor killed between calls, and killed with a call in flight: Ray
    restarts it, it reopens its files, and the calls answer as before."""
    ds = pair["gen1"]
    as_of = ds.as_ofs[0]
    want = _count_all(ds.engine, ds.name, as_of)
    before = cluster.actor(1).ping.remote()
    pid = ray.get(before)["pid"]
    ray.kill(cluster.actor(1), no_restart=False)
    t0 = time.monotonic()
    assert _count_all(cluster, ds.name, as_of) == want
    first = time.monotonic() - t0
    assert ray.get(cluster.actor(1).ping.remote())["pid"] != pid
    # killed mid-call: the call in flight is retried on the restarted actor
    ray.get(cluster.actor(2).set_delay.remote(1.0))
    ref = cluster.actor(2).call.remote("count", (ds.name, S.Segment(S.All())), {"as_of": as_of}, None)
    time.sleep(0.3)
    ray.kill(cluster.actor(2), no_restart=False)
    from segments.cluster.worker import unwrap
    got = unwrap(ray.get(ref, timeout=60))
    assert got.count == cluster.count(ds.name, S.Segment(S.All()), as_of=as_of).count - sum(
        unwrap(ray.get(cluster.actor(p).call.remote("count", (ds.name, S.Segment(S.All())), {"as_of": as_of})))
        .count for p in (0, 1))
    assert _count_all(cluster, ds.name, as_of) == want
    assert first < 30


def test_deadline_through_grpc(pair, cluster):
    """A partition slower than the caller's deadline: DEADLINE_EXCEEDED near the deadline,
    not a hang; the server, client and catalog run unchanged over the ClusterEngine."""
    import grpc
    from segments.client.client import SegmentsClient
    from segments.server.app import build_server

    ds = pair["gen1"]
    as_of = ds.as_ofs[0]
    server, port = build_server(cluster, port=0)
    server.start()
    try:
        with SegmentsClient(f"127.0.0.1:{port}") as client:
            seg = S.Segment(S.All(), order_by=S.OrderBy("spend"), limit=30)
            assert client.count(ds.name, seg, as_of=as_of).count == 30
            p = client.preview(ds.name, seg, n=10, as_of=as_of)
            assert [r["customer_id"] for r in p.rows] == \
                [r["customer_id"] for r in ds.engine.preview(ds.name, seg, 10, as_of=as_of).rows]
            ids = client.materialize(ds.name, seg, as_of=as_of).customer_ids
            assert list(ids) == list(ds.engine.materialize(ds.name, seg, as_of=as_of).customer_ids)
            # the catalog lives with the coordinator: a saved segment, a group frozen from it
            client.create_saved_segment(ds.name, "best30", seg)
            assert client.count(ds.name, saved="best30", as_of=as_of).count == 30
            client.create_group(ds.name, "best30-now", saved="best30", as_of=as_of)
            for cond in (S.InSegment("best30"), S.InGroup("best30-now"),
                         S.Percentile(S.Value("spend"), S.Cmp(">=", 50), S.InSegment("best30"))):
                assert client.count(ds.name, S.Segment(cond), as_of=as_of).count == \
                    ds.engine.count(ds.name, S.Segment(S.Percentile(S.Value("spend"), S.Cmp(">=", 50),
                                                                    S.Customers(tuple(int(x) for x in ids))))
                                    if isinstance(cond, S.Percentile) else S.Segment(S.Customers(tuple(int(x) for x in ids))),
                                    as_of=as_of).count
            members = client.materialize_group(ds.name, "best30-now", ("email",))
            assert sorted(members.customer_ids) == sorted(ids)
            assert client.dataset_info(ds.name)["rows"] == ds.engine.info(ds.name)["rows"]
            pages = list(client.preview_pages(ds.name, seg, n=7, as_of=as_of))
            assert [r["customer_id"] for p in pages for r in p.rows] == list(ids)
            ray.get(cluster.actor(0).set_delay.remote(3.0))
            try:
                t0 = time.monotonic()
                with pytest.raises(grpc.RpcError) as err:
                    client.count(ds.name, S.Segment(S.All()), as_of=as_of, timeout=0.5)
                took = time.monotonic() - t0
            finally:
                ray.get(cluster.actor(0).set_delay.remote(0.0))
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert took < 2.5
            t0 = time.monotonic()
            with pytest.raises(E.Cancelled):
                ray.get(cluster.actor(0).set_delay.remote(3.0))
                try:
                    cluster.count(ds.name, S.Segment(S.All()), as_of=as_of, deadline=time.monotonic() + 0.4)
                finally:
                    ray.get(cluster.actor(0).set_delay.remote(0.0))
            assert time.monotonic() - t0 < 2.0
    finally:
        server.stop(0)


def test_serve_opens_a_cluster_engine(ray_session, tmp_path):
    """segments serve --cluster local --partitions 1: the server's engine is a ClusterEngine
    with that layout, kept by the data folder; a different --partitions later is refused."""
    import argparse
    from segments.cli.config import ConfigError, add_serve_options, resolve_serve
    from segments.cli.serve import open_engine
    from segments.cluster.engine import ClusterEngine

    p = argparse.ArgumentParser()
    add_serve_options(p)
    p.add_argument("--data")
    cfg = resolve_serve(p.parse_args(["--cluster", "local", "--partitions", "1", "--data", str(tmp_path)]), environ={})
    eng = open_engine(cfg, tmp_path)
    assert isinstance(eng, ClusterEngine) and (eng.partitions, eng.replicas) == (1, 1)
    assert len(eng.ping()) == 1
    cfg.partitions = 2
    with pytest.raises(ConfigError, match="partitions"):
        open_engine(cfg, tmp_path)
    cfg.cluster = None
    with pytest.raises(ConfigError, match="need --cluster"):
        open_engine(cfg, tmp_path)


def test_replicas_back_up_a_slow_or_killed_owner(ray_session, get_dataset, tmp_path):
    """P=1, R=2: every write reaches both replicas (each answers the same alone); a read whose
    first replica is slow or killed mid-call is answered by the other within a second."""
    import threading
    from segments.cluster.engine import ClusterEngine
    from segments.cluster.worker import unwrap

    ds = get_dataset("edge_ny")
    eng = ClusterEngine(tmp_path / "replicated", partitions=1, replicas=2, hedge_after=0.3)
    eng.create_dataset("r", ds.timezone, shard_bits=10)
    eng.ingest("r", ds.folder)
    as_of = ds.as_ofs[0]
    seg = S.Segment(S.All(), order_by=S.OrderBy("spend"), limit=20)
    assert answers(eng, "r", seg, as_of) == answers(ds.engine, ds.name, seg, as_of)
    full = eng.count("r", S.Segment(S.All()), as_of=as_of).count
    gone = some_ids(ds, 5)
    ack = eng.delete_customers("r", gone)
    active = full - eng.count("r", S.Segment(S.All()), as_of=as_of).count
    assert ack["rows"]["deleted"] == 5 and active == ds.engine.count(
        ds.name, S.Segment(S.Customers(tuple(gone))), as_of=as_of).count
    want = eng.count("r", S.Segment(S.All()), as_of=as_of).count
    # each replica alone holds the same (the write reached both before it was acknowledged)
    per = [unwrap(ray.get(eng.actor(0, r).call.remote("count", ("r", S.Segment(S.All())), {"as_of": as_of})))
           for r in range(2)]
    assert per[0].count == per[1].count == want
    ray.get(eng.actor(0, 0).set_delay.remote(5.0))
    for _ in range(4):     # round robin: half of these ask replica 0 first
        t0 = time.monotonic()
        assert eng.count("r", S.Segment(S.All()), as_of=as_of).count == want
        assert time.monotonic() - t0 < 1.5
    # killed mid-call: the other replica answers within a second, with hedging after 30 s
    # (P = 2: the partition left silent when the other has answered is backed up early,
    # whether or not Ray has told the coordinator of its owner's death yet)
    patient = ClusterEngine(tmp_path / "replicated2", partitions=2, replicas=2, hedge_after=30.0)
    patient.create_dataset("r", ds.timezone, shard_bits=10)
    patient.ingest("r", ds.folder)
    patient.delete_customers("r", gone)
    assert patient.count("r", S.Segment(S.All()), as_of=as_of).count == want
    got, took = {}, []

    def run():
        t0 = time.monotonic()
        got["count"] = patient.count("r", S.Segment(S.All()), as_of=as_of).count
        took.append(time.monotonic() - t0)
    for _ in range(2):     # round robin: one of these asks replica 0 of partition 0 first
        ray.get(patient.actor(0, 0).set_delay.remote(5.0))
        t = threading.Thread(target=run)
        t.start()
        time.sleep(0.1)
        ray.kill(patient.actor(0, 0), no_restart=False)
        t.join(30)
        assert got["count"] == want
        assert max(took) < 1.1, took   # 0.1 s of it before the kill
    print(f"killed owner: answered in {', '.join(f'{s:.3f}' for s in took)} s (0.1 s before the kill)")
    # a materialize stream whose replica dies before its head is opened on the other
    want_ids = ds.engine.materialize(ds.name, S.Segment(S.All(), exclude=S.Customers(tuple(gone))),
                                     as_of=as_of).customer_ids.tolist()
    for _ in range(2):     # round robin: one of these opens replica 0 first
        ray.get(eng.actor(0, 0).set_delay.remote(5.0))
        before = ray.get(eng.actor(0, 1).ping.remote())["streamed"]
        out = {}

        def stream():
            out["ids"] = [int(x) for piece in eng.materialize_stream("r", S.Segment(S.All()), as_of=as_of,
                                                                      chunk_ids=50).chunks
                          for x in piece.customer_ids]
        t = threading.Thread(target=stream)
        t.start()
        time.sleep(0.3)
        ray.kill(eng.actor(0, 0), no_restart=False)
        t.join(30)
        assert out["ids"] == want_ids
        assert ray.get(eng.actor(0, 1).ping.remote())["streamed"] > before   # replica 1 answered


def test_coordinator_restart_loses_nothing(pair, cluster):
    """Every actor gone for good and the coordinator started again on its folder: new actors
    reopen the partitions' files and every acknowledged write is there (live changes of
    test_live_changes_and_erasure included). Runs last: the module's actors end here."""
    from segments.cluster.engine import ClusterEngine

    names = cluster.datasets()
    seg = S.Segment(S.All(), order_by=S.OrderBy("last_purchase"), limit=40)
    as_of = pair["gen1"].as_ofs[0]
    before = {n: answers(cluster, n, seg, as_of) for n in names}
    pids = {a["pid"] for a in cluster.ping()}
    for p in range(P):
        ray.kill(cluster.actor(p), no_restart=True)
    end = time.monotonic() + 30
    for p in range(P):   # a killed actor's name is released once Ray has marked it dead
        while time.monotonic() < end:
            try:
                ray.get_actor(f"p{p}-r0", namespace=cluster.namespace)
            except ValueError:
                break
            time.sleep(0.1)
    again = ClusterEngine(cluster.root)
    assert (again.partitions, again.replicas) == (P, 1)
    assert {a["pid"] for a in again.ping()}.isdisjoint(pids)
    assert {n: answers(again, n, seg, as_of) for n in names} == before
