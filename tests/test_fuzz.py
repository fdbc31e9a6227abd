"""Fuzzing: hostile definitions, typed messages, as-of values, names and ingest files, through
the server and the CLI. Every answer must be one of the status codes docs/security.md
documents for that input (never INTERNAL, UNKNOWN or RESOURCE_EXHAUSTED: the input was at
fault), with a bounded message and no traceback; the CLI must exit 0 or 2 with one error line.

The default run is short and reproducible (a few hundred examples, derandomized);
SEGMENTS_FUZZ=long runs thousands of random ones:

    SEGMENTS_FUZZ=long .venv/bin/python -m pytest tests/test_fuzz.py
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import string

import grpc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segments.engine.errors import EngineError
from segments.engine.model import segment_json
from segments.proto import segments_pb2 as pb
from segments.server import codec
from segments.server.errors import MAX_MESSAGE_BYTES
from tests.grpc_support import grpc_env  # noqa: F401  (fixture)

LONG = os.environ.get("SEGMENTS_FUZZ") == "long"
settings.register_profile("fuzz-short", max_examples=60, derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                 HealthCheck.data_too_large])
settings.register_profile("fuzz-long", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                 HealthCheck.data_too_large])
PROFILE = settings.get_profile("fuzz-long" if LONG else "fuzz-short")


def examples(n: int):
    """This test's example count: n in the short run, 20n in the long one."""
    return settings(PROFILE, max_examples=n * 20 if LONG else n)


C = grpc.StatusCode
# What each input may answer (docs/security.md, "Status codes").
DEFINITION_CODES = {C.OK, C.INVALID_ARGUMENT}
NAME_CODES = {C.OK, C.INVALID_ARGUMENT, C.NOT_FOUND, C.ALREADY_EXISTS, C.FAILED_PRECONDITION}
INGEST_CODES = {C.OK, C.INVALID_ARGUMENT}

KINDS = ["all", "customers", "search", "surname", "birthday", "anniversary", "married_today", "age",
         "joined", "loyalty_member", "loyalty_points", "origin_shop", "gender", "marital_status", "city",
         "postal_code", "tags", "reachable", "account_balance", "overdue_layby", "bought", "spend",
         "purchase_count", "visited", "upcoming_appointment", "all_of", "any_of", "not"]
WORDS = KINDS + ["include", "exclude", "append", "order_by", "limit", "cmp", "filter", "range", "text", "fields",
                 "mode", "month", "days", "values", "any", "all", "ids", "channel", "shops", "key", "direction",
                 ">", ">=", "<", "<=", "==", "between", "department", "metal", "custom", "start", "end",
                 "last_n_days", "last_n_months", "months", "ever", "today", "previous_month"]
VALID = [
    {"spend": {"filter": {"department": ["diamond"]}, "range": {"last_n_months": 6}, "cmp": {">=": 100}}},
    {"birthday": {"mode": "next_days", "days": 7}}, {"age": {"between": [30, 59]}}, "loyalty_member",
    {"search": {"text": "zoe", "fields": ["first_name", "email"]}}, {"surname": "Smith"},
    {"visited": {"range": {"custom": {"start": {"months": -12, "days": 1}, "end": {"months": -6}}}}},
    {"customers": [1, 2, 3]}, {"tags": {"any": ["VIP"]}}, {"reachable": "sms_opt_in"},
    {"bought": {"range": "previous_month"}}, {"joined": {"range": "year_to_date"}},
]

# text of any kind: lone surrogates, controls, long runs
texts = st.one_of(st.text(max_size=12), st.text(alphabet=st.characters(), max_size=6),
                  st.sampled_from(["\ud800", "x\udfff", "\x00", "é" * 300, "k" * 1500, "", " "]))
numbers = st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(min_value=2**63, max_value=10**40),
                    st.integers(max_value=-(2**63) - 1, min_value=-(10**40)),
                    st.floats(allow_nan=True, allow_infinity=True), st.just(10**4200))
leaves = st.one_of(st.none(), st.booleans(), numbers, texts, st.sampled_from(WORDS))
keys = st.one_of(st.sampled_from(WORDS), texts)
json_values = st.recursive(leaves, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=3),
                           max_leaves=12)
