"""What each segment and each leaf reads, and how far its time is from the bandwidth floor.

The bytes come from the engine itself: `explain` reports per node the bytes of stored
arrays its leaves read (`ExplainNode.bytes_read`: lines scanned x the columns read,
posting entries, per-customer aggregate entries, bitmaps and dense columns; see
docs/architecture.md, "the cost model"), and at the root the whole evaluation's, ranking
included. The floor of a read is bytes / the measured memory bandwidth (bench.bandwidth);
the issue's target for a leaf is ms <= 3 x floor + 1 ms.

Before the storage redesign this module modelled the bytes of full line scans from the
snapshot's slices; with posting lists and aggregates a leaf's reads depend on the access
path the kernel chooses per run, which only the engine knows, hence explain.
"""
from __future__ import annotations

from typing import List


def floor_ms(nbytes: int, gbps: float) -> float:
    """Milliseconds to stream nbytes at gbps (GB = 1e9 bytes)."""
    return nbytes / (gbps * 1e6)


def segment_gbps(row: dict, gbps: float) -> dict:
    """scan_bytes (= explain's bytes_read), effective GB/s over the count's median time and
    its fraction of the bandwidth, for a measured segment row."""
    b, ms = row.get("bytes_read"), row.get("engine_ms")
    if not b or not ms:
        return {"scan_bytes": b, "scan_gbps": None, "scan_fraction": None}
    g = b / (ms / 1000) / 1e9
    return {"scan_bytes": b, "scan_gbps": round(g, 3), "scan_fraction": round(g / gbps, 4)}


def leaf_table(rows: List[dict], gbps: float) -> List[dict]:
    """The suite's distinct leaves (first segment using each, in suite order): median ms of
    the explains, bytes read, effective GB/s, fraction of the bandwidth, floor and whether
    the leaf meets ms <= 3 x floor + 1 ms."""
    seen, out = set(), []
    for r in rows:
        for lf in r.get("leaves") or ():
            label = lf["leaf"].split(": ", 1)[1] if lf["leaf"].startswith(("include: ", "exclude: ", "append[")) \
                else lf["leaf"]
            if label in seen:
                continue
            seen.add(label)
            ms, b = lf["ms"], lf["bytes_read"]
            g = b / (ms / 1000) / 1e9 if ms > 0 and b else None
            out.append({"leaf": label, "segment": r["segment"], "kernel": "explain leaf", "lines": None,
                        "bytes": b, "ms": ms, "floor_ms": lf["floor_ms"], "within_target": lf["within_target"],
                        "gbps": None if g is None else round(g, 3),
                        "fraction_of_bandwidth": None if g is None else round(g / gbps, 4)})
    return out
