"""Tracked saved segments: numbered membership snapshots and the differences between them.

  catalog/audiences/<name>/tracking.json        retention (count, days) and when tracking began
  catalog/audiences/<name>/<number>.members     the members: a portable 64-bit roaring bitmap of customer_ids
  catalog/audiences/<name>/<number>.json        the snapshot's record: as_of, sequence, count, entered, exited
A snapshot is recorded only when the membership changed (the first one always), numbered
1, 2, ... per tracked segment. Members are customer_ids (not internal ids), so a snapshot
stays meaningful across compactions. The record file is what makes a snapshot exist: the
members are written before it and removed after it. Retention keeps the newest `keep`
snapshots and drops those recorded more than `keep_days` ago (the newest always stays).
Who entered and who left between two snapshots is a set difference of their bitmaps; the
maintenance that records snapshots is engine/catalog/maintain.py.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from pyroaring import BitMap64

from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..evaluation import output
from ..results import Materialized

DEFAULT_KEEP = 100
DEFAULT_KEEP_DAYS = 30
MAX_KEEP = 100_000
MAX_KEEP_DAYS = 100 * 366


@dataclass(frozen=True)
class Tracking:
    """How a tracked segment's snapshots are kept."""
    name: str
    keep: int
    keep_days: int
    since: dt.datetime


@dataclass(frozen=True)
class AudienceSnapshot:
    """One recorded membership of a tracked segment (the ids live beside the record)."""
    number: int
    as_of: dt.datetime          # the instant the membership was evaluated as of
    sequence: int               # the dataset's change sequence it saw
    count: int
    entered: int                # against the previous snapshot (the first: every member)
    exited: int
    evaluation: str             # "full" or "incremental" (only the touched customers re-evaluated)
    recorded_at: dt.datetime


@dataclass
class AudienceDiff:
    """Who entered and who left between two snapshots (to_snapshot None: evaluated now).

    entered_ids / exited_ids: sorted customer_ids; entered: the entered customers still in
    the dataset, with the fields asked for (current values, as materialize gives them)."""
    from_snapshot: int
    to_snapshot: Optional[int]
    as_of: dt.datetime
    sequence: int
    entered_ids: np.ndarray
    exited_ids: np.ndarray
    entered: Materialized


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat()


def _check_keep(keep, keep_days) -> None:
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= MAX_KEEP:
        raise InvalidArgument("keep", f"must be between 1 and {MAX_KEEP}, got {keep!r}")
    if isinstance(keep_days, bool) or not isinstance(keep_days, int) or not 1 <= keep_days <= MAX_KEEP_DAYS:
        raise InvalidArgument("keep_days", f"must be between 1 and {MAX_KEEP_DAYS}, got {keep_days!r}")


def members_of(ids) -> BitMap64:
    """A 64-bit roaring bitmap of customer_ids."""
    return BitMap64(np.asarray(ids, np.int64).astype(np.uint64))


def ids_of(bm: BitMap64) -> np.ndarray:
    """Sorted customer_ids of a bitmap."""
    return np.asarray(bm.to_array(), np.uint64).astype(np.int64) if len(bm) else np.zeros(0, np.int64)


