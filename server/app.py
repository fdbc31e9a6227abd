"""Server assembly: servicers, health checking, reflection, limits, TLS; unstarted.

    server, port = build_server(engine, port=0)   # tests: an ephemeral port, in-process
    server.start(); ...; stop(server, grace=5)
"""
from __future__ import annotations

import logging
import os
import threading
from concurrent import futures
from pathlib import Path
from typing import Optional, Tuple

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from segments.engine.catalog.catalog import Catalog
from segments.proto import segments_pb2 as pb
from segments.proto import segments_pb2_grpc as pbg

from . import ingest_root as ingest_roots
from .auth import Tokens
from .export import default_export_dir
from .fairness import TenantGate
from .guard import DecodeGuard
from .observe import Observer
from .audiences import AudiencesServicer
from .servicer import DEFAULT_CHUNK_IDS, CatalogServicer, DatasetsServicer, SegmentsServicer, Services

log = logging.getLogger("segments.server")

MAX_RECEIVE_BYTES = 16 * 1024 * 1024   # a request's limit (a 100k-id customer list is ~1 MB)
TRANSPORT_RECEIVE_BYTES = 64 * 1024 * 1024   # what the transport takes: up to here an oversized
                                             # request is INVALID_ARGUMENT (server/guard.py)
MAX_SEND_BYTES = 64 * 1024 * 1024
SERVICE_NAMES = tuple(pb.DESCRIPTOR.services_by_name[n].full_name
                      for n in ("SegmentsService", "CatalogService", "DatasetsService", "AudiencesService"))
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach: 127.0.0.0/8, ::1, localhost."""
    import ipaddress

    h = host.strip().strip("[]")
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False  # a name other than localhost: assume it reaches beyond this machine


def exposure(host: Optional[str], tokens: Optional[Tokens], tls: bool,
             allow_unauthenticated: bool = False) -> Tuple[str, list]:
    """The address to bind and warnings to print, by the rule: without tokens only loopback,
    unless allow_unauthenticated; with tokens every interface by default, and a warning when
    they would travel in plaintext beyond this machine. ValueError when refused."""
    if host is None:
        host = "[::]" if tokens is not None else "127.0.0.1"
    warnings = []
    if tokens is None and not is_loopback(host):
        if not allow_unauthenticated:
            raise ValueError(f"refusing to serve {host} without tokens: anyone who can reach it could read, "
                             "change and delete every dataset. Give a tokens file (--tokens / SEGMENTS_TOKENS), "
                             "bind 127.0.0.1, or pass --allow-unauthenticated if that is really meant")
        warnings.append(f"WARNING: no tokens and --allow-unauthenticated: every caller that can reach {host} "
                        "may read, change and delete every dataset")
    if tokens is not None and not tls and not is_loopback(host):
        warnings.append(f"WARNING: bearer tokens in plaintext on {host}: anyone on the network path can read "
                        "them; give --tls-cert and --tls-key, or terminate TLS in front of this server")
    return host, warnings


def default_workers() -> int:
    """Threads for the pool: evaluation mostly runs in numba kernels outside the GIL."""
    return max(16, 4 * (os.cpu_count() or 1))


def tenant_defaults(workers: int, concurrency: Optional[int] = None, queue: Optional[int] = None) -> tuple:
    """(calls running, calls waiting) allowed per dataset: by default half the cores (at
    least 1: one evaluation's kernels already use every core) and a queue that leaves a
    quarter of the pool's threads to the others."""
    if concurrency is None:
        concurrency = max(1, (os.cpu_count() or 1) // 2)
    if concurrency < 0:
        raise ValueError(f"tenant concurrency must be >= 0 (0: no limit), got {concurrency!r}")
    if queue is None:
        queue = max(0, workers - concurrency - workers // 4)
    if queue < 0:
        raise ValueError(f"tenant queue must be >= 0, got {queue!r}")
    return concurrency, queue


def build_server(engine, port: int = 0, tokens: Optional[Tokens] = None,
                 export_dir: Optional[str | os.PathLike] = None, max_workers: Optional[int] = None,
                 host: Optional[str] = None, tls: Optional[Tuple[bytes, bytes]] = None,
                 catalog: Optional[Catalog] = None, chunk_ids: int = DEFAULT_CHUNK_IDS,
                 reuse_port: bool = False, ingest_root: Optional[str | os.PathLike] = None,
                 default_deadline: Optional[float] = None, serving: bool = True,
                 observer: Optional[Observer] = None,
                 allow_unauthenticated: bool = False, maintain: bool = True, tenant_concurrency: Optional[int] = None,
                 tenant_queue: Optional[int] = None) -> Tuple[grpc.Server, int]:
    """An unstarted server over `engine` and the port it is bound to.

    Without tokens the server binds loopback only (host defaults to 127.0.0.1, and any other
    host is refused unless allow_unauthenticated); with tokens it binds every interface
    ([::]) by default (see exposure()). tls is (certificate chain PEM, private key PEM).
    reuse_port lets several server processes share one port (SO_REUSEPORT): the kernel
    spreads connections over them, so evaluation is not bound to one process's GIL.
    ingest_root: the folder Ingest calls read from, <ingest_root>/<dataset>/... only
    (server/ingest_root.py); None refuses Ingest. It may not overlap the data directory or
    the export folder (ValueError). default_deadline: seconds a call may run when its
    caller set no deadline or a later one (None: unbounded). observer (server.observe)
    writes the access log, metrics and spans of each call; the default only hands out
    request ids. serving=False starts health checking at NOT_SERVING for every service
    (calls are still answered): `segments serve` warms the engine first, then calls
    set_serving(server). maintain: keep tracked segments fresh (and run daily tasks) in a
    background thread of the catalog while the server runs (stopped by begin_stop).
    tenant_concurrency / tenant_queue: engine calls one dataset may run at once and have
    waiting (server.fairness; past them RESOURCE_EXHAUSTED with a retry hint). Defaults
    (tenant_defaults) leave a quarter of the thread pool to the other datasets;
    tenant_concurrency=0 turns the limit off.
    """
    host, _ = exposure(host, tokens, tls is not None, allow_unauthenticated)
    if default_deadline is not None and not default_deadline > 0:
        raise ValueError(f"default deadline must be > 0 seconds, got {default_deadline!r}")
    exports = Path(export_dir) if export_dir else default_export_dir(engine.root)
    root = ingest_roots.check_root(ingest_root, engine.root, exports) if ingest_root is not None else None
    workers = max_workers or default_workers()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segments"),
        interceptors=[DecodeGuard(MAX_RECEIVE_BYTES)],
        options=[("grpc.max_receive_message_length", TRANSPORT_RECEIVE_BYTES),
                 ("grpc.max_send_message_length", MAX_SEND_BYTES),
                 ("grpc.so_reuseport", 1 if reuse_port else 0)],
        maximum_concurrent_rpcs=workers * 8)
    conc, queue = tenant_defaults(workers, tenant_concurrency, tenant_queue)
    gate = TenantGate(conc, queue) if conc else None
    services = Services(engine, catalog or Catalog(engine), tokens, exports, chunk_ids, root, default_deadline,
                        observer, gate)
    server._segments_services = services
    pbg.add_SegmentsServiceServicer_to_server(SegmentsServicer(services), server)
    pbg.add_CatalogServiceServicer_to_server(CatalogServicer(services), server)
    pbg.add_DatasetsServiceServicer_to_server(DatasetsServicer(services), server)
    # tracked segments (server/audiences.py): kept fresh by the catalog's maintenance thread
    # while this server runs; Watch streams end with UNAVAILABLE once it begins to stop
    stopping = threading.Event()
    pbg.add_AudiencesServiceServicer_to_server(AudiencesServicer(services, stopping, max(1, workers // 2)), server)
    maintain = maintain and getattr(engine, "tracks_audiences", True)
    if maintain:
        services.catalog.schedules.export_dir = exports   # daily tasks write under the export folder
        services.catalog.start_maintenance()
    server._segments_stopping = (stopping, services.catalog if maintain else None)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("",) + SERVICE_NAMES:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING if serving
                            else health_pb2.HealthCheckResponse.NOT_SERVING)
    enable_reflection(SERVICE_NAMES + (health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,), server)

    address = f"{host}:{port}"
    try:
        if tls is not None:
            cert, key = tls
            bound = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError:  # grpcio raises on a failed bind (older releases returned 0)
        bound = 0
    if not bound:
        raise OSError(f"could not bind {address} (in use, or not an address of this machine)")
    server._segments_health = health_servicer  # for stop(): report NOT_SERVING while draining
    return server, bound


def enable_reflection(service_names: tuple, server: grpc.Server) -> None:
    """gRPC server reflection as grpc.reflection.v1 and v1alpha. grpcio-reflection serves
    only v1alpha; v1's messages are the same, field for field and number for number, so the
    same servicer answers under the v1 name too."""
    from grpc_reflection.v1alpha import reflection_pb2 as rpb

    names = service_names + (reflection.SERVICE_NAME, REFLECTION_V1)
    servicer = reflection.ReflectionServicer(names)
    reflection.enable_server_reflection(names, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo, request_deserializer=rpb.ServerReflectionRequest.FromString,
        response_serializer=rpb.ServerReflectionResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        REFLECTION_V1, {"ServerReflectionInfo": handler}),))


def set_serving(server: grpc.Server, serving: bool = True) -> None:
    """Report every service (and the whole server, "") SERVING, or NOT_SERVING."""
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("",) + SERVICE_NAMES:
        server._segments_health.set(name, status)


def begin_stop(server: grpc.Server, grace: float = 10.0) -> threading.Event:
    """Start a graceful shutdown: health answers NOT_SERVING and new calls are refused when
    this returns; calls in flight get `grace` seconds. The event is set once stopped."""
    h = getattr(server, "_segments_health", None)
    if h is not None:
        h.enter_graceful_shutdown()
    stopping, catalog = getattr(server, "_segments_stopping", (None, None))
    if stopping is not None and not stopping.is_set():
        stopping.set()   # Watch streams end (UNAVAILABLE: reconnect) instead of holding the drain
        if catalog is not None:
            catalog.stop_maintenance()
    return server.stop(grace)


def stop(server: grpc.Server, grace: float = 10.0) -> None:
    """Graceful shutdown (begin_stop); returns when the server has stopped."""
    begin_stop(server, grace).wait()
