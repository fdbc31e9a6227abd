"""What the server tells its operators about each call: a JSON access-log line, Prometheus
metrics and (when enabled) an OpenTelemetry span, all carrying one request id.

The request id is the caller's `x-request-id` metadata when it is a sane token (1..128
printable ASCII characters), else a new one; it is returned in the call's trailing
metadata. servicer.rpc opens a CallRecord when a call starts and closes it with the status
code the call ended with; the method body adds engine time and rows sent to the record.
"""
from __future__ import annotations

import collections
import datetime as dt
import json
import re
import sys
import threading
import time
import uuid
from typing import Callable, Optional

import grpc

REQUEST_ID = "x-request-id"
_SANE_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
# Seconds: 0.5 ms .. 60 s, dense where counts and previews live.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    pass


def with_trailing(status, extra) -> grpc.Status:
    """`status` with more trailing metadata: aborting with a status replaces whatever
    trailer the call had set, and the request id must survive an error."""
    return _Status(status.code, status.details, tuple(status.trailing_metadata or ()) + tuple(extra))


class CallRecord:
    """One call in flight: who, what, and what it cost so far."""
    __slots__ = ("method", "dataset", "request_id", "peer", "t0", "engine_ms", "rows", "span", "done")

    def __init__(self, method: str, dataset: Optional[str], request_id: str, peer: str):
        self.method = method            # full gRPC name: segments.v1.Segments/Count
        self.dataset = dataset
        self.request_id = request_id
        self.peer = peer
        self.t0 = time.perf_counter()
        self.engine_ms = 0.0
        self.rows: Optional[int] = None
        self.span = None
        self.done = False


def request_id_of(metadata) -> str:
    """The caller's x-request-id when sane, else a new random one."""
    for key, value in metadata or ():
        if key == REQUEST_ID:
            if isinstance(value, str) and _SANE_ID.match(value):
                return value
            break
    return uuid.uuid4().hex


class AccessLog:
    """One line per call, written whole under a lock. Not the logging module: its record
    machinery cost ~35 us a call, most of what an access log line cost."""

    def __init__(self, stream):
        self.stream = stream
        self.lock = threading.Lock()

    def info(self, line: str) -> None:
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def access_logger(target: str) -> Optional[AccessLog]:
    """The access log writing one JSON object per line to `target`: "-" for stderr,
    "stdout", a file path (appended), or "off" (None)."""
    if target in ("off", "", None):
        return None
    if target == "-":
        return AccessLog(sys.stderr)
    if target == "stdout":
        return AccessLog(sys.stdout)
    return AccessLog(open(target, "a", encoding="utf-8"))


