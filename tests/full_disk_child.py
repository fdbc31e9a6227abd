"""The body of tests/test_full_disk.py, run in a private mount namespace (it mounts a tmpfs).

    python -m tests.full_disk_child WORK

Mounts a small tmpfs at WORK/disk, serves a data directory on it in-process, fills the
file system (completely, then leaving 64 KiB and 2 MiB), and calls every writing RPC;
then frees the space and calls them again. Prints one JSON line of what it saw; the test
asserts on it. A SIGBUS would end this process with -7 and no JSON.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

SIZE_MB = 48


def fill(filler: Path, leave: int) -> None:
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


def main(work: Path) -> dict:
    import grpc

    from segments.bench.generate import generate
    from segments.client.client import SegmentsClient
    from segments.engine.api import Engine
    from segments.engine.errors import InsufficientSpace
    from segments.engine.storage import space
    from segments.server.app import build_server, stop

    disk = work / "disk"
    disk.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(disk)], check=True)
    os.environ["SEGMENTS_DISK_MARGIN"] = str(256 << 10)
    uploads = work / "uploads"                    # on the real disk: only the data is on the tmpfs
    generate(uploads / "t" / "first", customers=1500, seed=1)
    generate(uploads / "t" / "more", customers=300, seed=2)
    engine = Engine(disk / "data", auto_compact=False)
    engine.create_dataset("t", "America/New_York")
    engine.ingest("t", uploads / "t" / "first")
    server, port = build_server(engine, 0, ingest_root=uploads)
    server.start()
    client = SegmentsClient(f"127.0.0.1:{port}", timeout=120)
    everyone = {"include": "all"}
    cid = client.preview("t", everyone, 1).rows[0]["customer_id"]
    out = {"answers": {}, "reads_while_full": [], "after": {}, "acked": 0, "open_env": None}
    seq = [0]

    def calls():
        seq[0] += 1
        n = seq[0]
        return {
            "apply_changes": lambda: client.append("t", "purchases", [
                {"customer_id": cid, "purchased_at": "2026-11-19T10:00:00Z", "amount": 100 + i,
                 "product": f"p{n}-" + "x" * 200} for i in range(3000)]),
            "compact": lambda: client.compact("t"),
            "ingest": lambda: client.ingest("t", "more"),
            "export": lambda: client.export("t", everyone, ["email", "first_name", "address"], "csv"),
            "create_group": lambda: client.create_group("t", f"g{n}", everyone),
            "save_segment": lambda: client.create_saved_segment("t", f"s{n}", everyone, "d" * 5000),
            "create_dataset": lambda: client.create_dataset(f"d{n}", "UTC"),
        }

    filler = disk / "filler"

    def pending_change():
        """One small batch while there is space, so that a compaction has work to refuse."""
        r = client.append("t", "purchases", [{"customer_id": cid, "purchased_at": "2026-11-18T10:00:00Z",
                                              "amount": 1, "product": "p0-" + "x" * 200}])
        out["acked"] += r["rows"]["purchases"]

    for leave in (0, 64 << 10, 2 << 20):
        pending_change()
        fill(filler, leave)
        for name, call in calls().items():
            try:
                r = call()
                out["answers"][f"{name}@{leave}"] = ["OK", ""]
                if name == "apply_changes":
                    out["acked"] += r["rows"]["purchases"]
            except grpc.RpcError as e:
                out["answers"][f"{name}@{leave}"] = [e.code().name, e.details(),
                                                     getattr(e, "reason", None), getattr(e, "info", {})]
        try:
            out["reads_while_full"].append(client.count("t", everyone).count)
        except grpc.RpcError as e:
            out["reads_while_full"].append(e.code().name)
        filler.unlink()
    # Estimates that lie (or another process filling the disk between check and write):
    # the checks pass, the writes themselves hit ENOSPC, and still nothing dies.
    from segments.engine.datasets import dataset as D
    saved = (space.margin, space.table_bytes, space.export_bytes, D.Dataset._fold_bytes, D._load_bytes)
    space.margin = lambda: 0
    space.table_bytes = lambda tables: 0
    space.export_bytes = lambda table, fmt: 0
    D.Dataset._fold_bytes = lambda self, live, n: 0
    D._load_bytes = lambda folder: 0
    out["lying"] = {}
    for leave in (0, 256 << 10):
        pending_change()
        fill(filler, leave)
        for name, call in calls().items():
            try:
                r = call()
                out["lying"][f"{name}@{leave}"] = ["OK", ""]
                if name == "apply_changes":
                    out["acked"] += r["rows"]["purchases"]
            except grpc.RpcError as e:
                out["lying"][f"{name}@{leave}"] = [e.code().name, e.details()]
        try:
            out["reads_while_full"].append(client.count("t", everyone).count)
        except grpc.RpcError as e:
            out["reads_while_full"].append(e.code().name)
        filler.unlink()
    space.margin, space.table_bytes, space.export_bytes, D.Dataset._fold_bytes, D._load_bytes = saved
    fill(filler, 0)
    try:
        space.open_env(disk / "fresh-env", map_size=1 << 30)
        out["open_env"] = "opened"
    except InsufficientSpace as e:
        out["open_env"] = str(e)
    filler.unlink()
    for name, call in calls().items():
        try:
            r = call()
            out["after"][name] = "OK"
            if name == "apply_changes":
                out["acked"] += r["rows"]["purchases"]
        except grpc.RpcError as e:
            out["after"][name] = f"{e.code().name}: {e.details()}"
    products = [f"p{i}-" + "x" * 200 for i in range(0, seq[0] + 1)]
    ranked = {"include": {"customers": [cid]},
              "order_by": {"key": "purchase_count", "filter": {"product": products}}}
    out["lines_visible"] = client.preview("t", ranked, 1).rows[0]["rank_value"]
    client.close()
    stop(server, 0)
    engine.close()
    return out


if __name__ == "__main__":
    result = main(Path(sys.argv[1]))
    print(json.dumps(result, default=str), flush=True)
    sys.exit(0)
