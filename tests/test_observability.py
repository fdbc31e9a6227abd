"""Access log, request ids, Prometheus metrics and OpenTelemetry spans of the gRPC server."""
from __future__ import annotations

import io
import json
import logging
import urllib.request

import grpc
import pytest

from segments.proto import segments_pb2 as pb
from segments.proto import segments_pb2_grpc as pbg
from tests.grpc_support import ANCHOR, grpc_env  # noqa: F401  (fixture)

MEMBERS = json.dumps({"include": {"loyalty_member": {}}})
BAD = json.dumps({"include": {"spend": {"cmp": {"between": [5, 1]}}}})


@pytest.fixture(scope="module")
def observed(grpc_env):
    """An in-process server over the grpc_env engine with an access log (to a buffer),
    metrics (served over HTTP on a free port) and request ids."""
    from segments.server.app import build_server, stop
    from segments.server.observe import Metrics, Observer

    buf = io.StringIO()
    log = logging.getLogger("segments.access.test")
    handler = logging.StreamHandler(buf)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    metrics = Metrics(grpc_env.engine)
    httpd, mport = metrics.serve(0)
    server, port = build_server(grpc_env.engine, 0, export_dir=grpc_env.export_dir, observer=Observer(log, metrics))
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield pbg.SegmentsServiceStub(channel), buf, mport
    channel.close()
    stop(server, 0)
    httpd.shutdown()
    log.removeHandler(handler)


