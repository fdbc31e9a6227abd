"""Tracked saved segments: numbered membership snapshots and the differences between them.

  catalog/audiences/<name>/tracking.json        retention (count, days) and when tracking began
  catalog/audiences/<name>/<number>.delta       who entered and who left: two portable 64-bit roaring
                                                bitmaps of customer_ids (8-byte length of the first, then both)
  catalog/audiences/<name>/<number>.members     on checkpoints: the whole membership, one such bitmap
  catalog/audiences/<name>/<number>.json        the snapshot's record: as_of, sequence, count, entered, exited
A snapshot is recorded only when the membership changed (the first one always), numbered
1, 2, ... per tracked segment. Members are customer_ids (not internal ids), so a snapshot
stays meaningful across compactions. A batch changes few memberships, so a snapshot keeps
its change; the first, every CHECKPOINT_EVERY-th and the oldest retained one keep the whole
membership, and a snapshot's members are its checkpoint plus the changes after it. The
record file is what makes a snapshot exist: the bitmaps are written before it and removed
after it. Retention keeps the newest `keep`
snapshots and drops those recorded more than `keep_days` ago (the newest always stays).
Who entered and who left between two snapshots is a set difference of their bitmaps; the
maintenance that records snapshots is engine/catalog/maintain.py.
"""
from __future__ import annotations

import datetime as dt
import json
import os
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
from ..storage.id_sets import (deserialize_ids, serialize_ids, sorted_apply as _sorted_apply, sorted_in as _merge_in,
                               sorted_in_gallop as _gallop_in)