class Audiences:
    """Tracked segments of every dataset of one catalog: their snapshots and diffs; thread-safe.
    Watchers wait on `changed` (a Condition notified after each recorded snapshot)."""

    def __init__(self, catalog):
        self.catalog = catalog
        self._lock = threading.RLock()
        self.changed = threading.Condition()
        self.version = 0   # bumped on each recorded snapshot (for waiters)

    # ------------------------------------------------------------ layout
    def _dir(self, dataset: str, name: str, create: bool = False) -> Path:
        from .catalog import _check_name  # noqa: PLC0415 - one name rule for the whole catalog
        _check_name(name)
        root = self.catalog._dir(dataset, "audiences", create=create)
        d = root / name
        if create:
            d.mkdir(exist_ok=True)
        return d

    # ------------------------------------------------------------ tracking
    def track(self, dataset: str, name: str, keep: int = DEFAULT_KEEP, keep_days: int = DEFAULT_KEEP_DAYS) -> Tracking:
        """Track a saved segment (or change its retention); NotFound if it is not saved. Its
        first snapshot is recorded by the next maintenance round."""
        from .catalog import _write_atomic
        _check_keep(keep, keep_days)
        self.catalog.get_segment(dataset, name)
        with self._lock:
            old = self.tracking(dataset, name)
            t = Tracking(name, keep, keep_days, old.since if old is not None else self.catalog.clock())
            d = self._dir(dataset, name, create=True)
            _write_atomic(d / "tracking.json", json.dumps(
                {"name": name, "keep": keep, "keep_days": keep_days, "since": _iso(t.since)}).encode())
            self._prune(dataset, name, t)
        with self.changed:
            self.version += 1
            self.changed.notify_all()
        return t

    def untrack(self, dataset: str, name: str) -> None:
        """Stop tracking and drop the snapshots; NotFound if not tracked."""
        with self._lock:
            d = self._dir(dataset, name)
            if not (d / "tracking.json").exists():
                raise NotFound("name", f"saved segment {name!r} of {dataset!r} is not tracked",
                               reason="SEGMENT_NOT_TRACKED")
            (d / "tracking.json").unlink()
            shutil.rmtree(d, ignore_errors=True)
        with self.changed:
            self.version += 1
            self.changed.notify_all()

    def tracking(self, dataset: str, name: str) -> Optional[Tracking]:
        """The tracking settings of a saved segment, None when not tracked."""
        try:
            r = json.loads((self._dir(dataset, name) / "tracking.json").read_text())
        except FileNotFoundError:
            return None
        return Tracking(r["name"], r["keep"], r["keep_days"], dt.datetime.fromisoformat(r["since"]))

    def require_tracking(self, dataset: str, name: str, path: str = "name") -> Tracking:
        t = self.tracking(dataset, name)
        if t is None:
            self.catalog.get_segment(dataset, name)  # NotFound first when not even saved
            raise FailedPrecondition(path, f"saved segment {name!r} of {dataset!r} is not tracked",
                                     reason="SEGMENT_NOT_TRACKED")
        return t

    def tracked(self, dataset: str) -> list:
        """Names of the tracked segments of a dataset, sorted."""
        d = self.catalog._dir(dataset, "audiences")
        if not d.is_dir():
            return []
        return sorted(p.parent.name for p in d.glob("*/tracking.json"))

    # ------------------------------------------------------------ snapshots
    def snapshots(self, dataset: str, name: str) -> list:
        """The retained snapshots' records, oldest first."""
        d = self._dir(dataset, name)
        out = []
        for p in sorted(d.glob("*.json")) if d.is_dir() else ():
            if p.name == "tracking.json":
                continue
            try:
                out.append(_record(json.loads(p.read_text())))
            except FileNotFoundError:  # pruned meanwhile
                pass
        return out

    def latest(self, dataset: str, name: str) -> Optional[AudienceSnapshot]:
        snaps = self.snapshots(dataset, name)
        return snaps[-1] if snaps else None

    def snapshot(self, dataset: str, name: str, number: int, path: str = "snapshot") -> AudienceSnapshot:
        """One retained snapshot's record; NotFound when never recorded or no longer kept."""
        self.require_tracking(dataset, name)
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise InvalidArgument(path, f"a snapshot number is an integer >= 1, got {number!r}")
        try:
            return _record(json.loads((self._dir(dataset, name) / f"{number:012d}.json").read_text()))
        except FileNotFoundError:
            newest = self.latest(dataset, name)
            why = "not recorded yet" if newest is None or number > newest.number else "no longer retained"
            raise NotFound(path, f"snapshot {number} of {name!r}: {why}", reason="SNAPSHOT_NOT_FOUND") from None

    def members(self, dataset: str, name: str, number: int, path: str = "snapshot") -> BitMap64:
        """The customer_ids of a retained snapshot."""
        self.snapshot(dataset, name, number, path)
        try:
            return BitMap64.deserialize((self._dir(dataset, name) / f"{number:012d}.members").read_bytes())
        except FileNotFoundError:
            raise NotFound(path, f"snapshot {number} of {name!r}: no longer retained",
                           reason="SNAPSHOT_NOT_FOUND") from None

    def record(self, dataset: str, name: str, members: BitMap64, previous: Optional[BitMap64], as_of: dt.datetime,
               sequence: int, evaluation: str) -> AudienceSnapshot:
        """Record a new snapshot (numbered after the newest) and apply retention."""
        from .catalog import _write_atomic
        with self._lock:
            t = self.tracking(dataset, name)
            if t is None:
                raise FailedPrecondition("name", f"saved segment {name!r} is not tracked", reason="SEGMENT_NOT_TRACKED")
            newest = self.latest(dataset, name)
            number = 1 if newest is None else newest.number + 1
            prev = previous if previous is not None else BitMap64()
            snap = AudienceSnapshot(number, as_of, int(sequence), len(members),
                                    len(members) - members.intersection_cardinality(prev),
                                    len(prev) - members.intersection_cardinality(prev), evaluation,
                                    self.catalog.clock())
            d = self._dir(dataset, name, create=True)
            _write_atomic(d / f"{number:012d}.members", members.serialize())
            _write_atomic(d / f"{number:012d}.json", json.dumps(_record_json(snap), sort_keys=True).encode())
            self._prune(dataset, name, t)
        with self.changed:
            self.version += 1
            self.changed.notify_all()
        return snap

    def _prune(self, dataset: str, name: str, t: Tracking) -> None:
        snaps = self.snapshots(dataset, name)
        if len(snaps) <= 1:
            return
        cutoff = self.catalog.clock() - dt.timedelta(days=t.keep_days)
        d = self._dir(dataset, name)
        for i, s in enumerate(snaps[:-1]):  # the newest always stays
            if i < len(snaps) - t.keep or s.recorded_at < cutoff:
                (d / f"{s.number:012d}.json").unlink(missing_ok=True)
                (d / f"{s.number:012d}.members").unlink(missing_ok=True)

    # ------------------------------------------------------------ differences
    def diff(self, dataset: str, name: str, from_snapshot: int, to_snapshot: Optional[int] = None,
             fields: Sequence[str] = (), as_of=None, deadline: Optional[float] = None) -> AudienceDiff:
        """Who entered and who left between two retained snapshots, or from one to now (the
        saved segment evaluated as of `as_of`, default now, on the dataset's current state)."""
        old = self.members(dataset, name, from_snapshot, "from_snapshot")
        engine = self.catalog.engine
        if to_snapshot is None:
            seg = self.catalog.resolve(dataset, name, "name")
            live, st, view = engine.dataset(dataset).reading()
            at = output.parse_as_of(as_of) or self.catalog.clock()
            new = members_of(view.ext_ids()[_internal(output.evaluate(view, seg, at, deadline).members)]
                             if not getattr(view, "empty", False) else ())
            seq = st.seq if st is not None else 0
        else:
            rec = self.snapshot(dataset, name, to_snapshot, "to_snapshot")
            new = self.members(dataset, name, to_snapshot, "to_snapshot")
            at, seq = rec.as_of, rec.sequence
        entered, exited = ids_of(new - old), ids_of(old - new)
        rows = engine.rows_of(dataset, entered, tuple(fields))
        rows.missing_ids = ()  # entered since and erased meanwhile: left out of the rows, kept in entered_ids
        rows.as_of, rows.sequence = at, seq
        return AudienceDiff(from_snapshot, to_snapshot, at, seq, entered, exited, rows)


def _internal(bm) -> np.ndarray:
    return np.frombuffer(bm.to_array(), np.uint32).astype(np.int64) if len(bm) else np.zeros(0, np.int64)


def _record_json(s: AudienceSnapshot) -> dict:
    return {"number": s.number, "as_of": _iso(s.as_of), "sequence": s.sequence, "count": s.count,
            "entered": s.entered, "exited": s.exited, "evaluation": s.evaluation,
            "recorded_at": _iso(s.recorded_at)}


def _record(r: dict) -> AudienceSnapshot:
    return AudienceSnapshot(r["number"], dt.datetime.fromisoformat(r["as_of"]), r["sequence"], r["count"],
                            r["entered"], r["exited"], r["evaluation"], dt.datetime.fromisoformat(r["recorded_at"]))
