"""Many small datasets: each generated with its own seed and size and ingested
(make_dataset, run by `python -m segments.bench.tenants_data --worker` processes that take
one job per line on stdin and answer one JSON line each), or, for tests, copies of one
ingested template (clone_dataset).

A dataset is a folder, so a clone is a copy of the template's folder with the new name in
its settings (parts, CURRENT, the version's manifest and its change log, which each clone
then appends to on its own; files never written in place are hard-linked). Parts are
copied, not hard-linked: LMDB refuses to open one file twice in a process.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

# Shards under this many customers are built lean by the bench (engine.storage.layout.
# LEAN_CUSTOMERS): every shard of the size law's datasets (the largest, 100x the median,
# has a full shard of 65,536 customers and one of 34,464).
LEAN_CUSTOMERS = 1 << 17
BUILD_BYTES_PER_CUSTOMER = 8 << 10   # input files and the part of one dataset's build, per customer (bound)


def clone_dataset(src: Path, root: Path, name: str) -> Path:
    """A copy of dataset folder `src` as dataset `name` under `root`: parts and change logs
    copied, the settings rewritten, and the files never changed in place (a version's
    manifest and dictionaries, CURRENT: replaced by a rename) hard-linked."""
    src, dst = Path(src), Path(root) / name
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.name.startswith("."):
            continue
        if p.is_dir():
            copy = p.name == "parts" or p.name.endswith(".log")
            for d, _, files in os.walk(p):
                out = dst / Path(d).relative_to(src)
                out.mkdir(exist_ok=True)
                for f in files:
                    (shutil.copyfile if copy else os.link)(Path(d) / f, out / f)
        elif p.name == "dataset.json":
            cfg = json.loads(p.read_text())
            cfg["name"] = name
            (dst / p.name).write_text(json.dumps(cfg))
        else:
            os.link(p, dst / p.name)
    return dst


def heavy_tailed_sizes(n: int, median: int = 1000, sigma: float = 1.5, lo: int = 200, hi: int = 100_000,
                       seed: int = 0) -> np.ndarray:
    """n dataset sizes (customers) from a log-normal law around `median`: with sigma 1.5
    about 1 in 1,000 is 100x the median, 1 in 100 is 30x."""
    rng = np.random.default_rng(seed)
    return np.clip(np.round(median * np.exp(sigma * rng.standard_normal(n))), lo, hi).astype(np.int64)


def size_classes(sizes: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Index of the nearest class (in log terms) of each size."""
    c = np.log(np.asarray(classes, float))
    return np.abs(np.log(sizes.astype(float))[:, None] - c[None, :]).argmin(axis=1)


def make_dataset(engine, inputs: Path, name: str, customers: int, seed: int, keep_free: int = 0) -> dict:
    """Generate dataset `name` (`customers` customers, its own seed) into a folder under
    `inputs`, create and ingest it with `engine`, delete the input files; kept as is when
    it was built before (CURRENT present; a half-built one is rebuilt). {"status": "full"}
    without building when that could leave less than keep_free bytes free."""
    from .generate import generate

    folder = Path(engine.root) / name
    if (folder / "CURRENT").exists():
        return {"name": name, "status": "existed", "customers": customers, "bytes": _folder_bytes(folder)}
    if shutil.disk_usage(engine.root).free - customers * BUILD_BYTES_PER_CUSTOMER < keep_free:
        return {"name": name, "status": "full"}
    if folder.exists():
        engine.delete_dataset(name) if (folder / "dataset.json").exists() else shutil.rmtree(folder)
    src = Path(inputs) / name
    t0 = time.perf_counter()
    generate(src, customers=customers, seed=seed, workers=1)
    t1 = time.perf_counter()
    engine.create_dataset(name, "America/New_York")
    engine.ingest(name, src)
    t2 = time.perf_counter()
    shutil.rmtree(src, ignore_errors=True)
    engine.close_idle()
    return {"name": name, "status": "built", "customers": customers, "bytes": _folder_bytes(folder),
            "generate_s": round(t1 - t0, 4), "ingest_s": round(t2 - t1, 4)}


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in [folder, *folder.rglob("*")])


def _worker() -> None:
    """Build the datasets of the job lines on stdin: [data, inputs, name, customers, seed,
    keep_free] each; one JSON answer line per job on stdout."""
    from segments.engine.api import Engine

    engines: dict = {}
    for line in sys.stdin:
        data, inputs, name, customers, seed, keep_free = json.loads(line)
        eng = engines.get(data)
        if eng is None:   # loads at this process's priority (the bench runs under nice)
            eng = engines[data] = Engine(data, auto_compact=False, build_nice=0)
        print(json.dumps(make_dataset(eng, Path(inputs), name, customers, seed, keep_free)), flush=True)
    for eng in engines.values():
        eng.close()


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _worker()
