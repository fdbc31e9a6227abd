"""The bench's outputs: the terminal table, bench/results/latest.json and the PNG chart.

latest.json (and a copy per scale and shape, scale-<S|M|L>.json for the default shape and
scale-<S|M|L>-<shape>.json for the others, for the scaling and shape tables) holds the
whole run: top-level scale, seed, date, machine, dataset, bandwidth, duckdb, grpc, jit,
summary, kernels, loadtest and "segments", one object per segment with at least segment,
engine_ms, grpc_ms, duckdb_ms, ratio and match (docs/benchmarks.md lists every field).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import List


def _ms(v) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _bytes(v) -> str:
    if v is None:
        return "-"
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if v >= k:
            return f"{v / k:.1f} {unit}"
    return f"{v:.0f} B"


def _x(v) -> str:
    return "-" if v is None else (f"{v:.1f}x" if v >= 10 else f"{v:.2f}x")


def _match(r) -> str:
    if not r["match"]:
        return "NO"
    if r.get("grpc_match") is False:
        return "grpc NO"
    return "yes"


def _duck_ms(r: dict, key: str = "duckdb_ms") -> str:
    """DuckDB's median, or '> limit' when its calls ran past the bench's time limit."""
    if r.get(key) is None and r.get("duckdb_over_limit"):
        return "> limit"
    return _ms(r.get(key))


def _ratio(r: dict) -> str:
    """The ratio, or '> Nx' (a lower bound) when DuckDB's count ran past the limit."""
    if r.get("ratio") is None and r.get("ratio_lower_bound"):
        return "> " + _x(r["ratio_lower_bound"])
    return _x(r.get("ratio"))


def progress_line(r: dict) -> str:
    """One line per segment while the bench runs."""
    unchecked = f"  unchecked: {', '.join(r['unchecked'])}" if r.get("unchecked") else ""
    return (f"  {r['segment']:<30} n={r['count'] if r['count'] is not None else '-':<7} "
            f"engine {_ms(r['engine_ms'])} ms  duckdb {_duck_ms(r)}{'' if _duck_ms(r) == '> limit' else ' ms'}  "
            f"{_ratio(r)}  read {_bytes(r.get('bytes_read'))}  {'match' if r['match'] else 'MISMATCH'}{unchecked}")


COLUMNS = (
    ("segment", "segment", lambda r: r["segment"]),
    ("count", "count", lambda r: "-" if r["count"] is None else f"{r['count']:,}"),
    ("first", "first ms", lambda r: _ms(r["first_ms"])),
    ("engine", "engine ms", lambda r: _ms(r["engine_ms"])),
    ("grpc", "grpc ms", lambda r: _ms(r.get("grpc_ms"))),
    ("duckdb", "duckdb ms", lambda r: _duck_ms(r)),
    ("ratio", "ratio", _ratio),
    ("preview", "prev ms", lambda r: _ms(r["preview_ms"])),
    ("mat", "mat ms", lambda r: _ms(r["materialize_ms"])),
    ("gmat", "grpc mat", lambda r: _ms(r.get("grpc_materialize_ms"))),
    ("dmat", "duck mat", lambda r: _duck_ms(r, "duckdb_materialize_ms")),
    ("mratio", "mat ratio", lambda r: _x(r["materialize_ratio"])),
    ("gbps", "scan GB/s", lambda r: "-" if r.get("scan_gbps") is None else
     f"{r['scan_gbps']:.2f} ({100 * r['scan_fraction']:.0f}%)"),
    ("read", "read", lambda r: _bytes(r.get("bytes_read"))),
    ("floor", "floor ms", lambda r: "-" if r.get("floor_ms") is None else f"{r['floor_ms']:.3f}"),
    ("targetx", "x target", lambda r: "-" if r.get("target_x") is None else f"{r['target_x']:.2f}"),
    ("match", "match", _match),
)


