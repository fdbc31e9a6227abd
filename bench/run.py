"""`make bench` (`python -m segments.bench.run --scale S|M|L --shape NAME`): the engine against DuckDB, in one run.

1. The dataset of (scale, shape, seed) from bench/cache (generated and ingested once, reused);
   the suite's data-dependent segments get their SKU / brands / department x metal from it.
2. The machine's sustained memory bandwidth (bench.bandwidth).
3. For each suite segment (bench.suite): engine count / preview / materialize
   in-process, the same through gRPC (a server in a child process), DuckDB's count and its
   result ids (bench.duck.DuckPeer: tables in memory, local dates precomputed, all cores).
   Each operation is called once as the warm-up, reported as first_ms (JIT compile, lazy
   loading), then --repeat times back to back: the figures are those medians. Operations
   are not interleaved: DuckDB's worker threads and numba's OpenMP threads both linger
   briefly after a call, and interleaving measured each side partly on the other's tail.
4. Answers compared: count triples, and materialized ids against DuckDB's result ids (in
   order for ranked segments, as sorted lists otherwise). Any difference fails the run.
5. Each distinct leaf's effective GB/s and floor (bench.scan, from explain), a gRPC load
   test (bench.loadtest).
6. Per segment, what explain says it read (bytes_read, per leaf too) and its distance to
   the memory-bandwidth floor: floor_ms = bytes / measured bandwidth.
7. bench/results/latest.json, latest.png, scale-<scale>[-<shape>].json and the terminal table (bench.report).

Never timed on one side only: DuckDB's count is asked the count question (a segment with
order_by but no limit is counted without its ranking, as the engine counts it), its
materialize equivalent fetches ids and ranking values as arrays, as the engine's
materialize returns them; the answers compared are DuckPeer.result's, asked once more.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# numba's OpenMP threads spin after each parallel region by default. On a machine whose cores
# are busy with other work that spinning starved the caller's own serial steps: counts that
# take 2 ms ran at ~120 ms in-process (and DuckDB, called next, paid for the spin too). The
# bench measures with passive waits unless OMP_WAIT_POLICY is set (it is recorded with the
# results); it must be set before the first parallel kernel runs, hence here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import bandwidth, cache, report, scan, suite
from .peer_calls import OverLimit, as_ids, ids_problem, limited
from .scan import floor_ms
from .generate.shapes import SHAPES
from .loadtest import ServerProcess, grpc_layer, run_load

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
PREVIEW_N = 20
DEFAULT_REPEAT = {"S": 9, "M": 5, "L": 3}
# At L the DuckDB peer (an on-disk database on 2 cores) takes seconds to minutes per query:
# one timed call after its first, each under a time limit (a stated lower bound beyond it).
DEFAULT_DUCK_REPEAT = {"L": 0}
DEFAULT_DUCK_LIMIT_S = {"L": 20.0}
# At L the gRPC timings and the load test are skipped unless --grpc: the gRPC layer's cost
# per call (codec, transport) does not grow with the dataset and is measured at S and M;
# at L it would double the engine's side of a run that already takes most of an hour.
SKIP_GRPC = {"L": "skipped at L unless --grpc: the gRPC layer's per-call cost does not grow with "
                  "the dataset (measured at S and M), and at L it doubles the run's engine side"}
EXPLAIN_REPEAT_BY_SCALE = {"L": 1}
DEFAULT_DUCK_MEMORY = "3GB"   # the engine and other sessions share 24 GiB (4 GB left free at times)
# The load test at L: every call of the suite's heavy segments scans 10x M's lines, so fewer
# clients (memory per call in the server) and a shorter window keep it bounded.
DEFAULT_LOAD = {"L": {"clients": 4, "load_seconds": 30.0}}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m segments.bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="S", choices=("S", "M", "L"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", default="default", choices=sorted(SHAPES),
                   help="data shape of the generated dataset (bench/generate/shapes.py)")
    p.add_argument("--repeat", type=int, help="timed calls after the warm-up, per operation (median); "
                   f"default by scale: {', '.join(f'{k} {v}' for k, v in DEFAULT_REPEAT.items())}")
    p.add_argument("--no-grpc", action="store_true", help="skip the gRPC timings and the load test")
    p.add_argument("--grpc", action="store_true", help="the gRPC timings and the load test at L too")
    p.add_argument("--segments", help="comma-separated suite names (default: the whole suite)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="folder for latest.json and latest.png")
    p.add_argument("--clients", type=int, help="load test: concurrent clients (default 8, 4 at L)")
    p.add_argument("--calls", type=int, default=400, help="load test: total calls")
    p.add_argument("--load-seconds", type=float, help="load test: stop issuing calls after (default 60, 30 at L)")
    p.add_argument("--no-load", action="store_true", help="skip the load test")
    p.add_argument("--bandwidth-mib", type=int, default=512, help="bandwidth probe array size")
    p.add_argument("--rebuild", action="store_true", help="regenerate and re-ingest the cached dataset")
    p.add_argument("--duckdb", default="auto", choices=("auto", "memory", "disk", "parquet"),
                   help="DuckDB's tables in memory, in a database file next to the cached dataset, or "
                        "views over the Parquet input (auto: parquet at L, whose tables do not fit in "
                        "memory beside the engine, and whose database file would take ~8 GB of disk)")
    p.add_argument("--duckdb-limit", type=float,
                   help="seconds one DuckDB call may run before it is interrupted and recorded as "
                        "'> limit' (0: none; default: 20 at L, none at S and M)")
    p.add_argument("--duckdb-repeat", type=int,
                   help="DuckDB's timed calls after its first, per operation (0: its first call is the "
                        "figure; default: --repeat; 0 at L)")
    p.add_argument("--duckdb-memory", default=DEFAULT_DUCK_MEMORY,
                   help=f"DuckDB's memory_limit for the disk and parquet peers (default {DEFAULT_DUCK_MEMORY})")
    a = p.parse_args(argv)
    if a.repeat is None:
        a.repeat = DEFAULT_REPEAT[a.scale]
    if a.repeat < 1:
        p.error("--repeat must be >= 1")
    if a.duckdb_repeat is None:
        a.duckdb_repeat = DEFAULT_DUCK_REPEAT.get(a.scale, a.repeat)
    if a.duckdb_repeat < 0:
        p.error("--duckdb-repeat must be >= 0")
    if a.duckdb_limit is None:
        a.duckdb_limit = DEFAULT_DUCK_LIMIT_S.get(a.scale, 0.0)
    if a.duckdb_limit < 0:
        p.error("--duckdb-limit must be >= 0")
    a.skip_grpc = "--no-grpc" if a.no_grpc else (None if a.grpc else SKIP_GRPC.get(a.scale))
    load = DEFAULT_LOAD.get(a.scale, {})
    a.clients = a.clients if a.clients is not None else load.get("clients", 8)
    a.load_seconds = a.load_seconds if a.load_seconds is not None else load.get("load_seconds", 60.0)
    return a


def machine() -> dict:
    """Where the figures come from."""
    import duckdb
    import numba
    import numpy
    import pyarrow

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    versions = {"python": platform.python_version(), "numpy": numpy.__version__, "numba": numba.__version__,
                "duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__}
    try:
        import grpc
        versions["grpcio"] = grpc.__version__
    except ImportError:
        pass
    try:
        layer = numba.threading_layer()
    except ValueError:                       # no parallel kernel has run yet
        layer = None
    return {"hostname": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem,
            "os": platform.platform(), "numba_threads": numba.get_num_threads(),
            "numba_threading_layer": layer, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "versions": versions}


def jit_stats() -> dict:
    """Compile seconds and cache hits of engine.kernels' numba functions in this process."""
    from numba.core.registry import CPUDispatcher

    from segments.engine.evaluation import kernels as K

    compile_s, hits, misses = 0.0, 0, 0
    for obj in vars(K).values():
        if not isinstance(obj, CPUDispatcher):
            continue
        st = obj.stats
        hits += sum(st.cache_hits.values())
        misses += sum(st.cache_misses.values())
        for sig in obj.signatures:
            try:
                compile_s += ((obj.get_metadata(sig) or {}).get("timers") or {}).get("compiler_lock", 0.0)
            except (KeyError, TypeError, AttributeError):
                pass
    return {"engine_kernels_compile_s": round(compile_s, 3), "cache_hits": hits, "cache_misses": misses}


