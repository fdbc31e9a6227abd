"""Hostile-input probes against the CLI and a served data directory, with a tally.

    python -m segments.bench.probes [--code DIR] [--disk] [--json OUT]

Plays a hostile caller and a careless operator (issue 16): oversized and malformed
definitions, calendar-edge instants, undecodable messages, bad data at the door, tenants
reaching for each other's files, a full disk. Every probe knows what a clean answer is;
the tally counts what is not:

  input_bad_status    a probe whose input was at fault answered INTERNAL, UNKNOWN or
                      RESOURCE_EXHAUSTED (or a message with a stack trace)
  cli_tracebacks      a `segments` command printed a Python traceback or died of a signal
  server_deaths       the server process was gone after a probe (it is restarted)
  cross_tenant_reads  a token of one dataset read data of another
  findings            everything else that is not clean (bad data accepted, a path's
                      existence leaked, files left behind, a write-only token learning
                      sizes, a request holding a worker for seconds, a big allocation,
                      CLI and server disagreeing, errors without machine-readable details)
  disk_*              the full-disk phase (--disk, needs a private tmpfs mount: root or
                      user namespaces): INTERNAL answers, deaths, calls that did not
                      recover once space returned

--code runs the server and CLI of another checkout (a folder laid out like this
repository), e.g. main before a change, to compare tallies; the probes themselves (and the
client side) are this checkout's. The default runs this checkout.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[1]
BAD = ("INTERNAL", "UNKNOWN", "RESOURCE_EXHAUSTED")
TOKENS = {
    "probe-admin-token": {"datasets": ["*"], "roles": ["read", "export", "write", "admin"]},
    "tenant-writer-token": {"datasets": ["tenant"], "roles": ["write"]},
    "tenant-reader-token": {"datasets": ["tenant"], "roles": ["read"]},
    "tenant-export-token": {"datasets": ["tenant"], "roles": ["export"]},
}
BIG = 10 * 1024 * 1024          # a "10 MB" string
TRACE = "Traceback (most recent call last)"
SLOW_S = 3.0                     # a call holding a worker longer than this is a finding


# ================================================================ running code under test

def code_env(code: Optional[Path]) -> dict:
    """Environment for subprocesses running the code under test (`--code DIR` or this one)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("SEGMENTS_DEBUG", None)
    if code is not None:
        env["PYTHONPATH"] = str(_package_view(code))
        env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="probe-numba-")
    return env


def _package_view(code: Path) -> Path:
    """A folder holding `segments/` laid out as the installed namespace over `code`."""
    view = Path(tempfile.mkdtemp(prefix="probe-code-"))
    pkg = view / "segments"
    pkg.mkdir()
    for f in (code / "segments").iterdir():
        os.symlink(f, pkg / f.name)
    for sub in ("engine", "server", "client", "cli", "proto", "bench"):
        os.symlink(code / sub, pkg / sub)
    return view