def _lines(buf) -> list:
    return [json.loads(x) for x in buf.getvalue().splitlines() if x.strip()]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def _value(text: str, prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_request_id_goes_back_in_trailing_metadata_and_into_the_access_log(observed):
    stub, buf, _ = observed
    req = pb.CountRequest(dataset="shop", source=pb.SegmentSource(segment_json=MEMBERS))
    resp, call = stub.Count.with_call(req, metadata=(("x-request-id", "req-abc-123"),), timeout=30)
    assert ("x-request-id", "req-abc-123") in tuple(call.trailing_metadata())
    line = [x for x in _lines(buf) if x["request_id"] == "req-abc-123"][-1]
    assert line["method"] == "segments.v1.SegmentsService/Count" and line["dataset"] == "shop"
    assert line["status"] == "OK" and 0 < line["engine_ms"] <= line["total_ms"]
    assert resp.count > 0


def test_a_request_without_an_id_gets_a_fresh_one_and_an_insane_one_is_replaced(observed):
    stub, buf, _ = observed
    req = pb.CountRequest(dataset="shop", source=pb.SegmentSource(segment_json=MEMBERS))
    ids = set()
    for md in ((), (("x-request-id", "x" * 500),)):
        _, call = stub.Count.with_call(req, metadata=md, timeout=30)
        rid = dict(call.trailing_metadata())["x-request-id"]
        assert 8 <= len(rid) <= 128 and rid != "x" * 500
        ids.add(rid)
    assert len(ids) == 2


def test_errors_are_logged_with_their_code_and_keep_the_request_id(observed):
    stub, buf, mport = observed
    req = pb.CountRequest(dataset="shop", source=pb.SegmentSource(segment_json=BAD))
    with pytest.raises(grpc.RpcError) as e:
        stub.Count(req, metadata=(("x-request-id", "bad-1"),), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    trailer = dict(e.value.trailing_metadata())
    assert trailer["x-request-id"] == "bad-1"
    assert "grpc-status-details-bin" in trailer   # the error's details survive beside the id
    line = [x for x in _lines(buf) if x["request_id"] == "bad-1"][-1]
    assert line["status"] == "INVALID_ARGUMENT" and "between" in line["message"]
    text = _scrape(mport)
    assert _value(text, 'segments_rpc_errors_total{code="INVALID_ARGUMENT",method="segments.v1.SegmentsService/Count"}') >= 1


def test_metrics_count_calls_latency_engine_time_and_rows(observed, grpc_env):
    stub, buf, mport = observed
    before = _scrape(mport)
    src = pb.SegmentSource(segment_json=MEMBERS)
    for _ in range(3):
        stub.Count(pb.CountRequest(dataset="shop", source=src), timeout=30)
    chunks = list(stub.Materialize(pb.MaterializeRequest(dataset="shop", source=src), timeout=30))
    total = chunks[0].total
    stub.Preview(pb.PreviewRequest(dataset="shop", source=src, n=7), timeout=30)
    text = _scrape(mport)
    count_ok = 'segments_rpc_calls_total{code="OK",method="segments.v1.SegmentsService/Count"}'
    assert _value(text, count_ok) - _value(before, count_ok) == 3
    hist = 'segments_rpc_duration_seconds_count{method="segments.v1.SegmentsService/Count"}'
    assert _value(text, hist) - _value(before, hist) == 3
    assert _value(text, 'segments_engine_duration_seconds_count{method="segments.v1.SegmentsService/Count"}') >= 3
    rows = 'segments_rows_materialized_total{method="segments.v1.SegmentsService/Materialize"}'
    assert _value(text, rows) - _value(before, rows) == total > 0
    prev = 'segments_rows_materialized_total{method="segments.v1.SegmentsService/Preview"}'
    assert _value(text, prev) - _value(before, prev) == 7
    assert _value(text, "segments_open_datasets") >= 1
    assert 'segments_live_sequence{dataset="shop"}' in text
    assert "segments_compactions_total" in text and "segments_ready 1.0" in text
    materialize_line = [x for x in _lines(buf) if x["method"].endswith("/Materialize")][-1]
    assert materialize_line["rows"] == total


def test_live_sequence_pending_changes_and_compactions_are_gauges(tmp_path):
    from segments.engine.api import Engine
    from segments.server.observe import Metrics

    eng = Engine(tmp_path, auto_compact=False)
    eng.create_dataset("live", "UTC")
    eng.upsert_customers("live", [{"customer_id": 1}, {"customer_id": 2}])
    eng.delete_customers("live", [2])
    m = Metrics(eng)
    httpd, port = m.serve(0)
    try:
        text = _scrape(port)
        assert _value(text, 'segments_live_sequence{dataset="live"}') == 2
        assert _value(text, 'segments_pending_changes{dataset="live",kind="deleted"}') == 1
        eng.compact("live")
        text = _scrape(port)
        assert _value(text, "segments_compactions_total") == 1
        assert _value(text, 'segments_pending_changes{dataset="live",kind="deleted"}') == 0
    finally:
        httpd.shutdown()
        eng.close()


def test_spans_per_call_with_the_callers_trace_and_the_status(grpc_env):
    pytest.importorskip("opentelemetry.sdk.trace", reason="the tracing extra (opentelemetry-sdk) is not installed")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from segments.server.app import build_server, stop
    from segments.server.observe import Observer

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    server, port = build_server(grpc_env.engine, 0, export_dir=grpc_env.export_dir, observer=Observer(tracer=tracer))
    server.start()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pbg.SegmentsServiceStub(ch)
            md = (("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"), ("x-request-id", "traced-1"))
            stub.Count(pb.CountRequest(dataset="shop", source=pb.SegmentSource(segment_json=MEMBERS)),
                       metadata=md, timeout=30)
            with pytest.raises(grpc.RpcError):
                stub.Count(pb.CountRequest(dataset="shop", source=pb.SegmentSource(segment_json=BAD)), timeout=30)
    finally:
        stop(server, 0)
    spans = exporter.get_finished_spans()
    calls = [s for s in spans if s.name == "segments.v1.SegmentsService/Count"]
    assert len(calls) == 2
    ok = [s for s in calls if s.attributes.get("segments.request_id") == "traced-1"][0]
    assert format(ok.context.trace_id, "032x") == trace_id and ok.parent.span_id == 0x00f067aa0ba902b7
    assert ok.attributes["rpc.method"] == "Count" and ok.attributes["segments.dataset"] == "shop"
    assert ok.attributes["rpc.grpc.status_code"] == 0
    engine_spans = [s for s in spans if s.name == "engine.count" and s.parent.span_id == ok.context.span_id]
    assert len(engine_spans) == 1
    bad = [s for s in calls if s is not ok][0]
    assert bad.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert not bad.status.is_ok