DEFAULT_KEEP = 100
DEFAULT_KEEP_DAYS = 30
MAX_KEEP = 100_000
MAX_KEEP_DAYS = 100 * 366
CHECKPOINT_EVERY = 64   # a snapshot stores the whole membership at least once in this many


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
    checkpoint: bool = False    # the whole membership is stored (else only entered / exited)


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
        # (dataset, name) -> (tracking.json's identity, {number: AudienceSnapshot}): a record
        # never changes once written, so each is read once per tracking (untrack and track
        # again write a new tracking.json, and numbers start again)
        self._records: dict = {}

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
        return _tracking_in(self._dir(dataset, name))

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
    def _numbers(self, dataset: str, name: str) -> list:
        return _numbers_in(self._dir(dataset, name))

    def _known(self, dataset: str, name: str, d: Path) -> dict:
        """The records of this tracking read so far (number -> AudienceSnapshot)."""
        try:
            st = (d / "tracking.json").stat()
            identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            identity = None
        hit = self._records.get((dataset, name))
        if hit is None or hit[0] != identity:
            hit = self._records[(dataset, name)] = (identity, {})
        return hit[1]

    def snapshots(self, dataset: str, name: str, after: int = 0) -> list:
        """The retained snapshots' records numbered after `after`, oldest first."""
        return self._snapshots_in(dataset, name, self._dir(dataset, name), after)

    def _snapshots_in(self, dataset: str, name: str, d: Path, after: int = 0) -> list:
        known = self._known(dataset, name, d)
        numbers = _numbers_in(d)
        out = []
        for n in numbers:
            if n <= after:
                continue
            rec = known.get(n)
            if rec is None:
                try:
                    rec = known[n] = _record(json.loads((d / f"{n:012d}.json").read_text()))
                except FileNotFoundError:  # pruned meanwhile
                    continue
            out.append(rec)
        if len(known) > len(numbers):   # pruned ones are forgotten
            for n in set(known) - set(numbers):
                known.pop(n, None)
        return out

    def newest_number(self, dataset: str, name: str) -> int:
        """The newest snapshot's number (0: none), from the folder listing alone."""
        numbers = self._numbers(dataset, name)
        return numbers[-1] if numbers else 0

    def latest(self, dataset: str, name: str) -> Optional[AudienceSnapshot]:
        numbers = self._numbers(dataset, name)
        for n in reversed(numbers):
            snaps = self.snapshots(dataset, name, n - 1)
            if snaps:
                return snaps[-1]
        return None

    def snapshot(self, dataset: str, name: str, number: int, path: str = "snapshot") -> AudienceSnapshot:
        """One retained snapshot's record; NotFound when never recorded or no longer kept."""
        self.require_tracking(dataset, name)
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise InvalidArgument(path, f"a snapshot number is an integer >= 1, got {number!r}")
        try:
            return _record(json.loads((self._dir(dataset, name) / f"{number:012d}.json").read_text()))
        except FileNotFoundError:
            raise self._missing(dataset, name, number, path) from None

    def _missing(self, dataset, name, number, path) -> NotFound:
        newest = self.latest(dataset, name)
        why = "not recorded yet" if newest is None or number > newest.number else "no longer retained"
        return NotFound(path, f"snapshot {number} of {name!r}: {why}", reason="SNAPSHOT_NOT_FOUND")

    def delta(self, dataset: str, name: str, number: int, path: str = "snapshot") -> tuple:
        """(entered, exited) sorted customer_ids of a retained snapshot against the one before."""
        try:
            data = (self._dir(dataset, name) / f"{number:012d}.delta").read_bytes()
        except FileNotFoundError:
            raise self._missing(dataset, name, number, path) from None
        k = int.from_bytes(data[:8], "little")
        return deserialize_ids(data[8:8 + k]), deserialize_ids(data[8 + k:])

    def members(self, dataset: str, name: str, number: int, path: str = "snapshot") -> np.ndarray:
        """The sorted customer_ids of a retained snapshot: its nearest checkpoint at or
        before it, plus the deltas after that checkpoint."""
        self.snapshot(dataset, name, number, path)
        d = self._dir(dataset, name)
        c = number
        while c >= 1 and not (d / f"{c:012d}.members").exists():
            c -= 1
        if c < 1:
            raise self._missing(dataset, name, number, path)
        try:
            ids = deserialize_ids((d / f"{c:012d}.members").read_bytes())
        except FileNotFoundError:
            raise self._missing(dataset, name, number, path) from None
        for k in range(c + 1, number + 1):
            entered, exited = self.delta(dataset, name, k, path)
            ids = apply_changes(ids, entered, exited)
        return ids

    def record(self, dataset: str, name: str, members: np.ndarray, previous: Optional[np.ndarray],
               as_of: dt.datetime, sequence: int, evaluation: str, changes: Optional[tuple] = None) -> AudienceSnapshot:
        """Record a new snapshot (numbered after the newest) of `members` (sorted unique
        customer_ids), whose previous membership is `previous` (the newest snapshot's, None
        for none); apply retention. Each snapshot stores who entered and who left; every
        CHECKPOINT_EVERY-th (and the first) also the whole membership. `changes`: (entered,
        exited) when the caller knows them (sorted), else they are computed."""
        return self.record_many(dataset, [(name, members, previous, as_of, sequence, evaluation, changes)])[0]

    def record_many(self, dataset: str, items: list) -> list:
        """record() of several segments of a dataset at once, (name, members, previous,
        as_of, sequence, evaluation, changes) each: their files are written, then fsynced
        together (concurrent fsyncs share the file system's journal commits), then renamed
        into place (each snapshot's record last), then their folders fsynced."""
        from .catalog import _check_name  # noqa: F401 - names were checked by _dir
        staged, out = [], []
        with self._lock:
            for name, members, previous, as_of, sequence, evaluation, changes in items:
                members = Membership.of(members)
                d = self._dir(dataset, name)
                t = _tracking_in(d)
                if t is None:
                    raise FailedPrecondition("name", f"saved segment {name!r} is not tracked",
                                             reason="SEGMENT_NOT_TRACKED")
                snaps = self._snapshots_in(dataset, name, d)
                number = 1 if not snaps else snaps[-1].number + 1
                if (previous is None) != (not snaps):
                    raise FailedPrecondition("name", f"snapshots of {name!r} changed meanwhile", reason="SNAPSHOT_RACE")
                if changes is None:
                    prev = np.zeros(0, np.int64) if previous is None else Membership.of(previous).array()
                    changes = changes_between(prev, members.array())
                entered, exited = changes
                since = next((k for k, x in enumerate(reversed(snaps)) if x.checkpoint), len(snaps))
                checkpoint = number == 1 or since + 1 >= CHECKPOINT_EVERY
                snap = AudienceSnapshot(number, as_of, int(sequence), int(members.size), int(entered.size),
                                        int(exited.size), evaluation, self.catalog.clock(), checkpoint)
                a, b = serialize_ids(entered), serialize_ids(exited)
                files = [(d / f"{number:012d}.delta", len(a).to_bytes(8, "little") + a + b)]
                if checkpoint:
                    files.append((d / f"{number:012d}.members", serialize_ids(members.array())))
                files.append((d / f"{number:012d}.json", json.dumps(_record_json(snap), sort_keys=True).encode()))
                staged.append((name, d, t, snaps, snap, files))
                out.append(snap)
            _write_durably(self.catalog._dir(dataset, "audiences"), [f for x in staged for f in x[5]])
            for name, d, t, snaps, snap, _ in staged:
                self._known(dataset, name, d)[snap.number] = snap
                self._prune(dataset, name, t, snaps + [snap], d)
        with self.changed:
            self.version += 1
            self.changed.notify_all()
        return out

    def _prune(self, dataset: str, name: str, t: Tracking, snaps: Optional[list] = None,
               d: Optional[Path] = None) -> None:
        from .catalog import _write_atomic
        d = self._dir(dataset, name) if d is None else d
        snaps = self._snapshots_in(dataset, name, d) if snaps is None else snaps
        if len(snaps) <= 1:
            return
        cutoff = self.catalog.clock() - dt.timedelta(days=t.keep_days)
        drop = [s for i, s in enumerate(snaps[:-1]) if i < len(snaps) - t.keep or s.recorded_at < cutoff]
        if not drop:
            return
        gone = {s.number for s in drop}
        first = next(s for s in snaps if s.number not in gone)
        if not (d / f"{first.number:012d}.members").exists():  # the oldest kept becomes a checkpoint
            _write_atomic(d / f"{first.number:012d}.members",
                          serialize_ids(self.members(dataset, name, first.number)))
        for s in drop:
            (d / f"{s.number:012d}.json").unlink(missing_ok=True)
            (d / f"{s.number:012d}.delta").unlink(missing_ok=True)
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
            new = (np.unique(view.ext_ids()[_internal(output.evaluate(view, seg, at, deadline, references=engine.references(dataset)).members)])
                   if not getattr(view, "empty", False) else np.zeros(0, np.int64))
            seq = st.seq if st is not None else 0
        else:
            rec = self.snapshot(dataset, name, to_snapshot, "to_snapshot")
            new = self.members(dataset, name, to_snapshot, "to_snapshot")
            at, seq = rec.as_of, rec.sequence
        entered, exited = changes_between(old, new)
        rows = engine.rows_of(dataset, entered, tuple(fields))
        rows.missing_ids = ()  # entered since and erased meanwhile: left out of the rows, kept in entered_ids
        rows.as_of, rows.sequence = at, seq
        return AudienceDiff(from_snapshot, to_snapshot, at, seq, entered, exited, rows)