def _table(headers: List[str], rows: List[List[str]], left: int = 1) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def render(res: dict) -> str:
    """The whole run as text: segments table, kernels, load test, summary."""
    out = []
    m, d, bw, s = res["machine"], res["dataset"], res["bandwidth"], res["summary"]
    rows = res["segments"]
    out.append("")
    out.append(f"scale {res['scale']}, shape {res.get('shape', 'default')} (seed {res['seed']}): "
               f"{d['rows'].get('customers', 0):,} customers, "
               f"{d['rows'].get('purchases', 0):,} purchase lines, {d['rows'].get('visits', 0):,} visits; "
               f"as of {res['as_of']}; medians of {res['repeat']} after 1 warm-up")
    out.append(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {res['date']}; "
               f"load average {res['load_average']['start'][0]} -> {res['load_average']['end'][0]}")
    out.append("")
    out.append(_table([h for _, h, _ in COLUMNS], [[f(r) for _, _, f in COLUMNS] for r in rows]))
    out.append("")
    if res.get("kernels"):
        out.append(f"leaves (explain, median of its runs; memory bandwidth {bw['gbps']:.1f} GB/s; "
                   f"target ms <= 3 x floor + 1):")
        krows = [[_ms(k["ms"]), _bytes(k["bytes"]), f"{k.get('floor_ms', 0):.3f}",
                  "-" if k["gbps"] is None else f"{k['gbps']:.2f}",
                  "-" if k["fraction_of_bandwidth"] is None else f"{100 * k['fraction_of_bandwidth']:.0f}%",
                  "" if k.get("within_target", True) else "OVER",
                  k["leaf"] if len(k["leaf"]) <= 90 else k["leaf"][:87] + "..."] for k in res["kernels"]]
        out.append(_table(["ms", "read", "floor ms", "GB/s", "of bw", "target", "leaf"], krows, left=0))
        out[-1] = "\n".join(line.rstrip() for line in out[-1].splitlines())
        out.append("")
    lt = res.get("loadtest") or {}
    if "p50_ms" in lt:
        out.append(f"load test: {lt['calls_done']} {lt['call']} calls, {lt['clients']} concurrent clients, "
                   f"{lt['wall_s']:.1f} s: {lt['throughput_per_s']:.1f} calls/s, p50 {_ms(lt['p50_ms'])} ms, "
                   f"p95 {_ms(lt['p95_ms'])} ms, p99 {_ms(lt['p99_ms'])} ms, {lt['errors']} errors"
                   + (" (stopped at the time limit)" if lt.get("stopped_early") else ""))
    else:
        out.append(f"load test: skipped ({lt.get('skipped')})")
    if not res["grpc"]["available"]:
        out.append(f"grpc: skipped ({res['grpc']['reason']})")
    j = res["jit"]
    out.append(f"dataset: generate {d['generate_s']:.1f} s, ingest {d['ingest_s']:.1f} s "
               f"({d['ingest_lines_per_s']:,.0f} lines/s, peak RSS {d['ingest_peak_rss_mb']:,.0f} MB)"
               + (" [cached]" if d.get("reused") else "")
               + f"; duckdb {res['duckdb'].get('storage', 'memory')} load {res['duckdb']['load_s']:.1f} s "
               f"({res['duckdb']['threads']} threads"
               + (f", memory_limit {res['duckdb']['memory_limit']}" if res['duckdb'].get('memory_limit') else "")
               + ")")
    out.append(f"first calls: {j['first_call_overhead_ms'] / 1000:.1f} s over the medians in all "
               f"(numba compile of engine.kernels in this process {j['engine_kernels_compile_s']:.1f} s, "
               f"{j['cache_hits']} cache hits, {j['cache_misses']} misses)")
    out.append(f"bandwidth: {bw['gbps']:.1f} GB/s ({bw['gbps_threads']:.1f} with {bw['threads']} threads, "
               f"{bw['gbps_1thread']:.1f} on one)")
    out.append(f"summary: {s['segments']} segments, geometric mean ratio duckdb/engine {_x(s['geomean_ratio'])} "
               f"(count), {_x(s['geomean_materialize_ratio'])} (materialize); engine faster on "
               f"{s['engine_faster']}/{s['segments']}; {len(s['mismatches'])} mismatches; {s['wall_s']:.0f} s")
    if s.get("duckdb_over_limit"):
        out.append(f"DuckDB past its {res['duckdb'].get('limit_s')} s limit on {len(s['duckdb_over_limit'])} "
                   f"segment(s) (their ratio a lower bound; geometric mean with the bounds "
                   f"{_x(s.get('geomean_ratio_lower_bound'))}); answers not checked for: "
                   f"{', '.join(s.get('unchecked') or {}) or 'none'}")
    return "\n".join(out)


