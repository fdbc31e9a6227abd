"""`segments [--config FILE] --data DIR serve [--port N] [--tokens FILE] [--tls-cert F --tls-key F] ...`.

Settings come from flags, SEGMENTS_* variables and a TOML file (cli/config.py). The server
binds, reports NOT_SERVING on gRPC health while it warms up (Engine.warm), then SERVING
(and READY=1 to systemd when NOTIFY_SOCKET is set). It runs until SIGTERM or SIGINT, then
drains: health turns NOT_SERVING, new calls are refused and calls in flight get --grace
seconds to finish.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time

from .config import ConfigError, add_serve_options, check_data_folder, resolve_serve


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the `serve` subcommand on an argparse subparsers object."""
    p = sub.add_parser("serve", help="serve the datasets over gRPC",
                       description="Every flag is also a SEGMENTS_* variable and a key of the config "
                                   "file's [serve] table; see docs/operations.md.")
    add_serve_options(p)
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--process-index", type=int, default=0, help=argparse.SUPPRESS)
    return p


def say(message: str, stream=None) -> None:
    """Print one whole line with a single write: the --processes children share their
    parent's stdout, and print() writes the text and its newline separately, so their
    lines could interleave mid-line."""
    stream = stream or sys.stdout
    stream.write(message + "\n")
    stream.flush()


def notify_systemd(state: str) -> None:
    """sd_notify(3): send `state` (e.g. "READY=1") to $NOTIFY_SOCKET when systemd set one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(state.encode(), address)
    except OSError as e:
        logging.getLogger("segments.server").warning("could not notify systemd at %s: %s", address, e)


def run_processes(cfg) -> int:
    """Start --processes children serving the same port; relay SIGTERM/SIGINT; wait.
    The parent imports no gRPC (a forked gRPC runtime is unsafe): children are new
    interpreters with the same command line and environment, so they resolve the same
    settings; child i serves metrics on --metrics-port + i."""
    import subprocess

    if cfg.port == 0:
        say("error: --processes needs a fixed --port", sys.stderr)
        return 2
    argv = [a for a in sys.argv[1:] if not a.startswith("--processes")]
    if "--processes" in sys.argv:  # "--processes N" as two words
        i = sys.argv.index("--processes")
        argv = sys.argv[1:i] + sys.argv[i + 2:]
    env = {**os.environ, "SEGMENTS_PROCESSES": "1"}
    cmd = [sys.executable, "-m", "segments.cli.main"] + argv + ["--reuse-port"]
    children = [subprocess.Popen(cmd + ["--process-index", str(k)], env=env) for k in range(cfg.processes)]
    say(f"started {len(children)} server processes on port {cfg.port} (pids "
        f"{', '.join(str(c.pid) for c in children)})")

    def relay(sig, _frame):
        for c in children:
            if c.poll() is None:
                c.send_signal(sig)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, relay)
    while any(c.poll() is None for c in children):
        failed = [c for c in children if c.returncode not in (None, 0)]
        if failed:  # one could not start (or died): do not leave a partial server running
            say(f"server process {failed[0].pid} exited with code {failed[0].returncode}: stopping the others",
                sys.stderr)
            relay(signal.SIGTERM, None)
            for c in children:
                c.wait()
            break
        time.sleep(0.2)
    return max(c.returncode for c in children)


def load_tokens(cfg):
    """The Tokens of --tokens / SEGMENTS_TOKENS (a file) or SEGMENTS_TOKENS_JSON (the table), or None."""
    import json

    from segments.server.auth import Tokens

    if cfg.tokens and cfg.tokens_json:
        raise ConfigError("give tokens either as a file (--tokens / SEGMENTS_TOKENS) or as SEGMENTS_TOKENS_JSON, "
                          "not both")
    if cfg.tokens:
        try:
            return Tokens.load(cfg.tokens)
        except OSError as e:
            raise ConfigError(f"tokens file {cfg.tokens}: {e.strerror}") from None
    if cfg.tokens_json:
        try:
            return Tokens(json.loads(cfg.tokens_json))
        except json.JSONDecodeError as e:
            raise ConfigError(f"SEGMENTS_TOKENS_JSON: not valid JSON: {e}") from None
    return None


def settle_heap() -> int:
    """Move every object alive after the warm-up (modules, compiled kernels: ~120,000) out
    of the garbage collector's reach: a full collection scanned them all, ~100 ms with every
    call's thread stopped, each time the calls' own objects triggered one. Returns how many
    objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def warm_targets(spec: str):
    """(synthetic, dataset names or None for all) of --warm."""
    spec = (spec or "").strip()
    if spec in ("none", "off"):
        return False, []
    if spec == "synthetic":
        return True, []
    if spec in ("all", ""):
        return True, None
    return True, [n.strip() for n in spec.split(",") if n.strip()]


