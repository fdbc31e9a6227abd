"""Bad change batches, retries and erasure of unknown ids (docs/live-updates.md).

A bad batch raises IngestError naming the table (as .file), the 1-based row within that
table of the batch and the column, and applies nothing: the sequence, row counts and
answers stay as they were, and the valid parts of the batch are not applied either.
A batch_id already applied is answered again with duplicate=True and not applied again.
Deleting an id not in the dataset is reported in not_found and changes nothing.
"""
from __future__ import annotations

import datetime as dt

import pytest

from segments.engine.model import segment as S
from segments.engine.errors import EngineError, IngestError
from tests import datasets as D

UTC = dt.timezone.utc
AS_OF = dt.datetime(2029, 1, 1, tzinfo=UTC)
NAME = "live_err"
MARK = "SKU-ERR-MARK"


def F(**fields):
    return S.ProductFilter(tuple(sorted((k, tuple(v)) for k, v in fields.items())))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """{"eng", "root", "ids"}: an engine over the edge dataset (2 shards); ids: existing customers."""
    from segments.engine.api import Engine
    tables = D.edge_tables()
    folder = D.write_folder(tables, tmp_path_factory.mktemp("live_err_in"))
    root = tmp_path_factory.mktemp("live_err_data")
    eng = Engine(root)
    eng.create_dataset(NAME, D.NY, shard_bits=10)
    eng.ingest(NAME, folder)
    ids = sorted(tables["customers"]["customer_id"].to_pylist())
    holder = {"eng": eng, "root": root, "ids": ids}
    yield holder
    holder["eng"].close()


SNAP_SEGMENTS = (
    S.Segment(S.All()),
    S.Segment(S.Bought()),
    S.Segment(S.Spend(S.Cmp(">=", 1))),
    S.Segment(S.Visited()),
    S.Segment(S.UpcomingAppointment()),
    S.Segment(S.OverdueLayby()),
    S.Segment(S.Bought(F(product=(MARK,)))),
    S.Segment(S.Surname("Smith")),
    S.Segment(S.All(), order_by=S.OrderBy("spend"), limit=40),
)


def snapshot(eng) -> dict:
    """What a failed batch must leave unchanged."""
    info = eng.info(NAME)
    out = {"sequence": info["live"]["sequence"], "rows": info["rows"]}
    for i, seg in enumerate(SNAP_SEGMENTS):
        out[i] = [int(x) for x in eng.materialize(NAME, seg, as_of=AS_OF).customer_ids]
        out[f"count{i}"] = eng.count(NAME, seg, as_of=AS_OF).count
    return out


def line(cid, amount=1000, **kw):
    row = {"customer_id": cid, "purchased_at": dt.datetime(2026, 6, 1, 12, tzinfo=UTC), "amount": amount,
           "product": MARK}
    row.update(kw)
    return row


def visit(cid, status="completed", **kw):
    row = {"customer_id": cid, "starts_at": dt.datetime(2026, 6, 1, 12, tzinfo=UTC), "status": status}
    row.update(kw)
    return row


def layby(cid, status="open", **kw):
    row = {"customer_id": cid, "opened_on": dt.date(2026, 1, 1), "due_on": dt.date(2026, 2, 1),
           "balance": 500, "status": status}
    row.update(kw)
    return row


NEW_A, NEW_B = 123, 9_000_000_000_000_001      # not in the edge dataset


