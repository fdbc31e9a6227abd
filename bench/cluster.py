"""Cluster mode measured on this machine: per call, what scatter-gather over P partition
actors adds to the slowest partition's own time, next to the one-process Engine.

    python -m segments.bench.cluster [--input FOLDER | --scale S] [--partitions 4] [--repeat 7]

Loads the input (default: bench/generate's S, 100,000 customers) into an Engine and into a
ClusterEngine on a local Ray (2 CPUs), then for each bench suite segment: count wall time
both ways (median), the slowest partition's time inside its actor per round (a segment with
a limit takes two rounds), and the overhead = cluster wall - sum of those. Materialize of
every customer: ids per second end to end. Prints a JSON report (docs/cluster.md quotes it).
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


def _median_ms(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m segments.bench.cluster", description=__doc__.splitlines()[0])
    ap.add_argument("--input", help="a folder of table files (default: generate --scale)")
    ap.add_argument("--scale", default="S", choices=("S", "M"))
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", help="write the JSON report here too")
    a = ap.parse_args(argv)

    import ray
    from segments.bench.suite import AS_OF, segments
    from segments.cluster.engine import ClusterEngine
    from segments.engine.api import Engine
    from segments.engine.model import segment as S

    work = Path(tempfile.mkdtemp(prefix="segments-bench-cluster-"))
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    os.environ["HOME"], os.environ["RAY_TMPDIR"] = str(work), ray_tmp
    try:
        src = Path(a.input) if a.input else work / "input"
        if not a.input:
            from segments.bench.generate import generate
            generate(src, scale=a.scale, seed=0)
        ray.init(num_cpus=2, _temp_dir=ray_tmp, include_dashboard=False, log_to_driver=False)
        single = Engine(work / "single")
        cluster = ClusterEngine(work / "cluster", partitions=a.partitions)
        report = {"partitions": a.partitions, "input": str(src), "load_s": {}}
        for label, eng in (("engine", single), ("cluster", cluster)):
            eng.create_dataset("bench", "America/New_York")
            t0 = time.perf_counter()
            eng.ingest("bench", src)
            report["load_s"][label] = round(time.perf_counter() - t0, 2)
        ids = single.materialize("bench", S.Segment(S.All()), as_of=AS_OF).customer_ids
        report["customers"] = int(len(ids))
        suite = segments([int(x) for x in ids[:: max(1, len(ids) // 1000)][:1000]])
        for seg in suite[:3]:   # warm both (kernels, pages)
            single.count("bench", seg.segment, as_of=AS_OF)
            cluster.count("bench", seg.segment, as_of=AS_OF)
        rows = []
        for seg in suite:
            s = seg.segment
            one = _median_ms(lambda: single.count("bench", s, as_of=AS_OF), a.repeat)
            walls, parts = [], []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                c, rounds = cluster.partition_rounds(cluster.count, "bench", s, as_of=AS_OF)
                walls.append((time.perf_counter() - t0) * 1000)
                parts.append(sum(rounds))
            assert c.count == single.count("bench", s, as_of=AS_OF).count, seg.name
            wall = statistics.median(walls)
            part = statistics.median(parts)
            rows.append({"segment": seg.name, "engine_ms": round(one, 2), "cluster_ms": round(wall, 2),
                         "slowest_partition_ms": round(part, 2), "overhead_ms": round(wall - part, 2),
                         "rounds": len(rounds)})
        report["count"] = rows
        one_round = [r["overhead_ms"] for r in rows if r["rounds"] == 1]
        two_round = [r["overhead_ms"] for r in rows if r["rounds"] == 2]
        report["overhead_ms_median"] = {"one_round": round(statistics.median(one_round), 2) if one_round else None,
                                        "two_rounds": round(statistics.median(two_round), 2) if two_round else None}
        report["noop_scatter_gather_ms"] = round(_median_ms(
            lambda: ray.get([cluster.actor(p).ping.remote() for p in range(a.partitions)]), 21), 2)
        every = S.Segment(S.All())
        for label, eng in (("engine", single), ("cluster", cluster)):
            ms = _median_ms(lambda: eng.materialize("bench", every, as_of=AS_OF), a.repeat)
            report.setdefault("materialize_all", {})[label] = {
                "ms": round(ms, 2), "ids_per_s": int(len(ids) / ms * 1000)}
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