conditions = st.recursive(
    st.one_of(st.sampled_from(VALID), st.builds(lambda k, v: {k: v}, st.sampled_from(KINDS), json_values),
              json_values),
    lambda kids: st.one_of(st.builds(lambda xs: {"all_of": xs}, st.lists(kids, max_size=4)),
                           st.builds(lambda xs: {"any_of": xs}, st.lists(kids, max_size=4)),
                           st.builds(lambda x: {"not": x}, kids)),
    max_leaves=10)
segments_ = st.one_of(
    st.fixed_dictionaries({"include": conditions}, optional={
        "exclude": conditions, "append": st.lists(conditions, max_size=3),
        "order_by": st.one_of(json_values, st.fixed_dictionaries({"key": st.sampled_from(
            ["spend", "purchase_count", "last_purchase", "loyalty_points", "x"])}, optional={
            "direction": st.sampled_from(["asc", "desc", "up"]), "range": json_values, "filter": json_values})),
        "limit": st.one_of(numbers, json_values)}),
    json_values)
definition_texts = st.one_of(segments_.map(lambda v: json.dumps(v, ensure_ascii=True)),
                             segments_.map(lambda v: json.dumps(v, ensure_ascii=True))
                             .flatmap(lambda t: st.integers(0, max(len(t) - 1, 0)).map(lambda i: t[:i])),
                             st.text(max_size=40),
                             st.sampled_from(['{"include": {"age": {">": ' + "9" * 5000 + "}}}",
                                              '{"include": "all", "limit": -' + "1" * 4400 + "}",
                                              '{"include": ' + '{"not": ' * 3000 + '"all"' + "}" * 3001,
                                              '{"include": ' + "[" * 3000 + "]" * 3000 + "}"]))


def rpc_code(fn):
    """(code, message) of a call; the message checked for size and traces."""
    try:
        r = fn()
        if hasattr(r, "__next__"):
            list(r)
        return C.OK, ""
    except grpc.RpcError as e:
        msg = e.details() or ""
        assert "Traceback" not in msg and len(msg.encode()) <= 3 * MAX_MESSAGE_BYTES, msg[:300]
        return e.code(), msg


@pytest.fixture(scope="module")
def stub(grpc_env):
    from segments.proto import segments_pb2_grpc as pbg
    ch = grpc.insecure_channel(f"127.0.0.1:{grpc_env.port}", [("grpc.max_send_message_length", 64 << 20)])
    yield {"segments": pbg.SegmentsServiceStub(ch), "catalog": pbg.CatalogServiceStub(ch), "datasets": pbg.DatasetsServiceStub(ch),
           "channel": ch}
    ch.close()


@examples(150)
@given(text=definition_texts)
def test_json_definitions(stub, text):
    # the engine's parser answers InvalidArgument or a Segment, nothing else
    try:
        seg = segment_json.loads(text)
    except EngineError as e:
        assert type(e).__name__ == "InvalidArgument" and len(str(e)) < 5000, str(e)[:300]
        seg = None
    code, msg = rpc_code(lambda: stub["segments"].Count(pb.CountRequest(
        dataset="other", source=pb.SegmentSource(segment_json=text)), timeout=60))
    assert code in DEFINITION_CODES, (code, msg[:300])
    assert (code == C.OK) == (seg is not None), (code, msg[:200])
    if seg is not None:   # the typed form of the same definition answers the same
        typed = pb.SegmentSource(segment=codec.encode_segment(seg))
        assert rpc_code(lambda: stub["segments"].Count(pb.CountRequest(dataset="other", source=typed),
                                                       timeout=60))[0] == C.OK


VALID_REQUEST = pb.CountRequest(dataset="other", source=pb.SegmentSource(
    segment=codec.encode_segment(segment_json.loads(json.dumps({"include": {"all_of": VALID[:6]}}))))).SerializeToString()


@examples(150)
@given(cut=st.integers(0, len(VALID_REQUEST)), flips=st.lists(st.tuples(st.integers(0, len(VALID_REQUEST) - 1),
                                                                       st.integers(0, 255)), max_size=4),
       tail=st.binary(max_size=16))
def test_typed_messages(stub, cut, flips, tail):
    data = bytearray(VALID_REQUEST[:cut] + tail)
    for i, b in flips:
        if i < len(data):
            data[i] = b
    fn = stub["channel"].unary_unary("/segments.v1.SegmentsService/Count", request_serializer=None,
                                     response_deserializer=None)
    code, msg = rpc_code(lambda: fn(bytes(data), timeout=60))
    assert code in {C.OK, C.INVALID_ARGUMENT, C.NOT_FOUND, C.PERMISSION_DENIED}, (code, msg[:300])


