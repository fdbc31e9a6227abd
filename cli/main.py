"""The `segments` command line: datasets, ingest, live changes, info, generate, and segment evaluation."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

from segments.engine.errors import EngineError, InvalidArgument

from .config import ConfigError

DEBUG_ENV = "SEGMENTS_DEBUG"   # set to 1 to see the traceback of an unexpected error
MAX_ERROR_CHARS = 2000


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True)
    p.add_argument("--segment", required=True, help="segment definition file (JSON, see docs/segments.md)")
    p.add_argument("--as-of", help="ISO-8601 instant with offset or Z (default: now)")
    add_server_args(p)


def add_server_args(p: argparse.ArgumentParser) -> None:
    """--server and the ways to give its bearer token (never required on the command line)."""
    p.add_argument("--server", help="host:port of a segments server (default: evaluate locally)")
    p.add_argument("--token-file", help="file holding the bearer token for --server (default: $SEGMENTS_TOKEN)")
    p.add_argument("--token", help="bearer token for --server (visible to other users in ps: prefer "
                                   "--token-file or $SEGMENTS_TOKEN)")


def bearer_token(args):
    """The token for --server: --token-file, then --token, then $SEGMENTS_TOKEN (None: none)."""
    import os

    from segments.engine.errors import InvalidArgument
    if getattr(args, "token_file", None):
        try:
            return Path(args.token_file).read_text().strip() or None
        except OSError as e:
            raise InvalidArgument("--token-file", f"cannot read {args.token_file}: {e.strerror}") from None
    return getattr(args, "token", None) or os.environ.get("SEGMENTS_TOKEN") or None


def build_parser() -> argparse.ArgumentParser:
    from segments import __version__

    ap = argparse.ArgumentParser(prog="segments", description="Customer-segmentation engine")
    ap.add_argument("--version", action="version", version=f"segments {__version__}")
    ap.add_argument("--data", help="data directory (default: $SEGMENTS_DATA, the config file's data, or ./data)")
    ap.add_argument("--config", help="TOML config file (default: $SEGMENTS_CONFIG; see docs/operations.md)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    ds = sub.add_parser("dataset", help="create, delete or list datasets")
    dsub = ds.add_subparsers(dest="action", required=True)
    c = dsub.add_parser("create", help="create an empty dataset")
    c.add_argument("name")
    c.add_argument("--timezone", required=True, help="IANA zone, e.g. America/New_York")
    c.add_argument("--shard-bits", type=int, default=16, help="log2 of customers per shard (4..16)")
    d = dsub.add_parser("delete", help="delete a dataset and everything in it")
    d.add_argument("name")
    dsub.add_parser("list", help="list datasets")

    ing = sub.add_parser("ingest", help="bulk load a folder of Parquet/CSV files (all or nothing)")
    ing.add_argument("folder")
    ing.add_argument("--dataset", required=True)
    ing.add_argument("--memory", default=None,
                     help="memory budget of the build, e.g. 4G (default: $SEGMENTS_BUILD_MEMORY, else 4G)")

    inf = sub.add_parser("info", help="row counts, shards, bytes on disk")
    inf.add_argument("--dataset", required=True)
    inf.add_argument("--json", action="store_true")

    gen = sub.add_parser("generate", help="write a deterministic synthetic dataset")
    gen.add_argument("--scale", default="S", choices=["S", "M", "L"])
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True)
    gen.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    gen.add_argument("--customers", type=int, help="override the scale's customer count")
    gen.add_argument("--shape", default="default",
                     help="data shape: default, catalog, long_history or sparse (bench/generate/shapes.py)")

    for name, help_ in (("count", "result size and reachable counts"),
                        ("preview", "first N customers"),
                        ("explain", "the evaluated tree with sizes and times"),
                        ("materialize", "every customer of the result, to a file")):
        p = sub.add_parser(name, help=help_)
        _add_eval_args(p)
        if name in ("count", "preview", "explain"):
            p.add_argument("--json", action="store_true")
        if name == "preview":
            p.add_argument("-n", type=int, default=20)
            p.add_argument("--fields", default="", help="comma-separated profile fields")
        if name == "materialize":
            p.add_argument("--out", required=True, help="FILE.parquet or FILE.csv")
            p.add_argument("--fields", default="", help="comma-separated profile fields")
    w = sub.add_parser("warm", help="compile and load the kernels once (e.g. into NUMBA_CACHE_DIR at "
                                    "image build), optionally warm datasets, and print the times")
    w.add_argument("--dataset", action="append", default=[], help="also warm this dataset (repeatable)")
    h = sub.add_parser("health", help="exit 0 when a server reports SERVING on gRPC health, else 1")
    h.add_argument("--server", default="127.0.0.1:50051", help="host:port (default: 127.0.0.1:50051)")
    h.add_argument("--service", default="", help="a service name (default: the whole server)")
    h.add_argument("--timeout", type=float, default=5.0)
    h.add_argument("--tls", action="store_true", help="connect with TLS (system roots)")
    from .changes import add_parsers as add_change_parsers
    add_change_parsers(sub)
    from .serve import add_parser as add_serve_parser
    add_serve_parser(sub)
    from .audiences import add_parsers as add_audience_parsers   # track, snapshots, diff, watch
    add_audience_parsers(sub)
    return ap


def _engine(args, create: bool = False):
    """The Engine of the data folder; a folder that does not exist is an error unless the
    command creates data (`dataset create`)."""
    from segments.engine.api import Engine
    from .config import ConfigError, check_data_folder, data_dir
    from segments.engine.errors import NotFound
    try:
        return Engine(check_data_folder(data_dir(args), create))
    except ConfigError as e:
        raise NotFound("--data", str(e)) from None


def _segment(args):
    from segments.engine.model import segment_json
    from segments.engine.errors import InvalidArgument
    try:
        text = Path(args.segment).read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidArgument("--segment", f"cannot read {args.segment}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise InvalidArgument("--segment", f"{args.segment} is not UTF-8 text (byte {e.start})") from None
    return segment_json.loads(text)


def _as_of(args):
    """The --as-of instant; None only when the option is absent (an empty value is an error)."""
    from segments.engine.model.timerange import parse_instant
    return parse_instant(args.as_of, "--as-of") if args.as_of is not None else None


def _fields(args):
    return tuple(f.strip() for f in getattr(args, "fields", "").split(",") if f.strip())


def _jsonable(v):
    import datetime as dt
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    return v


def cmd_eval(args) -> int:
    from segments.engine.model.limits import MAX_PREVIEW
    if args.cmd == "preview" and not 1 <= args.n <= MAX_PREVIEW:  # the server's bound, locally too
        raise InvalidArgument("-n", f"must be between 1 and {MAX_PREVIEW}, got {args.n}")
    seg = _segment(args)
    as_of = _as_of(args)
    if args.server:
        from .remote import remote_eval
        return remote_eval(args, seg, as_of)
    return run_eval(args, _engine(args), seg, as_of)


def run_eval(args, eng, seg, as_of) -> int:
    """Run an evaluation command on an Engine or a SegmentsClient (same calls, same results)."""
    if args.cmd == "count":
        r = eng.count(args.dataset, seg, as_of)
        out = {"count": r.count, "email_reachable": r.email_reachable, "sms_reachable": r.sms_reachable,
               "missing_ids": list(r.missing_ids), "ms": round(r.elapsed_ms, 3)}
        if args.json:
            print(json.dumps(out))
        else:
            print(f"count {r.count}  email-reachable {r.email_reachable}  sms-reachable {r.sms_reachable}"
                  f"  ({r.elapsed_ms:.2f} ms)")
            if r.missing_ids:
                print(f"not found: {', '.join(map(str, r.missing_ids))}")
    elif args.cmd == "preview":
        r = eng.preview(args.dataset, seg, args.n, _fields(args), as_of)
        if args.json:
            print(json.dumps({"total": r.total, "rows": r.rows, "missing_ids": list(r.missing_ids)},
                             default=_jsonable))
        else:
            print(f"{r.total} customers; first {len(r.rows)}:")
            for row in r.rows:
                print("  " + "  ".join(f"{k}={_jsonable(v)}" for k, v in row.items()))
    elif args.cmd == "explain":
        r = eng.explain(args.dataset, seg, as_of)
        print(json.dumps(r.to_dict(), indent=2) if args.json else r.render())
    else:
        t0 = time.perf_counter()
        m = eng.materialize(args.dataset, seg, _fields(args), as_of)
        from segments import __version__
        from segments.engine.evaluation.exporter import provenance, write_table
        from segments.engine.model.segment_json import dumps
        write_table(m.to_arrow(), args.out, provenance(m, dumps(seg), args.dataset, f"segments {__version__}"))
        print(f"wrote {len(m.customer_ids)} rows to {args.out} in {time.perf_counter() - t0:.2f} s")
    return 0


def cmd_dataset(args) -> int:
    eng = _engine(args, create=args.action == "create")
    if args.action == "create":
        info = eng.create_dataset(args.name, args.timezone, args.shard_bits)
        print(f"created dataset {info['name']} ({info['timezone']})")
    elif args.action == "delete":
        eng.delete_dataset(args.name)
        print(f"deleted dataset {args.name}")
    else:
        for name in eng.datasets():
            print(name)
    return 0


def cmd_ingest(args) -> int:
    eng = _engine(args)
    t0 = time.perf_counter()
    from segments.engine.storage.build import parse_size
    try:
        memory = parse_size(args.memory) if args.memory else None
    except ValueError as e:
        raise InvalidArgument("--memory", str(e)) from None
    rows = eng.ingest(args.dataset, args.folder, progress=True, memory=memory)
    dt_ = time.perf_counter() - t0
    lines = sum(v for k, v in rows.items() if k != "customers")
    print(f"ingested {', '.join(f'{v} {k}' for k, v in rows.items())} in {dt_:.1f} s "
          f"({lines / max(dt_, 1e-9):,.0f} lines/s)")
    return 0


def cmd_info(args) -> int:
    info = _engine(args).info(args.dataset)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"dataset {info['name']}  timezone {info['timezone']}  shards {info['shards']} "
          f"(size {info['shard_size']})  bytes on disk {info['bytes_on_disk']:,}")
    for t, n in info["rows"].items():
        print(f"  {t:10s} {n:>12,}")
    live = info.get("live")
    if live:
        pending = ", ".join(f"{n} {k}" for k, n in live["pending"].items() if n) or "none"
        print(f"live changes: sequence {live['sequence']}, pending compaction: {pending}")
    return 0


def cmd_generate(args) -> int:
    from segments.bench.generate import generate
    t0 = time.perf_counter()
    rows = generate(args.out, scale=args.scale, seed=args.seed, fmt=args.format,
                    customers=args.customers, progress=sys.stderr.isatty(), shape=args.shape)
    print(f"wrote {', '.join(f'{v} {k}' for k, v in rows.items())} to {args.out} "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_warm(args) -> int:
    import tempfile

    from segments.engine.api import Engine
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="segments-warm-") as scratch:
        # without --dataset no data folder is needed (an image build has none yet)
        eng = _engine(args) if args.dataset else Engine(scratch)
        timings = eng.warm(args.dataset, synthetic=True)
        eng.close()
    print(f"warmed in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    return 0


def cmd_health(args) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = (grpc.secure_channel(args.server, grpc.ssl_channel_credentials()) if args.tls
               else grpc.insecure_channel(args.server))
    with channel:
        try:
            r = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as e:
            print(f"{args.server}: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)
    print(f"{args.server}{' ' + args.service if args.service else ''}: {status}")
    return 0 if r.status == health_pb2.HealthCheckResponse.SERVING else 1


def cmd_serve(args) -> int:
    from .serve import run
    return run(args)


def cmd_change(args) -> int:
    from .changes import cmd_change as run
    return run(args)


def cmd_compact(args) -> int:
    from .changes import cmd_compact as run
    return run(args)


COMMANDS = {"serve": cmd_serve, "count": cmd_eval, "preview": cmd_eval, "explain": cmd_eval, "materialize": cmd_eval,
            "dataset": cmd_dataset, "ingest": cmd_ingest, "info": cmd_info, "generate": cmd_generate,
            "change": cmd_change, "compact": cmd_compact, "warm": cmd_warm, "health": cmd_health}


def _audiences(args) -> int:
    from .audiences import COMMANDS as run
    return run[args.cmd](args)


COMMANDS.update({name: _audiences for name in ("track", "snapshots", "diff", "watch", "schedule")})


def say_error(text: str) -> None:
    """One "error: ..." line on stderr, bounded and printable whatever the text holds."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MAX_ERROR_CHARS:
        text = f"{text[:MAX_ERROR_CHARS]}... ({len(text) - MAX_ERROR_CHARS} more characters)"
    try:
        sys.stderr.write(f"error: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def describe(e: BaseException) -> str:
    """What went wrong, in a line: an OS error's reason and file, else the exception's text."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    if isinstance(e, (ValueError, TypeError)) and str(e):
        return str(e)
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def main(argv=None) -> int:
    """Run one command. Every failure ends in one "error: ..." line and a non-zero exit
    code, never a traceback ($SEGMENTS_DEBUG=1 shows the traceback of unexpected ones):
    2 for a refused input or request, 1 for anything else, 130 on Ctrl-C."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.cmd](args)
    except EngineError as e:
        say_error(e)
        return 2
    except ConfigError as e:  # a config file or variable that cannot be used
        say_error(e)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # stdout closed early (| head): nothing more to say
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except RecursionError:
        say_error("input nested too deep")
        return 2
    except Exception as e:  # noqa: BLE001 - the one place a command's failure is reported
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        say_error(describe(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