_SYNC_POOL = (None, 0)   # (executor, the process that started it)
_SYNC_POOL_LOCK = threading.Lock()


def _sync_pool():
    """The threads that fsync snapshot files concurrently (started once per process, not
    per round)."""
    global _SYNC_POOL
    with _SYNC_POOL_LOCK:
        pool, pid = _SYNC_POOL
        if pool is None or pid != os.getpid():   # a forked child starts its own
            from concurrent.futures import ThreadPoolExecutor
            pool = ThreadPoolExecutor(8, thread_name_prefix="snapshot-fsync")
            _SYNC_POOL = (pool, os.getpid())
        return pool


def _write_durably(root: Path, files: list) -> None:
    """Write (path, bytes) files durably and atomically, in order of their renames: every
    temporary file written, all fsynced concurrently, renamed in the given order, and each
    folder fsynced (a crash leaves each file old or new; a later file never without an
    earlier one of the same folder). The space is checked first."""
    from ..storage import space
    if not files:
        return
    tmps = [p.with_name(f".{p.name}.tmp") for p, _ in files]

    def sync(path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    try:
        with space.reserve(root, sum(len(b) for _, b in files) + (64 << 10) * len(files), "the snapshots"):
            for tmp, (_, data) in zip(tmps, files):
                with open(tmp, "wb") as f:
                    f.write(data)
            pool = _sync_pool()
            list(pool.map(sync, tmps))
            for tmp, (path, _) in zip(tmps, files):
                os.replace(tmp, path)
            list(pool.map(sync, sorted({p.parent for p, _ in files})))
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


def _tracking_in(d: Path) -> Optional[Tracking]:
    """The tracking settings in a tracked segment's folder, None when not tracked."""
    try:
        r = json.loads((d / "tracking.json").read_bytes())
    except FileNotFoundError:
        return None
    return Tracking(r["name"], r["keep"], r["keep_days"], dt.datetime.fromisoformat(r["since"]))


def _numbers_in(d: Path) -> list:
    """The numbers of the snapshot records in a tracked segment's folder, ascending."""
    try:
        names = os.listdir(d)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(f[:-5]) for f in names if f.endswith(".json") and f[:1].isdigit())


