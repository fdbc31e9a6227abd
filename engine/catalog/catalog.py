"""Saved segments and customer groups of each dataset, in small files under <dataset>/catalog/.

  catalog/segments/<name>.json   a saved segment: JSON definition, active flag, description, times
  catalog/groups/<name>.json     a group's record: count, source, as_of, created_at, expires_at
  catalog/groups/<name>.npy      its frozen members: sorted int64 customer_ids
  catalog/audiences/<name>/      a tracked saved segment's snapshots (engine/catalog/audiences.py)
  catalog/tasks/<name>.*         a saved segment's daily task and its runs (engine/catalog/schedule.py)
A saved segment is dynamic: its definition is parsed and evaluated afresh on each use, and an
inactive one cannot be used (FailedPrecondition). A group is a snapshot: members and count
are frozen at creation; it expires (180 days by default), after which every call on it but
delete answers FailedPrecondition; its materialization leaves out customers deleted since.
Every file is written to a temporary name, fsynced and renamed, so a reader sees the old or
the new record, never half of one. The record file is what makes a group exist: members are
written before it and removed after it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..model import limits
from ..model import segment as S
from ..model import segment_json
from ..errors import AlreadyExists, Cancelled, FailedPrecondition, InvalidArgument, NotFound
from ..results import Materialized
from ..datasets.folders import NAME_RE, dataset_dir
from ..storage import space

DEFAULT_TTL_DAYS = 180
MAX_TTL_DAYS = 100 * 366
UTC = dt.timezone.utc


@dataclass(frozen=True)
class SavedSegment:
    """A named, dynamic definition of one dataset."""
    name: str
    segment: S.Segment
    description: str
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class Group:
    """A named snapshot of a segment's members (the ids live beside the record)."""
    name: str
    description: str
    count: int
    source: str                  # the definition's JSON text
    saved_segment: Optional[str]
    as_of: Optional[dt.datetime]
    created_at: dt.datetime
    expires_at: dt.datetime

    def expired(self, now: Optional[dt.datetime] = None) -> bool:
        return (now or _now()) >= self.expires_at


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _check_name(name: str, path: str = "name") -> str:
    limits.check_name(name, path)
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise InvalidArgument(path, f"invalid name {name!r} (letters, digits, _ . -; starting with a "
                                    "letter or digit; at most 128 characters)")
    return name


def _check_description(text) -> None:
    if not isinstance(text, str):
        raise InvalidArgument("description", f"expected text, got {type(text).__name__}")
    limits.check_text(text, "description", limits.MAX_DESCRIPTION_CHARS)


