"""Tracked segments on the command line (docs/audiences.md):

  segments track DATASET NAME [--keep N] [--keep-days D] [--untrack]
  segments snapshots DATASET NAME
  segments diff DATASET NAME FROM [--to N] [--fields a,b]
  segments watch DATASET NAME --server HOST:PORT [--after N] [--timeout S]
  segments schedule set DATASET NAME --at HH:MM [--format parquet|csv] [--fields a,b] [--folder F]
  segments schedule list|run DATASET / schedule delete DATASET NAME

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
    sc = sub.add_parser("schedule", help="daily tasks: a saved segment exported every day at a local time")
    ssub = sc.add_subparsers(dest="action", required=True)
    st = ssub.add_parser("set", help="give a saved segment a daily export (or change it)")
    st.add_argument("dataset")
    st.add_argument("name")
    st.add_argument("--at", required=True, help="HH:MM in the dataset's timezone")
    st.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    st.add_argument("--fields", default="", help="fields of each row, comma-separated")
    st.add_argument("--folder", default="daily", help="folder in the dataset's export folder (default: daily)")
    add_server_args(st)
    for action, help_ in (("list", "the daily tasks of a dataset"),
                          ("run", "run the days that are due now (missed days too)")):
        p = ssub.add_parser(action, help=help_)
        p.add_argument("dataset")
        add_server_args(p)
    dl = ssub.add_parser("delete", help="remove a saved segment's daily task")
    dl.add_argument("dataset")
    dl.add_argument("name")
    add_server_args(dl)


def _task(t, next_run=None) -> dict:
    return {"name": t.name, "at": t.at, "format": t.format, "fields": list(t.fields), "folder": t.folder,
            "last_run_day": t.last_run_day.isoformat() if t.last_run_day else None, "next_run": next_run}


def _run(r) -> dict:
    return {"name": r.name, "day": r.day.isoformat(), "as_of": r.as_of, "rows": r.rows, "entered": r.entered,
            "exited": r.exited, "file": r.file, "entered_file": r.entered_file, "exited_file": r.exited_file}


def cmd_schedule(args) -> int:
    fields = tuple(f.strip() for f in getattr(args, "fields", "").split(",") if f.strip())
    if args.server:
        from .remote import remote_call

        def body(c):
            if args.action == "set":
                _print(c.set_daily_task(args.dataset, args.name, args.at, args.format, fields, args.folder))
            elif args.action == "list":
                _print(c.list_daily_tasks(args.dataset))
            elif args.action == "run":
                _print(c.run_daily_tasks(args.dataset))
            else:
                c.delete_daily_task(args.dataset, args.name)
                _print({"deleted": args.name})
            return 0
        return remote_call(args, body)
    from segments.engine.catalog.catalog import Catalog

    from .main import _engine
    eng = _engine(args)
    try:
        sch = Catalog(eng).schedules
        if args.action == "set":
            t = sch.set_task(args.dataset, args.name, args.at, args.format, fields, args.folder)
            _print(_task(t, sch.next_run(args.dataset, t)))
        elif args.action == "list":
            _print([_task(t, sch.next_run(args.dataset, t)) for t in sch.tasks(args.dataset)])
        elif args.action == "run":
            _print([_run(r) for r in sch.run_due(args.dataset)])
        else:
            sch.delete_task(args.dataset, args.name)
            _print({"deleted": args.name})
    finally:
        eng.close()
    return 0


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


COMMANDS = {"track": cmd_track, "snapshots": cmd_snapshots, "diff": cmd_diff, "watch": cmd_watch,
            "schedule": cmd_schedule}
