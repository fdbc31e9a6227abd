"""`segments --data DIR serve --port N [--tokens FILE] [--tls-cert F --tls-key F]`.

Runs the gRPC server until SIGTERM or SIGINT, then drains: health turns NOT_SERVING, new
calls are refused and calls in flight get --grace seconds to finish.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the `serve` subcommand on an argparse subparsers object."""
    p = sub.add_parser("serve", help="serve the datasets over gRPC")
    p.add_argument("--port", type=int, default=50051, help="TCP port (0: any free port)")
    p.add_argument("--host", help="address to bind (default: [::] with --tokens, else 127.0.0.1)")
    p.add_argument("--tokens", help="tokens file (JSON or .toml): token -> {datasets, roles}")
    p.add_argument("--tls-cert", help="PEM certificate chain (with --tls-key)")
    p.add_argument("--tls-key", help="PEM private key (with --tls-cert)")
    p.add_argument("--export-dir", help="folder for exports (default: DATA/_exports)")
    p.add_argument("--ingest-root", help="folder Ingest calls read from: dataset D's files under "
                                         "INGEST_ROOT/D/ only (default: Ingest refused)")
    p.add_argument("--default-deadline", type=float, metavar="SECONDS",
                   help="longest a call may run when its caller sets no shorter deadline (default: none)")
    p.add_argument("--workers", type=int, help="thread pool size (default: sized for the machine)")
    p.add_argument("--group-ttl-days", type=int, default=180, help="default expiry of customer groups")
    p.add_argument("--chunk-ids", type=int, default=65_536, help="customer ids per materialize chunk")
    p.add_argument("--grace", type=float, default=10.0, help="seconds calls in flight get on shutdown")
    p.add_argument("--processes", type=int, default=1,
                   help="server processes sharing the port (SO_REUSEPORT; needs a fixed --port)")
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    return p


def say(message: str, stream=None) -> None:
    """Print one whole line with a single write: the --processes children share their
    parent's stdout, and print() writes the text and its newline separately, so their
    lines could interleave mid-line."""
    stream = stream or sys.stdout
    stream.write(message + "\n")
    stream.flush()


def run_processes(args) -> int:
    """Start --processes children serving the same port; relay SIGTERM/SIGINT; wait.
    The parent imports no gRPC (a forked gRPC runtime is unsafe): children are new
    interpreters."""
    import subprocess

    if args.port == 0:
        say("error: --processes needs a fixed --port", sys.stderr)
        return 2
    argv = [a for a in sys.argv[1:] if not a.startswith("--processes")]
    if "--processes" in sys.argv:  # "--processes N" as two words
        i = sys.argv.index("--processes")
        argv = sys.argv[1:i] + sys.argv[i + 2:]
    cmd = [sys.executable, "-m", "segments.cli.main"] + argv + ["--reuse-port"]
    children = [subprocess.Popen(cmd) for _ in range(args.processes)]
    say(f"started {len(children)} server processes on port {args.port} (pids "
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


def run(args) -> int:
    """Serve until a termination signal; 0 after a clean drain, 2 on a configuration error."""
    from segments.engine.api import Engine
    from segments.engine.catalog.catalog import Catalog
    from segments.server.app import begin_stop, build_server, default_workers
    from segments.server.auth import Tokens

    if args.processes > 1:
        return run_processes(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if bool(args.tls_cert) != bool(args.tls_key):
        say("error: --tls-cert and --tls-key go together", sys.stderr)
        return 2
    try:
        tokens = Tokens.load(args.tokens) if args.tokens else None
        tls = None
        if args.tls_cert:
            with open(args.tls_cert, "rb") as c, open(args.tls_key, "rb") as k:
                tls = (c.read(), k.read())
    except (OSError, ValueError) as e:
        say(f"error: {e}", sys.stderr)
        return 2
    if args.chunk_ids < 1 or args.group_ttl_days < 1:
        say("error: --chunk-ids and --group-ttl-days must be >= 1", sys.stderr)
        return 2

    engine = Engine(args.data)
    workers = args.workers or default_workers()
    try:
        server, port = build_server(engine, args.port, tokens, args.export_dir, workers, args.host, tls,
                                    Catalog(engine, args.group_ttl_days), args.chunk_ids,
                                    reuse_port=args.reuse_port, ingest_root=args.ingest_root,
                                    default_deadline=args.default_deadline)
    except (OSError, ValueError) as e:
        say(f"error: {e}", sys.stderr)
        return 2

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    server.start()
    host = args.host or ("[::]" if tokens else "127.0.0.1")
    if tokens is None:
        say("no --tokens file: anyone who can connect may do anything, so listening on localhost only")
    say(f"serving {engine.root} on {host}:{port} ({'TLS' if tls else 'plaintext'}, {workers} threads)")
    while not done.wait(3600):
        pass
    stopped = begin_stop(server, args.grace)  # new calls are refused from here on
    say("shutting down: draining calls in flight")
    stopped.wait()
    engine.close()
    say("stopped")
    return 0