def sorted_in(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Which elements of sorted `a` are in sorted `b` (no hashing): galloping searches when
    `a` is much the smaller, else one merge of the two."""
    if not a.size or not b.size:
        return np.zeros(a.size, bool)
    a, b = np.ascontiguousarray(a, np.int64), np.ascontiguousarray(b, np.int64)
    if a.size * 16 >= b.size:
        return _merge_in(a, b)
    return _gallop_in(a, b)


def changes_between(old: np.ndarray, new: np.ndarray) -> tuple:
    """(entered, exited): sorted customer_ids in `new` not in `old`, and the reverse."""
    return new[~sorted_in(new, old)], old[~sorted_in(old, new)]


def apply_changes(ids: np.ndarray, entered: np.ndarray, exited: np.ndarray) -> np.ndarray:
    """Sorted `ids` without `exited`, with `entered` (disjoint from ids)."""
    if not exited.size and not entered.size:
        return ids
    return _sorted_apply(np.ascontiguousarray(ids, np.int64), np.ascontiguousarray(entered, np.int64),
                         np.ascontiguousarray(exited, np.int64))


_NONE = np.zeros(0, np.int64)


class Membership:
    """A tracked segment's members (sorted unique customer_ids) as a base array and the
    changes since: `added` (not in base) and `removed` (in base), both sorted. A round's
    changes cost their own size, not the membership's; they are merged into a new base once
    they reach 1/MERGE_SHARE of it (so each member is copied O(1) times per change, amortised).
    Immutable: apply() returns a new one."""
    __slots__ = ("base", "added", "removed", "_array")
    MERGE_SHARE = 8
    MERGE_MIN = 4096

    def __init__(self, base: np.ndarray, added: np.ndarray = _NONE, removed: np.ndarray = _NONE):
        self.base = np.ascontiguousarray(base, np.int64)
        self.added, self.removed = added, removed
        self._array = self.base if not added.size and not removed.size else None

    @classmethod
    def of(cls, ids) -> "Membership":
        return ids if isinstance(ids, Membership) else cls(np.asarray(ids, np.int64))

    @property
    def size(self) -> int:
        return int(self.base.size + self.added.size - self.removed.size)

    def array(self) -> np.ndarray:
        """The members as one sorted array (merged once, then kept)."""
        if self._array is None:
            self._array = apply_changes(self.base, self.added, self.removed)
        return self._array

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Which of sorted unique `ids` are members."""
        if self._array is not None:
            return sorted_in(ids, self._array)
        inside = sorted_in(ids, self.base)
        if self.removed.size:
            inside &= ~sorted_in(ids, self.removed)
        if self.added.size:
            inside |= sorted_in(ids, self.added)
        return inside

    def apply(self, entered: np.ndarray, exited: np.ndarray) -> "Membership":
        """The membership with `entered` (not members) and without `exited` (members)."""
        if not entered.size and not exited.size:
            return self
        back = sorted_in(entered, self.removed)          # entered again: in base
        left = sorted_in(exited, self.added)             # exited after entering: not in base
        added = apply_changes(self.added, entered[~back], exited[left])
        removed = apply_changes(self.removed, exited[~left], entered[back])
        if added.size + removed.size > max(self.MERGE_MIN, self.base.size // self.MERGE_SHARE):
            return Membership(apply_changes(self.base, added, removed))
        return Membership(self.base, added, removed)


def _internal(bm) -> np.ndarray:
    return np.frombuffer(bm.to_array(), np.uint32).astype(np.int64) if len(bm) else np.zeros(0, np.int64)


def _record_json(s: AudienceSnapshot) -> dict:
    return {"number": s.number, "as_of": _iso(s.as_of), "sequence": s.sequence, "count": s.count,
            "entered": s.entered, "exited": s.exited, "evaluation": s.evaluation,
            "recorded_at": _iso(s.recorded_at), "checkpoint": s.checkpoint}


def _record(r: dict) -> AudienceSnapshot:
    return AudienceSnapshot(r["number"], dt.datetime.fromisoformat(r["as_of"]), r["sequence"], r["count"],
                            r["entered"], r["exited"], r["evaluation"], dt.datetime.fromisoformat(r["recorded_at"]),
                            r.get("checkpoint", False))