class Server:
    """`segments serve` of the code under test, restarted when it dies."""

    def __init__(self, data: Path, tokens: Path, env: dict, extra: list):
        self.data, self.tokens, self.env, self.extra = data, tokens, env, extra
        self.proc = None
        self.port = None
        self.deaths = []
        self.start()

    def start(self) -> None:
        cmd = [sys.executable, "-m", "segments.cli.main", "--data", str(self.data), "serve", "--port", "0",
               "--host", "127.0.0.1", "--tokens", str(self.tokens), *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=self.env, cwd=str(self.data.parent))
        deadline = time.monotonic() + 600   # a fresh checkout compiles its kernels during warm-up
        self.log = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("server did not start:\n" + "".join(self.log))
            self.log.append(line)
            m = re.search(r"serving .* on \S+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                import threading
                threading.Thread(target=self._drain, daemon=True).start()
                return
        raise RuntimeError("server did not say where it serves")

    def _drain(self) -> None:
        for line in iter(self.proc.stdout.readline, ""):
            self.log.append(line)

    def alive(self, probe: str) -> bool:
        """True if serving; else record a death (with its signal) and restart."""
        rc = self.proc.poll()
        if rc is None:
            return True
        self.deaths.append({"probe": probe, "returncode": rc,
                            "signal": signal.Signals(-rc).name if rc < 0 else None})
        self.start()
        return False

    def rss_peak_mb(self) -> float:
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0.0
        m = re.search(r"VmHWM:\s+(\d+) kB", text)
        return int(m.group(1)) / 1024 if m else 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def run_cli(env: dict, data: Path, *args, timeout: float = 120) -> dict:
    """One `segments` command of the code under test: returncode, stdout, stderr."""
    cmd = [sys.executable, "-m", "segments.cli.main", "--data", str(data), *map(str, args)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                           errors="backslashreplace", cwd=str(Path(data).parent))  # not this checkout
    except subprocess.TimeoutExpired:
        return {"rc": None, "out": "", "err": "timeout"}
    return {"rc": p.returncode, "out": p.stdout, "err": p.stderr}


# ================================================================ gRPC plumbing

class Rpc:
    """Raw and typed calls to one server with a token."""

    def __init__(self, srv: "Server", token: Optional[str]):
        self.srv = srv
        self.md = (("authorization", f"Bearer {token}"),) if token else ()
        self.port = None
        self._connect()

    def _connect(self) -> None:
        """A channel to the server's current port (a restarted server has a new one)."""
        import grpc
        from segments.proto import segments_pb2_grpc as pbg
        if self.port is not None:
            self.channel.close()
        self.port = self.srv.port
        opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", opts)
        self._stubs = {"segments": pbg.SegmentsServiceStub(self.channel), "catalog": pbg.CatalogServiceStub(self.channel),
                       "datasets": pbg.DatasetsServiceStub(self.channel)}

    def _stub(self, name: str):
        if self.port != self.srv.port:
            self._connect()
        return self._stubs[name]

    segments = property(lambda self: self._stub("segments"))
    catalog = property(lambda self: self._stub("catalog"))
    datasets = property(lambda self: self._stub("datasets"))

    def call(self, method, request, timeout: float = 120) -> dict:
        """{code, message, ms, response, details}; a stream is drained."""
        import grpc
        t0 = time.perf_counter()
        try:
            r = method(request, timeout=timeout, metadata=self.md)
            if hasattr(r, "__iter__") and not hasattr(r, "ListFields"):
                r = list(r)
            return {"code": "OK", "message": "", "ms": (time.perf_counter() - t0) * 1e3, "response": r,
                    "details": False}
        except grpc.RpcError as e:
            details = any(k == "grpc-status-details-bin" for k, _ in (e.trailing_metadata() or ()))
            return {"code": e.code().name, "message": e.details() or "", "ms": (time.perf_counter() - t0) * 1e3,
                    "response": None, "details": details}

    def raw(self, path: str, payload: bytes, timeout: float = 60) -> dict:
        """A unary call with raw request bytes (the response is not decoded)."""
        if self.port != self.srv.port:
            self._connect()
        fn = self.channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        return self.call(fn, payload, timeout)

    def close(self) -> None:
        self.channel.close()


# ================================================================ the probes

class Tally:
    def __init__(self):
        self.records = []

    def add(self, name: str, kind: str, outcome: dict, ok: bool, note: str = "") -> None:
        self.records.append({"probe": name, "kind": kind, "code": outcome.get("code"),
                             "ms": round(outcome.get("ms", 0.0), 1), "ok": ok, "note": note,
                             "message": (outcome.get("message") or "")[:200]})

    def count(self, kind: str) -> int:
        return sum(1 for r in self.records if r["kind"] == kind and not r["ok"])


def _input_fault(t: Tally, name: str, out: dict, want_details: bool = True) -> None:
    """A probe whose input was at fault: a client-error code, a short message, no trace."""
    bad = out["code"] in BAD or out["code"] == "OK" or TRACE in out["message"]
    t.add(name, "input_bad_status", out, not bad or out["code"] == "OK",
          "" if not bad else f"{out['code']}: {out['message'][:120]}")
    if out["code"] == "OK":
        t.add(name, "findings", out, False, "accepted")
    if len(out["message"].encode()) > 4096:
        t.add(name, "findings", out, False, f"message of {len(out['message'])} characters")
    if want_details and out["code"] in ("INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION") \
            and not out["details"]:
        t.add(name, "findings", out, False, "no machine-readable status details")


def probe_definitions(t: Tally, srv: Server, rpc: Rpc) -> None:
    from segments.proto import segments_pb2 as pb

    def count(seg_json: str, dataset="tenant", **kw):
        return rpc.call(rpc.segments.Count, pb.CountRequest(
            dataset=dataset, source=pb.SegmentSource(segment_json=seg_json), **kw))

    huge = "x" * BIG
    cases = {
        "key of 12,000 characters": '{"include": {"' + "k" * 12_000 + '": 1}}',
        "10 MB range name": json.dumps({"include": {"bought": {"range": huge}}}),
        "10 MB comparison value": json.dumps({"include": {"age": {">": huge}}}),
        "10 MB date": json.dumps({"include": {"bought": {"range": {"custom": {"start": huge}}}}}),
        "10 MB unknown condition": json.dumps({"include": {huge: {}}}),
        "integer of 5,000 digits": '{"include": {"age": {">": ' + "9" * 5000 + "}}}",
        "integer of 5,000 digits as a limit": '{"include": "all", "limit": ' + "9" * 5000 + "}",
        "lone surrogate in search text": '{"include": {"search": {"text": "\\ud800"}}}',
        "lone surrogate surname": '{"include": {"surname": "\\udfff"}}',
        "lone surrogate key": '{"include": {"\\ud800": 1}}',
        "nested 10,000 levels": '{"include": ' + '{"not": ' * 10_000 + '"all"' + "}" * 10_001,
        "nested 900 lists": '{"include": ' + "[" * 900 + "]" * 900 + "}",
        "NaN comparison": '{"include": {"age": {">": NaN}}}',
        "float 1e400": '{"include": {"age": {">": 1e400}}}',
        "10 MB tag": json.dumps({"include": {"tags": {"any": [huge]}}}),
        "100,000 values": json.dumps({"include": {"gender": ["x"] * 100_000}}),
        "a 20 MB definition": json.dumps({"include": {"tags": {"any": ["x" * 900] * 22_000}}}),
    }
    for name, text in cases.items():
        _input_fault(t, name, count(text))
        srv.alive(name)

    # the work a definition can ask for
    work = {
        "any_of 10,000 spend conditions": {"include": {"any_of": [
            {"spend": {"cmp": {">": i}, "range": {"last_n_days": 1 + i % 900}}} for i in range(10_000)]}},
        "any_of 100,000 customers conditions": {"include": {"any_of": [
            {"customers": [i]} for i in range(100_000)]}},
        "any_of 2,000 searches": {"include": {"any_of": [
            {"search": {"text": f"zq{i}"}} for i in range(2_000)]}},
    }
    for name, seg in work.items():
        out = count(json.dumps(seg))
        slow = out["ms"] > SLOW_S * 1e3
        t.add(name, "findings", out, not slow, f"held a worker {out['ms'] / 1e3:.1f} s" if slow else "")
        if out["code"] != "OK":
            _input_fault(t, name, out)
        srv.alive(name)

    # typed messages
    deep = deep_count_request("tenant", 150)
    _input_fault(t, "typed segment nested 150 levels", rpc.raw("/segments.v1.SegmentsService/Count", deep))
    srv.alive("typed deep")
    for name, payload in (("undecodable bytes", b"\xff\xff\xff\xff\x0f"),
                          ("truncated message", deep[:37]),
                          ("invalid UTF-8 in a string field", b"\x0a\x03\xff\xfe\xfd")):
        for path in ("/segments.v1.SegmentsService/Count", "/segments.v1.DatasetsService/ApplyChanges",
                     "/segments.v1.CatalogService/CreateGroup"):
            _input_fault(t, f"{name} to {path.rsplit('/', 1)[1]}", rpc.raw(path, payload))
            srv.alive(name)

    # as-of at the calendar's edges
    from google.protobuf.timestamp_pb2 import Timestamp
    seg = pb.SegmentSource(segment_json='{"include": {"birthday": "today"}}')
    for dataset, secs, nanos in (("tenant", -62135596800, 0), ("paris", 253402300799, 999_999_999),
                                 ("tenant", 253402300799, 0), ("paris", -62135596800, 0),
                                 ("tenant", -62135596801, 0), ("tenant", 0, -1)):
        name = f"as_of {secs}s {nanos}ns on {dataset}"
        out = rpc.call(rpc.segments.Count, pb.CountRequest(dataset=dataset, source=seg,
                                                           as_of=Timestamp(seconds=secs, nanos=nanos)))
        if out["code"] != "OK":
            _input_fault(t, name, out)
        srv.alive(name)
        out = rpc.call(rpc.catalog.CreateGroup, pb.CreateGroupRequest(
            dataset=dataset, name=f"edge{abs(secs) % 1000}{nanos % 7}", segment_json='{"include": "all"}',
            as_of=Timestamp(seconds=secs, nanos=nanos)))
        if out["code"] != "OK":
            _input_fault(t, "CreateGroup " + name, out)
        srv.alive(name)

    # duplicate and oversized fields, names
    src = pb.SegmentSource(segment_json='{"include": "all"}')
    _input_fault(t, "Preview duplicate fields", rpc.call(rpc.segments.Preview, pb.PreviewRequest(
        dataset="tenant", source=src, fields=["email", "email"])))
    _input_fault(t, "Materialize duplicate fields", rpc.call(rpc.segments.Materialize, pb.MaterializeRequest(
        dataset="tenant", source=src, fields=["email", "email"])))
    _input_fault(t, "Export duplicate fields", rpc.call(rpc.segments.Export, pb.ExportRequest(
        dataset="tenant", source=src, fields=["email", "email"])))
    _input_fault(t, "Preview 10 MB field name", rpc.call(rpc.segments.Preview, pb.PreviewRequest(
        dataset="tenant", source=src, fields=[huge])))
    _input_fault(t, "CreateDataset 10,000-character timezone", rpc.call(
        rpc.datasets.CreateDataset, pb.CreateDatasetRequest(name="tzprobe", timezone="Z" * 10_000)))
    _input_fault(t, "CreateDataset 1 MB name", rpc.call(
        rpc.datasets.CreateDataset, pb.CreateDatasetRequest(name="n" * (1 << 20), timezone="UTC")))
    _input_fault(t, "Count 1 MB dataset name", rpc.call(rpc.segments.Count, pb.CountRequest(
        dataset="d" * (1 << 20), source=src)))
    _input_fault(t, "saved segment 1 MB name", rpc.call(rpc.segments.Count, pb.CountRequest(
        dataset="tenant", source=pb.SegmentSource(saved_segment="s" * (1 << 20)))))
    _input_fault(t, "Export 1 MB file name", rpc.call(rpc.segments.Export, pb.ExportRequest(
        dataset="tenant", source=src, file_name="f" * (1 << 20))))
    _input_fault(t, "ApplyChanges 1 MB batch_id", rpc.call(rpc.datasets.ApplyChanges, pb.ApplyChangesRequest(
        dataset="tenant", delete_customer_ids=[1], batch_id="b" * (1 << 20))))
    _input_fault(t, "CreateSavedSegment 10 MB description", rpc.call(
        rpc.catalog.CreateSavedSegment, pb.CreateSavedSegmentRequest(dataset="tenant", name="desc-probe",
                                                              segment_json='{"include": "all"}',
                                                              description=huge)))
    srv.alive("fields and names")


def probe_bad_data(t: Tally, srv: Server, rpc: Rpc, admin: Rpc, work: Path, uploads: Path,
                   confined: bool) -> None:
    from segments.proto import segments_pb2 as pb

    for date in ("0000-01-01", "0000-02-29", "-0001-06-15", "0999-12-31", "9999-12-31"):
        out = rpc.call(rpc.datasets.ApplyChanges, pb.ApplyChangesRequest(
            dataset="tenant", customers=[pb.CustomerRow(customer_id=990001, birth_date=date)]))
        _input_fault(t, f"ApplyChanges birth_date {date}", out)
        srv.alive("bad date")
    src = pb.SegmentSource(segment_json='{"include": {"customers": [990001]}}')
    out = admin.call(admin.segments.Preview, pb.PreviewRequest(dataset="tenant", source=src,
                                                               fields=["birth_date"]))
    t.add("Preview birth_date after the bad dates", "input_bad_status", out, out["code"] not in BAD,
          out["message"][:120])
    out = admin.call(admin.segments.Count, pb.CountRequest(dataset="tenant", source=pb.SegmentSource(
        segment_json='{"include": {"all_of": [{"customers": [990001]}, {"age": {">=": 0}}]}}')))
    if out["code"] == "OK" and out["response"].count == 0:
        exists = admin.call(admin.segments.Count, pb.CountRequest(dataset="tenant", source=src))
        if exists["code"] == "OK" and exists["response"].count == 1:
            t.add("age >= 0 drops a customer with a bad birth_date", "findings", out, False, "silently dropped")
    # ingest files with dates outside the calendar and a Parquet decompression bomb
    folder = uploads / "tenant" / "bad-dates" if confined else work / "bad-dates"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "customers.csv").write_text("customer_id,birth_date\n990002,0000-06-15\n")
    rel = "bad-dates" if confined else str(folder)
    _input_fault(t, "Ingest CSV birth_date 0000-06-15", rpc.call(rpc.datasets.Ingest, pb.IngestRequest(
        dataset="tenant", folder=rel), timeout=300))
    srv.alive("bad csv")
    bomb = uploads / "tenant" / "bomb" if confined else work / "bomb"
    write_parquet_bomb(bomb / "customers.parquet", rows=64 << 20)
    before = srv.rss_peak_mb()
    out = rpc.call(rpc.datasets.Ingest, pb.IngestRequest(dataset="tenant", folder="bomb" if confined else str(bomb)),
                   timeout=300)
    grew = srv.rss_peak_mb() - before
    _input_fault(t, "Ingest Parquet footer claiming 512 MB", out)
    t.add("Parquet bomb peak memory", "findings", out, grew < 256,
          f"server peak memory grew {grew:.0f} MB ({(bomb / 'customers.parquet').stat().st_size:,} byte file)")
    srv.alive("parquet bomb")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def deep_count_request(dataset: str, levels: int) -> bytes:
    """A CountRequest whose typed segment nests `levels` nots (encoded by hand: the protobuf
    runtime refuses to build a message deeper than its decoder allows)."""
    c = b"\x0a\x00"                                       # Condition{all: Flag{}}
    for _ in range(levels):
        c = b"\xe2\x01" + _varint(len(c)) + c              # Condition{not: c} (field 28)
    seg = b"\x0a" + _varint(len(c)) + c                     # Segment{include}
    src = b"\x0a" + _varint(len(seg)) + seg                 # SegmentSource{segment}
    name = dataset.encode()
    return b"\x0a" + _varint(len(name)) + name + b"\x12" + _varint(len(src)) + src