def _write_atomic(path: Path, data: bytes, sync_dir: bool = True) -> None:
    """Write, fsync, rename; the space is checked first and a full disk leaves no temp file.
    sync_dir=False leaves the folder's fsync to a later write in the same folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with space.reserve(path.parent, len(data) + (64 << 10), "the catalog record"):
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if not sync_dir:
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _iso(t: Optional[dt.datetime]) -> Optional[str]:
    return None if t is None else t.astimezone(UTC).isoformat()


def _parse_time(s: Optional[str]) -> Optional[dt.datetime]:
    return None if s is None else dt.datetime.fromisoformat(s)


class References:
    """What in_segment and in_group read for one dataset: a saved segment's definition (an
    active one; NotFound when absent) and a group's frozen members (FailedPrecondition once
    expired)."""

    def __init__(self, catalog: "Catalog", dataset: str):
        self.catalog = catalog
        self.dataset = dataset

    def segment(self, name: str) -> S.Segment:
        return self.catalog.resolve(self.dataset, name, "in_segment")

    def group_members(self, name: str) -> np.ndarray:
        try:
            return self.catalog.group_members(self.dataset, name)
        except (NotFound, FailedPrecondition) as e:
            raise type(e)("in_group", e.message, reason=e.reason) from None


class Catalog:
    """Saved segments and groups of every dataset of one Engine; thread-safe."""

    def __init__(self, engine, default_ttl_days: int = DEFAULT_TTL_DAYS, clock=_now):
        self.engine = engine
        self.default_ttl_days = default_ttl_days
        self.clock = clock
        self._lock = threading.Lock()
        engine.catalog = self   # in_segment / in_group conditions read this catalog
        from .audiences import Audiences  # noqa: PLC0415 - it uses this module's helpers
        self.audiences = Audiences(self)   # tracked segments' snapshots (engine/catalog/audiences.py)
        from .schedule import Schedules  # noqa: PLC0415
        self.schedules = Schedules(self)   # daily tasks (engine/catalog/schedule.py)
        self._maintainer = None
        self._maintainer_users = 0

    # ------------------------------------------------------------ background maintenance
    def start_maintenance(self, **options):
        """Start the background maintenance of tracked segments (engine/catalog/maintain.py)
        once per catalog, however many servers share it; each start needs a stop."""
        from .maintain import Maintainer  # noqa: PLC0415 - maintain imports this module's room
        with self._lock:
            if self._maintainer is None:
                self._maintainer = Maintainer(self.engine, self, **options).start()
            self._maintainer_users += 1
            return self._maintainer

    def wake_maintenance(self) -> None:
        """Run a maintenance round soon (after a segment is tracked or changed)."""
        m = self._maintainer
        if m is not None:
            m.wake()

    def stop_maintenance(self) -> None:
        """Undo one start_maintenance; the last one stops the thread."""
        with self._lock:
            if self._maintainer is None:
                return
            self._maintainer_users -= 1
            if self._maintainer_users > 0:
                return
            m, self._maintainer = self._maintainer, None
        m.stop()

    # ------------------------------------------------------------ layout
    def _dir(self, dataset: str, kind: str, create: bool = False) -> Path:
        """The dataset's catalog folder of `kind`; made only for a write (a read on a full
        disk must not need space)."""
        self.engine.dataset(dataset)  # NotFound for an unknown dataset
        d = dataset_dir(self.engine.root, dataset) / "catalog" / kind
        if create:
            with space.reserve(d.parent.parent, 1 << 16, "the catalog folder"):
                d.mkdir(parents=True, exist_ok=True)
        return d

    # ------------------------------------------------------------ saved segments
    def create_segment(self, dataset: str, name: str, segment: S.Segment, description: str = "",
                       active: bool = True) -> SavedSegment:
        """Save a new named definition; AlreadyExists if the name is taken."""
        _check_name(name)
        _check_description(description)
        self.check_references(dataset, name, segment)
        with self._lock:
            path = self._dir(dataset, "segments", create=True) / f"{name}.json"
            if path.exists():
                raise AlreadyExists("name", f"saved segment {name!r} already exists in {dataset!r}")
            now = self.clock()
            saved = SavedSegment(name, segment, description, bool(active), now, now)
            self._write_segment(path, saved)
            return saved

    def get_segment(self, dataset: str, name: str) -> SavedSegment:
        """A saved segment (active or not); NotFound if absent."""
        _check_name(name)
        path = self._dir(dataset, "segments") / f"{name}.json"
        try:
            rec = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound("name", f"no saved segment {name!r} in {dataset!r}",
                           reason="SAVED_SEGMENT_NOT_FOUND") from None
        return SavedSegment(rec["name"], segment_json.parse_segment(rec["definition"]), rec["description"],
                            rec["active"], _parse_time(rec["created_at"]), _parse_time(rec["updated_at"]))

    def list_segments(self, dataset: str) -> list:
        """Every saved segment of a dataset, by name."""
        d = self._dir(dataset, "segments")
        out = []
        for p in sorted(d.glob("*.json")) if d.is_dir() else ():
            try:
                out.append(self.get_segment(dataset, p.stem))
            except NotFound:  # deleted meanwhile
                pass
        return out

    def update_segment(self, dataset: str, name: str, segment: Optional[S.Segment] = None,
                       description: Optional[str] = None, active: Optional[bool] = None) -> SavedSegment:
        """Change the given parts of a saved segment; NotFound if absent."""
        if description is not None:
            _check_description(description)
        if segment is not None:
            self.check_references(dataset, name, segment)
        with self._lock:
            old = self.get_segment(dataset, name)
            new = replace(old, segment=old.segment if segment is None else segment,
                          description=old.description if description is None else description,
                          active=old.active if active is None else bool(active), updated_at=self.clock())
            self._write_segment(self._dir(dataset, "segments", create=True) / f"{name}.json", new)
            return new

    def check_references(self, dataset: str, name: str, segment: S.Segment) -> None:
        """Refuse a definition saved as `name` whose in_segment references lead back to it
        (InvalidArgument naming the path of the reference that starts the cycle)."""
        for path, c in segment_json.condition_paths(segment):
            if not isinstance(c, S.InSegment):
                continue
            chain = self._cycle(dataset, name, c.name, (name,))
            if chain is not None:
                raise InvalidArgument(path, "reference cycle: " + " -> ".join(chain),
                                      reason="REFERENCE_CYCLE")

    def _cycle(self, dataset: str, start: str, ref: str, chain: tuple):
        if ref == start:
            return chain + (ref,)
        if ref in chain:
            return None   # a cycle not through `start` (refused when it was saved)
        try:
            seg = self.get_segment(dataset, ref).segment
        except NotFound:
            return None   # a missing name: NotFound when evaluated
        for _, c in segment_json.condition_paths(seg):
            if isinstance(c, S.InSegment):
                found = self._cycle(dataset, start, c.name, chain + (ref,))
                if found is not None:
                    return found
        return None

    def delete_segment(self, dataset: str, name: str) -> None:
        """Remove a saved segment; NotFound if absent."""
        _check_name(name)
        with self._lock:
            try:
                (self._dir(dataset, "segments") / f"{name}.json").unlink()
            except FileNotFoundError:
                raise NotFound("name", f"no saved segment {name!r} in {dataset!r}",
                               reason="SAVED_SEGMENT_NOT_FOUND") from None
            # its snapshots and daily task go with it
            shutil.rmtree(self._dir(dataset, "audiences") / name, ignore_errors=True)
            for suffix in (".json", ".members", ".runs"):
                (self._dir(dataset, "tasks") / f"{name}{suffix}").unlink(missing_ok=True)

    def resolve(self, dataset: str, name: str, path: str = "saved_segment") -> S.Segment:
        """The definition of an active saved segment, for evaluation; FailedPrecondition if inactive."""
        try:
            saved = self.get_segment(dataset, name)
        except (NotFound, InvalidArgument) as e:
            if e.path != "name":
                raise
            raise type(e)(path, e.message, reason=e.reason) from None
        if not saved.active:
            raise FailedPrecondition(path, f"saved segment {name!r} is inactive", reason="SAVED_SEGMENT_INACTIVE")
        return saved.segment

    @staticmethod
    def _write_segment(path: Path, s: SavedSegment) -> None:
        rec = {"name": s.name, "definition": segment_json.dump_segment(s.segment), "description": s.description,
               "active": s.active, "created_at": _iso(s.created_at), "updated_at": _iso(s.updated_at)}
        _write_atomic(path, json.dumps(rec, sort_keys=True).encode())

    # ------------------------------------------------------------ groups
    def create_group(self, dataset: str, name: str, segment: Optional[S.Segment] = None, *,
                     saved_segment: Optional[str] = None, as_of: Optional[dt.datetime] = None,
                     description: str = "", ttl_days: Optional[int] = None,
                     deadline: Optional[float] = None) -> Group:
        """Evaluate a definition (or an active saved segment) and freeze its members."""
        _check_name(name)
        _check_description(description)
        ttl = self.default_ttl_days if ttl_days is None else ttl_days
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL_DAYS:
            raise InvalidArgument("ttl_days", f"must be between 1 and {MAX_TTL_DAYS}, got {ttl!r}")
        if (segment is None) == (saved_segment is None):
            raise InvalidArgument("definition", "give either a segment or a saved_segment")
        if saved_segment is not None:
            segment = self.resolve(dataset, saved_segment)
        d = self._dir(dataset, "groups", create=True)
        if (d / f"{name}.json").exists():
            raise AlreadyExists("name", f"group {name!r} already exists in {dataset!r}")
        m = self.engine.materialize(dataset, segment, (), as_of, deadline)
        members = np.unique(np.asarray(m.customer_ids, dtype=np.int64))
        with self._lock:
            if (d / f"{name}.json").exists():
                raise AlreadyExists("name", f"group {name!r} already exists in {dataset!r}")
            now = self.clock()
            group = Group(name, description, int(members.size), segment_json.dumps(segment), saved_segment,
                          as_of, now, now + dt.timedelta(days=ttl))
            buf = _npy_bytes(members)
            _write_atomic(d / f"{name}.npy", buf)
            _write_atomic(d / f"{name}.json", json.dumps(_group_record(group), sort_keys=True).encode())
            return group

    def _read_group(self, dataset: str, name: str) -> Group:
        _check_name(name)
        path = self._dir(dataset, "groups") / f"{name}.json"
        try:
            r = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound("name", f"no group {name!r} in {dataset!r}", reason="GROUP_NOT_FOUND") from None
        return Group(r["name"], r["description"], r["count"], r["source"], r["saved_segment"],
                     _parse_time(r["as_of"]), _parse_time(r["created_at"]), _parse_time(r["expires_at"]))

    def get_group(self, dataset: str, name: str) -> Group:
        """A live group's record; NotFound if absent, FailedPrecondition once expired."""
        g = self._read_group(dataset, name)
        if g.expired(self.clock()):
            raise FailedPrecondition("name", f"group {name!r} expired at {g.expires_at.isoformat()}",
                                     reason="GROUP_EXPIRED")
        return g

    def list_groups(self, dataset: str) -> list:
        """Every group of a dataset (expired ones too; see Group.expired), by name."""
        out = []
        d = self._dir(dataset, "groups")
        for p in sorted(d.glob("*.json")) if d.is_dir() else ():
            try:
                out.append(self._read_group(dataset, p.stem))
            except NotFound:
                pass
        return out

    def delete_group(self, dataset: str, name: str) -> None:
        """Remove a group for good (expired or not); NotFound if absent."""
        _check_name(name)
        with self._lock:
            d = self._dir(dataset, "groups")
            try:
                (d / f"{name}.json").unlink()
            except FileNotFoundError:
                raise NotFound("name", f"no group {name!r} in {dataset!r}", reason="GROUP_NOT_FOUND") from None
            (d / f"{name}.npy").unlink(missing_ok=True)

    def group_members(self, dataset: str, name: str) -> np.ndarray:
        """The frozen member customer_ids (sorted), as at creation."""
        self.get_group(dataset, name)
        try:
            return np.load(self._dir(dataset, "groups") / f"{name}.npy", allow_pickle=False)
        except FileNotFoundError:  # deleted meanwhile
            raise NotFound("name", f"no group {name!r} in {dataset!r}", reason="GROUP_NOT_FOUND") from None

    def materialize_group(self, dataset: str, name: str, fields: Sequence[str] = (),
                          deadline: Optional[float] = None) -> Materialized:
        """The frozen members still in the dataset (deleted since: left out), with chosen
        fields; members made inactive since stay (a group is a snapshot of people)."""
        members = self.group_members(dataset, name)
        if deadline is not None and time.monotonic() > deadline:
            raise Cancelled("deadline", "deadline exceeded")
        m = self.engine.rows_of(dataset, members, tuple(fields))
        m.missing_ids = ()  # members deleted since: left out on purpose, not an input error
        return m


def scrub_groups(dataset_dir: Path, erased: np.ndarray) -> None:
    """Remove erased customer_ids from every group's frozen members (run by a compaction,
    so erased customers leave storage; answers already left them out)."""
    d = Path(dataset_dir) / "catalog" / "groups"
    if not d.exists():
        return
    for f in d.glob("*.npy"):
        try:
            members = np.load(f, allow_pickle=False)
        except (FileNotFoundError, ValueError):
            continue
        keep = ~np.isin(members, erased)
        if not keep.all():
            _write_atomic(f, _npy_bytes(members[keep]))


def _group_record(g: Group) -> dict:
    return {"name": g.name, "description": g.description, "count": g.count, "source": g.source,
            "saved_segment": g.saved_segment, "as_of": _iso(g.as_of), "created_at": _iso(g.created_at),
            "expires_at": _iso(g.expires_at)}


def _npy_bytes(a: np.ndarray) -> bytes:
    import io
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()
