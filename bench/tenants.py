"""Many tenants on one server: N small datasets, one `segments serve`, a load generator in
another process.

    python -m segments.bench.tenants --datasets 10000 [--median 1000] [--seconds 30]
        [--clients 8] [--max-open-datasets 2000] [--heavy-customers 1000000] [--keep-free 15G]
        [--workers 2] [--lean-customers 131072] [--work DIR [--only-build]] [--out FILE]

1. Builds the datasets (bench/tenants_data.py): sizes drawn from a log-normal law around
   --median customers (1 in 1,000 is forced to 100x the median), each dataset generated
   (bench/generate) with its own seed and size and ingested, by --workers processes
   (resumable: a --work folder's datasets already built are kept); shards under
   --lean-customers customers are built lean (engine/storage/layout.py LEAN_CUSTOMERS).
2. Starts `segments serve` on them (--warm synthetic: the kernels, no dataset), with the
   open-dataset budget given.
3. From a load-generator process: a *cold sweep* (one Count on every dataset, in random
   order: each opens its dataset, so every one is shown to answer), a *warm* pass (a
   Count twice on datasets that stay open, the second timed), then a *Zipf load*:
   --clients streams for --seconds, each call picking a dataset by a Zipf law (s = 1.1)
   over a random order of the datasets, 80% cheap Counts and 20% Previews.
4. With --heavy-customers C > 0, *fairness*: one tenant gets a bulk load of C customers
   through Ingest and 8 concurrent heavy segments on its own data while 4 streams of
   Counts on the others measure their latency; with --compare it runs again on a server
   without per-dataset limits and with loads at the readers' priority.

Datasets are built only while the disk keeps --keep-free bytes free (the run then has
fewer than asked, and says so); a guard deletes the data folder if something else fills
the disk below it meanwhile. Throughout, the server's RSS, VmSize, open descriptors, page
faults and bytes mapped from the data folder are sampled from /proc. The server's access log gives each call's engine time, so
latencies are shown beside the engine's own. Results: stdout, and JSON with --out.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .tenants_data import LEAN_CUSTOMERS, heavy_tailed_sizes, size_classes

# input files, spill files and the new part of a bulk load, per customer (~20 lines each)
LOAD_BYTES_PER_CUSTOMER = 8 << 10
CLASSES = (250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 100000)   # size classes latencies are shown by
CHEAP = ("seed_birthday_month_member", "profile_bitmaps", "suppression_exclude", "seed_married_today",
         "count_dispensary_prev_month")
HEAVY = ("seed_best50_diamond", "seed_top100_beads_gold_charm", "seed_lapsing_regulars")


# ---------------------------------------------------------------- building

def folder_bytes(folder: Path) -> int:
    """Bytes a folder takes on disk (allocated blocks of its files and folders)."""
    return sum(p.stat().st_blocks * 512 for p in [folder, *folder.rglob("*")])


def build(work: Path, n: int, median: int, seed: int, log, keep_free: int = 0, workers: int = 2,
          lean: int = LEAN_CUSTOMERS) -> dict:
    """The data folder of n datasets, each generated (its own seed and size) and ingested by
    one of `workers` processes (fewer datasets when more would leave less than `keep_free`
    bytes free on the disk); datasets already built there (a resumed run) are kept. Shards
    under `lean` customers are built lean (SEGMENTS_LEAN_CUSTOMERS). Returns their names
    and sizes and the build's figures."""
    sizes = heavy_tailed_sizes(n, median, sigma=1.0, hi=100 * median, seed=seed)
    giants = max(1, n // 1000)
    sizes[np.random.default_rng(seed + 1).choice(n, giants, replace=False)] = 100 * median
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    names = [f"t{i:05d}" for i in range(n)]
    jobs = [(str(data), str(work / "inputs"), names[i], int(sizes[i]), seed * 1_000_003 + i, keep_free)
            for i in range(n)]
    t0 = time.perf_counter()
    env = {**os.environ, "SEGMENTS_LEAN_CUSTOMERS": str(lean)}
    built, stopped, done_before = {}, 0, 0
    procs = [subprocess.Popen([sys.executable, "-m", "segments.bench.tenants_data", "--worker"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(max(1, workers))]
    try:
        queue = iter(jobs)
        busy = {}
        for p in procs:
            job = next(queue, None)
            if job is not None:
                p.stdin.write(json.dumps(job) + "\n")
                p.stdin.flush()
                busy[p.stdout.fileno()] = p
        import selectors
        sel = selectors.DefaultSelector()
        for p in busy.values():
            sel.register(p.stdout, selectors.EVENT_READ, p)
        while busy:
            for key, _ in sel.select():
                p = key.data
                line = p.stdout.readline()
                if not line:
                    raise RuntimeError("a dataset-building worker exited")
                r = json.loads(line)
                if r["status"] == "full":
                    stopped += 1
                else:
                    built[r["name"]] = r
                    done_before += r["status"] == "existed"
                    if len(built) % 500 == 0:
                        free = shutil.disk_usage(data).free
                        log(f"{len(built)} datasets built in {time.perf_counter() - t0:.0f} s "
                            f"({free / 2**30:.1f} GiB free, load {load_average()})")
                job = next(queue, None) if not stopped else None
                if job is None:
                    sel.unregister(p.stdout)
                    busy.pop(p.stdout.fileno())
                    continue
                p.stdin.write(json.dumps(job) + "\n")
                p.stdin.flush()
    finally:
        for p in procs:
            p.stdin.close()
            p.wait()
    seconds = time.perf_counter() - t0
    if stopped:
        log(f"stopped at {len(built)} datasets: {keep_free / 2**30:.1f} GiB kept free")
    names = [nm for nm in names if nm in built]
    customers = np.array([built[nm]["customers"] for nm in names] or [0])   # [0]: none built
    fresh = [built[nm] for nm in names if built[nm]["status"] == "built"]
    du = folder_bytes(data)
    by_class = {}
    cls = size_classes(customers[:len(names)], CLASSES) if names else np.zeros(0, int)
    for k, nm in zip(cls, names):
        by_class.setdefault(CLASSES[k], []).append(built[nm]["bytes"])
    return {"names": names, "customers": customers.tolist()[:len(names)], "requested": n, "workers": workers,
            "lean_customers": lean, "build_s": round(seconds, 1), "resumed": done_before,
            "generate_s_mean": round(float(np.mean([r["generate_s"] for r in fresh])), 3) if fresh else None,
            "ingest_s_mean": round(float(np.mean([r["ingest_s"] for r in fresh])), 3) if fresh else None,
            "disk_bytes": du, "bytes_per_customer": round(du / max(1, int(customers.sum())), 1),
            "dataset_bytes_by_customers": {str(c): int(np.mean(b)) for c, b in sorted(by_class.items())},
            "sizes": {"median": int(np.median(customers)), "mean": round(float(customers.mean()), 1),
                      "p99": int(np.percentile(customers, 99)), "max": int(customers.max()),
                      "total": int(customers.sum())}}


# ---------------------------------------------------------------- the server, from outside

class DiskGuard:
    """Watches the free space of `folder`'s disk every second; below `keep_free` (another
    job filling the disk meanwhile) it deletes `folder` at once and remembers that it did."""

    def __init__(self, folder: Path, keep_free: int, log):
        self.folder, self.keep_free, self.log = folder, keep_free, log
        self.tripped = False
        self.procs: list = []  # processes killed first (an open part's blocks stay in use until closed)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        if keep_free > 0:
            self._t.start()

    def _run(self):
        while not self._stop.wait(1.0):
            free = shutil.disk_usage(self.folder.parent).free
            if free < self.keep_free:
                self.tripped = True
                self.log(f"only {free / 2**30:.1f} GiB free: deleting {self.folder} and stopping")
                for p in self.procs:
                    p.kill()
                shutil.rmtree(self.folder, ignore_errors=True)
                return

    def stop(self):
        self._stop.set()


def load_average() -> list:
    """The machine's 1, 5 and 15 minute load averages (every timing is read beside them)."""
    return [round(x, 2) for x in os.getloadavg()]


def parse_size(text: str) -> int:
    """'15G', '500M', '0' -> bytes."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = str(text).strip().upper().rstrip("IB")
    return int(float(t.rstrip("KMGT") or 0) * units[t[len(t.rstrip("KMGT")):]])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(data: Path, work: Path, args: list) -> tuple:
    """`segments serve` in a child process; (process, target)."""
    port = free_port()
    out = open(work / f"serve-{port}.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "segments.cli.main", "--data", str(data), "serve",
                             "--port", str(port), "--warm", "synthetic", *args],
                            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if "serving " in Path(out.name).read_text():
            return proc, f"127.0.0.1:{port}"
        if proc.poll() is not None:
            raise RuntimeError("the server exited: " + Path(out.name).read_text()[-2000:])
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not become ready")


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def process_figures(pid: int, data: Path) -> dict:
    """RSS, VmSize, open descriptors, page faults and bytes mapped from files under `data`
    of a process."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmSize", "VmHWM", "RssAnon", "RssFile"):
            out[k] = int(v.split()[0]) * 1024
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    out["minor_faults"], out["major_faults"] = int(stat[7]), int(stat[9])  # pages mapped / read from disk
    prefix = str(data.resolve())
    mapped = 0
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith(prefix):
                a, b = (int(x, 16) for x in parts[0].split("-"))
                mapped += b - a
    out["mapped_bytes"] = mapped
    return out


class Sampler:
    """Samples process_figures every `period` seconds in a thread; keeps peaks."""

    def __init__(self, pid: int, data: Path, period: float = 0.5):
        self.pid, self.data, self.period = pid, data, period
        self.peak: dict = {}
        self.last: dict = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.period)

    def sample(self) -> dict:
        try:
            f = process_figures(self.pid, self.data)
        except (OSError, ValueError):
            return self.last
        self.last = f
        for k, v in f.items():
            self.peak[k] = max(self.peak.get(k, 0), v)
        free = shutil.disk_usage(self.data).free
        self.min_free = min(getattr(self, "min_free", free), free)
        return f

    def stop(self) -> dict:
        self._stop.set()
        self._t.join()
        return {"peak": self.peak, "last": self.sample(), "disk_free_min": self.min_free}


def open_stats(metrics_port: int) -> dict:
    """The server's open-dataset figures from its metrics endpoint."""
    import urllib.request
    want = ("segments_open_datasets", "segments_open_files", "segments_mapped_bytes",
            "segments_dataset_opens_total", "segments_dataset_closes_total")
    out = {}
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in want:
            out[name] = float(value)
    return out


def engine_times(access_log: Path, since_line: int = 0) -> tuple:
    """Engine ms and total ms of the access log's Count/Preview lines from `since_line` on."""
    eng, tot = [], []
    lines = access_log.read_text().splitlines() if access_log.exists() else []
    for line in lines[since_line:]:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("status") == "OK" and r.get("method", "").endswith(("/Count", "/Preview")):
            eng.append(r.get("engine_ms", 0.0))
            tot.append(r.get("total_ms", 0.0))
    return eng, tot, len(lines)


def pct(values, qs=(50, 90, 99, 99.9)) -> dict:
    if not len(values):
        return {}
    a = np.asarray(values, float)
    out = {f"p{q:g}": round(float(np.percentile(a, q)), 2) for q in qs}
    out["max"] = round(float(a.max()), 2)
    out["mean"] = round(float(a.mean()), 2)
    out["n"] = int(a.size)
    return out


# ---------------------------------------------------------------- the load generator (a child process)

def _segments():
    from . import suite
    segs = {s.name: s.segment for s in suite.segments()}
    return suite.AS_OF, [segs[n] for n in CHEAP], [segs[n] for n in HEAVY]


def zipf_picker(names: list, s: float, seed: int):
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(names)))
    w = 1.0 / np.arange(1, len(names) + 1) ** s
    cdf = np.cumsum(w / w.sum())
    return lambda r: names[order[min(int(np.searchsorted(cdf, r.random())), len(names) - 1)]]