def _clock(fn):
    t0 = time.perf_counter()
    r = fn()
    return (time.perf_counter() - t0) * 1000, r


def _duck_runs(peer, fn, limit_s, repeat: int):
    """DuckDB's first call and up to `repeat` timed calls, each under the time limit:
    (first_ms, answer, runs_ms, over_limit). After a call over the limit no more are made;
    first_ms and answer are None when the first call itself ran over."""
    try:
        first, answer = limited(peer.con, fn, limit_s)
    except OverLimit:
        return None, None, [], True
    runs = []
    for _ in range(repeat):
        try:
            runs.append(limited(peer.con, fn, limit_s)[0])
        except OverLimit:
            return first, answer, runs, True
    return first, answer, runs, False


def measure_segment(bs, engine, dataset: str, peer, client, repeat: int, duck_limit_s=None,
                    duck_repeat=None) -> dict:
    """Rounds of every operation on one segment; the medians, first calls and the checks.
    DuckDB's calls run under `duck_limit_s` (None: no limit) and `duck_repeat` times after
    the first (default `repeat`); a count over the limit skips DuckDB's materialize."""
    seg, as_of = bs.segment, suite.AS_OF
    duck_repeat = repeat if duck_repeat is None else duck_repeat
    count_seg = dataclasses.replace(seg, order_by=None) if seg.limit is None else seg
    ops = {
        "engine_count": lambda: engine.count(dataset, seg, as_of),
        "engine_preview": lambda: engine.preview(dataset, seg, PREVIEW_N, (), as_of),
        "engine_materialize": lambda: engine.materialize(dataset, seg, (), as_of),
    }
    duck_ops = {
        "duckdb_count": lambda: peer.count(count_seg, as_of),
        # ids and ranking values as arrays, as the engine's materialize returns them (the
        # SQL of DuckPeer.result, without its conversion to a Python list); its first
        # answer is the one the engine's ids are checked against
        "duckdb_materialize": lambda: peer.con.execute(peer.sql(seg, as_of)).fetchnumpy(),
    }
    if client is not None:
        ops.update({
            "grpc_count": lambda: client.count(dataset, seg, as_of),
            "grpc_preview": lambda: client.preview(dataset, seg, PREVIEW_N, (), as_of),
            "grpc_materialize": lambda: client.materialize(dataset, seg, (), as_of),
        })
    runs, first, answer = {}, {}, {}
    for k, fn in ops.items():               # one operation at a time: see the module docstring
        first[k], answer[k] = _clock(fn)
        runs[k] = [_clock(fn)[0] for _ in range(repeat)]
    over, skipped = [], []
    for k, fn in duck_ops.items():
        if over:                            # the count ran over: the result query is no cheaper
            skipped.append(k)
            continue
        f, ans, rs, was_over = _duck_runs(peer, fn, duck_limit_s, duck_repeat)
        if was_over:
            over.append(k)
        if f is not None:
            first[k], answer[k] = f, ans
        if rs:
            runs[k] = rs
        elif f is not None:                 # over the limit on the first timed call: the first stands
            runs[k] = [f]
    med = {k: statistics.median(v) for k, v in runs.items()}

    ec = answer["engine_count"]
    e_triple = (ec.count, ec.email_reachable, ec.sms_reachable)
    e_ids = as_ids(answer["engine_materialize"].customer_ids)
    problems, unchecked = [], []
    if "duckdb_count" in answer:
        d_triple = tuple(answer["duckdb_count"])
        if e_triple != d_triple:
            problems.append(f"count engine {e_triple} != duckdb {d_triple}")
    else:
        unchecked.append("count")
    if "duckdb_materialize" in answer:
        p = ids_problem(e_ids, answer["duckdb_materialize"]["customer_id"], bs.ranked)
        if p:
            problems.append(p)
    else:
        unchecked.append("materialize ids")
    preview_ids = [r["customer_id"] for r in answer["engine_preview"].rows]
    if preview_ids != e_ids[:PREVIEW_N].tolist() or answer["engine_preview"].total != ec.count:
        problems.append("engine preview is not the head of its materialize / total != count")
    grpc_problems = []
    if client is not None:
        gc = answer["grpc_count"]
        if (gc.count, gc.email_reachable, gc.sms_reachable) != e_triple:
            grpc_problems.append(f"grpc count {(gc.count, gc.email_reachable, gc.sms_reachable)} != engine {e_triple}")
        p = ids_problem(e_ids, answer["grpc_materialize"].customer_ids, True)
        if p:
            grpc_problems.append("grpc " + p.replace("duckdb", "grpc"))
        if [r["customer_id"] for r in answer["grpc_preview"].rows] != preview_ids:
            grpc_problems.append("grpc preview ids != engine preview ids")

    def r3(x):
        return None if x is None else round(x, 3)

    def ratio(a, b):
        return round(a / b, 3) if a and b else None

    limit_ms = duck_limit_s * 1000 if duck_limit_s else None
    row = {
        "segment": bs.name, "covers": bs.covers, "ranked": bs.ranked, "limit": seg.limit,
        "count": ec.count, "email_reachable": ec.email_reachable, "sms_reachable": ec.sms_reachable,
        "missing_ids": list(ec.missing_ids), "result_ids": int(e_ids.size),
        "engine_ms": r3(med["engine_count"]), "first_ms": r3(first["engine_count"]),
        "preview_ms": r3(med["engine_preview"]), "materialize_ms": r3(med["engine_materialize"]),
        "grpc_ms": r3(med.get("grpc_count")), "grpc_first_ms": r3(first.get("grpc_count")),
        "grpc_preview_ms": r3(med.get("grpc_preview")), "grpc_materialize_ms": r3(med.get("grpc_materialize")),
        "duckdb_ms": r3(med.get("duckdb_count")), "duckdb_first_ms": r3(first.get("duckdb_count")),
        "duckdb_materialize_ms": r3(med.get("duckdb_materialize")),
        "ratio": ratio(med.get("duckdb_count"), med["engine_count"]),
        "materialize_ratio": ratio(med.get("duckdb_materialize"), med["engine_materialize"]),
        # DuckDB past its limit: the limit over the engine's time is a lower bound of the ratio
        "duckdb_over_limit": over, "duckdb_skipped": skipped,
        "ratio_lower_bound": (ratio(limit_ms, med["engine_count"]) if "duckdb_count" in over
                              and "duckdb_count" not in med else None),
        "unchecked": unchecked,
        "match": not problems, "problems": problems,
        "grpc_match": None if client is None else not grpc_problems, "grpc_problems": grpc_problems,
        "runs_ms": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "first_call_ms": {k: round(v, 3) for k, v in first.items()},
        "json": bs.json,
    }
    return row