def write_json(res: dict, path: Path) -> Path:
    """Write atomically (a .tmp beside it, then rename); --out may name a new folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(res, indent=1, ensure_ascii=False, default=str))
    os.replace(tmp, path)
    return path


def chart(res: dict, path: Path) -> Path:
    """Engine vs DuckDB (and gRPC) count time per segment, horizontal bars, log scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in res["segments"] if r["engine_ms"]]
    names = [r["segment"] + ("" if r["match"] else "  (MISMATCH)") for r in rows]
    series = [("engine (in-process)", "engine_ms", "#1f77b4"), ("engine via gRPC", "grpc_ms", "#aec7e8"),
              ("DuckDB", "duckdb_ms", "#ff7f0e")]
    series = [s for s in series if any(r.get(s[1]) for r in rows)]
    y = np.arange(len(rows))
    h = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.8))
    for i, (label, key, color) in enumerate(series):
        vals = [r.get(key) or np.nan for r in rows]
        ax.barh(y + (i - (len(series) - 1) / 2) * h, vals, height=h, label=label, color=color)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("count, median ms (log scale)")
    s = res["summary"]
    ax.set_title(f"segments: engine vs DuckDB, scale {res['scale']}, shape {res.get('shape', 'default')} "
                 f"({res['dataset']['rows'].get('customers', 0):,} customers), {res['date'][:10]}; "
                 f"geomean DuckDB/engine {s['geomean_ratio']}x", fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


SCALE_COLORS = {"S": "#9ecae1", "M": "#4292c6", "L": "#08306b"}
DUCK_COLORS = {"S": "#fdae6b", "M": "#f16913", "L": "#7f2704"}


def _scales_and_names(results_by_scale: dict):
    """(scales present, in S/M/L order; every segment name once, in the order first seen)."""
    scales = [s for s in ("S", "M", "L") if s in results_by_scale]
    names = []
    for s in scales:
        for r in results_by_scale[s]["segments"]:
            if r["segment"] not in names:
                names.append(r["segment"])
    return scales, names


def scaling_chart(results_by_scale: dict, path: Path) -> Path:
    """The suite over scales in one PNG: per segment, the engine's count ms at each scale
    (bars, blues) and DuckDB's (markers, oranges; a right-pointing marker at the limit where
    DuckDB ran past it), log scale; the title has each scale's geometric mean ratio."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scales, names = _scales_and_names(results_by_scale)
    by = {s: {r["segment"]: r for r in results_by_scale[s]["segments"]} for s in scales}
    y = np.arange(len(names))
    h = 0.8 / len(scales)
    fig, ax = plt.subplots(figsize=(11, 0.36 * len(names) + 2.2))
    for i, s in enumerate(scales):
        off = y + (i - (len(scales) - 1) / 2) * h
        eng = [(by[s].get(n) or {}).get("engine_ms") or np.nan for n in names]
        rows = results_by_scale[s]["dataset"]["rows"]
        ax.barh(off, eng, height=h, color=SCALE_COLORS[s],
                label=f"engine {s} ({rows.get('customers', 0):,} customers)")
        duck = [(by[s].get(n) or {}).get("duckdb_ms") or np.nan for n in names]
        ax.plot(duck, off, "o", ms=3.5, color=DUCK_COLORS[s], label=f"DuckDB {s}")
        limit_s = (results_by_scale[s].get("duckdb") or {}).get("limit_s")
        over = [limit_s * 1000 if limit_s and (by[s].get(n) or {}).get("ratio_lower_bound") else np.nan
                for n in names]
        if not all(np.isnan(over)):
            ax.plot(over, off, ">", ms=6, color=DUCK_COLORS[s], label=f"DuckDB {s} > {limit_s:g} s limit")
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("count, median ms (log scale)")
    title = []
    for s in scales:
        sm = results_by_scale[s]["summary"]
        g = sm.get("geomean_ratio")
        lb = sm.get("geomean_ratio_lower_bound")
        when = results_by_scale[s].get("label") or results_by_scale[s]["date"][:10]
        title.append(f"{s} {when}: {g}x" + (f" (>= {lb}x with limits)" if lb else ""))
    ax.set_title("engine vs DuckDB over scales; geomean DuckDB/engine " + "; ".join(title), fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scale_results(folder: Path) -> dict:
    """{scale: results} of the default shape's scale-<S|M|L>.json files in `folder`."""
    out = {}
    for s in ("S", "M", "L"):
        p = Path(folder) / f"{result_name(s)}.json"
        if p.exists():
            res = json.loads(p.read_text())
            if "segments" in res:
                out[s] = res
    return out


def result_name(scale: str, shape: str = "default") -> str:
    """scale-M for the default shape (the name before shapes existed), scale-M-catalog else."""
    return f"scale-{scale}" if shape == "default" else f"scale-{scale}-{shape}"


def write(res: dict, out: Path, scale_copies: bool = True) -> list:
    """latest.json and latest.png in `out`, and (for a whole-suite run) copies named after
    the scale and shape (result_name), which the scaling and shape tables are made from."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_json(res, out / "latest.json"), chart(res, out / "latest.png")]
    for p in list(paths) if scale_copies else ():
        copy = out / f"{result_name(res['scale'], res.get('shape', 'default'))}{p.suffix}"
        shutil.copyfile(p, copy)
        paths.append(copy)
    if scale_copies and res.get("shape", "default") == "default":
        found = scale_results(out)
        if len(found) >= 2:
            paths.append(scaling_chart(found, out / "scaling.png"))
    return paths


def markdown(results_by_scale: dict) -> str:
    """A Markdown table of the suite over scales: engine / gRPC / DuckDB ms and ratio per scale."""
    scales, names = _scales_and_names(results_by_scale)
    head = ["segment"] + [f"{s}: {c}" for s in scales for c in ("engine ms", "grpc ms", "duckdb ms", "ratio")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {s: {r["segment"]: r for r in results_by_scale[s]["segments"]} for s in scales}
    for n in names:
        cells = [f"`{n}`"]
        for s in scales:
            r = by[s].get(n)
            if r is None:
                cells += ["", "", "", ""]
                continue
            cells += [_ms(r["engine_ms"]), _ms(r.get("grpc_ms")), _duck_ms(r),
                      _ratio(r) + ("" if r["match"] else " MISMATCH")]
        lines.append("| " + " | ".join(cells) + " |")
    foot = ["**geometric mean**"]
    for s in scales:
        sm = results_by_scale[s]["summary"]
        lb = sm.get("geomean_ratio_lower_bound")
        foot += ["", "", "", f"**{_x(sm['geomean_ratio'])}**" + (f" (>= {_x(lb)} with limits)" if lb else "")]
    lines.append("| " + " | ".join(foot) + " |")
    out = ["\n".join(lines), ""]
    for s in scales:
        res = results_by_scale[s]
        m, d, bw, lt = res["machine"], res["dataset"], res["bandwidth"], res.get("loadtest") or {}
        out.append(f"- **{s}** ({d['rows'].get('customers', 0):,} customers, {d['rows'].get('purchases', 0):,} "
                   f"purchase lines): {res['date']}, {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
                   f"load average {res['load_average']['start'][0]}; bandwidth {bw['gbps']:.1f} GB/s; "
                   f"ingest {d['ingest_s']:.1f} s ({d['ingest_lines_per_s']:,.0f} lines/s, peak RSS "
                   f"{d['ingest_peak_rss_mb']:,.0f} MB); DuckDB "
                   + (f"{res['duckdb']['storage']} " if res['duckdb'].get('storage') not in (None, 'memory') else "")
                   + f"load {res['duckdb']['load_s']:.1f} s"
                   + (f", each call limited to {res['duckdb']['limit_s']:g} s" if res['duckdb'].get('limit_s') else "")
                   + (f"; load test {lt['clients']} clients: {lt['throughput_per_s']:.0f} calls/s, p50 "
                      f"{_ms(lt['p50_ms'])} / p95 {_ms(lt['p95_ms'])} / p99 {_ms(lt['p99_ms'])} ms"
                      if "p50_ms" in lt else ""))
    return "\n".join(out)


SHAPE_ORDER = ("default", "catalog", "long_history", "sparse")


def shape_section(res: dict) -> str:
    """One shape's run as a Markdown section for docs/benchmarks.md: the dataset, the
    targets' figures, and per segment engine / DuckDB ms, bytes read (explain) and the
    distance to the bandwidth floor, with its slowest leaf."""
    d, bw, s, m = res["dataset"], res["bandwidth"], res["summary"], res["machine"]
    shape = res.get("shape", "default")
    rows = res["segments"]
    codes = res.get("suite_codes") or {}
    seeds_over = [r["segment"] for r in rows if r["segment"].startswith("seed_") and r["engine_ms"]
                  and r["engine_ms"] > 10]
    out = [f"#### Shape `{shape}`, scale {res['scale']}", ""]
    out.append(f"- Run {res['date']}, {m['cpu']}, {m['cores']} cores, load average "
               f"{res['load_average']['start'][0]} -> {res['load_average']['end'][0]}; bandwidth {bw['gbps']:.1f} GB/s.")
    out.append(f"- Data: {d['rows'].get('customers', 0):,} customers, {d['rows'].get('purchases', 0):,} purchase "
               f"lines, {d['rows'].get('visits', 0):,} visits; generate {d['generate_s']:.1f} s, ingest "
               f"{d['ingest_s']:.1f} s (peak RSS {d['ingest_peak_rss_mb']:,.0f} MB), "
               f"{d['bytes_on_disk'] / 1e6:,.0f} MB on disk; DuckDB load {res['duckdb']['load_s']:.1f} s.")
    if codes:
        out.append(f"- Suite codes (picked from the data): SKU `{codes['sku']}` ({codes['sku_lines']:,} lines of "
                   f"{codes['skus']:,} SKUs), rarest SKU `{codes['rare_sku']}` ({codes['rare_sku_lines']} lines), "
                   f"brands `{codes['brands'][0]}` + `{codes['brands'][1]}` ({codes['brands_lines']:,} lines of "
                   f"{codes['brand_values']:,} brands), department x metal `{codes['dept_metal'][0]}` x "
                   f"`{codes['dept_metal'][1]}` ({codes['dept_metal_lines']:,} lines).")
    out.append(f"- **Geometric mean DuckDB / engine {_x(s['geomean_ratio'])}** (count), "
               f"{_x(s['geomean_materialize_ratio'])} (materialize); {len(s['mismatches'])} mismatches of "
               f"{s['segments']}; slowest segment {_ms(s.get('engine_max_ms'))} ms; over 25 ms: "
               f"{', '.join(f'`{n}`' for n in s.get('segments_over_25ms', [])) or 'none'}; seed examples over "
               f"10 ms: {', '.join(f'`{n}`' for n in seeds_over) or 'none'}; leaves over 3 x floor + 1 ms: "
               f"{s.get('leaves_over_floor_target', '-')}.")
    out.append("")
    out.append("| segment | count | engine ms | duckdb ms | ratio | read | floor ms | x target | slowest leaf: ms, read |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        leaves = r.get("leaves") or []
        slow = max(leaves, key=lambda lf: lf["ms"], default=None)
        leaf = "-" if slow is None else (f"{_ms(slow['ms'])}, {_bytes(slow['bytes_read'])}"
                                         + ("" if slow["within_target"] else " (over 3x floor + 1)"))
        out.append("| " + " | ".join([
            f"`{r['segment']}`", "-" if r["count"] is None else f"{r['count']:,}", _ms(r["engine_ms"]),
            _ms(r["duckdb_ms"]), _x(r["ratio"]) + ("" if r["match"] else " MISMATCH"),
            _bytes(r.get("bytes_read")), "-" if r.get("floor_ms") is None else f"{r['floor_ms']:.3f}",
            "-" if r.get("target_x") is None else f"{r['target_x']:.2f}", leaf]) + " |")
    return "\n".join(out)


def main(argv=None) -> None:
    """`python -m segments.bench.report [--results bench/results] [--shapes [--scale S]]`: the
    scaling table (Markdown) from the scale-S/M/L.json files there, or with --shapes one
    section per shape from scale-<scale>[-<shape>].json, for docs/benchmarks.md."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m segments.bench.report", description=main.__doc__)
    p.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--shapes", action="store_true", help="one section per shape instead of the scaling table")
    p.add_argument("--scale", default=None, choices=("S", "M", "L"), help="with --shapes: only this scale")
    p.add_argument("--chart", action="store_true",
                   help="write the scaling chart (scaling.png, engine and DuckDB ms per segment at each scale)")
    a = p.parse_args(argv)
    if a.shapes:
        secs = []
        for scale in [a.scale] if a.scale else ["S", "M", "L"]:
            for shape in SHAPE_ORDER:
                path = Path(a.results) / f"{result_name(scale, shape)}.json"
                if path.exists():
                    res = json.loads(path.read_text())
                    if "segments" in res and res.get("shape", "default") == shape:
                        secs.append(shape_section(res))
        if not secs:
            raise SystemExit(f"no shape results in {a.results}: run `make bench SHAPE=...` first")
        print("\n\n".join(secs))
        return
    found = scale_results(Path(a.results))
    if not found:
        raise SystemExit(f"no scale-*.json in {a.results}: run `make bench` first")
    if a.chart:
        print(f"wrote {scaling_chart(found, Path(a.results) / 'scaling.png')}")
        return
    print(markdown(found))


if __name__ == "__main__":
    main()
