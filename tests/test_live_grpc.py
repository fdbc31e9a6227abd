"""Live updates over gRPC, through the client and the CLI (docs/live-updates.md).

Each test that changes data gets a dataset of its own ("live-<test>", 50 customers) on the
session's servers, so the shared "shop" / "other" / "big" datasets are never changed.
"""
from __future__ import annotations

import datetime as dt
import itertools
import json

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from segments.engine.storage.ingest_read import read_table_file
from segments.proto import segments_pb2 as pb
from segments.server import changes
from tests.grpc_support import client, grpc_env  # noqa: F401  (fixtures)

C = grpc.StatusCode
UTC = dt.timezone.utc
ALL = {"include": "all"}
RINGS = {"include": {"bought": {"filter": {"department": ["rings"]}}}}
N = 50
_names = itertools.count()


def code_of(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


def write_base(folder):
    """customers 1..N, one purchase each for the first ten, a visit for customer 1."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = list(range(1, N + 1))
    pq.write_table(pa.table({"customer_id": pa.array(ids, pa.int64()),
                             "first_name": [f"c{i}" for i in ids],
                             "email": [f"c{i}@example.com" for i in ids]}), folder / "customers.parquet")
    at = pa.array([dt.datetime(2026, 1, 2, 10, tzinfo=UTC)] * 10, pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"customer_id": pa.array(ids[:10], pa.int64()), "purchased_at": at,
                             "amount": pa.array([1000] * 10, pa.int64()),
                             "department": ["charms"] * 10}), folder / "purchases.parquet")
    (folder / "visits.csv").write_text("customer_id,starts_at,status\n1,2026-01-03T09:00:00Z,completed\n")
    return folder


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory):
    return write_base(tmp_path_factory.mktemp("live-base"))


@pytest.fixture
def live(grpc_env, base_folder):
    """A fresh dataset of N customers on the session's servers; its name."""
    name = f"live-{next(_names)}"
    grpc_env.engine.create_dataset(name, "UTC")
    grpc_env.engine.ingest(name, base_folder)
    yield name
    grpc_env.engine.delete_dataset(name)


def sequence(client, name) -> int:
    return client.dataset_info(name)["live"]["sequence"]


NEW_CUSTOMERS = [
    {"customer_id": 101, "first_name": "Zoë", "birth_date": dt.date(1990, 2, 28), "tags": ["VIP", "staff"],
     "loyalty_member": True, "loyalty_points": 120, "email_opt_in": True, "email": "zoe@example.com"},
    {"customer_id": "102", "joined_on": "2026-11-01", "tags": "wholesale; vip", "active": "false"},
]
NEW_PURCHASES = [
    {"customer_id": 101, "purchased_at": "2026-11-02T14:05:00-05:00", "amount": 12500, "quantity": 1,
     "department": "rings", "metal": "gold"},
    {"customer_id": 5, "purchased_at": dt.datetime(2026, 11, 2, 20, 0, tzinfo=UTC), "amount": -1000},
]


# ---------------------------------------------------------------- applied and visible

def test_a_batch_is_visible_to_the_next_count(client, live):
    before = client.count(live, ALL).count
    assert before == N and client.count(live, RINGS).count == 0
    ack = client.apply_changes(live, customers=NEW_CUSTOMERS, purchases=NEW_PURCHASES,
                               visits=[{"customer_id": 102, "starts_at": "2026-12-01T10:00:00Z", "status": "Booked"}],
                               laybys=[{"customer_id": 7, "opened_on": "2026-10-01", "due_on": dt.date(2026, 12, 1),
                                        "balance": 5000, "status": "open"}])
    assert ack["rows"] == {"customers": 2, "purchases": 2, "visits": 1, "laybys": 1, "deleted": 0}
    assert ack["not_found"] == [] and ack["duplicate"] is False and ack["sequence"] >= 1
    assert client.count(live, ALL).count == N + 1           # 102 is inactive: in no segment
    assert client.count(live, RINGS).count == 1
    assert client.count(live, {"include": {"tags": {"any": ["VIP"]}}}).count == 1
    row = client.preview(live, {"include": {"customers": [101]}}, 1,
                         ["first_name", "birth_date", "tags", "loyalty_points", "active"]).rows[0]
    assert sorted(row.pop("tags")) == ["VIP", "staff"]
    assert row == {"customer_id": 101, "first_name": "Zoë", "birth_date": dt.date(1990, 2, 28),
                   "loyalty_points": 120, "active": True}
    info = client.dataset_info(live)
    assert info["live"]["sequence"] == ack["sequence"]
    assert info["live"]["pending"]["purchases"] == 2


def test_dataset_info_carries_the_live_state_typed(client, grpc_env, live):
    ack = client.upsert_customers(live, NEW_CUSTOMERS[:1])
    m = client._datasets.GetDatasetInfo(pb.GetDatasetInfoRequest(dataset=live))
    assert m.dataset.live.sequence == ack["sequence"] and m.dataset.live.pending.customers == 1


def test_upsert_replaces_the_whole_row(client, live):
    client.upsert_customers(live, [{"customer_id": 3, "first_name": "Renée", "loyalty_member": True}])
    row = client.preview(live, {"include": {"customers": [3]}}, 1, ["first_name", "email", "loyalty_member"]).rows[0]
    assert row == {"customer_id": 3, "first_name": "Renée", "email": None, "loyalty_member": True}
    assert client.count(live, ALL).count == N


def test_append_and_rows_given_as_a_pyarrow_table(client, live):
    t = pa.table({"customer_id": pa.array([11, 12], pa.int64()),
                  "purchased_at": pa.array([dt.datetime(2026, 5, 1, tzinfo=UTC)] * 2, pa.timestamp("ms", tz="UTC")),
                  "amount": pa.array([300, 400], pa.int32()), "department": ["rings", "rings"]})
    ack = client.append(live, "purchases", t)
    assert ack["rows"]["purchases"] == 2
    assert client.count(live, RINGS).count == 2
    with pytest.raises(ValueError):
        client.append(live, "customers", [])


def test_delete_removes_customers_from_materialize(client, live):
    ack = client.delete_customers(live, [3, np.int64(4), 999_999])
    assert ack["rows"]["deleted"] == 2 and ack["not_found"] == [999_999]
    ids = client.materialize(live, ALL).customer_ids
    assert len(ids) == N - 2 and not {3, 4} & set(ids.tolist())
    assert client.count(live, {"include": {"customers": [3, 5]}}).missing_ids == (3,)
    assert client.delete_customers(live, [3])["not_found"] == [3]    # erasure is idempotent


def test_one_batch_deletes_then_upserts_then_appends(client, live):
    ack = client.apply_changes(live, delete=[8], customers=[{"customer_id": 8, "first_name": "again"}],
                               purchases=[{"customer_id": 8, "purchased_at": "2026-11-01T00:00:00Z", "amount": 1,
                                           "department": "rings"}])
    assert ack["rows"]["deleted"] == 1
    assert client.materialize(live, RINGS).customer_ids.tolist() == [8]


def test_a_batch_id_is_applied_once(client, live):
    batch = {"purchases": [dict(NEW_PURCHASES[1], amount=700)], "batch_id": "pos-7:batch-1"}
    first = client.apply_changes(live, **batch)
    again = client.apply_changes(live, **batch)
    assert first["duplicate"] is False and again["duplicate"] is True
    assert again["sequence"] == first["sequence"] and again["rows"] == first["rows"]
    assert sequence(client, live) == first["sequence"]
    once = client.materialize(live, {"include": {"spend": {"cmp": {"==": 1000 + 700}}}})
    assert once.customer_ids.tolist() == [5]


def test_compact_folds_the_changes_and_keeps_the_answers(client, live):
    client.apply_changes(live, customers=NEW_CUSTOMERS, purchases=NEW_PURCHASES, delete=[9])
    counts = [client.count(live, s).count for s in (ALL, RINGS)]
    r = client.compact(live)
    assert isinstance(r["version"], str) and r["version"] and r["seconds"] >= 0
    assert r["sequence"] == sequence(client, live)
    assert set(client.dataset_info(live)["live"]["pending"].values()) == {0}
    assert [client.count(live, s).count for s in (ALL, RINGS)] == counts


# ---------------------------------------------------------------- refused, nothing changed

BAD_BATCHES = [
    ({"visits": [{"customer_id": 1, "starts_at": "2026-01-01T00:00:00Z", "status": "completed"},
                 {"customer_id": 2, "starts_at": "2026-01-01T00:00:00Z", "status": "maybe"}]},
     "visits", 2, "status"),
    ({"purchases": [{"customer_id": i, "purchased_at": "2026-01-01T00:00:00Z", "amount": 5} for i in (1, 2, 77)]},
     "purchases", 3, "customer_id"),
    ({"customers": [{"customer_id": 200}],
      "purchases": [{"customer_id": 200, "purchased_at": "2026-01-01T00:00:00Z", "amount": 5},
                    {"customer_id": 200, "purchased_at": "2026-01-01T00:00:00Z"}]},
     "purchases", 2, "amount"),
    ({"laybys": [{"customer_id": 1, "opened_on": "2026-01-01", "due_on": "2026-02-30", "balance": 1,
                  "status": "open"}]},
     "laybys", 1, "due_on"),
    ({"customers": [{"customer_id": 300}, {"customer_id": 300}]}, "customers", 2, "customer_id"),
    ({"delete": [1], "purchases": [{"customer_id": 1, "purchased_at": "2026-01-01T00:00:00Z", "amount": 5}]},
     "purchases", 1, "customer_id"),
]


@pytest.mark.parametrize("batch, table, row, column", BAD_BATCHES,
                         ids=["status", "unknown-customer", "missing-amount", "bad-date", "duplicate-id",
                              "deleted-customer"])
def test_a_bad_row_is_invalid_argument_naming_table_row_and_column_and_changes_nothing(
        client, live, batch, table, row, column):
    client.upsert_customers(live, [{"customer_id": 50, "first_name": "last"}])
    seq, count = sequence(client, live), client.count(live, ALL).count
    code, msg = code_of(lambda: client.apply_changes(live, **batch))
    assert code == C.INVALID_ARGUMENT
    assert msg.startswith(f"{table}, row {row}, column {column}:"), msg
    assert sequence(client, live) == seq and client.count(live, ALL).count == count
    assert client.count(live, {"include": {"customers": [1]}}).count == 1


def test_unknown_dataset_is_not_found(client):
    for call in (lambda: client.apply_changes("no-such-dataset", customers=[{"customer_id": 1}]),
                 lambda: client.apply_changes("no-such-dataset", laybys=[{"customer_id": 1, "due_on": "bad"}]),
                 lambda: client.compact("no-such-dataset")):
        code, msg = code_of(call)
        assert code == C.NOT_FOUND and msg.startswith("dataset:"), msg


def test_changes_need_the_write_role(grpc_env, live):
    for token, dataset in (("reader-token-A", "shop"), ("export-token-A", "shop"), ("admin-token-A", "shop"),
                           ("writer-token-A", live)):
        with grpc_env.client(token, auth=True) as c:
            assert code_of(lambda: c.delete_customers(dataset, [1]))[0] == C.PERMISSION_DENIED
            assert code_of(lambda: c.compact(dataset))[0] == C.PERMISSION_DENIED
    with grpc_env.client("root-token", auth=True) as c:
        assert c.delete_customers(live, [1])["rows"]["deleted"] == 1
        assert c.compact(live)["sequence"] >= 1
    with grpc_env.client(auth=True) as c:
        assert code_of(lambda: c.compact(live))[0] == C.UNAUTHENTICATED


# ---------------------------------------------------------------- client: encoding and retries

class _Unavailable(grpc.RpcError):
    def code(self):
        return C.UNAVAILABLE

    def details(self):
        return "connection refused"


def test_a_change_is_retried_only_with_a_batch_id(grpc_env, monkeypatch):
    with grpc_env.client(timeout=5, retries=3) as c:
        sent = []

        def refuse(request, timeout=None, metadata=None):
            sent.append(request.batch_id)
            raise _Unavailable()
        monkeypatch.setattr(c._datasets, "ApplyChanges", refuse)
        with pytest.raises(grpc.RpcError):
            c.delete_customers("shop", [1])
        assert len(sent) == 4 and len(set(sent)) == 1 and len(sent[0]) == 32    # one uuid4, every try
        sent.clear()
        with pytest.raises(grpc.RpcError):
            c.delete_customers("shop", [1], batch_id="mine")
        assert sent == ["mine"] * 4
        sent.clear()
        with pytest.raises(grpc.RpcError):
            c.delete_customers("shop", [1], batch_id="")
        assert sent == [""]                                                  # no id: never retried


@pytest.mark.parametrize("table, rows, message", [
    ("purchases", [{"customer_id": 1.5}], "purchases, row 1, column customer_id: expected an integer"),
    ("purchases", [{"customer_id": 1}, {"customer_id": 1, "purchased_at": "2026-01-01T10:00:00"}],
     "purchases, row 2, column purchased_at: timestamp without UTC offset"),
    ("purchases", [{"customer_id": 1, "quantity": 2**31}], "purchases, row 1, column quantity: integer out of range"),
    ("customers", [{"customer_id": 1, "shoe_size": 42}], "customers, row 1, column shoe_size: unknown column"),
    ("customers", [{"customer_id": 1, "tags": [1, 2]}], "customers, row 1, column tags: expected a list of text"),
    ("customers", [{"customer_id": 1, "sms_opt_in": "maybe"}], "customers, row 1, column sms_opt_in: expected a boolean"),
])
def test_a_value_with_no_place_on_the_wire_is_refused_before_sending(table, rows, message):
    with pytest.raises(ValueError) as e:
        changes.encode_rows(table, rows)
    assert str(e.value).startswith(message), str(e.value)


def test_rows_over_the_wire_equal_the_bulk_loader_reading_the_same_csv(tmp_path):
    """Client encoding + server decoding give the table read_table_file gives for the CSV."""
    csv = ("customer_id,first_name,birth_date,joined_on,loyalty_member,loyalty_points,tags,email_opt_in,active\n"
           "5,Zoë,1990-02-28,,true,10,VIP;staff,1,\n"
           "+7,,,2026-11-01,0,,wholesale,false,false\n"
           "9,Li,2000-02-29,2026-01-01,,-3,,,true\n")
    (tmp_path / "customers.csv").write_text(csv, encoding="utf-8")
    want = read_table_file(tmp_path / "customers.csv", "customers")
    rows = [{k: v for k, v in zip(csv.splitlines()[0].split(","), line.split(",")) if v != ""}
            for line in csv.splitlines()[1:]]
    assert changes.decode_rows("customers", changes.encode_rows("customers", rows)).equals(want)
    assert changes.decode_rows("customers", changes.encode_rows("customers", want)).equals(want)
    (tmp_path / "purchases.csv").write_text(
        "customer_id,purchased_at,amount,quantity,shop\n"
        "5,2026-11-23T14:05:00.123456-05:00,-12,3,Main St\n9,2026-01-01T00:00:00Z,100,,\n")
    want = read_table_file(tmp_path / "purchases.csv", "purchases")
    assert changes.decode_rows("purchases", changes.encode_rows("purchases", want)).equals(want)


def test_server_side_decoding_names_rows_of_bad_dates_and_instants():
    Timestamp = pb.google_dot_protobuf_dot_timestamp__pb2.Timestamp
    from segments.engine.errors import IngestError
    with pytest.raises(IngestError) as e:
        changes.decode_rows("laybys", [pb.LaybyRow(opened_on="2026-01-01"), pb.LaybyRow(opened_on="01/02/2026")])
    assert (e.value.file, e.value.row, e.value.column) == ("laybys", 2, "opened_on")
    with pytest.raises(IngestError) as e:
        changes.decode_rows("visits", [pb.VisitRow(starts_at=Timestamp(seconds=10**13))])
    assert (e.value.file, e.value.row, e.value.column) == ("visits", 1, "starts_at")
    t = changes.decode_rows("customers", [pb.CustomerRow(customer_id=1, birth_date=" 1990-01-02 ")])
    assert t.column("active").to_pylist() == [True] and t.column("tags").to_pylist() == [None]
    assert t.column("birth_date").to_pylist() == [dt.date(1990, 1, 2)]


# ---------------------------------------------------------------- CLI

def _cli(capsys, *argv):
    from segments.cli.main import main
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_change_and_compact_on_a_data_directory(tmp_path, capsys, base_folder):
    data = str(tmp_path / "data")
    assert _cli(capsys, "--data", data, "dataset", "create", "acme", "--timezone", "UTC")[0] == 0
    assert _cli(capsys, "--data", data, "ingest", str(base_folder), "--dataset", "acme")[0] == 0
    (tmp_path / "new-customers.csv").write_text("customer_id,first_name,tags\n101,Ana,VIP;staff\n102,Li,\n")
    pq.write_table(pa.table({"customer_id": pa.array([101, 2], pa.int64()),
                             "purchased_at": pa.array([dt.datetime(2026, 11, 2, tzinfo=UTC)] * 2,
                                                      pa.timestamp("us", tz="UTC")),
                             "amount": pa.array([500, 700], pa.int64())}), tmp_path / "lines.parquet")
    code, out, err = _cli(capsys, "--data", data, "change", "acme", "--customers", str(tmp_path / "new-customers.csv"),
                          "--purchases", str(tmp_path / "lines.parquet"), "--delete", "3, 4,999", "--batch-id", "cli-1")
    assert code == 0, err
    ack = json.loads(out)
    assert ack["rows"] == {"customers": 2, "purchases": 2, "visits": 0, "laybys": 0, "deleted": 2}
    assert ack["not_found"] == [999] and ack["duplicate"] is False
    again = json.loads(_cli(capsys, "--data", data, "change", "acme", "--delete", "5", "--batch-id", "cli-1")[1])
    assert again["duplicate"] is True and again["sequence"] == ack["sequence"]

    (tmp_path / "bad.csv").write_text("customer_id,purchased_at,amount\n1,2026-01-01T00:00:00Z,5\n2,2026-01-01,x\n")
    code, out, err = _cli(capsys, "--data", data, "change", "acme", "--purchases", str(tmp_path / "bad.csv"))
    assert code == 2 and err.startswith("error: bad.csv, row 2, column purchased_at:"), err
    code, _, err = _cli(capsys, "--data", data, "change", "acme", "--delete", "1,x")
    assert code == 2 and "--delete" in err
    assert _cli(capsys, "--data", data, "change", "acme")[0] == 2

    code, out, err = _cli(capsys, "--data", data, "compact", "acme")
    assert code == 0, err
    assert json.loads(out)["sequence"] == ack["sequence"]
    code, out, _ = _cli(capsys, "--data", data, "info", "--dataset", "acme", "--json")
    info = json.loads(out)
    assert info["live"]["sequence"] == ack["sequence"] and set(info["live"]["pending"].values()) == {0}
    from segments.engine.api import Engine
    from segments.engine.model import segment as S
    eng = Engine(data)
    try:
        assert eng.count("acme", S.Segment(S.All())).count == N + 2 - 2
    finally:
        eng.close()


def test_cli_change_and_compact_through_a_server(grpc_env, client, live, tmp_path, capsys):
    (tmp_path / "visits.csv").write_text("customer_id,starts_at,status\n2,2026-12-01T10:00:00Z,booked\n")
    server = f"127.0.0.1:{grpc_env.port}"
    code, out, err = _cli(capsys, "change", live, "--visits", str(tmp_path / "visits.csv"), "--delete", "6",
                          "--server", server)
    assert code == 0, err
    ack = json.loads(out)
    assert ack["rows"]["visits"] == 1 and ack["rows"]["deleted"] == 1
    assert client.count(live, ALL).count == N - 1
    code, out, err = _cli(capsys, "compact", live, "--server", server)
    assert code == 0 and json.loads(out)["sequence"] == ack["sequence"], err
    code, _, err = _cli(capsys, "compact", "no-such-dataset", "--server", server)
    assert code == 2 and err.startswith("error: NOT_FOUND:"), err