@examples(100)
@given(seconds=st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(-62135596800 - 10, -62135596800 + 90000),
                         st.integers(253402300799 - 90000, 253402300799 + 10)),
       nanos=st.one_of(st.integers(-2**31, 2**31 - 1), st.integers(0, 999_999_999)),
       dataset=st.sampled_from(["shop", "other"]))
def test_as_of_values(stub, seconds, nanos, dataset):
    src = pb.SegmentSource(segment_json='{"include": {"any_of": [{"birthday": "today"}, {"bought": {"range": "last_week"}}]}}')
    code, msg = rpc_code(lambda: stub["segments"].Count(pb.CountRequest(
        dataset=dataset, source=src, as_of=Timestamp(seconds=seconds, nanos=nanos)), timeout=60))
    assert code in DEFINITION_CODES, (code, msg[:300])


names = st.one_of(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
                  st.text(alphabet=string.ascii_letters + string.digits + "_.-/", min_size=1, max_size=140),
                  st.sampled_from(["..", ".", "../shop", "shop/..", "a" * 129, "x" * 100_000, "_exports", "-x"]))


@examples(100)
@given(name=names, which=st.sampled_from(["dataset", "saved", "group", "get_group", "file"]))
def test_names(stub, grpc_env, name, which):
    src = pb.SegmentSource(segment_json='{"include": "loyalty_member"}')
    calls = {
        "dataset": lambda: stub["segments"].Count(pb.CountRequest(dataset=name, source=src), timeout=60),
        "saved": lambda: stub["segments"].Count(pb.CountRequest(
            dataset="other", source=pb.SegmentSource(saved_segment=name)), timeout=60),
        "group": lambda: stub["catalog"].CreateGroup(pb.CreateGroupRequest(
            dataset="other", name=name, segment_json='{"include": {"customers": [1]}}'), timeout=60),
        "get_group": lambda: stub["catalog"].GetGroup(pb.GetGroupRequest(dataset="other", name=name), timeout=60),
        "file": lambda: stub["segments"].Export(pb.ExportRequest(
            dataset="other", source=pb.SegmentSource(segment_json='{"include": {"customers": [1]}}'),
            file_name=name), timeout=60),
    }
    code, msg = rpc_code(calls[which])
    assert code in NAME_CODES, (which, code, msg[:300])
    if which == "group" and code == C.OK:
        stub["catalog"].DeleteGroup(pb.DeleteGroupRequest(dataset="other", name=name), timeout=60)
    for p in grpc_env.export_dir.rglob("*"):     # nothing written outside <exports>/<dataset>/
        assert p.parent in (grpc_env.export_dir, grpc_env.export_dir / "other", grpc_env.export_dir / "shop"), p


# ---------------------------------------------------------------- ingest files

CSV_COLUMNS = ["customer_id", "birth_date", "joined_on", "loyalty_points", "tags", "email_opt_in", "email", "active"]
csv_cells = st.one_of(st.sampled_from(["1", "-1", "9" * 25, "", " ", "0000-01-01", "2020-02-30", "1990-05-06",
                                       "true", "maybe", "a;b", "\"", "\"\"", "nan", "1e3", "+7"]),
                      st.text(max_size=8))


@st.composite
def ingest_files(draw):
    """(file name, bytes) of a customers CSV or Parquet file, hostile more often than not."""
    if draw(st.booleans()):
        cols = draw(st.lists(st.sampled_from(CSV_COLUMNS + ["x", ""]), min_size=0, max_size=5))
        rows = draw(st.lists(st.lists(csv_cells, min_size=0, max_size=len(cols) + 1), max_size=5))
        text = ",".join(cols) + "\n" + "\n".join(",".join(r) for r in rows)
        raw = text.encode("utf-8", "surrogatepass") if draw(st.booleans()) else draw(st.binary(max_size=60))
        return "customers.csv", raw
    types = {"customer_id": st.sampled_from([pa.int64(), pa.int8(), pa.string(), pa.float64(), pa.null()]),
             "birth_date": st.sampled_from([pa.date32(), pa.timestamp("s"), pa.string(), pa.int32()]),
             "tags": st.sampled_from([pa.list_(pa.string()), pa.string(), pa.list_(pa.int64())])}
    n = draw(st.integers(0, 4))
    cols = {}
    for name, tstrat in types.items():
        if draw(st.booleans()) or name == "customer_id":
            t = draw(tstrat)
            values = draw(st.lists(st.one_of(st.none(), st.integers(-10**6, 10**6)), min_size=n, max_size=n))
            try:
                if pa.types.is_list(t):
                    arr = pa.array([None if v is None else [str(v)] for v in values]).cast(t)
                elif pa.types.is_timestamp(t) or pa.types.is_date(t):
                    arr = pa.array([None if v is None else v * 40_000 for v in values], pa.int64()).cast(
                        pa.int32() if pa.types.is_date(t) else pa.int64()).cast(t)
                else:
                    arr = pa.array([None if v is None else v for v in values]).cast(t)
            except (pa.ArrowException, ValueError, OverflowError):
                arr = pa.nulls(n, t)
            cols[name] = arr
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf)
    raw = buf.getvalue()
    if draw(st.booleans()):       # corrupt a few bytes, or cut the file
        data = bytearray(raw)
        for i, b in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), max_size=3)):
            data[i] = b
        raw = bytes(data[:draw(st.integers(0, len(data)))])
    return "customers.parquet", raw


