"""A version's manifest: which part holds each shard's customers and each sorted run of lines.

A version is a folder <dataset>/vNNNNNN/ holding `manifest.json` (this) and `dicts.json`
(the value dictionaries: code = index + 1, 0 = null; dictionaries only grow, so a code
means the same value in every version that has it). Everything else is in parts
(engine.storage.parts), shared between versions: a compaction writes new parts for the
shards whose data changed and copies every other shard's entry as it is.

Per shard (the internal-id range [s << bits, (s + 1) << bits)):
  customers   (part, key prefix) of the shard's customer object (engine.storage.shard_customers)
  runs        per line table ("p" purchases, "v" visits, "l" laybys), the shard's sorted
              runs (engine.storage.runs): a bulk build writes one; each compaction that
              appends lines adds one; runs are merged when they grow many or large.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, Optional, Tuple

FORMAT = 2
LINE_TABLES = ("p", "v", "l")
TABLE_OF = {"p": "purchases", "v": "visits", "l": "laybys"}


@dataclass(frozen=True)
class Run:
    """One sorted run of one shard's lines of one table."""
    part: str                       # part folder name under <dataset>/parts/
    key: str                        # key prefix of its columns in that part
    rows: int
    min_day: int = 0                # local day range of its lines (purchases, visits)
    max_day: int = 0
    max_ts: int = 0                 # newest instant (micros)
    agg_cutoff_day: Optional[int] = None   # all-time aggregates cover lines to this day ...
    agg_max_micros: Optional[int] = None   # ... whose newest instant is this
    agg_fields: Tuple[str, ...] = ()       # fields (and pairs "f+g") with per-code aggregates
    pairs: Tuple[str, ...] = ()            # pair indexes ("f+g") the run has posting lists of


@dataclass(frozen=True)
class Shard:
    """One shard's entry: its customers and its runs per line table."""
    n: int                          # internal ids allocated in the shard
    customers: Tuple[str, str]      # (part, key prefix)
    runs: Dict[str, Tuple[Run, ...]] = field(default_factory=dict)
    erased: int = 0                 # of its ids, how many were erased

    def table_runs(self, table: str) -> Tuple[Run, ...]:
        return self.runs.get(table, ())


@dataclass(frozen=True)
class Manifest:
    timezone: str
    shard_bits: int
    n_customers: int                # internal ids allocated (erased ones included)
    shards: Tuple[Shard, ...]
    ordered: bool = True            # internal id order is customer_id order
    folded_seq: int = 0             # the change log sequence this version includes
    rows: Dict[str, int] = field(default_factory=dict)
    build: Dict[str, object] = field(default_factory=dict)  # how it was built (seconds, kind)
    pairs: Tuple[Tuple[str, str], ...] = ()  # product field pairs with pair indexes (engine.storage.runs)
    format: int = FORMAT

    @property
    def n_shards(self) -> int:
        return len(self.shards)

    def parts(self) -> set:
        """Names of every part this version reads."""
        out = set()
        for s in self.shards:
            out.add(s.customers[0])
            for runs in s.runs.values():
                out.update(r.part for r in runs)
        return out

    def with_shards(self, shards, **changes) -> "Manifest":
        return replace(self, shards=tuple(shards), **changes)


def _run_from(d: dict) -> Run:
    d = dict(d)
    d["agg_fields"] = tuple(d.get("agg_fields") or ())
    d["pairs"] = tuple(d.get("pairs") or ())
    return Run(**d)


def to_json(m: Manifest) -> str:
    d = asdict(m)
    return json.dumps(d, separators=(",", ":"))


def from_json(text: str) -> Manifest:
    d = json.loads(text)
    if d.get("format") != FORMAT:
        raise ValueError(f"version format {d.get('format')!r}, expected {FORMAT}")
    shards = tuple(Shard(n=s["n"], customers=tuple(s["customers"]),
                         runs={t: tuple(_run_from(r) for r in runs) for t, runs in s["runs"].items()},
                         erased=s.get("erased", 0))
                   for s in d["shards"])
    return Manifest(timezone=d["timezone"], shard_bits=d["shard_bits"], n_customers=d["n_customers"],
                    shards=shards, ordered=d["ordered"], folded_seq=d["folded_seq"], rows=d["rows"],
                    build=d.get("build", {}), pairs=tuple(tuple(p) for p in d.get("pairs", ())),
                    format=d["format"])


def write_version(folder: Path, manifest: Manifest, dicts: Dict[str, list]) -> None:
    """Write a version folder (manifest + dictionaries), fsynced; the caller then switches
    CURRENT to it."""
    folder.mkdir(parents=True)
    for name, text in (("dicts.json", json.dumps(dicts, ensure_ascii=False, separators=(",", ":"))),
                       ("manifest.json", to_json(manifest))):
        with open(folder / name, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(folder: Path) -> Manifest:
    """A version folder's manifest alone (its dictionaries left unread)."""
    return from_json((folder / "manifest.json").read_text(encoding="utf-8"))


def read_dicts(folder: Path) -> Dict[str, list]:
    """A version folder's value dictionaries (code = index + 1)."""
    return json.loads((folder / "dicts.json").read_text(encoding="utf-8"))