EXPLAIN_REPEAT = 3


def _leaves(node, out: list) -> list:
    if node.children:
        for k in node.children:
            _leaves(k, out)
    else:
        out.append(node)
    return out


def explain_bytes(engine, dataset: str, seg, as_of, gbps: float, engine_ms=None,
                  repeat: int = EXPLAIN_REPEAT) -> dict:
    """What `explain` says a segment reads: bytes_read of the whole evaluation (leaves and
    ranking) and of each leaf, each leaf's median ms over `repeat` explains, and the
    distance to the bandwidth floor. A leaf meets the target when ms <= 3 x floor + 1 ms."""
    runs = [engine.explain(dataset, seg, as_of) for _ in range(repeat)]
    leaves = [_leaves(r, []) for r in runs]
    out = []
    for i, leaf in enumerate(leaves[0]):
        ms = statistics.median(ls[i].ms for ls in leaves)
        fl = floor_ms(leaf.bytes_read, gbps)
        out.append({"leaf": leaf.label, "size": leaf.size, "ms": round(ms, 3), "bytes_read": leaf.bytes_read,
                    "floor_ms": round(fl, 4), "target_ms": round(3 * fl + 1.0, 3),
                    "target_x": round(ms / (3 * fl + 1.0), 3), "within_target": ms <= 3 * fl + 1.0})
    total = runs[0].bytes_read
    fl = floor_ms(total, gbps)
    row = {"bytes_read": total, "floor_ms": round(fl, 4), "leaves": out,
           "explain_ms": round(statistics.median(r.ms for r in runs), 3)}
    if engine_ms:
        row["floor_x"] = round(engine_ms / fl, 2) if fl > 0 else None     # time / floor
        row["target_x"] = round(engine_ms / (3 * fl + 1.0), 3)           # <= 1: within 3 x floor + 1 ms
    return row


