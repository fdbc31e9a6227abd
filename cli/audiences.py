"""Tracked segments on the command line (docs/audiences.md):

  segments track DATASET NAME [--keep N] [--keep-days D] [--untrack]
  segments snapshots DATASET NAME
  segments diff DATASET NAME FROM [--to N] [--fields a,b]
  segments watch DATASET NAME --server HOST:PORT [--after N] [--timeout S]

Each runs on the data directory, or through a server with --server (watch: only through a
server, which keeps the snapshots fresh). Answers are JSON; watch prints one JSON line per
snapshot as it is recorded and reconnects after the last one it printed when the stream
breaks, so a line is never missed or printed twice.
"""
from __future__ import annotations

import json
import sys

from segments.engine.errors import InvalidArgument


def add_parsers(sub) -> None:
    from .main import add_server_args
    t = sub.add_parser("track", help="track a saved segment: record its membership as it changes")
    t.add_argument("dataset")
    t.add_argument("name")
    t.add_argument("--keep", type=int, default=None, help="snapshots kept (default 100)")
    t.add_argument("--keep-days", type=int, default=None, help="days a snapshot is kept (default 30)")
    t.add_argument("--untrack", action="store_true", help="stop tracking and drop the snapshots")
    add_server_args(t)
    s = sub.add_parser("snapshots", help="the retained snapshots of a tracked segment")
    s.add_argument("dataset")
    s.add_argument("name")
    add_server_args(s)
    d = sub.add_parser("diff", help="who entered and who left between two snapshots (or to now)")
    d.add_argument("dataset")
    d.add_argument("name")
    d.add_argument("from_snapshot", type=int)
    d.add_argument("--to", type=int, default=None, help="a later snapshot (default: evaluate now)")
    d.add_argument("--fields", default="", help="fields of the entered customers, comma-separated")
    add_server_args(d)
    w = sub.add_parser("watch", help="print each new snapshot's entered / exited ids (one JSON line each)")
    w.add_argument("dataset")
    w.add_argument("name")
    w.add_argument("--after", type=int, default=0, help="the last snapshot already seen (default: start "
                                                        "with the newest, every member entered)")
    w.add_argument("--timeout", type=float, default=None, help="stop after this many seconds (default: never)")
    add_server_args(w)


def _json(v):
    import datetime as dt

    import numpy as np
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer,)):
        return int(v)
    return str(v)


def _print(obj) -> None:
    sys.stdout.write(json.dumps(obj, default=_json) + "\n")
    sys.stdout.flush()


def _local(args):
    from segments.engine.catalog.catalog import Catalog

    from .main import _engine
    eng = _engine(args)
    return eng, Catalog(eng).audiences


def _snap(s) -> dict:
    return {"number": s.number, "as_of": s.as_of, "sequence": s.sequence, "count": s.count,
            "entered": s.entered, "exited": s.exited, "evaluation": s.evaluation, "recorded_at": s.recorded_at}


def cmd_track(args) -> int:
    if args.server:
        from .remote import remote_call

        def body(c):
            if args.untrack:
                c.untrack_segment(args.dataset, args.name)
                _print({"untracked": args.name})
            else:
                _print(c.track_segment(args.dataset, args.name, args.keep, args.keep_days))
            return 0
        return remote_call(args, body)
    eng, aud = _local(args)
    try:
        if args.untrack:
            aud.untrack(args.dataset, args.name)
            _print({"untracked": args.name})
        else:
            kw = {k: v for k, v in (("keep", args.keep), ("keep_days", args.keep_days)) if v is not None}
            t = aud.track(args.dataset, args.name, **kw)
            _print({"name": t.name, "keep": t.keep, "keep_days": t.keep_days, "since": t.since})
    finally:
        eng.close()
    return 0


def cmd_snapshots(args) -> int:
    if args.server:
        from .remote import remote_call
        return remote_call(args, lambda c: _print(c.snapshots(args.dataset, args.name)) or 0)
    eng, aud = _local(args)
    try:
        t = aud.require_tracking(args.dataset, args.name)
        _print({"tracking": {"name": t.name, "keep": t.keep, "keep_days": t.keep_days, "since": t.since},
                "snapshots": [_snap(s) for s in aud.snapshots(args.dataset, args.name)]})
    finally:
        eng.close()
    return 0


def cmd_diff(args) -> int:
    fields = tuple(f.strip() for f in args.fields.split(",") if f.strip())
    if args.server:
        from .remote import remote_call

        def body(c):
            d = c.diff(args.dataset, args.name, args.from_snapshot, args.to, fields)
            d["entered"] = d["entered"].to_pylist() if d["entered"] is not None else None
            _print(d)
            return 0
        return remote_call(args, body)
    eng, aud = _local(args)
    try:
        d = aud.diff(args.dataset, args.name, args.from_snapshot, args.to, fields)
        _print({"from_snapshot": d.from_snapshot, "to_snapshot": d.to_snapshot, "as_of": d.as_of,
                "sequence": d.sequence, "entered_ids": d.entered_ids, "exited_ids": d.exited_ids,
                "entered": d.entered.to_arrow().to_pylist() if fields else None})
    finally:
        eng.close()
    return 0


def cmd_watch(args) -> int:
    if not args.server:
        raise InvalidArgument("--server", "watch needs a server (--server host:port): the server keeps "
                                          "tracked segments fresh")
    from .remote import remote_call

    def body(c):
        for m in c.watch(args.dataset, args.name, after=args.after, timeout=args.timeout):
            _print(m)
        return 0
    return remote_call(args, body)


COMMANDS = {"track": cmd_track, "snapshots": cmd_snapshots, "diff": cmd_diff, "watch": cmd_watch}