def bad_batches(ids):
    """name -> (apply_changes kwargs, table, row, column)."""
    a, b, c = ids[0], ids[len(ids) // 2], ids[-1]
    ok_customers = [{"customer_id": NEW_A, "first_name": "Valid"}]
    return {
        "purchases/amount_text": (dict(purchases=[line(a), line(b, amount="abc")]), "purchases", 2, "amount"),
        "purchases/amount_float": (dict(purchases=[line(a), line(b), line(c, amount=12.5)]), "purchases", 3, "amount"),
        "purchases/missing_purchased_at": (dict(purchases=[line(a), line(b), line(c, purchased_at=None)]),
                                           "purchases", 3, "purchased_at"),
        "purchases/missing_amount": (dict(purchases=[line(a, amount=None)]), "purchases", 1, "amount"),
        "purchases/bad_timestamp": (dict(purchases=[line(a), line(b, purchased_at="2026-13-01T00:00:00Z")]),
                                    "purchases", 2, "purchased_at"),
        "purchases/unknown_customer": (dict(purchases=[line(a), line(-424242), line(b)]),
                                       "purchases", 2, "customer_id"),
        "purchases/deleted_same_batch": (dict(delete=[b], purchases=[line(a), line(c), line(b)]),
                                         "purchases", 3, "customer_id"),
        "purchases/valid_customers_then_bad": (dict(customers=ok_customers, purchases=[line(NEW_A), line(NEW_B)]),
                                               "purchases", 2, "customer_id"),
        "visits/bad_status": (dict(purchases=[line(a)], visits=[visit(a), visit(b, status="maybe")]),
                              "visits", 2, "status"),
        "visits/missing_status": (dict(visits=[visit(a, status=None)]), "visits", 1, "status"),
        "visits/deleted_same_batch": (dict(delete=[c], visits=[visit(c)]), "visits", 1, "customer_id"),
        "laybys/bad_status": (dict(laybys=[layby(a), layby(b), layby(c, status="pending")]), "laybys", 3, "status"),
        "laybys/bad_date": (dict(laybys=[layby(a, due_on="2026-02-30")]), "laybys", 1, "due_on"),
        "customers/duplicate_id": (dict(customers=[{"customer_id": NEW_A}, {"customer_id": NEW_B},
                                                   {"customer_id": NEW_A, "first_name": "again"}]),
                                   "customers", 3, "customer_id"),
        "customers/duplicate_existing_id": (dict(customers=[{"customer_id": a, "first_name": "x"},
                                                            {"customer_id": a, "first_name": "y"}]),
                                            "customers", 2, "customer_id"),
        "customers/missing_id": (dict(customers=[{"customer_id": NEW_A}, {"first_name": "no id"}]),
                                 "customers", 2, "customer_id"),
        "customers/bad_date": (dict(customers=[{"customer_id": NEW_A, "birth_date": "2001-02-29"}]),
                               "customers", 1, "birth_date"),
        "customers/bad_bool": (dict(customers=[{"customer_id": NEW_A}, {"customer_id": NEW_B, "email_opt_in": "maybe"}]),
                               "customers", 2, "email_opt_in"),
        "customers/points_text": (dict(customers=[{"customer_id": a, "loyalty_points": "lots"}],
                                       purchases=[line(a)]), "customers", 1, "loyalty_points"),
    }


CASES = list(bad_batches(list(range(3))))


@pytest.mark.parametrize("case", CASES)
def test_bad_batch_changes_nothing(env, case):
    eng = env["eng"]
    kwargs, table, row, column = bad_batches(env["ids"])[case]
    before = snapshot(eng)
    with pytest.raises(IngestError) as e:
        eng.apply_changes(NAME, batch_id=f"bad-{case}", **kwargs)
    err = e.value
    assert (err.file, err.row, err.column) == (table, row, column), str(err)
    assert snapshot(eng) == before
    # the valid new customers of the batch were not applied either
    c = eng.count(NAME, S.Segment(S.Customers((NEW_A, NEW_B))), as_of=AS_OF)
    assert c.count == 0 and set(c.missing_ids) == {NEW_A, NEW_B}
    assert len(eng.rows_of(NAME, [NEW_A, NEW_B]).customer_ids) == 0
    # a failed batch's id was not recorded: the corrected batch under it applies
    good = {k: v for k, v in kwargs.items() if k == "delete"}
    res = eng.apply_changes(NAME, batch_id=f"bad-{case}", customers=[{"customer_id": NEW_A}], **good)
    assert res["duplicate"] is False and res["sequence"] > before["sequence"]
    assert eng.count(NAME, S.Segment(S.Customers((NEW_A,))), as_of=AS_OF).count == 1
    eng.delete_customers(NAME, [NEW_A])
    if good:   # put back a customer the corrected batch erased (a new customer now)
        eng.upsert_customers(NAME, [{"customer_id": i} for i in good["delete"]])


def test_bad_convenience_calls(env):
    eng = env["eng"]
    a = env["ids"][3]
    before = snapshot(eng)
    with pytest.raises(IngestError) as e:
        eng.append(NAME, "visits", [visit(a), visit(a), visit(a, status="gone")])
    assert (e.value.file, e.value.row, e.value.column) == ("visits", 3, "status")
    with pytest.raises(IngestError) as e:
        eng.upsert_customers(NAME, [{"customer_id": NEW_A}, {"customer_id": NEW_A}])
    assert (e.value.file, e.value.row, e.value.column) == ("customers", 2, "customer_id")
    with pytest.raises(IngestError) as e:
        eng.append(NAME, "purchases", [line(a), line(-5)])
    assert (e.value.file, e.value.row, e.value.column) == ("purchases", 2, "customer_id")
    assert snapshot(eng) == before


def test_line_for_customer_upserted_in_same_batch(env):
    """The positive side: a line may name a customer created (or re-created) by its own batch."""
    eng = env["eng"]
    victim = env["ids"][7]
    res = eng.apply_changes(NAME, customers=[{"customer_id": NEW_B, "last_name": "Newcomer"},
                                             {"customer_id": victim, "last_name": "Reborn"}],
                            purchases=[line(NEW_B, 3333), line(victim, 4444)], delete=[victim])
    assert res["rows"]["customers"] == 2 and res["rows"]["purchases"] == 2 and res["rows"]["deleted"] == 1
    seg = S.Segment(S.Customers((NEW_B, victim)), order_by=S.OrderBy("spend"))
    m = eng.materialize(NAME, seg, as_of=AS_OF)
    assert dict(zip(map(int, m.customer_ids), map(int, m.rank_values))) == {NEW_B: 3333, victim: 4444}
    assert eng.count(NAME, S.Segment(S.Visited(), exclude=S.Not(S.Customers((victim,)))), as_of=AS_OF).count == 0
    eng.delete_customers(NAME, [NEW_B])


def test_batch_id_deduplicates(env):
    eng = env["eng"]
    a = env["ids"][10]
    seg = S.Segment(S.Customers((a,)), order_by=S.OrderBy("spend", F(product=(MARK,))))
    spend = lambda: int(eng.materialize(NAME, seg, as_of=AS_OF).rank_values[0])  # noqa: E731
    s0 = spend()
    first = eng.apply_changes(NAME, purchases=[line(a, 777)], batch_id="dedup-1")
    assert first["duplicate"] is False and first["rows"]["purchases"] == 1
    assert spend() == s0 + 777
    again = eng.apply_changes(NAME, purchases=[line(a, 777)], batch_id="dedup-1")
    assert again["duplicate"] is True
    assert again["sequence"] == first["sequence"] and again["rows"] == first["rows"]
    assert eng.info(NAME)["live"]["sequence"] == first["sequence"]
    assert spend() == s0 + 777
    # the id decides, not the content: a different batch under an applied id is not applied
    other = eng.apply_changes(NAME, purchases=[line(a, 5), line(a, 6)], batch_id="dedup-1")
    assert other["duplicate"] is True and other["rows"] == first["rows"]
    assert spend() == s0 + 777
    # the same content under another id (or none) is applied
    assert eng.apply_changes(NAME, purchases=[line(a, 777)], batch_id="dedup-2")["duplicate"] is False
    assert eng.apply_changes(NAME, purchases=[line(a, 777)])["duplicate"] is False
    assert spend() == s0 + 3 * 777
    long_id = "x" * 128
    r = eng.apply_changes(NAME, purchases=[line(a, 1)], batch_id=long_id)
    assert eng.apply_changes(NAME, purchases=[line(a, 1)], batch_id=long_id) == {**r, "duplicate": True}
    assert spend() == s0 + 3 * 777 + 1
    with pytest.raises(EngineError):
        eng.apply_changes(NAME, purchases=[line(a, 1)], batch_id="y" * 129)
    assert spend() == s0 + 3 * 777 + 1


def test_delete_unknown_ids(env):
    eng = env["eng"]
    ids = env["ids"]
    before = snapshot(eng)
    r = eng.delete_customers(NAME, [-1, 77])
    assert sorted(r["not_found"]) == [-1, 77] and r["rows"]["deleted"] == 0
    after = snapshot(eng)
    assert {k: v for k, v in after.items() if k != "sequence"} == {k: v for k, v in before.items() if k != "sequence"}
    victim = ids[20]
    r = eng.apply_changes(NAME, delete=[victim, -1, victim])
    assert r["not_found"] == [-1] and r["rows"]["deleted"] == 1
    r = eng.delete_customers(NAME, [victim])                   # erasure is idempotent
    assert r["not_found"] == [victim] and r["rows"]["deleted"] == 0
    assert len(eng.rows_of(NAME, [victim]).customer_ids) == 0
    assert victim in eng.count(NAME, S.Segment(S.Customers((victim,))), as_of=AS_OF).missing_ids


def test_batch_whose_log_write_fails_leaves_no_trace(env, monkeypatch):
    """A batch is applied to a next state before its log write; when the write fails that
    state is never published. Readers' caches advance from state to state: the next batch
    must take the failed one's place, and answers must equal a fresh replay of the log."""
    from segments.engine.api import Engine
    from segments.engine.live.log import ChangeLog
    eng = env["eng"]
    a, b, c = env["ids"][40:43]
    city = S.Segment(S.InValues("city", ("Failtown", "Passtown")))
    points = S.Segment(S.LoyaltyPoints(S.Cmp(">=", 777_000)))
    eng.apply_changes(NAME, customers=[{"customer_id": a, "city": "Passtown", "loyalty_points": 777_001}])
    seen = [eng.count(NAME, s, as_of=AS_OF).count for s in (city, points)]

    def full_disk(*args, **kw):
        raise OSError(28, "No space left on device")
    with monkeypatch.context() as m:
        m.setattr(ChangeLog, "append", full_disk)
        with pytest.raises(Exception):
            eng.apply_changes(NAME, customers=[{"customer_id": b, "city": "Failtown", "loyalty_points": 777_002}],
                              delete=[a])
    assert [eng.count(NAME, s, as_of=AS_OF).count for s in (city, points)] == seen
    eng.apply_changes(NAME, customers=[{"customer_id": c, "city": "Passtown"}])
    got = {k: [int(x) for x in eng.materialize(NAME, s, as_of=AS_OF).customer_ids]
           for k, s in (("city", city), ("points", points))}
    assert got == {"city": sorted([a, c]), "points": [a]}
    before = snapshot(eng)
    eng.close()
    env["eng"] = eng = Engine(env["root"])
    assert snapshot(eng) == before
    assert {k: [int(x) for x in eng.materialize(NAME, s, as_of=AS_OF).customer_ids]
            for k, s in (("city", city), ("points", points))} == got


def test_dedup_and_state_survive_reopen(env):
    """Runs last: the batch ids and every applied change come back from the log."""
    from segments.engine.api import Engine
    eng = env["eng"]
    a = env["ids"][30]
    first = eng.apply_changes(NAME, purchases=[line(a, 999)], batch_id="dedup-reopen")
    before = snapshot(eng)
    eng.close()
    env["eng"] = eng = Engine(env["root"])
    assert snapshot(eng) == before
    again = eng.apply_changes(NAME, purchases=[line(a, 999)], batch_id="dedup-reopen")
    assert again == {**first, "duplicate": True}
    assert eng.apply_changes(NAME, purchases=[line(a, 1)], batch_id="dedup-1")["duplicate"] is True
    assert snapshot(eng) == before
    eng.compact(NAME)
    answers = lambda snap: {k: v for k, v in snap.items() if k not in ("sequence", "rows")}  # noqa: E731
    assert answers(snapshot(eng)) == answers(before)
    # after compaction an applied batch id is still known
    assert eng.apply_changes(NAME, purchases=[line(a, 999)], batch_id="dedup-reopen")["duplicate"] is True
    assert answers(snapshot(eng)) == answers(before)


def test_info_rows_forget_erased_customers(tmp_path):
    """info()["rows"] counts what the dataset holds: an erased customer's lines are gone at
    once, not only after the next compaction (the counts must not jump at compaction)."""
    from segments.engine.api import Engine
    tables = D.edge_tables()
    eng = Engine(tmp_path / "data")
    try:
        eng.create_dataset("erase", D.NY, shard_bits=10)
        eng.ingest("erase", D.write_folder(tables, tmp_path / "in"))
        victim = D.EDGE_SMITH                              # 2 purchases, 1 layby
        base = eng.info("erase")["rows"]
        eng.delete_customers("erase", [victim])
        live = eng.info("erase")["rows"]
        eng.compact("erase")
        compacted = eng.info("erase")["rows"]
        assert compacted == {**base, "customers": base["customers"] - 1, "purchases": base["purchases"] - 2,
                             "laybys": base["laybys"] - 1}
        assert live == compacted
    finally:
        eng.close()
