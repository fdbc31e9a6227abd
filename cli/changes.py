"""`segments change DATASET [--customers F] [--purchases F] [--visits F] [--laybys F]
[--delete ID,ID,...] [--batch-id X]` and `segments compact DATASET`.

Files (.csv or .parquet) are read and checked by the bulk loader's reader, so their errors
name the file, row and column as an ingest does; every file given forms one atomic batch.
Both commands run on the local data directory, or through a server with --server (token: --token-file
or $SEGMENTS_TOKEN),
and print the engine's answer as JSON.
"""
from __future__ import annotations

import argparse
import json

from segments.engine.errors import InvalidArgument
from segments.engine.model.schema import TABLE_NAMES


def add_parsers(sub) -> None:
    """Register the `change` and `compact` subcommands on an argparse subparsers object."""
    p = sub.add_parser("change", help="apply one atomic batch of live changes")
    p.add_argument("dataset")
    for table in TABLE_NAMES:
        what = "upsert" if table == "customers" else "append"
        p.add_argument(f"--{table}", metavar="FILE", help=f"{table} rows to {what} (.csv or .parquet)")
    p.add_argument("--delete", metavar="ID,ID,...", help="customer ids to delete (erasure)")
    p.add_argument("--batch-id", help="id of this batch: a batch already applied is not applied again")
    _add_remote_args(p)
    c = sub.add_parser("compact", help="fold the changes applied so far into a new version now")
    c.add_argument("dataset")
    _add_remote_args(c)


def _add_remote_args(p: argparse.ArgumentParser) -> None:
    from .main import add_server_args
    add_server_args(p)


def _delete_ids(text) -> list:
    ids = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        try:
            n = int(part)
        except ValueError:
            raise InvalidArgument("--delete", f"expected customer ids separated by commas, got {part.strip()[:40]!r}") from None
        if not -2**63 <= n < 2**63:
            raise InvalidArgument("--delete", f"{part.strip()[:40]} is out of range for a customer_id (64-bit)")
        ids.append(n)
    return ids


def read_batch(args) -> dict:
    """apply_changes keyword arguments of the command line: each file read and validated."""
    from segments.engine.storage.ingest_read import read_table_file

    batch = {t: read_table_file(getattr(args, t), t) if getattr(args, t) else None for t in TABLE_NAMES}
    batch["delete"] = _delete_ids(args.delete)
    if not batch["delete"] and all(batch[t] is None for t in TABLE_NAMES):
        raise InvalidArgument("change", "nothing to apply: give --customers, --purchases, --visits, "
                                        "--laybys or --delete")
    batch["batch_id"] = args.batch_id
    return batch


def _plain(v):
    """json.dumps default: numpy scalars as Python numbers, anything else as text."""
    return v.item() if hasattr(v, "item") else str(v)


def _run(args, body) -> int:
    if args.server:
        from .remote import remote_call
        return remote_call(args, body)
    from .main import _engine
    eng = _engine(args)
    try:
        return body(eng)
    finally:
        eng.close()


def cmd_change(args) -> int:
    batch = read_batch(args)

    def body(target) -> int:
        print(json.dumps(target.apply_changes(args.dataset, **batch), default=_plain))
        return 0
    return _run(args, body)


def cmd_compact(args) -> int:
    def body(target) -> int:
        print(json.dumps(target.compact(args.dataset), default=_plain))
        return 0
    return _run(args, body)