def load_main(spec: dict) -> dict:
    """What the load-generator process runs: the phases named in spec; latencies in ms."""
    from segments.client.client import SegmentsClient

    as_of, cheap, heavy = _segments()
    target, names = spec["target"], spec["names"]
    out: dict = {}
    errors: dict = {}

    def err(e):
        code = getattr(e, "code", lambda: type(e).__name__)()
        errors[str(code)] = errors.get(str(code), 0) + 1

    if spec.get("sweep"):
        order = list(names)
        random.Random(1).shuffle(order)
        lat, answered = [], 0
        with SegmentsClient(target, timeout=60) as c:
            c.list_datasets()
            for name in order:
                t0 = time.perf_counter()
                try:
                    c.count(name, cheap[0], as_of)
                    answered += 1
                except Exception as e:  # noqa: BLE001
                    err(e)
                lat.append((time.perf_counter() - t0) * 1e3)
        out["cold"] = {"latency_ms": pct(lat), "answered": answered, "datasets": len(order)}
        sizes = dict(zip(names, spec.get("customers") or [0] * len(names)))
        by = {}
        for name, ms in zip(order, lat):
            by.setdefault(sizes[name], []).append(ms)
        out["cold"]["latency_ms_by_customers"] = {str(k): pct(v, (50, 99)) for k, v in sorted(by.items())}
    if spec.get("warm"):
        hot = names[:spec["warm"]]
        lat = []
        with SegmentsClient(target, timeout=60) as c:
            for name in hot:
                c.count(name, cheap[0], as_of)
            for name in hot:
                t0 = time.perf_counter()
                c.count(name, cheap[0], as_of)
                lat.append((time.perf_counter() - t0) * 1e3)
        out["warm"] = {"latency_ms": pct(lat), "datasets": len(hot)}
    if spec.get("zipf_seconds"):
        out["zipf"] = _streams(target, names, spec["clients"], spec["zipf_seconds"], cheap, as_of, err,
                               preview_share=0.2)
    if spec.get("fair"):
        f = spec["fair"]
        out["fair"] = _fair(target, f["heavy"], [n for n in names if n != f["heavy"]], f, cheap, heavy, as_of, err)
    out["errors"] = errors
    return out