class Observer:
    """Opens and closes CallRecords; each sink (access log, metrics, tracer) is optional."""

    def __init__(self, access_log=None, metrics: Optional["Metrics"] = None, tracer=None):
        """access_log: anything with .info(line) (an AccessLog, or a logging.Logger)."""
        self.access_log = access_log
        self.metrics = metrics
        self.tracer = tracer

    def start(self, method: str, dataset: Optional[str], context) -> CallRecord:
        """A record for a call starting now; the request id goes into trailing metadata."""
        metadata = context.invocation_metadata()
        rec = CallRecord(method, dataset or None, request_id_of(metadata), context.peer() if self.access_log else "")
        context.set_trailing_metadata(((REQUEST_ID, rec.request_id),))
        if self.tracer is not None:
            from . import tracing
            rec.span = tracing.start_call(self.tracer, rec, metadata)
        return rec

    def engine(self, rec: CallRecord, fn: Callable, *args, **kwargs):
        """fn(*args, **kwargs), its time added to the record's engine time (and a child span)."""
        t0 = time.perf_counter()
        try:
            if rec.span is not None:
                from . import tracing
                with tracing.child(self.tracer, rec.span, "engine." + getattr(fn, "__name__", "call")):
                    return fn(*args, **kwargs)
            return fn(*args, **kwargs)
        finally:
            rec.engine_ms += (time.perf_counter() - t0) * 1000

    def finish(self, rec: CallRecord, code, message: str = "") -> None:
        """Close a record once, with the grpc.StatusCode the call ended with."""
        if rec.done:
            return
        rec.done = True
        total = time.perf_counter() - rec.t0
        name = code.name
        if self.metrics is not None:
            self.metrics.observe(rec, name, total)
        if rec.span is not None:
            from . import tracing
            tracing.end_call(rec.span, code, message)
        if self.access_log is not None:
            line = {"ts": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "request_id": rec.request_id, "method": rec.method, "dataset": rec.dataset,
                    "status": name, "engine_ms": round(rec.engine_ms, 3), "total_ms": round(total * 1000, 3),
                    "peer": rec.peer}
            if rec.rows is not None:
                line["rows"] = rec.rows
            if message:
                line["message"] = message[:300]
            self.access_log.info(json.dumps(line))


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (one per server)."""

    def __init__(self, engine=None, ready: Callable[[], bool] = lambda: True):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter("segments_rpc_calls", "Calls answered, by method and status code",
                             ["method", "code"], registry=r)
        self.errors = Counter("segments_rpc_errors", "Calls answered with a status other than OK",
                              ["method", "code"], registry=r)
        self.latency = Histogram("segments_rpc_duration_seconds", "Time from a call's start to its answer",
                                 ["method"], buckets=LATENCY_BUCKETS, registry=r)
        self.engine_time = Histogram("segments_engine_duration_seconds",
                                     "Time a call spent in the engine (evaluation, loads, changes)",
                                     ["method"], buckets=LATENCY_BUCKETS, registry=r)
        self.rows = Counter("segments_rows_materialized", "Customer rows sent by preview, materialize and export",
                            ["method"], registry=r)
        self._children: dict = {}
        if engine is not None:
            r.register(EngineCollector(engine, ready))

    def _for(self, method: str, code: str):
        c = self._children.get((method, code))
        if c is None:  # label lookups cost a lock and a hash each: once per method and code
            c = self._children[(method, code)] = (
                self.calls.labels(method, code), self.errors.labels(method, code) if code != "OK" else None,
                self.latency.labels(method), self.engine_time.labels(method), self.rows.labels(method))
        return c

    def observe(self, rec: CallRecord, code: str, seconds: float) -> None:
        calls, errors, latency, engine_time, rows = self._for(rec.method, code)
        calls.inc()
        if errors is not None:
            errors.inc()
        latency.observe(seconds)
        if rec.engine_ms:
            engine_time.observe(rec.engine_ms / 1000)
        if rec.rows:
            rows.inc(rec.rows)

    def serve(self, port: int, host: str = "127.0.0.1"):
        """Start the /metrics HTTP endpoint in a daemon thread: (http server, bound port)."""
        from prometheus_client import start_http_server

        httpd, _thread = start_http_server(port, host, self.registry)
        return httpd, httpd.server_address[1]


class EngineCollector:
    """Gauges read from the engine at scrape time: open datasets, their change sequence and
    pending changes, compactions started, readiness."""

    def __init__(self, engine, ready: Callable[[], bool]):
        self.engine = engine
        self.ready = ready

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        from segments import __version__

        live = self.engine.open_datasets()
        yield InfoMetricFamily("segments_build", "The server's version", value={"version": __version__})
        yield GaugeMetricFamily("segments_ready", "1 once the server has warmed up and reports SERVING",
                                value=1 if self.ready() else 0)
        yield GaugeMetricFamily("segments_open_datasets", "Datasets open in this process", value=len(live))
        seq = GaugeMetricFamily("segments_live_sequence", "Change sequence of the last batch applied",
                                labels=["dataset"])
        pending = GaugeMetricFamily("segments_pending_changes",
                                    "Changes applied but not yet folded in by a compaction", labels=["dataset", "kind"])
        for name, s in sorted(live.items()):
            seq.add_metric([name], s["sequence"])
            for kind, n in sorted(s["pending"].items()):
                pending.add_metric([name, kind], n)
        yield seq
        yield pending
        yield CounterMetricFamily("segments_compactions", "Compactions started by this process (explicit and automatic)",
                                  value=self.engine.compactions)
        stats = getattr(self.engine, "open_stats", None)
        if stats is not None:   # the open-dataset budget (engine.datasets.residency)
            st = stats()
            yield GaugeMetricFamily("segments_open_files", "Descriptors held by the open datasets' parts",
                                    value=st["open_files"])
            yield GaugeMetricFamily("segments_mapped_bytes", "Bytes mapped by the open datasets' parts",
                                    value=st["mapped_bytes"])
            yield CounterMetricFamily("segments_dataset_opens", "Datasets opened by a call (cold calls)",
                                      value=st["opened"])
            yield CounterMetricFamily("segments_dataset_closes", "Datasets closed to keep the budget or when idle",
                                      value=st["closed"])