@pytest.fixture(scope="module")
def ingest_target(grpc_env):
    from segments.client.client import SegmentsClient
    with SegmentsClient(f"127.0.0.1:{grpc_env.port}") as c:
        c.create_dataset("fuzz-ingest", "UTC")
    folder = grpc_env.ingest_root / "fuzz-ingest"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@examples(25)
@given(file=ingest_files(), seq=st.integers(0, 10**9))
def test_ingest_files(stub, ingest_target, file, seq):
    name, raw = file
    sub = ingest_target / f"f{seq}"
    sub.mkdir(exist_ok=True)
    for old in sub.iterdir():
        old.unlink()
    (sub / name).write_bytes(raw)
    code, msg = rpc_code(lambda: stub["datasets"].Ingest(pb.IngestRequest(dataset="fuzz-ingest", folder=sub.name),
                                                         timeout=120))
    assert code in INGEST_CODES, (code, msg[:300])


@examples(40)
@given(rows=st.lists(st.fixed_dictionaries({}, optional={
    "customer_id": st.integers(-2**63, 2**63 - 1), "birth_date": st.one_of(texts, st.sampled_from(
        ["0000-01-01", "1990-02-29", "1990-01-01", "9999-12-31", "10000-01-01", " 1990-01-01 "])),
    "loyalty_points": st.integers(-2**63, 2**63 - 1), "email": texts,
    "tags": st.lists(st.text(alphabet=string.printable, max_size=5), max_size=3)}), max_size=4))
def test_change_rows(stub, ingest_target, rows):
    msgs = []
    for r in rows:
        try:
            msgs.append(pb.CustomerRow(**r))
        except (ValueError, TypeError):   # text the wire cannot carry (a lone surrogate): the client refuses it
            return
    code, msg = rpc_code(lambda: stub["datasets"].ApplyChanges(pb.ApplyChangesRequest(dataset="fuzz-ingest", customers=msgs),
                                                               timeout=60))
    assert code in INGEST_CODES, (code, msg[:300])


# ---------------------------------------------------------------- the CLI

@pytest.fixture(scope="module")
def cli_data(tmp_path_factory):
    from segments.bench.generate import generate
    from segments.engine.api import Engine
    base = tmp_path_factory.mktemp("fuzz-cli")
    generate(base / "in", customers=100, seed=7)
    eng = Engine(base / "data")
    eng.create_dataset("t", "Pacific/Kiritimati")
    eng.ingest("t", base / "in")
    eng.close()
    return base


@examples(60)
@given(text=definition_texts, as_of=st.one_of(st.none(), texts, st.sampled_from(
    ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59+00:00", "2026-11-20T17:00:00Z", "2026-11-20", ""])),
    cmd=st.sampled_from(["count", "preview", "explain"]))
def test_cli(cli_data, text, as_of, cmd):
    from segments.cli.main import main
    seg = cli_data / "seg.json"
    seg.write_text(text, encoding="utf-8", errors="surrogatepass")
    argv = ["--data", str(cli_data / "data"), cmd, "--dataset", "t", "--segment", str(seg)]
    if as_of is not None:
        argv += ["--as-of", as_of]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code in (0, 2), (code, err.getvalue()[-500:])
    assert "Traceback" not in err.getvalue()
    if code:
        assert err.getvalue().startswith("error: ") and err.getvalue().count("\n") == 1, err.getvalue()[:300]
