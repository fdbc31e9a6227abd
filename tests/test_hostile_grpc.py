"""Hostile requests get clean answers: the right code, a bounded message naming the path,
machine-readable details (issue 15), and never INTERNAL, UNKNOWN or RESOURCE_EXHAUSTED
where the input was at fault.
"""
from __future__ import annotations

import json
import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from segments.client.errors import ServerError
from segments.proto import segments_pb2 as pb
from segments.server.errors import MAX_MESSAGE_BYTES
from tests.grpc_support import client, grpc_env  # noqa: F401  (fixtures)

C = grpc.StatusCode
BIG = "x" * (10 << 20)
ALL = '{"include": "all"}'


def failure(fn) -> ServerError:
    with pytest.raises(grpc.RpcError) as e:
        fn()
    err = e.value
    assert isinstance(err, ServerError), type(err)
    assert err.code() not in (C.INTERNAL, C.UNKNOWN, C.RESOURCE_EXHAUSTED), (err.code(), err.details()[:300])
    assert "Traceback" not in err.details()
    assert len(err.details().encode()) <= 3 * MAX_MESSAGE_BYTES
    return err


def invalid(fn, path: str, text: str = "") -> ServerError:
    err = failure(fn)
    assert err.code() == C.INVALID_ARGUMENT, (err.code(), err.details()[:300])
    assert err.details().startswith(f"{path}:"), err.details()[:300]
    assert err.violations and err.field == path, err.violations   # BadRequest names the same path
    assert text in err.details(), err.details()[:300]
    return err


@pytest.mark.parametrize("text, path, says", [
    ('{"include": {"' + "k" * 12_000 + '": 1}}', "include.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...(12000 chars)",
     "field name"),
    (json.dumps({"include": {"bought": {"range": BIG}}}), "include.bought.range", "characters"),
    (json.dumps({"include": {"age": {">": BIG}}}), "include.age.>", "characters"),
    (json.dumps({"include": {"bought": {"range": {"custom": {"start": BIG}}}}}), "include.bought.range.custom.start",
     "characters"),
    ('{"include": {"age": {">": ' + "9" * 5000 + "}}}", "include.age.>", "5000 digits"),
    ('{"include": {"search": {"text": "\\ud800"}}}', "include.search.text", "Unicode"),
    ('{"include": {"surname": "\\udfff"}}', "include.surname", "Unicode"),
    ('{"include": {"\\ud800": 1}}', "include.\\ud800", "Unicode"),
    (json.dumps({"include": {"any_of": [{"spend": {"cmp": {">": i}}} for i in range(10_000)]}}),
     "include.any_of[255]", "conditions"),
    (json.dumps({"include": {"any_of": [{"search": {"text": f"q{i}"}} for i in range(2_000)]}}),
     "include.any_of[16].search", "search"),
])
def test_hostile_definitions_are_invalid_argument_with_a_short_message(client, text, path, says):
    t0 = time.perf_counter()
    invalid(lambda: client.count("shop", text), path, says)
    assert time.perf_counter() - t0 < 5


def test_undecodable_and_too_deep_messages_are_invalid_argument(grpc_env):
    from segments.bench.probes import deep_count_request
    ch = grpc.insecure_channel(f"127.0.0.1:{grpc_env.port}")
    try:
        for path, stream in (("/segments.v1.SegmentsService/Count", False), ("/segments.v1.DatasetsService/ApplyChanges", False),
                             ("/segments.v1.SegmentsService/Materialize", True), ("/segments.v1.CatalogService/CreateGroup", False)):
            make = ch.unary_stream if stream else ch.unary_unary
            fn = make(path, request_serializer=None, response_deserializer=None)
            for payload in (b"\xff\xff\xff\xff\x0f", b"\x0a\x03\xff\xfe\xfd", deep_count_request("shop", 150)):
                with pytest.raises(grpc.RpcError) as e:
                    r = fn(payload, timeout=30)
                    if stream:
                        list(r)
                err = ServerError(e.value)
                assert err.code() == C.INVALID_ARGUMENT, (path, payload[:10], err.code(), err.details())
                if len(payload) < 10 or path.endswith("Count"):  # (the deep Count parses as another type)
                    assert err.details().startswith("request: not a valid ") and err.field == "request"
    finally:
        ch.close()


@pytest.mark.parametrize("seconds, nanos, dataset", [
    (-62135596800, 0, "shop"), (253402300799, 999_999_999, "other"), (-62135596801, 0, "shop"),
    (253402300800, 0, "shop"), (0, -1, "shop"), (0, 1_000_000_000, "other")])
def test_as_of_at_and_past_the_calendar_edges(client, seconds, nanos, dataset):
    ts = Timestamp(seconds=seconds, nanos=nanos)
    src = pb.SegmentSource(segment_json='{"include": {"birthday": "today"}}')
    for call in (lambda: client._unary(client._segments.Count, pb.CountRequest(dataset=dataset, source=src, as_of=ts), 30),
                 lambda: client._unary(client._catalog.CreateGroup, pb.CreateGroupRequest(
                     dataset=dataset, name="edge-group", segment_json=ALL, as_of=ts), 30)):
        err = failure(call)
        assert err.code() == C.INVALID_ARGUMENT and err.field.startswith("as_of"), err.details()