def run(args) -> int:
    """Serve until a termination signal; 0 after a clean drain, 2 on a configuration error."""
    try:
        cfg = resolve_serve(args)
    except ConfigError as e:
        say(f"error: {e}", sys.stderr)
        return 2
    if cfg.processes > 1:
        return run_processes(cfg)
    logging.basicConfig(level=getattr(logging, str(cfg.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _serve(cfg)
    except ConfigError as e:
        say(f"error: {e}", sys.stderr)
        return 2


def raise_file_limit() -> None:
    """The descriptor limit's soft value up to its hard one (many datasets, many parts)."""
    import resource
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 1 << 20
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass


def open_engine(cfg, data, **engine_options):
    """The Engine over the data folder, or with --cluster the ClusterEngine coordinating a
    Ray cluster (the data folder then holds the layout, saved segments and groups)."""
    from segments.engine.api import Engine

    if not cfg.cluster:
        if cfg.partitions is not None or cfg.replicas is not None or cfg.partition_root is not None:
            raise ConfigError("--partitions, --replicas and --partition-root need --cluster")
        return Engine(data, **engine_options)
    try:
        from segments.cluster.engine import ClusterEngine
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError("--cluster needs the cluster extra (pip install 'segments[cluster]')") from None
    from segments.engine.errors import EngineError
    try:
        return ClusterEngine(data, address=None if cfg.cluster == "local" else cfg.cluster,
                             partitions=cfg.partitions, replicas=cfg.replicas, partition_root=cfg.partition_root)
    except EngineError as e:
        raise ConfigError(f"--cluster: {e}") from None
    except ConnectionError as e:
        raise ConfigError(f"--cluster {cfg.cluster}: {e}") from None


def _serve(cfg) -> int:
    from segments.engine.api import Engine
    from segments.engine.datasets.residency import Budget, parse_bytes
    from segments.engine.catalog.catalog import Catalog
    from segments.server.app import begin_stop, build_server, default_workers, exposure, set_serving
    from segments.server.observe import Metrics, Observer, access_logger

    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together")
    if cfg.chunk_ids < 1 or cfg.group_ttl_days < 1:
        raise ConfigError("--chunk-ids and --group-ttl-days must be >= 1")
    try:
        tokens = load_tokens(cfg)
        tls = None
        if cfg.tls_cert:
            with open(cfg.tls_cert, "rb") as c, open(cfg.tls_key, "rb") as k:
                tls = (c.read(), k.read())
        host, warnings = exposure(cfg.host, tokens, tls is not None, cfg.allow_unauthenticated)
    except (OSError, ValueError) as e:
        raise ConfigError(str(e)) from None
    data = check_data_folder(cfg.data, cfg.create_data)
    tracer = None
    if cfg.tracing != "off":
        from segments.server.tracing import make_tracer
        try:
            tracer = make_tracer(cfg.tracing)
        except (ImportError, ValueError) as e:
            raise ConfigError(str(e)) from None

    raise_file_limit()
    try:
        budget = Budget(datasets=cfg.max_open_datasets,
                        files=-1 if cfg.max_open_files is None else cfg.max_open_files,
                        mapped_bytes=parse_bytes(cfg.max_mapped_bytes) if cfg.max_mapped_bytes else 0,
                        idle_seconds=cfg.idle_close_seconds or 0.0).resolved()
        if not 0 <= cfg.build_nice <= 19:
            raise ValueError(f"--build-nice must be between 0 and 19, got {cfg.build_nice}")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    engine = open_engine(cfg, data, budget=budget, build_nice=cfg.build_nice)
    ready = threading.Event()
    metrics = None
    if cfg.metrics_port is not None:
        try:
            metrics = Metrics(engine, ready.is_set)
            _, metrics_port = metrics.serve(cfg.metrics_port + cfg.process_index if cfg.metrics_port else 0,
                                            cfg.metrics_host)
        except ImportError:
            raise ConfigError("--metrics-port needs prometheus-client (pip install prometheus-client)") from None
        except OSError as e:
            raise ConfigError(f"metrics endpoint {cfg.metrics_host}:{cfg.metrics_port}: {e.strerror}") from None
    try:
        observer = Observer(access_logger(cfg.access_log), metrics, tracer)
    except OSError as e:
        raise ConfigError(f"access log {cfg.access_log}: {e.strerror}") from None
    workers = cfg.workers or default_workers()
    try:
        server, port = build_server(engine, cfg.port, tokens, cfg.export_dir, workers, host, tls,
                                    Catalog(engine, cfg.group_ttl_days), cfg.chunk_ids,
                                    reuse_port=cfg.reuse_port, ingest_root=cfg.ingest_root,
                                    default_deadline=cfg.default_deadline, serving=False, observer=observer,
                                    allow_unauthenticated=cfg.allow_unauthenticated,
                                    tenant_concurrency=cfg.tenant_concurrency, tenant_queue=cfg.tenant_queue)
    except (OSError, ValueError) as e:
        raise ConfigError(str(e)) from None

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server.start()
    for w in warnings:
        say(w, sys.stderr)
    if tokens is None:
        say(f"no tokens: anyone who can connect may do anything; listening on {host} "
            f"({'this machine only' if not cfg.allow_unauthenticated else 'as asked, beyond this machine'})")
    if metrics is not None:
        say(f"metrics on http://{cfg.metrics_host}:{metrics_port}/metrics")
    say(f"listening on {host}:{port}; health NOT_SERVING while warming up (--warm {cfg.warm})")

    def warm_then_serve():
        t0 = time.perf_counter()
        synthetic, names = warm_targets(cfg.warm)
        try:
            engine.warm(names, synthetic=synthetic, log=logging.getLogger("segments.server").info,
                        cancelled=done.is_set)
        except Exception:  # noqa: BLE001 - a failed warm-up must not keep the server unready
            logging.getLogger("segments.server").exception("warm-up failed; serving cold")
        if done.is_set():
            return
        settle_heap()
        set_serving(server, True)
        ready.set()
        say(f"serving {engine.root} on {host}:{port} ({'TLS' if tls else 'plaintext'}, {workers} threads; "
            f"ready after {time.perf_counter() - t0:.1f} s warm-up)")
        notify_systemd("READY=1")
    warming = threading.Thread(target=warm_then_serve, name="warm-up", daemon=True)
    warming.start()

    # A short wait, not a long one: a signal that lands on another thread (gRPC's, the
    # warm-up's) leaves the main thread asleep until its wait ends, and Python runs signal
    # handlers only on the main thread; with waits of an hour SIGTERM could go unseen.
    while not done.wait(0.5):
        pass
    notify_systemd("STOPPING=1")
    stopped = begin_stop(server, cfg.grace)  # new calls are refused from here on
    say("shutting down: draining calls in flight")
    stopped.wait()
    warming.join()  # it stops at its next evaluation; the engine's files must outlive it
    engine.close()
    say("stopped")
    return 0
