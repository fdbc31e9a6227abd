"""The bench's datasets: generated and ingested once per (scale, shape, seed), reused when present.

    bench/cache/<scale>-seed<seed>/input/           engine.generate's Parquet files
    bench/cache/<scale>-seed<seed>/data/            an engine data directory holding "bench"
    bench/cache/<scale>-seed<seed>/manifest.json    written last: its presence means complete

(the default shape; any other shape lives in bench/cache/<scale>-<shape>-seed<seed>/).

Generation and ingest each run in a child process (`python -m segments.bench.cache --child ...`)
that reports its own wall time and peak RSS (getrusage of itself), so the figures are the
ingest's alone, not the bench's. The manifest records hashes of the generator's and the
builder's sources: when either changed since, the stale part is rebuilt (input and data for
the generator, data only for the builder). bench/cache/ is git-ignored.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "bench" / "cache"
DATASET = "bench"
TIMEZONE = "America/New_York"
GENERATOR_SOURCES = ("bench/generate/__init__.py", "bench/generate/lines.py", "bench/generate/tables.py",
                     "bench/generate/vocab.py", "bench/generate/shapes.py", "engine/model/schema.py")
BUILDER_SOURCES = ("engine/storage/build.py", "engine/storage/build_kernels.py", "engine/storage/customer_attrs.py",
                   "engine/storage/ingest_read.py", "engine/storage/text_index.py", "engine/storage/load.py",
                   "engine/storage/runs.py", "engine/storage/shard_customers.py", "engine/storage/manifest.py",
                   "engine/storage/parts.py", "engine/model/schema.py", "engine/model/timerange.py")


@dataclass
class Cached:
    """One cached dataset and how it was made (times of the run that made it)."""
    scale: str
    seed: int
    input_dir: str
    data_dir: str
    dataset: str
    timezone: str
    rows: dict
    input_bytes: int
    generate_s: float
    generate_peak_rss_mb: float
    ingest_s: float
    ingest_rows_per_s: float
    ingest_lines_per_s: float        # purchase + visit lines per second
    ingest_peak_rss_mb: float
    bytes_on_disk: int
    generator_hash: str
    builder_hash: str
    reused: bool = False
    shape: str = "default"


def sources_hash(paths) -> str:
    """sha256 (first 16 hex digits) of the named source files' contents."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode())
        h.update((ROOT / p).read_bytes())
    return h.hexdigest()[:16]


def folder(scale: str, seed: int, shape: str = "default") -> Path:
    return CACHE_DIR / (f"{scale}-seed{seed}" if shape == "default" else f"{scale}-{shape}-seed{seed}")


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def _child(args: list) -> dict:
    """Run `python -m segments.bench.cache --child ...`; its JSON report (loud on failure)."""
    cmd = [sys.executable, "-m", "segments.bench.cache", "--child", *args]
    # Nothing reads beside the bench's ingest: it builds at the normal priority, not the
    # engine's default nice 10 for loads (on a busy machine a niced build's wall time
    # measures the other work, not the build); SEGMENTS_BUILD_NICE set by the caller wins.
    env = {**os.environ, "SEGMENTS_BUILD_NICE": os.environ.get("SEGMENTS_BUILD_NICE", "0")}
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {r.returncode}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def ensure(scale: str, seed: int = 0, rebuild: bool = False, log=print, shape: str = "default") -> Cached:
    """The cached dataset of (scale, shape, seed), generating and ingesting what is missing or stale."""
    base = folder(scale, seed, shape)
    manifest = base / "manifest.json"
    gen_hash, build_hash = sources_hash(GENERATOR_SOURCES), sources_hash(BUILDER_SOURCES)
    old = None
    if manifest.exists() and not rebuild:
        old = Cached(**{**json.loads(manifest.read_text()), "reused": True,
                        "input_dir": str(base / "input"), "data_dir": str(base / "data")})
        complete = (base / "input").is_dir() and (base / "data").is_dir()
        if old.generator_hash == gen_hash and old.builder_hash == build_hash and complete:
            log(f"dataset: reusing {base.relative_to(ROOT)} (made with generate {old.generate_s:.1f} s, "
                f"ingest {old.ingest_s:.1f} s)")
            return old
        why = ("the generator changed since" if old.generator_hash != gen_hash else
               "the builder changed since" if old.builder_hash != build_hash else
               "its input or data folder is missing")
        log(f"dataset: {base.relative_to(ROOT)} is stale ({why}): rebuilding")
    input_dir, data_dir = base / "input", base / "data"
    manifest.unlink(missing_ok=True)
    regenerate = rebuild or old is None or old.generator_hash != gen_hash or not input_dir.is_dir()
    if regenerate:
        shutil.rmtree(input_dir, ignore_errors=True)
        for derived in [base / "codes.json", *base.glob("duckdb.db*")]:   # made from the old input
            derived.unlink(missing_ok=True)
        log(f"dataset: generating scale {scale} shape {shape} seed {seed} into {input_dir.relative_to(ROOT)} ...")
        gen = _child(["generate", str(input_dir), scale, str(seed), shape])
    else:
        gen = {"seconds": old.generate_s, "peak_rss_mb": old.generate_peak_rss_mb}
    shutil.rmtree(data_dir, ignore_errors=True)
    log(f"dataset: ingesting into {data_dir.relative_to(ROOT)} ...")
    ing = _child(["ingest", str(data_dir), str(input_dir)])
    rows = ing["rows"]
    lines = rows.get("purchases", 0) + rows.get("visits", 0)
    cached = Cached(scale, seed, str(input_dir), str(data_dir), DATASET, TIMEZONE, rows,
                    _dir_bytes(input_dir), gen["seconds"], gen["peak_rss_mb"], ing["seconds"],
                    sum(rows.values()) / ing["seconds"], lines / ing["seconds"], ing["peak_rss_mb"],
                    ing["bytes_on_disk"], gen_hash, build_hash, shape=shape)
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(cached), indent=1))
    tmp.replace(manifest)
    log(f"dataset: generate {cached.generate_s:.1f} s, ingest {cached.ingest_s:.1f} s "
        f"({cached.ingest_lines_per_s:,.0f} lines/s, peak RSS {cached.ingest_peak_rss_mb:,.0f} MB)")
    return cached