def test_duplicate_and_oversized_fields(client):
    invalid(lambda: client.preview("shop", ALL, 3, ["email", "email"]), "fields[1]", "twice")
    invalid(lambda: client.materialize("shop", ALL, ["email", "email"]), "fields[1]", "twice")
    invalid(lambda: client.export("shop", ALL, ["email", "city", "email"]), "fields[2]", "twice")
    invalid(lambda: client.preview("shop", ALL, 3, [BIG]), "fields[0]", "10485760 characters")


@pytest.mark.parametrize("call, path", [
    (lambda c: c.create_dataset("n" * (1 << 20), "UTC"), "dataset"),
    (lambda c: c.create_dataset("tzprobe", "Z" * 10_000), "timezone"),
    (lambda c: c.count("d" * (1 << 20), ALL), "dataset"),
    (lambda c: c.count("shop", saved="s" * (1 << 20)), "source.saved_segment"),
    (lambda c: c.export("shop", ALL, file_name="f" * (1 << 20)), "file_name"),
    (lambda c: c.apply_changes("shop", delete=[1], batch_id="b" * (1 << 20)), "batch_id"),
    (lambda c: c.create_saved_segment("shop", "huge-description", ALL, description=BIG), "description"),
    (lambda c: c.apply_changes("shop", customers=[{"customer_id": 990001, "birth_date": "0000-02-29"}]),
     "customers, row 1, column birth_date"),
])
def test_huge_names_and_values_are_invalid_argument(client, call, path):
    invalid(lambda: call(client), path)


def test_a_request_over_the_size_limit_is_invalid_argument(client):
    text = json.dumps({"include": {"tags": {"any": ["x" * 900] * 20_000}}})    # ~18 MiB
    err = invalid(lambda: client.count("shop", text), "request", "more than the limit of 16,777,216")
    assert "CountRequest of" in err.details()


def test_not_found_and_failed_precondition_carry_a_stable_reason(client):
    assert failure(lambda: client.count("no-such", ALL)).reason == "DATASET_NOT_FOUND"
    assert failure(lambda: client.get_group("shop", "no-such")).reason == "GROUP_NOT_FOUND"
    assert failure(lambda: client.get_saved_segment("shop", "no-such")).reason == "SAVED_SEGMENT_NOT_FOUND"
    client.create_saved_segment("shop", "hostile-inactive", ALL, active=False)
    try:
        err = failure(lambda: client.count("shop", saved="hostile-inactive"))
        assert err.code() == C.FAILED_PRECONDITION and err.reason == "SAVED_SEGMENT_INACTIVE"
        assert err.info["path"] == "source.saved_segment"
    finally:
        client.delete_saved_segment("shop", "hostile-inactive")
    err = failure(lambda: client.ingest("shop", "/etc"))
    assert err.reason == "FOLDER_OUTSIDE_INGEST_ROOT" and err.field == "folder"


def test_a_bad_row_names_file_row_and_column_in_the_details(client):
    err = invalid(lambda: client.append("shop", "purchases", [
        {"customer_id": 1, "purchased_at": "2026-01-01T00:00:00Z", "amount": 1}] * 2
        + [{"customer_id": 1, "purchased_at": "9998-12-31T23:00:00-05:00", "amount": 1}]),
        "purchases, row 3, column purchased_at", "outside the supported calendar")
    assert err.reason == "BAD_ROW" and err.info == {"file": "purchases", "row": "3", "column": "purchased_at"}


def test_a_server_default_deadline_caps_calls_without_one(grpc_env, monkeypatch):
    from segments.engine.errors import Cancelled
    from segments.server.app import build_server, stop
    seen = []

    def count(name, seg, as_of=None, deadline=None):
        seen.append(None if deadline is None else deadline - time.monotonic())
        raise Cancelled("deadline", "deadline exceeded")
    server, port = build_server(grpc_env.engine, 0, default_deadline=2.5)
    server.start()
    monkeypatch.setattr(grpc_env.engine, "count", count)
    try:
        from segments.client.client import SegmentsClient
        with SegmentsClient(f"127.0.0.1:{port}", timeout=1000) as c:
            assert failure(lambda: c.count("shop", ALL)).code() == C.DEADLINE_EXCEEDED
            failure(lambda: c.count("shop", ALL, timeout=1.0))
    finally:
        stop(server, 0)
    assert 2.0 < seen[0] <= 2.5 and seen[1] <= 1.2, seen  # the caller's shorter deadline wins
    with pytest.raises(ValueError):
        build_server(grpc_env.engine, 0, default_deadline=0)


def test_the_server_keeps_serving_after_every_hostile_call(client):
    assert client.count("shop", ALL).count > 0
