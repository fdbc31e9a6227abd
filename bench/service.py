"""The service as its operators run it: `segments serve` in a child process, measured from
outside.

    python -m segments.bench.service --scale M [--processes 2] [--clients 16] [--seconds 20]

For each configuration (observability off: no metrics, access log off; on: metrics on a
port and the JSON access log to a file) it starts the server, waits for its "serving" line
(health SERVING), times the first Count right after it and the steady Count afterwards, then
runs a Count load of cheap suite segments from this process (--clients concurrent streams,
each its own channel) and reports throughput and percentiles. It also times `segments count`
as a whole process, the way a person runs it. Figures go to stdout and, with --out, JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHEAP = ("seed_birthday_month_member", "profile_bitmaps", "customers_list", "one_customer_upcoming",
         "suppression_exclude", "seed_married_today", "seed_birthday_today", "count_dispensary_prev_month")
FIRST = ("seed_birthday_month_member", "seed_best50_diamond", "seed_lapsing_regulars", "search_surname",
         "overdue_layby_balance", "profile_numeric")


def start(data: str, args: list, log_dir: Path) -> tuple:
    """`segments serve` in a child; (process, port, seconds to SERVING, output file)."""
    out = open(log_dir / f"serve-{int(time.time() * 1000)}.log", "w+")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "segments.cli.main", "--data", data, "serve", *args],
                            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 600
    need = 1
    if "--processes" in args:
        need = int(args[args.index("--processes") + 1])
    while time.monotonic() < deadline:
        text = Path(out.name).read_text()
        found = re.findall(r"serving .* on \S+:(\d+)", text)
        if len(found) >= need:
            return proc, int(found[0]), time.perf_counter() - t0, out.name
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {text}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not become ready")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid] + [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == pid]
    for q in pids:
        try:
            fields = Path(f"/proc/{q}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            pass
    return total


def _self_cpu() -> float:
    """CPU seconds of this process (the load generator) alone."""
    import resource
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def _ppid(p: Path) -> int:
    try:
        return int(Path(p, "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def observer_overhead_us(n: int = 20_000) -> dict:
    """Microseconds one call's record costs the server (start + engine timing + finish) with
    the access log (to a file) and metrics on, and with both off: measured in this process."""
    from segments.server.observe import Metrics, Observer, access_logger

    class Context:
        def invocation_metadata(self):
            return (("x-request-id", "bench-1"),)

        def peer(self):
            return "ipv4:127.0.0.1:5000"

        def set_trailing_metadata(self, md):
            pass

    import grpc
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, obs in (("off", Observer()),
                          ("on", Observer(access_logger(str(Path(tmp) / "access.log")), Metrics()))):
            ctx = Context()
            t0 = time.perf_counter()
            for _ in range(n):
                rec = obs.start("segments.v1.SegmentsService/Count", "bench", ctx)
                obs.engine(rec, int)
                obs.finish(rec, grpc.StatusCode.OK)
            out[mode] = round((time.perf_counter() - t0) / n * 1e6, 2)
    out["added_us"] = round(out["on"] - out["off"], 2)
    return out


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def first_calls(target: str, dataset: str, segs: dict, as_of) -> dict:
    """Each FIRST segment's first Count right after SERVING, then a second one."""
    from segments.client.client import SegmentsClient

    out = {}
    with SegmentsClient(target, timeout=60) as c:
        c.list_datasets()  # the connection, not the Count
        for name in FIRST:
            t0 = time.perf_counter()
            c.count(dataset, segs[name], as_of)
            t1 = time.perf_counter()
            c.count(dataset, segs[name], as_of)
            out[name] = {"first_ms": round((t1 - t0) * 1000, 2), "second_ms": round((time.perf_counter() - t1) * 1000, 2)}
    return out