def write_parquet_bomb(path: Path, rows: int) -> None:
    """A small Parquet file of `rows` equal customer_ids (RLE: kilobytes on disk)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = min(rows, 1 << 20)
    part = pa.table({"customer_id": pa.array(np.full(chunk, 7, np.int64))})
    with pq.ParquetWriter(path, part.schema, compression="zstd") as w:
        for _ in range(rows // chunk):
            w.write_table(part, row_group_size=chunk)


def probe_security(t: Tally, srv: Server, env: dict, data: Path, uploads: Path, confined: bool) -> None:
    from segments.proto import segments_pb2 as pb
    admin = Rpc(srv, "probe-admin-token")
    writer = Rpc(srv, "tenant-writer-token")
    reader = Rpc(srv, "tenant-reader-token")
    everyone = pb.SegmentSource(segment_json='{"include": "all"}')
    # exported under the name a bulk load looks for: the folder now holds a loadable table
    admin.call(admin.segments.Export, pb.ExportRequest(dataset="scratch", source=everyone,
                                                       fields=["email"], file_name="customers.parquet"))
    # the other tenant's exports and upload folder, by absolute and relative paths and a symlink
    exports = data / "_exports" / "scratch"
    link = uploads / "tenant" / "link-to-scratch"
    try:
        if not link.exists():
            os.symlink(uploads / "scratch", link)
    except OSError:
        pass
    for folder in (str(exports), str(uploads / "scratch"), "../scratch", "link-to-scratch", str(data / "scratch"),
                   "/", str(data)):
        before = reader.call(reader.segments.Count, pb.CountRequest(dataset="tenant", source=everyone))
        out = writer.call(writer.datasets.Ingest, pb.IngestRequest(dataset="tenant", folder=folder), timeout=300)
        after = reader.call(reader.segments.Count, pb.CountRequest(dataset="tenant", source=everyone))
        grew = out["code"] == "OK" or (after["code"] == "OK" and before["code"] == "OK"
                                       and after["response"].count != before["response"].count)
        t.add(f"Ingest of another tenant's files ({folder})", "cross_tenant_reads", out, not grew,
              f"{out['code']}: {out['message'][:100]}")
        srv.alive("cross tenant")
    # does an error text tell whether a path exists?
    texts = []
    for folder in ("/etc", "/no/such/folder-xyz", "/etc/passwd", "/root"):
        out = writer.call(writer.datasets.Ingest, pb.IngestRequest(dataset="tenant", folder=folder))
        texts.append(re.sub(re.escape(folder), "<path>", out["message"]))
    t.add("Ingest error texts tell whether a path exists", "findings", {"code": "-"}, len(set(texts)) == 1,
          " | ".join(sorted(set(texts)))[:300])
    # DeleteDataset and the dataset's exports
    admin.call(admin.datasets.CreateDataset, pb.CreateDatasetRequest(name="gone", timezone="UTC"))
    (uploads / "gone").mkdir(exist_ok=True)
    shutil.copytree(uploads / "scratch", uploads / "gone" / "in", dirs_exist_ok=True)
    admin.call(admin.datasets.Ingest, pb.IngestRequest(dataset="gone", folder="in" if confined
                                                       else str(uploads / "gone" / "in")), timeout=300)
    admin.call(admin.segments.Export, pb.ExportRequest(dataset="gone", source=everyone, fields=["email"],
                                                       file_name="emails.csv", format=pb.EXPORT_FORMAT_CSV))
    admin.call(admin.datasets.DeleteDataset, pb.DeleteDatasetRequest(dataset="gone"))
    left = data / "_exports" / "gone"
    t.add("DeleteDataset leaves _exports/<name>/", "findings", {"code": "-"}, not left.exists(),
          f"{sorted(p.name for p in left.iterdir())}" if left.exists() else "")
    # a write-only token learning sizes and existence
    out = writer.call(writer.catalog.CreateGroup, pb.CreateGroupRequest(
        dataset="tenant", name=f"wo-{int(time.time() * 1000) % 10**9}", segment_json='{"include": "all"}'))
    t.add("write-only CreateGroup learns the size", "findings", out,
          not (out["code"] == "OK" and out["response"].group.count > 0),
          f"count {out['response'].group.count}" if out["code"] == "OK" else out["code"])
    out = writer.call(writer.datasets.ApplyChanges, pb.ApplyChangesRequest(dataset="tenant",
                                                                   delete_customer_ids=[424242424242]))
    t.add("write-only ApplyChanges learns existence (not_found)", "findings", out,
          not (out["code"] == "OK" and len(out["response"].not_found)),
          f"not_found {list(out['response'].not_found)}" if out["code"] == "OK" else out["code"])
    for r in (admin, writer, reader):
        r.close()


def probe_cli(t: Tally, env: dict, data: Path, work: Path, port: int) -> None:
    """The `segments` command: no traceback, a clean message, exit code non-zero on errors."""
    segs = work / "cli-segs"
    segs.mkdir(exist_ok=True)

    def seg(name, text):
        p = segs / f"{name}.json"
        p.write_text(text)
        return p

    server = ["--server", f"127.0.0.1:{port}", "--token", "probe-admin-token"]
    ok = seg("ok", '{"include": "all"}')
    cases = {
        "integer of 5,000 digits": ["count", "--dataset", "tenant", "--segment",
                                    seg("bigint", '{"include": {"age": {">": ' + "9" * 5000 + "}}}")],
        "lone surrogate": ["count", "--dataset", "tenant", "--segment",
                           seg("surrogate", '{"include": {"search": {"text": "\\ud800"}}}')],
        "nested 10,000 levels": ["count", "--dataset", "tenant", "--segment",
                                 seg("deep", '{"include": ' + '{"not": ' * 10_000 + '"all"' + "}" * 10_001)],
        "nested 10,000 levels via server": ["count", "--dataset", "tenant", "--segment", segs / "deep.json", *server],
        "--as-of 0001-01-01T00:00:00Z": ["count", "--dataset", "tenant", "--segment", ok,
                                         "--as-of", "0001-01-01T00:00:00Z"],
        "--as-of 9999-12-31T23:59:59+00:00 on paris": ["count", "--dataset", "paris", "--segment", ok,
                                                       "--as-of", "9999-12-31T23:59:59+00:00"],
        "--as-of ''": ["count", "--dataset", "tenant", "--segment", ok, "--as-of", ""],
        "--as-of '' via server": ["count", "--dataset", "tenant", "--segment", ok, "--as-of", "", *server],
        "--fields email,email": ["preview", "--dataset", "tenant", "--segment", ok, "--fields", "email,email"],
        "materialize --fields email,email": ["materialize", "--dataset", "tenant", "--segment", ok,
                                             "--fields", "email,email", "--out", work / "dup.parquet"],
        "materialize into a missing folder": ["materialize", "--dataset", "tenant", "--segment", ok,
                                              "--out", "/no/such/dir/x.parquet"],
        "segment file missing": ["count", "--dataset", "tenant", "--segment", "/no/such.json"],
        "segment file is a folder": ["count", "--dataset", "tenant", "--segment", "/"],
        "segment file not UTF-8": ["count", "--dataset", "tenant", "--segment",
                                   _bytes_file(segs / "latin1.json", b'{"include": {"surname": "M\xfcller"}}')],
        "ingest a missing folder": ["ingest", "/no/such/folder", "--dataset", "tenant"],
        "ingest a CSV with a year-0 date": ["ingest", work / "cli-bad-dates", "--dataset", "tenant"],
        "change with a year-0 date": ["change", "tenant", "--customers", work / "cli-bad-dates" / "customers.csv"],
        "change --delete with a huge id": ["change", "tenant", "--delete", "9" * 40],
        "dataset create with a 10,000-char zone": ["dataset", "create", "tzx", "--timezone", "Z" * 10_000],
        "dataset create with a bad name": ["dataset", "create", "../x", "--timezone", "UTC"],
        "info on a missing dataset": ["info", "--dataset", "nope"],
        "count on a server that is not there": ["count", "--dataset", "tenant", "--segment", ok,
                                                "--server", "127.0.0.1:1", "--token", "x"],
        "preview -n -5": ["preview", "--dataset", "tenant", "--segment", ok, "-n", "-5"],
        "generate --customers 0": ["generate", "--out", work / "gen0", "--customers", "0"],
    }
    (work / "cli-bad-dates").mkdir(exist_ok=True)
    (work / "cli-bad-dates" / "customers.csv").write_text("customer_id,birth_date\n990003,0000-06-15\n")
    for name, args in cases.items():
        r = run_cli(env, data, *args)
        died = r["rc"] is not None and r["rc"] < 0
        traced = TRACE in r["err"] or TRACE in r["out"]
        t.add(f"cli: {name}", "cli_tracebacks", {"code": str(r["rc"])}, not (died or traced),
              (r["err"].strip().splitlines() or [""])[-1][:160])
        if r["rc"] == 0:
            t.add(f"cli: {name}", "findings", {"code": "0"}, False, "accepted: " + r["out"][:100])
    # preview -n 0: the CLI and the server must agree
    local = run_cli(env, data, "preview", "--dataset", "tenant", "--segment", ok, "-n", "0", "--json")
    remote = run_cli(env, data, "preview", "--dataset", "tenant", "--segment", ok, "-n", "0", "--json", *server)
    same = (local["rc"] == remote["rc"]) and (local["rc"] != 0 or local["out"].count("customer_id")
                                              == remote["out"].count("customer_id"))
    t.add("cli: preview -n 0 locally and via the server", "findings", {"code": f"{local['rc']}/{remote['rc']}"},
          same, f"local rc {local['rc']} ({local['out'].count('customer_id')} rows), "
                f"server rc {remote['rc']} ({remote['out'].count('customer_id')} rows)")
    t.add("cli: preview -n 0 traceback", "cli_tracebacks", {"code": "-"},
          TRACE not in local["err"] + remote["err"], "")


def _bytes_file(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


# ================================================================ full disk

def disk_phase(code: Optional[Path], work: Path) -> Optional[dict]:
    """Run the full-disk probes in a private mount namespace; None when it cannot be made."""
    child = [sys.executable, "-m", "segments.bench.probes", "--disk-child", str(work)]
    if code is not None:
        child += ["--code", str(code)]
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        if shutil.which(prefix[0]) is None:
            return None
        probe = subprocess.run(prefix + ["sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt 2>/dev/null || "
                                                      f"mount -t tmpfs -o size=1m tmpfs {work}"],
                               capture_output=True)
        if probe.returncode == 0:
            p = subprocess.run(prefix + child, capture_output=True, text=True, cwd=str(REPO))
            for line in p.stdout.splitlines()[::-1]:
                if line.startswith("{"):
                    return json.loads(line)
            return {"error": (p.stdout + p.stderr)[-2000:]}
    return None


def disk_child(work: Path, code: Optional[Path]) -> None:
    """Inside a private mount namespace: a server on a small tmpfs, filled up."""
    from segments.proto import segments_pb2 as pb
    from segments.bench.generate import generate

    mnt = work / "tmpfs"
    mnt.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mnt)], check=True)
    data, uploads = mnt / "data", mnt / "uploads"
    uploads.mkdir()
    generate(uploads / "tenant", customers=2000, seed=3)
    generate(uploads / "more", customers=500, seed=4)
    env = code_env(code)
    env["SEGMENTS_DISK_MARGIN"] = str(1 << 20)
    tokens = mnt / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    run_cli(env, data, "dataset", "create", "tenant", "--timezone", "America/New_York")
    run_cli(env, data, "ingest", uploads / "tenant", "--dataset", "tenant")
    confined = "--ingest-root" in run_cli(env, data, "serve", "--help")["out"]
    srv = Server(data, tokens, env, ["--ingest-root", str(uploads)] if confined else [])
    rpc = Rpc(srv, "probe-admin-token")
    everyone = pb.SegmentSource(segment_json='{"include": "all"}')
    result = {"internal": [], "deaths": 0, "no_recovery": [], "cli_tracebacks": 0, "answers": {}}

    if confined:  # under a confined server the upload must sit in the tenant's own folder
        shutil.move(str(uploads / "more"), str(uploads / "tenant" / "more"))
    more = "more" if confined else str(uploads / "more")
    cid = _first_id(rpc)
    from google.protobuf.timestamp_pb2 import Timestamp

    def calls():
        seq = int(time.time() * 1000) % 10**9
        return {
            "ApplyChanges": lambda: rpc.call(rpc.datasets.ApplyChanges, pb.ApplyChangesRequest(
                dataset="tenant", purchases=[pb.PurchaseRow(customer_id=cid, purchased_at=Timestamp(
                    seconds=1_700_000_000), amount=100 + i, product="p" * 200) for i in range(3000)])),
            "Compact": lambda: rpc.call(rpc.datasets.Compact, pb.CompactRequest(dataset="tenant"), timeout=300),
            "Ingest": lambda: rpc.call(rpc.datasets.Ingest, pb.IngestRequest(dataset="tenant", folder=more),
                                       timeout=300),
            "Export": lambda: rpc.call(rpc.segments.Export, pb.ExportRequest(
                dataset="tenant", source=everyone, fields=["email", "first_name", "address"], format=pb.EXPORT_FORMAT_CSV)),
            "CreateGroup": lambda: rpc.call(rpc.catalog.CreateGroup, pb.CreateGroupRequest(
                dataset="tenant", name=f"g{seq}", segment_json='{"include": "all"}')),
            "CreateSavedSegment": lambda: rpc.call(rpc.catalog.CreateSavedSegment, pb.CreateSavedSegmentRequest(
                dataset="tenant", name=f"s{seq}", segment_json='{"include": "all"}', description="d" * 9_000)),
            "CreateDataset": lambda: rpc.call(rpc.datasets.CreateDataset, pb.CreateDatasetRequest(
                name=f"d{seq}", timezone="UTC")),
        }
    filler = mnt / "filler"
    for leave in (0, 64 << 10, 2 << 20):
        _fill(filler, mnt, leave)
        for name, fn in calls().items():
            out = fn()
            result["answers"][f"{name} ({leave} B free)"] = out["code"] + ": " + out["message"][:140]
            if out["code"] in ("INTERNAL", "UNKNOWN") or TRACE in out["message"]:
                result["internal"].append(f"{name} ({leave} B free)")
            if not srv.alive(name):
                result["deaths"] += 1
        read = rpc.call(rpc.segments.Count, pb.CountRequest(dataset="tenant", source=everyone))
        result["answers"][f"Count ({leave} B free)"] = read["code"]
        if read["code"] != "OK":
            result["no_recovery"].append(f"Count while full ({leave} B free): {read['code']}")
        r = run_cli(env, data, "change", "tenant", "--delete", "1,2,3")
        if TRACE in r["err"] or (r["rc"] or 0) < 0:
            result["cli_tracebacks"] += 1
        filler.unlink()
    # space is back: every call works again without a restart
    for name, fn in calls().items():
        out = fn()
        result["answers"][f"{name} (space back)"] = out["code"]
        if out["code"] != "OK":
            result["no_recovery"].append(f"{name}: {out['code']}: {out['message'][:140]}")
        srv.alive(name)
    result["deaths"] = len(srv.deaths)
    result["death_signals"] = [d["signal"] for d in srv.deaths]
    srv.stop()
    rpc.close()
    print(json.dumps(result))


def _first_id(rpc) -> int:
    from segments.proto import segments_pb2 as pb
    out = rpc.call(rpc.segments.Preview, pb.PreviewRequest(dataset="tenant", source=pb.SegmentSource(
        segment_json='{"include": "all"}'), n=1))
    return out["response"].rows[0].customer_id if out["code"] == "OK" else 1


def _fill(filler: Path, mnt: Path, leave: int) -> None:
    """Fill the file system, then give `leave` bytes back."""
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    block = b"\0" * (1 << 20)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError:
                if len(block) <= 4096:
                    break
                block = block[:len(block) // 2]
        if leave:
            os.ftruncate(fd, max(os.fstat(fd).st_size - leave, 0))
    finally:
        os.close(fd)


# ================================================================ main

def run(code: Optional[Path], disk: bool, keep: bool = False) -> dict:
    from segments.bench.generate import generate

    work = Path(tempfile.mkdtemp(prefix="probes-"))
    env = code_env(code)
    data, uploads = work / "data", work / "uploads"
    t = Tally()
    try:
        generate(uploads / "tenant", customers=600, seed=1)
        generate(uploads / "scratch", customers=300, seed=2)
        generate(uploads / "paris", customers=200, seed=5)
        for name, tz in (("tenant", "America/New_York"), ("scratch", "America/New_York"), ("paris", "Europe/Paris")):
            run_cli(env, data, "dataset", "create", name, "--timezone", tz)
            r = run_cli(env, data, "ingest", uploads / name, "--dataset", name)
            if r["rc"] != 0:
                raise RuntimeError(f"setup ingest of {name} failed: {r['err']}")
        # the scratch tenant's customers take other ids than the tenant's
        tokens = work / "tokens.json"
        tokens.write_text(json.dumps(TOKENS))
        confined = "--ingest-root" in run_cli(env, data, "serve", "--help")["out"]
        srv = Server(data, tokens, env, ["--ingest-root", str(uploads)] if confined else [])
        admin = Rpc(srv, "probe-admin-token")
        writer = Rpc(srv, "tenant-writer-token")
        t0 = time.perf_counter()
        probe_definitions(t, srv, admin)
        probe_bad_data(t, srv, writer, admin, work, uploads, confined)
        probe_security(t, srv, env, data, uploads, confined)
        probe_cli(t, env, data, work, srv.port)
        srv.alive("end")
        admin.close()
        writer.close()
        srv.stop()
        tally = {
            "probes": len({r["probe"] for r in t.records}),
            "input_bad_status": t.count("input_bad_status"),
            "cli_tracebacks": t.count("cli_tracebacks"),
            "server_deaths": len(srv.deaths),
            "cross_tenant_reads": t.count("cross_tenant_reads"),
            "findings": t.count("findings"),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        report = {"tally": tally, "failures": [r for r in t.records if not r["ok"]], "deaths": srv.deaths}
        if disk:
            d = disk_phase(code, work)
            if d is None:
                report["disk"] = "skipped: no private tmpfs mount (needs root or user namespaces)"
            else:
                report["disk"] = d
                if "error" not in d:
                    tally.update(disk_internal=len(d["internal"]), disk_deaths=d["deaths"],
                                 disk_no_recovery=len(d["no_recovery"]), disk_cli_tracebacks=d["cli_tracebacks"])
        return report
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m segments.bench.probes", description=__doc__.split("\n")[0])
    ap.add_argument("--code", type=Path, help="checkout whose server and CLI to probe (default: this one)")
    ap.add_argument("--disk", action="store_true", help="also run the full-disk phase (private tmpfs)")
    ap.add_argument("--json", type=Path, help="write the whole report here")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--disk-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.disk_child:
        disk_child(args.disk_child, args.code)
        return 0
    report = run(args.code.resolve() if args.code else None, args.disk, args.keep)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    for r in report["failures"]:
        print(f"  [{r['kind']}] {r['probe']}: {r['note'] or r['code']}")
    if isinstance(report.get("disk"), dict):
        for k, v in report["disk"].get("answers", {}).items():
            print(f"  [disk] {k}: {v}")
        for k in ("internal", "no_recovery"):
            for v in report["disk"].get(k, []):
                print(f"  [disk {k}] {v}")
    elif report.get("disk"):
        print(f"  [disk] {report['disk']}")
    print(json.dumps(report["tally"]))
    t = report["tally"]
    clean = not (t["input_bad_status"] or t["cli_tracebacks"] or t["server_deaths"] or t["cross_tenant_reads"]
                 or t.get("disk_internal") or t.get("disk_deaths") or t.get("disk_no_recovery"))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