def _streams(target, names, clients, seconds, cheap, as_of, err, preview_share=0.0, stop_event=None):
    from segments.client.client import SegmentsClient

    lat = [[] for _ in range(clients)]
    end = time.monotonic() + seconds

    def run(k):
        pick = zipf_picker(names, 1.1, 7)
        r = random.Random(k)
        with SegmentsClient(target, timeout=60) as c:
            while time.monotonic() < end and not (stop_event is not None and stop_event.is_set()):
                name = pick(r)
                seg = cheap[r.randrange(len(cheap))]
                t0 = time.perf_counter()
                try:
                    if r.random() < preview_share:
                        c.preview(name, seg, 20, ("email",), as_of)
                    else:
                        c.count(name, seg, as_of)
                except Exception as e:  # noqa: BLE001
                    err(e)
                    continue
                lat[k].append((time.perf_counter() - t0) * 1e3)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    every = [x for xs in lat for x in xs]
    return {"clients": clients, "seconds": round(wall, 1), "calls": len(every),
            "calls_per_s": round(len(every) / wall, 1), "latency_ms": pct(every)}


def _fair(target, heavy_ds, others, f, cheap, heavy, as_of, err):
    """A bulk load and 8 heavy segments on one dataset, Counts on the others meanwhile."""
    from segments.client.client import SegmentsClient

    done = threading.Event()
    heavy_lat, refused = [], [0]
    load_s = {}

    def loader():
        t0 = time.perf_counter()
        with SegmentsClient(target, timeout=3600) as c:
            try:
                load_s["rows"] = c.ingest(heavy_ds, ".")
            except Exception as e:  # noqa: BLE001
                err(e)
        load_s["seconds"] = round(time.perf_counter() - t0, 1)

    def heavy_stream(k):
        r = random.Random(100 + k)
        with SegmentsClient(target, timeout=120) as c:
            while not done.is_set():
                t0 = time.perf_counter()
                try:
                    c.count(heavy_ds, heavy[r.randrange(len(heavy))], as_of)
                    heavy_lat.append((time.perf_counter() - t0) * 1e3)
                except Exception as e:  # noqa: BLE001
                    err(e)
    # the others alone first (the baseline), then beside the heavy tenant
    base = _streams(target, others, 4, f["seconds"], cheap, as_of, err)
    lt = threading.Thread(target=loader)
    hs = [threading.Thread(target=heavy_stream, args=(k,)) for k in range(8)]
    lt.start()
    for t in hs:
        t.start()
    time.sleep(1.0)
    during = _streams(target, others, 4, f["seconds"], cheap, as_of, err)
    done.set()
    for t in hs:
        t.join()
    lt.join()
    return {"others_alone": base, "others_during": during, "heavy_count_ms": pct(heavy_lat),
            "load": load_s, "heavy_dataset": heavy_ds}


