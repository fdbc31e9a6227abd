"""The wire contract: buf lint, ids as text in JSON, Arrow chunks holding customer_id, Preview
pages, StreamExport, reflection v1 and the retry policy of proto/service_config.json."""
from __future__ import annotations

import json
import subprocess
import threading
from concurrent import futures

import grpc
import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from segments.engine.model import segment as S
from segments.engine.model import segment_json
from segments.proto import segments_pb2 as pb
from tests.grpc_support import ANCHOR, REPO, client, grpc_env  # noqa: F401  (fixtures)
from tests.node_support import node_packages

RANKED = {"include": {"all": {}}, "order_by": {"key": "spend", "range": {"last_n_months": 12}}}
PLAIN = {"include": {"loyalty_member": {}}}


def test_buf_lint_standard_passes():
    folder = node_packages()
    r = subprocess.run([str(folder / "node_modules" / ".bin" / "buf"), "lint"], cwd=REPO / "proto",
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    config = (REPO / "proto" / "buf.yaml").read_text()
    assert "STANDARD" in config and config.count("- PACKAGE_DIRECTORY_MATCH") == 1   # the one exception


def test_language_options_are_set():
    opts = pb.DESCRIPTOR.GetOptions()
    assert opts.go_package.endswith(";segmentsv1") and opts.java_package == "dev.segments.v1"
    assert opts.java_multiple_files


@pytest.mark.parametrize("ids", [["1152921504606846977", 5], [" 42 ", "-3"], ["+8"]])
def test_customer_ids_as_text_or_numbers(ids):
    seg = segment_json.loads(json.dumps({"include": {"customers": ids}}))
    assert seg.include == S.Customers(tuple(int(str(i).strip()) for i in ids))


@pytest.mark.parametrize("bad", ["12x", "", "1.5", "1e3", "٣", 1.5, True, "9223372036854775808"])
def test_other_customer_ids_are_refused_with_their_path(bad):
    from segments.engine.errors import InvalidArgument
    with pytest.raises(InvalidArgument) as e:
        segment_json.loads(json.dumps({"include": {"customers": {"ids": [1, bad]}}}))
    assert str(e.value).startswith("include.customers.ids[1]:")


def test_materialize_chunks_carry_customer_id_in_the_arrow_batch(client, grpc_env):
    from segments.client.client import chunk_table
    chunks = list(client.iter_materialize("shop", RANKED, ["email"], ANCHOR))
    tables = [chunk_table(c) for c in chunks]
    assert all(t.column_names == ["customer_id", "email", "rank_value"] for t in tables)
    want = grpc_env.engine.materialize("shop", segment_json.parse_segment(RANKED), ("email",), ANCHOR)
    got = np.concatenate([t.column("customer_id").to_numpy() for t in tables])
    assert np.array_equal(got, want.customer_ids)
    assert chunks[0].change_sequence == grpc_env.engine.info("shop")["live"]["sequence"]
    assert chunks[0].as_of.seconds == int(ANCHOR.timestamp())


@pytest.mark.parametrize("seg", [RANKED, PLAIN], ids=["ranked", "plain"])
def test_preview_pages_walk_the_whole_result_in_order(client, grpc_env, seg):
    fields = ["email", "loyalty_points"]
    pages = list(client.preview_pages("shop", seg, 300, fields, ANCHOR))
    want = grpc_env.engine.materialize("shop", segment_json.parse_segment(seg), tuple(fields), ANCHOR)
    rows = [r for p in pages for r in p.rows]
    assert [r["customer_id"] for r in rows] == want.customer_ids.tolist()
    assert [r["email"] for r in rows] == want.columns["email"].to_pylist()
    if seg is RANKED:
        assert [r["rank_value"] for r in rows] == want.rank_array().to_pylist()
    assert len(pages) == -(-len(rows) // 300) and pages[-1].next_page_token == ""
    assert all(p.total == len(rows) for p in pages)


def test_later_pages_keep_the_first_pages_instant(client):
    seg = {"include": {"bought": {"range": "today"}}}
    first = client.preview("shop", seg, 1, (), ANCHOR)
    assert first.total > 1 and first.next_page_token
    second = client.preview("shop", seg, 1, (), page_token=first.next_page_token)   # as_of unset
    assert second.total == first.total and second.rows[0]["customer_id"] > first.rows[0]["customer_id"]


def test_a_page_token_belongs_to_its_request(client):
    from tests.test_grpc_server import code_of
    first = client.preview("shop", PLAIN, 5, ["email"], ANCHOR)
    code, msg = code_of(lambda: client.preview("shop", PLAIN, 6, ["email"], page_token=first.next_page_token))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("page_token:")
    code, msg = code_of(lambda: client.preview("shop", PLAIN, 5, ["email"], page_token="garbage"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("page_token:")


def test_a_page_after_a_customer_left_starts_at_the_same_place(client, grpc_env):
    eng = grpc_env.engine
    eng.create_dataset("paging_live", "UTC")
    eng.upsert_customers("paging_live", [{"customer_id": i, "loyalty_member": True} for i in range(1, 11)])
    first = client.preview("paging_live", PLAIN, 4)
    assert [r["customer_id"] for r in first.rows] == [1, 2, 3, 4]
    eng.delete_customers("paging_live", [4])     # the last customer of the page leaves
    second = client.preview("paging_live", PLAIN, 4, page_token=first.next_page_token)
    assert [r["customer_id"] for r in second.rows] == [6, 7, 8, 9] and second.total == 9
    third = client.preview("paging_live", PLAIN, 4, page_token=second.next_page_token)
    assert [r["customer_id"] for r in third.rows] == [10] and third.next_page_token == ""


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_stream_export_sends_the_file_to_the_caller(client, grpc_env, tmp_path, fmt):
    before = sorted(p.name for p in grpc_env.export_dir.rglob("*")) if grpc_env.export_dir.exists() else []
    out = tmp_path / f"best.{fmt}"
    r = client.download("shop", RANKED, out, ["email"], fmt, ANCHOR)
    want = grpc_env.engine.materialize("shop", segment_json.parse_segment(RANKED), ("email",), ANCHOR)
    t = pq.read_table(out) if fmt == "parquet" else pcsv.read_csv(out)
    assert t.column("customer_id").to_pylist() == want.customer_ids.tolist() == t.column("customer_id").to_pylist()
    assert r["rows"] == t.num_rows and r["metadata"]["rank_key"] == "spend"
    assert r["metadata"]["as_of"] == "2026-11-20T17:00:00Z"
    if fmt == "parquet":
        assert r["media_type"] == "application/vnd.apache.parquet"
        assert t.schema.metadata[b"segments.as_of"] == b"2026-11-20T17:00:00Z"
    else:
        side = json.loads((tmp_path / "best.csv.json").read_text())
        assert side["rank_key"] == "spend" and side["rows"] == t.num_rows
    after = sorted(p.name for p in grpc_env.export_dir.rglob("*")) if grpc_env.export_dir.exists() else []
    assert after == before   # nothing kept on the server


def test_reflection_answers_as_v1_and_v1alpha(grpc_env):
    from grpc_reflection.v1alpha import reflection_pb2 as rpb

    with grpc.insecure_channel(f"127.0.0.1:{grpc_env.port}") as ch:
        for version in ("v1", "v1alpha"):
            call = ch.stream_stream(f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                                    request_serializer=rpb.ServerReflectionRequest.SerializeToString,
                                    response_deserializer=rpb.ServerReflectionResponse.FromString)
            reqs = [rpb.ServerReflectionRequest(list_services=""),
                    rpb.ServerReflectionRequest(file_containing_symbol="segments.v1.SegmentsService")]
            listed, files = list(call(iter(reqs), timeout=10))
            names = {s.name for s in listed.list_services_response.service}
            assert {"segments.v1.SegmentsService", "grpc.reflection.v1.ServerReflection",
                    "grpc.reflection.v1alpha.ServerReflection"} <= names, version
            assert files.file_descriptor_response.file_descriptor_proto, version


class _Flaky:
    """A SegmentsService whose Count answers UNAVAILABLE `fails` times, then a count."""

    def __init__(self, fails: int):
        self.fails, self.calls = fails, 0
        self.lock = threading.Lock()

    def count(self, request, context):
        with self.lock:
            self.calls += 1
            n = self.calls
        if n <= self.fails:
            context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
        return pb.CountResponse(count=7)


def test_the_service_config_retries_unavailable_in_grpc_itself():
    """Any gRPC client that loads service_config.json retries UNAVAILABLE (here the C core
    that Python, C++, Ruby and PHP share; clients/node checks grpc-js parses it)."""
    flaky = _Flaky(2)
    server = grpc.server(futures.ThreadPoolExecutor(2))
    handler = grpc.unary_unary_rpc_method_handler(flaky.count, request_deserializer=pb.CountRequest.FromString,
                                                  response_serializer=pb.CountResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("segments.v1.SegmentsService",
                                                                          {"Count": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    config = (REPO / "proto" / "service_config.json").read_text()
    try:
        from segments.proto import segments_pb2_grpc as pbg
        with grpc.insecure_channel(f"127.0.0.1:{port}", [("grpc.service_config", config)]) as ch:
            assert pbg.SegmentsServiceStub(ch).Count(pb.CountRequest(), timeout=10).count == 7
        assert flaky.calls == 3
        flaky.calls = 0
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:   # without the config: no retry
            with pytest.raises(grpc.RpcError) as e:
                pbg.SegmentsServiceStub(ch).Count(pb.CountRequest(), timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE and flaky.calls == 1
    finally:
        server.stop(0)


def test_the_python_client_follows_the_same_policy():
    from segments.client.client import RETRY, SegmentsClient, service_config
    policy = service_config()["methodConfig"][0]["retryPolicy"]
    assert RETRY["attempts"] == policy["maxAttempts"] and policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    with SegmentsClient("127.0.0.1:1") as c:
        assert c.retries == policy["maxAttempts"] - 1
    names = {(n["service"], n.get("method")) for n in service_config()["methodConfig"][0]["name"]}
    assert ("segments.v1.DatasetsService", "ApplyChanges") not in names   # retried only with a batch_id
    for full in names:
        service = full[0].rsplit(".", 1)[-1]
        if full[0].startswith("segments.v1."):
            desc = pb.DESCRIPTOR.services_by_name[service]
            assert full[1] is None or desc.methods_by_name.get(full[1]) is not None, full
