"""Cluster mode measured on this machine: per call, what scatter-gather over P partition
actors adds to the slowest partition's own time, next to the one-process Engine.

    python -m segments.bench.cluster [--scale S|M | --input FOLDER] [--partitions 4]
                                     [--repeat 7] [--cluster-dir DIR] [--materialize-only] [--out FILE]

--scale (default S): the bench's cached dataset (bench/cache.py: generated and ingested
once, reused) is the one-process Engine, and its input is loaded through a ClusterEngine
on a local Ray (2 CPUs); --input FOLDER: that folder loaded both ways. --cluster-dir keeps
the cluster's folder so that a later run reuses its partitions (a load of M through the
coordinator takes minutes). Then for each bench suite segment: count wall time both ways,
and per call the slowest partition's time inside its actor (one round per call, limits
included); the overhead is the cluster's wall time minus that, per call (median).
Materialize of every customer, unranked and ranked: ids per second end to end, the slowest
partition and the coordinator's share; the same streamed (materialize_stream, what the
server's Materialize sends: 65,536-row pieces merged as the partitions send theirs). Every figure is a difference within one run, and
the load average is recorded: on a shared machine absolute times are upper bounds.
Prints a JSON report (docs/cluster.md and docs/benchmarks.md quote it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

DATASET = "bench"


def _median_ms(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def _per_call(cluster, fn, repeat: int) -> dict:
    """fn's wall time and the slowest partition's own time, per call; medians of both and
    of their difference (the coordinator's overhead)."""
    walls, parts, over = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        _, rounds = cluster.partition_rounds(fn)
        wall = (time.perf_counter() - t0) * 1000
        walls.append(wall)
        parts.append(sum(rounds))
        over.append(wall - sum(rounds))
    return {"cluster_ms": round(statistics.median(walls), 2), "slowest_partition_ms": round(statistics.median(parts), 2),
            "overhead_ms": round(statistics.median(over), 2), "rounds": len(rounds)}


def _loadavg() -> list:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m segments.bench.cluster", description=__doc__.splitlines()[0])
    ap.add_argument("--input", help="a folder of table files, loaded both ways (default: the bench cache of --scale)")
    ap.add_argument("--scale", default="S", choices=("S", "M"))
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--cluster-dir", help="the cluster's folder, kept and reused by later runs (default: temporary)")
    ap.add_argument("--preallocate-mb", type=int, default=0,
                    help="an object store of this many MB whose pages Ray touches at its start "
                         "(preallocate_plasma_memory; default: Ray's own store, pages touched as used)")
    ap.add_argument("--materialize-only", action="store_true",
                    help="skip the count suite: materialize and the no-op scatter-gather only")
    ap.add_argument("--out", help="write the JSON report here too")
    a = ap.parse_args(argv)

    import ray
    from segments.bench import cache
    from segments.bench.suite import AS_OF, segments
    from segments.cluster.engine import RAY_SYSTEM_CONFIG, ClusterEngine
    from segments.engine import errors as E
    from segments.engine.api import Engine
    from segments.engine.model import segment as S
    import numpy as np

    work = Path(tempfile.mkdtemp(prefix="segments-bench-cluster-"))
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    os.environ["HOME"], os.environ["RAY_TMPDIR"] = str(work), ray_tmp
    report = {"partitions": a.partitions, "repeat": a.repeat, "load_average_start": _loadavg(), "load_s": {}}
    try:
        if a.input:
            src, codes = Path(a.input), None
            single = Engine(work / "single")
            single.create_dataset(DATASET, cache.TIMEZONE)
            t0 = time.perf_counter()
            single.ingest(DATASET, src)
            report["load_s"]["engine"] = round(time.perf_counter() - t0, 2)
        else:
            c = cache.ensure(a.scale)
            src, codes = Path(c.input_dir), cache.sample_codes(c)
            single = Engine(c.data_dir)
            report["load_s"]["engine"] = round(c.ingest_s, 2)
            report["scale"] = a.scale
        report["input"] = str(src)
        store = {}
        if a.preallocate_mb:
            store = {"object_store_memory": a.preallocate_mb << 20}
            report["object_store"] = f"{a.preallocate_mb} MB, preallocated"
        ray.init(num_cpus=2, _temp_dir=ray_tmp, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"HOME": str(work)}}, **store,
                 _system_config={**RAY_SYSTEM_CONFIG, **({"preallocate_plasma_memory": True} if store else {})})
        cdir = Path(a.cluster_dir) if a.cluster_dir else work / "cluster"
        t0 = time.perf_counter()
        cluster = ClusterEngine(cdir, partitions=a.partitions)
        report["cluster_start_s"] = round(time.perf_counter() - t0, 2)
        if DATASET in cluster.datasets():
            report["load_s"]["cluster"] = "reused " + str(cdir)
        else:
            cluster.create_dataset(DATASET, cache.TIMEZONE)
            t0 = time.perf_counter()
            cluster.ingest(DATASET, src)
            report["load_s"]["cluster"] = round(time.perf_counter() - t0, 2)
        every = S.Segment(S.All())
        ids = single.materialize(DATASET, every, as_of=AS_OF).customer_ids
        report["customers"] = int(len(ids))
        parts = cluster.info(DATASET)["partition_info"]
        report["partition_customers"] = [int(i.get("active_customers", 0)) for i in parts]
        report["partition_bytes_on_disk"] = [int(i.get("bytes_on_disk", 0)) for i in parts]
        report["engine_bytes_on_disk"] = int(single.info(DATASET)["bytes_on_disk"])
        suite = [] if a.materialize_only else segments([int(x) for x in ids[:: max(1, len(ids) // 1000)][:1000]], codes)
        for seg in suite:   # warm both (kernels, pages) and check the answers
            try:
                got = cluster.count(DATASET, seg.segment, as_of=AS_OF)
            except E.FailedPrecondition:
                continue
            want = single.count(DATASET, seg.segment, as_of=AS_OF)
            assert (got.count, got.email_reachable, got.sms_reachable) == \
                (want.count, want.email_reachable, want.sms_reachable), seg.name
        rows, refused = [], []
        for seg in suite:
            s = seg.segment
            try:
                cluster.count(DATASET, s, as_of=AS_OF)
            except E.FailedPrecondition:
                refused.append(seg.name)
                continue
            one = _median_ms(lambda: single.count(DATASET, s, as_of=AS_OF), a.repeat)
            row = {"segment": seg.name, "limit": s.limit, "engine_ms": round(one, 2)}
            row.update(_per_call(cluster, lambda: cluster.count(DATASET, s, as_of=AS_OF), a.repeat))
            rows.append(row)
        report["count"] = rows
        report["refused"] = refused
        over = [r["overhead_ms"] for r in rows] or [0]
        report["count_overhead_ms"] = {
            "median": round(statistics.median(over), 2), "max": max(over),
            "median_with_limit": round(statistics.median([r["overhead_ms"] for r in rows if r["limit"]] or [0]), 2),
            "median_without_limit": round(statistics.median([r["overhead_ms"] for r in rows if not r["limit"]] or [0]),
                                          2),
            "segments_over_10ms": [r["segment"] for r in rows if r["overhead_ms"] > 10]} if rows else None
        report["noop_scatter_gather_ms"] = round(_median_ms(
            lambda: ray.get([cluster.actor(p).ping.remote() for p in range(a.partitions)]), 21), 2)
        for label, seg in (("all", every), ("all_by_spend", S.Segment(S.All(), order_by=S.OrderBy("spend")))):
            one = _median_ms(lambda: single.materialize(DATASET, seg, as_of=AS_OF), a.repeat)
            m = cluster.materialize(DATASET, seg, as_of=AS_OF)
            want = single.materialize(DATASET, seg, as_of=AS_OF)
            assert (m.customer_ids == want.customer_ids).all(), label
            row = {"ids": int(len(m.customer_ids)), "engine_ms": round(one, 2),
                   "engine_ids_per_s": int(len(m.customer_ids) / one * 1000)}
            row.update(_per_call(cluster, lambda: cluster.materialize(DATASET, seg, as_of=AS_OF), a.repeat))
            row["cluster_ids_per_s"] = int(len(m.customer_ids) / row["cluster_ms"] * 1000)
            # what the server's Materialize sends: partition streams merged as they come
            got = np.concatenate([x.customer_ids for x in cluster.materialize_stream(DATASET, seg, as_of=AS_OF).chunks])
            assert np.array_equal(got, want.customer_ids), label
            streamed = _median_ms(lambda: sum(len(x.customer_ids) for x in
                                              cluster.materialize_stream(DATASET, seg, as_of=AS_OF).chunks), a.repeat)
            row["stream_ms"] = round(streamed, 2)
            row["stream_ids_per_s"] = int(len(m.customer_ids) / streamed * 1000)
            report.setdefault("materialize", {})[label] = row
        report["load_average_end"] = _loadavg()
        text = json.dumps(report, indent=1)
        print(text)
        if a.out:
            Path(a.out).write_text(text + "\n")
        return 0
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