def cli_count(data: str, dataset: str, seg_json: str, as_of) -> dict:
    """Wall time of `segments count` as one process (interpreter start included)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(seg_json)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "segments.cli.main", "--data", data, "count", "--dataset", dataset,
                        "--segment", f.name, "--as-of", as_of.isoformat(), "--json"],
                       cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    os.unlink(f.name)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return {"wall_s": round(wall, 3), "engine_ms": json.loads(r.stdout)["ms"]}


def main(argv=None) -> None:
    from . import cache, suite
    from .loadtest import run_load

    p = argparse.ArgumentParser(prog="python -m segments.bench.service", description=__doc__)
    p.add_argument("--scale", default="M", choices=("S", "M", "L"))
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--calls", type=int, default=100_000)
    p.add_argument("--port", type=int, default=50391, help="fixed port (needed with --processes > 1)")
    p.add_argument("--modes", default="off,on", help="observability modes to run, in order")
    p.add_argument("--out", help="write the figures as JSON here")
    a = p.parse_args(argv)
    c = cache.ensure(a.scale, 0)
    segs = {s.name: s.segment for s in suite.segments(cache.sample_ids(c))}
    jsons = {s.name: s.json for s in suite.segments(cache.sample_ids(c))}
    report = {"scale": a.scale, "processes": a.processes, "clients": a.clients, "cpus": os.cpu_count()}
    report["cli_count"] = {n: cli_count(c.data_dir, c.dataset, jsons[n], suite.AS_OF)
                           for n in ("seed_best50_diamond", "seed_birthday_month_member")}
    print("CLI count:", report["cli_count"], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for mode in a.modes.split(","):
            args = ["--port", str(a.port if a.processes > 1 else 0), "--processes", str(a.processes),
                    "--warm", "all"]
            if mode == "on":
                args += ["--metrics-port", str(a.port + 1000), "--access-log", str(tmp / "access.log")]
            else:
                args += ["--access-log", "off"]
            proc, port, ready_s, log = start(c.data_dir, args, tmp)
            try:
                target = f"127.0.0.1:{port}"
                r = {"ready_s": round(ready_s, 2), "first_calls": first_calls(target, c.dataset, segs, suite.AS_OF)}
                cpu0, mine0 = cpu_seconds(proc.pid), _self_cpu()
                r["load"] = run_load(target, c.dataset, [segs[n] for n in CHEAP], suite.AS_OF, a.clients, a.calls,
                                     "count", a.seconds, warm_up=True)
                done = r["load"]["calls_done"] + len(CHEAP)   # the load's warm-up calls count too
                r["server_cpu_ms_per_call"] = round((cpu_seconds(proc.pid) - cpu0) * 1000 / max(done, 1), 3)
                r["client_cpu_ms_per_call"] = round((_self_cpu() - mine0) * 1000 / max(done, 1), 3)
                if mode == "on":
                    lines = (tmp / "access.log").read_text().splitlines()
                    r["access_log_lines"] = len(lines)
            finally:
                stop(proc)
            report.setdefault("runs", []).append({"mode": mode, **r})
            print(mode, json.dumps(r), flush=True)
    runs = report.get("runs", [])
    by = {m: [r for r in runs if r["mode"] == m] for m in ("off", "on")}
    if by["off"] and by["on"]:
        mean = lambda rs, f: sum(f(r) for r in rs) / len(rs)  # noqa: E731
        tput = {m: mean(rs, lambda r: r["load"]["throughput_per_s"]) for m, rs in by.items()}
        cpu = {m: mean(rs, lambda r: r["server_cpu_ms_per_call"]) for m, rs in by.items()}
        report["observability"] = {
            "throughput_per_s": {m: round(v, 1) for m, v in tput.items()},
            "throughput_cost_pct": round(100 * (tput["off"] - tput["on"]) / tput["off"], 1),
            "server_cpu_ms_per_call": {m: round(v, 3) for m, v in cpu.items()},
            "cpu_cost_pct": round(100 * (cpu["on"] - cpu["off"]) / cpu["off"], 1),
            "record_us": observer_overhead_us()}
        print("observability:", json.dumps(report["observability"]))
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