def failed_row(bs, e: Exception) -> dict:
    """The row of a segment whose measurement raised."""
    row = {k: None for k in ("count", "engine_ms", "first_ms", "preview_ms", "materialize_ms", "grpc_ms",
                             "grpc_preview_ms", "grpc_materialize_ms", "duckdb_ms", "duckdb_materialize_ms",
                             "ratio", "materialize_ratio", "grpc_match")}
    row.update(segment=bs.name, covers=bs.covers, ranked=bs.ranked, match=False, json=bs.json,
               problems=[f"raised {type(e).__name__}: {e}"], grpc_problems=[])
    return row


def geomean(xs) -> float | None:
    xs = [x for x in xs if x and x > 0]
    return round(math.exp(sum(math.log(x) for x in xs) / len(xs)), 3) if xs else None


def main(argv=None) -> int:
    """Run the bench; 0 when every answer matched, 1 otherwise."""
    a = parse_args(argv)
    from .duck import DuckPeer
    from segments.engine.api import Engine

    started = dt.datetime.now(dt.timezone.utc)
    load_start = os.getloadavg()
    t_run = time.perf_counter()
    print(f"bench: scale {a.scale}, shape {a.shape}, seed {a.seed}, repeat {a.repeat}, "
          f"as of {suite.AS_OF.isoformat()}")
    c = cache.ensure(a.scale, a.seed, a.rebuild, shape=a.shape)
    codes = cache.sample_codes(c)
    print(f"suite codes: SKU {codes['sku']} ({codes['sku_lines']:,} lines of {codes['skus']:,} SKUs), "
          f"rare SKU {codes['rare_sku']} ({codes['rare_sku_lines']}), brands {codes['brands']} "
          f"({codes['brands_lines']:,}), department x metal {codes['dept_metal']} ({codes['dept_metal_lines']:,})")

    print("bandwidth: measuring ...", flush=True)
    bw = bandwidth.measure(a.bandwidth_mib)
    print(f"bandwidth: {bw['gbps']:.1f} GB/s ({bw['gbps_threads']:.1f} with {bw['threads']} threads, "
          f"{bw['gbps_1thread']:.1f} on one)")

    engine = Engine(c.data_dir)
    t0 = time.perf_counter()
    duck_storage = a.duckdb if a.duckdb != "auto" else ("parquet" if a.scale == "L" else "memory")
    duck_info = {"storage": duck_storage}
    if duck_storage == "disk":
        db_path = Path(c.input_dir).parent / "duckdb.db"
        peer = DuckPeer.on_disk(c.input_dir, c.timezone, db_path, memory_limit=a.duckdb_memory)
        duck_info.update(peer.disk_info)
    elif duck_storage == "parquet":
        peer = DuckPeer.over_parquet(c.input_dir, c.timezone, memory_limit=a.duckdb_memory,
                                     temp_directory=Path(c.input_dir).parent / "duckdb.tmp")
        duck_info["source"] = "views over the Parquet input files; every query reads them"
    else:
        peer = DuckPeer.from_folder(c.input_dir, c.timezone)
    duck_load_s = time.perf_counter() - t0
    duck_threads = int(peer.con.execute("SELECT current_setting('threads')").fetchone()[0])
    duck_info.update(load_s=round(duck_load_s, 3), threads=duck_threads,
                     memory_limit=peer.con.execute("SELECT current_setting('memory_limit')").fetchone()[0],
                     limit_s=a.duckdb_limit or None, repeat=a.duckdb_repeat)
    print(f"duckdb: {duck_storage}, loaded in {duck_load_s:.1f} s"
          + (f" (database built in {duck_info['build_s']:.0f} s)" if duck_info.get("build_s") else "")
          + f"; {duck_threads} threads, memory_limit {duck_info['memory_limit']}; "
          + (f"each call limited to {a.duckdb_limit:g} s, " if a.duckdb_limit else "")
          + f"{a.duckdb_repeat} timed call(s) after the first")

    refs = suite.prepare_references(engine, c.dataset, peer)
    print(f"references: saved segment {suite.REF_SEGMENT[0]}, group {suite.REF_GROUP[0]} "
          f"({refs[suite.REF_GROUP[0]]:,} members, frozen as of {suite.AS_OF.isoformat()})")
    segs = suite.select(suite.segments(cache.sample_ids(c), codes, references=True), a.segments)

    grpc_info = {"available": False, "reason": a.skip_grpc}
    server = client = None
    if a.skip_grpc:
        print(f"grpc and load test: {a.skip_grpc}")
    else:
        why = grpc_layer()
        if why:
            print(f"grpc: skipped: {why}")
            grpc_info = {"available": False, "reason": why}
        else:
            from segments.client.client import SegmentsClient
            t0 = time.perf_counter()
            server = ServerProcess(c.data_dir)
            client = SegmentsClient(server.target, timeout=3600)
            grpc_info = {"available": True, "server_start_s": round(time.perf_counter() - t0, 3),
                         "server": "child process, server.app.build_server, localhost"}
            print(f"grpc: server on {server.target}")

    rows, kernels, load = [], [], None
    try:
        for bs in segs:
            try:
                row = measure_segment(bs, engine, c.dataset, peer, client, a.repeat,
                                      a.duckdb_limit or None, a.duckdb_repeat)
            except Exception as e:  # noqa: BLE001 - a failing segment fails the bench, loudly, at the end
                row = failed_row(bs, e)
                print(f"{bs.name}: FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            if row["engine_ms"]:
                try:
                    row.update(explain_bytes(engine, c.dataset, bs.segment, suite.AS_OF, bw["gbps"],
                                             row["engine_ms"], EXPLAIN_REPEAT_BY_SCALE.get(a.scale, EXPLAIN_REPEAT)))
                except Exception as e:  # noqa: BLE001 - reported, not fatal: answers were compared
                    row["explain_problem"] = f"{type(e).__name__}: {e}"
            row.update(scan.segment_gbps(row, bw["gbps"]))
            rows.append(row)
            print(report.progress_line(row), flush=True)
            # what is measured so far, should the run be stopped before the end (long at L)
            report.write_json({"partial": True, "scale": a.scale, "shape": a.shape, "date": started.isoformat(),
                               "duckdb": duck_info, "load_average_now": os.getloadavg(), "segments": rows},
                              Path(a.out) / "partial.json")

        kernels = scan.leaf_table(rows, bw["gbps"])
        peer.close()                         # its buffer pool is not needed by the load test
        peer = None

        if client is not None and not a.no_load:
            print(f"load test: {a.clients} clients, {a.calls} count calls, at most {a.load_seconds:g} s"
                  + (" (fewer clients and a shorter window at L: each heavy call scans 10x M's lines)"
                     if a.scale in DEFAULT_LOAD else "") + " ...", flush=True)
            load = run_load(server.target, c.dataset, [s.segment for s in segs], suite.AS_OF,
                            a.clients, a.calls, "count", a.load_seconds)
    finally:
        if client is not None:
            client.close()
        if server is not None:
            server.close()
        if peer is not None:
            peer.close()
        engine.close()

    mismatched = [r["segment"] for r in rows if not r["match"] or r["grpc_match"] is False]
    results = {
        "scale": a.scale, "shape": a.shape, "shape_parameters": SHAPES[a.shape].describe(),
        "suite_codes": codes, "seed": a.seed, "date": started.isoformat(timespec="seconds"),
        "as_of": suite.AS_OF.isoformat(), "repeat": a.repeat, "machine": machine(),
        "load_average": {"start": [round(x, 2) for x in load_start],
                         "end": [round(x, 2) for x in os.getloadavg()]},
        "dataset": dataclasses.asdict(c), "bandwidth": bw,
        "duckdb": duck_info,
        "grpc": grpc_info, "jit": jit_stats(),
        "segments": rows, "kernels": kernels,
        "loadtest": load if load is not None else {"skipped": grpc_info.get("reason") if not grpc_info["available"]
                                                   else "--no-load"},
    }
    results["jit"]["first_call_overhead_ms"] = round(sum(
        max(0.0, r["first_ms"] - r["engine_ms"]) for r in rows if r["engine_ms"] is not None), 3)
    results["summary"] = {
        "segments": len(rows), "mismatches": mismatched,
        "geomean_ratio": geomean(r["ratio"] for r in rows),
        "geomean_materialize_ratio": geomean(r["materialize_ratio"] for r in rows),
        # DuckDB's answers past the limit: their ratio is a lower bound (limit / engine ms);
        # the geometric mean over every segment with those bounds is a lower bound too
        "duckdb_over_limit": [r["segment"] for r in rows if r.get("duckdb_over_limit")],
        "geomean_ratio_lower_bound": geomean(r["ratio"] or r.get("ratio_lower_bound") for r in rows)
        if any(r.get("ratio_lower_bound") for r in rows) else None,
        "unchecked": {r["segment"]: r["unchecked"] for r in rows if r.get("unchecked")},
        "engine_faster": sum(1 for r in rows if r["ratio"] and r["ratio"] > 1),
        "engine_max_ms": max((r["engine_ms"] for r in rows if r["engine_ms"]), default=None),
        "segments_over_25ms": [r["segment"] for r in rows if r["engine_ms"] and r["engine_ms"] > 25],
        "leaves_over_floor_target": sum(1 for r in rows for lf in r.get("leaves", ()) if not lf["within_target"]),
        "bytes_read": sum(r.get("bytes_read") or 0 for r in rows),
        "wall_s": round(time.perf_counter() - t_run, 1), "whole_suite": not a.segments,
    }
    paths = report.write(results, Path(a.out), scale_copies=not a.segments)
    (Path(a.out) / "partial.json").unlink(missing_ok=True)
    print(report.render(results))
    print("wrote " + ", ".join(str(p) for p in paths))
    if mismatched:
        bar = "!" * 78
        print(f"\n{bar}\nBENCH FAILED: {len(mismatched)} segment(s) gave different answers: "
              f"{', '.join(mismatched)}", file=sys.stderr)
        for r in rows:
            for p in r["problems"] + r["grpc_problems"]:
                print(f"  {r['segment']}: {p}", file=sys.stderr)
        print(bar, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