def run_load(spec: dict, work: Path) -> dict:
    """The load generator in a child process (so its CPU and GIL are not the server's)."""
    path = work / f"spec-{time.time_ns()}.json"
    path.write_text(json.dumps(spec))
    res = subprocess.run([sys.executable, "-m", "segments.bench.tenants", "--load-spec", str(path)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError("load generator failed: " + res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the whole run

def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m segments.bench.tenants", description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", type=int, default=10_000)
    p.add_argument("--median", type=int, default=1000, help="median customers per dataset")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the Zipf load")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--max-open-datasets", type=int, default=2000)
    p.add_argument("--max-open-files", type=int, default=None)
    p.add_argument("--max-mapped-bytes", default="3G",
                   help="the server's mapped-bytes budget ('' for none): the issue's RSS target was met with 3G")
    p.add_argument("--heavy-customers", type=int, default=1_000_000,
                   help="customers of the fairness phase's bulk load (0: skip the phase)")
    p.add_argument("--fair-seconds", type=float, default=15.0)
    p.add_argument("--compare", action="store_true", help="run the fairness phase without limits too")
    p.add_argument("--serve-args", default="", help="more `segments serve` flags, e.g. '--tenant-concurrency 1'")
    p.add_argument("--only-fair", action="store_true", help="skip the cold, warm and Zipf phases")
    p.add_argument("--work", default=None, help="working folder (default: a temporary one, removed)")
    p.add_argument("--keep", action="store_true", help="keep the working folder")
    p.add_argument("--keep-free", default="15G",
                   help="copy no more datasets, and skip the bulk load, when they would leave less than this free")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes generating and ingesting the datasets")
    p.add_argument("--lean-customers", type=int, default=LEAN_CUSTOMERS,
                   help="shards under this many customers are built lean (SEGMENTS_LEAN_CUSTOMERS; 0: none)")
    p.add_argument("--only-build", action="store_true", help="build the datasets (into --work) and stop")
    p.add_argument("--out", default=None)
    p.add_argument("--load-spec", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.load_spec:
        print(json.dumps(load_main(json.loads(Path(a.load_spec).read_text()))))
        return

    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="segments-tenants-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"datasets": a.datasets, "median_customers": a.median, "machine": {"cores": os.cpu_count()}}
    keep_free = parse_size(a.keep_free)
    (work / "data").mkdir(exist_ok=True)
    guard = DiskGuard(work / "data", keep_free - (1 << 30), log)  # build() keeps keep_free itself
    try:
        t0 = time.perf_counter()
        built = build(work, a.datasets, a.median, a.seed, log, keep_free, a.workers, a.lean_customers)
        names = built.pop("names")
        customers = built.pop("customers")
        report["build"] = built
        report["datasets"] = len(names)
        log(f"built {len(names)} datasets in {time.perf_counter() - t0:.0f} s ({built['disk_bytes'] / 2**30:.1f} GiB)")
        if a.only_build:
            print(json.dumps(report, indent=1))
            return
        uploads = work / "uploads"
        (work / "access.log").unlink(missing_ok=True)
        metrics_port = free_port()
        flags = ["--max-open-datasets", str(a.max_open_datasets), "--access-log", str(work / "access.log"),
                 "--ingest-root", str(uploads), "--metrics-port", str(metrics_port)]
        if a.max_open_files is not None:
            flags += ["--max-open-files", str(a.max_open_files)]
        if a.max_mapped_bytes:
            flags += ["--max-mapped-bytes", a.max_mapped_bytes]
        flags += a.serve_args.split()
        report["serve_flags"] = flags[:2] + flags[8:]
        proc, target = serve(work / "data", work, flags)
        guard.procs.append(proc)
        try:
            sampler = Sampler(proc.pid, work / "data")
            report["server_ready"] = sampler.sample()
            report["load_average_at_start"] = load_average()
            if not a.only_fair:
                report.update(served_phases(a, work, target, names, customers, sampler, metrics_port, log))
            if a.heavy_customers > 0:
                report["fair"] = fairness(a, work, names, customers, target, uploads, log, keep_free)
            report["server"] = sampler.stop()
        finally:
            stop(proc)
        if a.heavy_customers > 0 and a.compare:
            proc, target = serve(work / "data", work, flags + ["--tenant-concurrency", "0", "--build-nice", "0"])
            guard.procs.append(proc)
            try:
                report["fair_without_limits"] = fairness(a, work, names, customers, target, uploads, log, keep_free)
            finally:
                stop(proc)
    finally:
        guard.stop()
        if not a.keep and not a.work:
            shutil.rmtree(work, ignore_errors=True)
    if guard.tripped:
        raise SystemExit("stopped: the disk got fuller than --keep-free allows (the data folder was deleted)")
    text = json.dumps(report, indent=1)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text + "\n")


def served_phases(a, work: Path, target: str, names, customers, sampler, metrics_port: int, log) -> dict:
    """The cold sweep, the warm pass and the Zipf load, with the server's figures after each."""
    out = {}
    log("cold sweep over every dataset")
    classes = [CLASSES[k] for k in size_classes(np.asarray(customers), CLASSES)]   # latencies by size class
    r = run_load({"target": target, "names": names, "customers": classes, "sweep": True}, work)
    eng, tot, seen = engine_times(work / "access.log")
    r["cold"]["engine_ms"] = pct(eng)
    r["cold"]["server_total_ms"] = pct(tot)
    r["cold"]["load_average"] = load_average()
    out["after_sweep"] = sampler.sample()
    out["after_sweep"]["open_stats"] = open_stats(metrics_port)
    log(f"cold: {r['cold']}")
    warm_n = min(200, max(1, a.max_open_datasets // 2) if a.max_open_datasets else 200, len(names))
    w = run_load({"target": target, "names": names, "warm": warm_n}, work)
    eng, tot, seen2 = engine_times(work / "access.log", seen)
    w["warm"]["engine_ms"] = pct(eng[warm_n:])
    w["warm"]["server_total_ms"] = pct(tot[warm_n:])
    w["warm"]["load_average"] = load_average()
    log(f"warm: {w['warm']}")
    log(f"Zipf load: {a.clients} streams for {a.seconds:.0f} s")
    z = run_load({"target": target, "names": names, "zipf_seconds": a.seconds, "clients": a.clients}, work)
    eng, _, _ = engine_times(work / "access.log", seen2)
    z["zipf"]["engine_ms"] = pct(eng)
    z["zipf"]["open_stats"] = open_stats(metrics_port)
    z["zipf"]["load_average"] = load_average()
    out["after_zipf"] = sampler.sample()
    log(f"zipf: {z['zipf']}")
    out.update(cold=r["cold"], warm=w["warm"], zipf=z["zipf"],
               errors={k: r["errors"].get(k, 0) + w["errors"].get(k, 0) + z["errors"].get(k, 0)
                       for k in set(r["errors"]) | set(w["errors"]) | set(z["errors"])})
    return out


def fairness(a, work: Path, names, customers, target, uploads: Path, log, keep_free: int = 0) -> dict:
    """The fairness phase on the largest dataset: its bulk load files generated first
    (skipped when the load could leave less than keep_free bytes free)."""
    from .generate import generate

    heavy = names[int(np.argmax(customers))]
    folder = uploads / heavy
    need = a.heavy_customers * LOAD_BYTES_PER_CUSTOMER
    free = shutil.disk_usage(work).free
    if free - need < keep_free:
        log(f"fairness skipped: the load needs ~{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free")
        return {"skipped": f"disk: ~{need} bytes needed, {free} free, {keep_free} kept free"}
    if not folder.exists():
        log(f"generating the bulk load of {a.heavy_customers} customers for {heavy}")
        generate(folder, customers=a.heavy_customers, seed=a.seed + 99)
    log(f"fairness: a load of {a.heavy_customers} customers and 8 heavy streams on {heavy}")
    f = run_load({"target": target, "names": names,
                  "fair": {"heavy": heavy, "seconds": a.fair_seconds}}, work)
    log(f"fair: {json.dumps(f['fair'])}")
    f["fair"]["errors"] = f["errors"]
    f["fair"]["load_average"] = load_average()
    return f["fair"]


if __name__ == "__main__":
    main()