def sample_ids(c: Cached, k: int = 1000) -> list:
    """k customer_ids spread evenly over the cached dataset's ids (read from its input files)."""
    ids = all_ids(c)
    step = max(1, ids.size // k)
    return [int(x) for x in ids[::step][:k]]


def all_ids(c: Cached):
    """Every customer_id of the cached dataset's input, sorted, as an int64 array."""
    import numpy as np
    import pyarrow.dataset as ds

    src = Path(c.input_dir)
    path = src / "customers" if (src / "customers").is_dir() else next(src.glob("customers.*"))
    fmt = "csv" if path.suffix == ".csv" or any(path.glob("*.csv")) else "parquet"
    return np.sort(ds.dataset(str(path), format=fmt).to_table(columns=["customer_id"])
                   .column("customer_id").to_numpy())


def sample_codes(c: Cached) -> dict:
    """Product values for the suite's data-dependent segments (bench.suite.pick_codes),
    chosen from the cached dataset's purchase lines, one input file at a time (at L the
    four string columns of 200M lines would take ~10 GB at once). Kept in codes.json beside
    the input, for the input of the same generator hash."""
    import pyarrow.dataset as ds

    from .suite import PICK_FIELDS, pick_codes_of_parts

    src = Path(c.input_dir)
    kept = src.parent / "codes.json"
    if kept.exists():
        saved = json.loads(kept.read_text())
        if saved.get("generator_hash") == c.generator_hash:
            return saved["codes"]
    path = src / "purchases" if (src / "purchases").is_dir() else next(src.glob("purchases.*"))
    fmt = "csv" if path.suffix == ".csv" or any(path.glob("*.csv")) else "parquet"
    frags = ds.dataset(str(path), format=fmt).get_fragments()
    codes = pick_codes_of_parts(f.to_table(columns=list(PICK_FIELDS)) for f in frags)
    kept.write_text(json.dumps({"generator_hash": c.generator_hash, "codes": codes}, indent=1))
    return codes


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _child_main(argv) -> None:
    """Child process: `generate OUT SCALE SEED [SHAPE]` or `ingest DATA INPUT`; prints one JSON line."""
    kind = argv[0]
    if kind == "generate":
        from .generate import generate
        out, scale, seed = argv[1], argv[2], int(argv[3])
        shape = argv[4] if len(argv) > 4 else "default"
        t0 = time.perf_counter()
        report = {"rows": generate(out, scale=scale, seed=seed, shape=shape)}
        seconds = time.perf_counter() - t0
    elif kind == "ingest":
        from segments.engine.api import Engine
        data, src = argv[1], argv[2]
        engine = Engine(data)
        engine.create_dataset(DATASET, TIMEZONE)
        t0 = time.perf_counter()             # the ingest alone, not the imports
        report = {"rows": engine.ingest(DATASET, src)}
        seconds = time.perf_counter() - t0
        report["bytes_on_disk"] = engine.info(DATASET)["bytes_on_disk"]
        engine.close()
    else:
        raise SystemExit(f"unknown child task {kind!r}")
    report.update(seconds=round(seconds, 3), peak_rss_mb=round(_peak_rss_mb(), 1))
    print(json.dumps(report))


def main(argv=None) -> None:
    """`python -m segments.bench.cache --scale S [--shape default] [--seed 0] [--rebuild]`: make sure the dataset is cached."""
    from .generate.shapes import SHAPES
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m segments.bench.cache", description=main.__doc__)
    p.add_argument("--scale", default="S", choices=("S", "M", "L"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", default="default", choices=sorted(SHAPES))
    p.add_argument("--rebuild", action="store_true", help="regenerate and re-ingest even if cached")
    a = p.parse_args(argv)
    print(json.dumps(asdict(ensure(a.scale, a.seed, a.rebuild, shape=a.shape)), indent=1))


if __name__ == "__main__":
    main()
