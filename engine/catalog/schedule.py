"""Daily tasks: a saved segment exported every day at a local time of the dataset.

  catalog/tasks/<name>.json      the task: at (HH:MM), format, fields, folder, since, last_run_day
  catalog/tasks/<name>.members   the members of the last run (a 64-bit roaring bitmap of customer_ids)
  catalog/tasks/<name>.runs      one JSON line per run (day, as_of, rows, entered, exited, files)
A day's run evaluates the saved segment as of that day's HH:MM in the dataset's timezone
(a time a DST change skips maps to the instant after the gap; a repeated one is its first
occurrence) and writes, under <export folder>/<dataset>/<folder>/:
  <name>-<YYYY-MM-DD>.<format>           every member, with the fields
  <name>-<YYYY-MM-DD>.entered.<format>   members that were not members at the previous run (with the fields)
  <name>-<YYYY-MM-DD>.exited.<format>    customer_ids of the previous run's members that are not members now
(the first run: everyone entered). `run_due(now)` runs every day whose time has come since
the last run, oldest first, so days missed while the server was down run after it, each as
of its own time. A run's files are written before its record, so a crash in between makes
the day run again (the same files, rewritten).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from pyroaring import BitMap64

from ..errors import InvalidArgument, NotFound
from ..evaluation.exporter import FORMATS, provenance, write_table
from ..evaluation.output import _check_fields
from ..model import segment_json
from .audiences import ids_of, members_of

AT_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
FOLDER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_CATCH_UP_DAYS = 366   # at most this many missed days are run at once


@dataclass(frozen=True)
class DailyTask:
    """A saved segment's daily export."""
    name: str
    at: str                       # "HH:MM" local
    format: str                   # parquet | csv
    fields: tuple
    folder: str
    since: dt.datetime            # days whose time is before this are not run
    last_run_day: Optional[dt.date]


@dataclass(frozen=True)
class TaskRun:
    """One day's run of a task."""
    name: str
    day: dt.date
    as_of: dt.datetime
    rows: int
    entered: int
    exited: int
    file: str                     # relative to the export folder
    entered_file: str
    exited_file: str


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat()


def check_at(at: str) -> str:
    if not isinstance(at, str) or not AT_RE.match(at.strip()):
        raise InvalidArgument("at", f"expected a local time HH:MM (00:00 to 23:59), got {at!r}")
    return at.strip()


def check_folder(folder: str) -> str:
    if not isinstance(folder, str) or not FOLDER_RE.match(folder) or ".." in folder:
        raise InvalidArgument("folder", f"{folder!r} is not a plain folder name (letters, digits, _ . -; "
                                        "it lives in the dataset's export folder)")
    return folder


def run_instant(day: dt.date, at: str, zone) -> dt.datetime:
    """The UTC instant of local `at` on `day` (a skipped time maps past the gap)."""
    h, m = (int(x) for x in at.split(":"))
    return dt.datetime(day.year, day.month, day.day, h, m, tzinfo=zone).astimezone(dt.timezone.utc)


class Schedules:
    """Daily tasks of every dataset of one catalog."""

    def __init__(self, catalog, export_dir: Optional[Path] = None):
        self.catalog = catalog
        self.export_dir = Path(export_dir) if export_dir else Path(catalog.engine.root) / "_exports"

    def _path(self, dataset: str, name: str, suffix: str, create: bool = False) -> Path:
        from .catalog import _check_name
        _check_name(name)
        return self.catalog._dir(dataset, "tasks", create=create) / f"{name}{suffix}"

    # ------------------------------------------------------------ tasks
    def set_task(self, dataset: str, name: str, at: str, format: str = "parquet", fields: Sequence[str] = (),
                 folder: str = "daily") -> DailyTask:
        """Give a saved segment a daily export (or change it; its run history stays)."""
        from .catalog import _write_atomic
        at = check_at(at)
        if format not in FORMATS:
            raise InvalidArgument("format", f"expected one of: {', '.join(FORMATS)}, got {format!r}")
        fields = _check_fields(tuple(fields))
        folder = check_folder(folder)
        self.catalog.get_segment(dataset, name)
        old = self.task(dataset, name)
        t = DailyTask(name, at, format, fields, folder, old.since if old else self.catalog.clock(),
                      old.last_run_day if old else None)
        _write_atomic(self._path(dataset, name, ".json", create=True), json.dumps(_task_json(t)).encode())
        return t

    def delete_task(self, dataset: str, name: str) -> None:
        p = self._path(dataset, name, ".json")
        if not p.exists():
            raise NotFound("name", f"saved segment {name!r} of {dataset!r} has no daily task", reason="TASK_NOT_FOUND")
        p.unlink()
        self._path(dataset, name, ".members").unlink(missing_ok=True)

    def task(self, dataset: str, name: str) -> Optional[DailyTask]:
        try:
            r = json.loads(self._path(dataset, name, ".json").read_text())
        except FileNotFoundError:
            return None
        return DailyTask(r["name"], r["at"], r["format"], tuple(r["fields"]), r["folder"],
                         dt.datetime.fromisoformat(r["since"]),
                         dt.date.fromisoformat(r["last_run_day"]) if r["last_run_day"] else None)

    def tasks(self, dataset: str) -> list:
        d = self.catalog._dir(dataset, "tasks")
        out = []
        for p in sorted(d.glob("*.json")) if d.is_dir() else ():
            t = self.task(dataset, p.stem)
            if t is not None:
                out.append(t)
        return out

    def runs(self, dataset: str, name: str) -> list:
        """Every recorded run of a task, oldest first (dicts as written)."""
        try:
            text = self._path(dataset, name, ".runs").read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def next_run(self, dataset: str, t: DailyTask) -> dt.datetime:
        """The instant of the next day to run."""
        zone = self.catalog.engine.dataset(dataset).zone
        return run_instant(self._next_day(t, zone), t.at, zone)

    @staticmethod
    def _next_day(t: DailyTask, zone) -> dt.date:
        if t.last_run_day is not None:
            return t.last_run_day + dt.timedelta(days=1)
        day = t.since.astimezone(zone).date()
        return day if run_instant(day, t.at, zone) >= t.since else day + dt.timedelta(days=1)

    # ------------------------------------------------------------ running
    def run_due(self, dataset: str, now: Optional[dt.datetime] = None) -> list:
        """Run every day of every task of `dataset` whose time has come (missed days too,
        oldest first, each as of its own time); returns the TaskRuns."""
        now = now or self.catalog.clock()
        zone = self.catalog.engine.dataset(dataset).zone
        out = []
        for t in self.tasks(dataset):
            for _ in range(MAX_CATCH_UP_DAYS):
                day = self._next_day(t, zone)
                at = run_instant(day, t.at, zone)
                if at > now:
                    break
                try:
                    saved = self.catalog.get_segment(dataset, t.name)
                except NotFound:
                    break
                if not saved.active:
                    break
                out.append(self._run(dataset, t, saved.segment, day, at))
                t = self.task(dataset, t.name)
                if t is None:
                    break
        return out

    def _run(self, dataset: str, t: DailyTask, seg, day: dt.date, at: dt.datetime) -> TaskRun:
        from .catalog import _write_atomic
        engine = self.catalog.engine
        m = engine.materialize(dataset, seg, t.fields, as_of=at)
        new = members_of(m.customer_ids)
        try:
            old = BitMap64.deserialize(self._path(dataset, t.name, ".members").read_bytes())
        except FileNotFoundError:
            old = BitMap64()
        entered, exited = ids_of(new - old), ids_of(old - new)
        folder = self._folder(dataset, t.folder)
        stem = f"{t.name}-{day.isoformat()}"
        meta = provenance(m, segment_json.dumps(seg), dataset, "daily task")
        table = m.to_arrow()
        files = []
        for suffix, tab in (("", table),
                            (".entered", table.filter(pc.is_in(table.column("customer_id"),
                                                                       pa.array(entered, pa.int64())))),
                            (".exited", pa.table({"customer_id": pa.array(exited, pa.int64())}))):
            path = folder / f"{stem}{suffix}.{t.format}"
            write_table(tab, path, meta)
            files.append(path.relative_to(self.export_dir.resolve()).as_posix())
        run = TaskRun(t.name, day, at, len(m.customer_ids), int(entered.size), int(exited.size), *files)
        _write_atomic(self._path(dataset, t.name, ".members"), new.serialize())
        with open(self._path(dataset, t.name, ".runs"), "a") as f:
            f.write(json.dumps({"day": day.isoformat(), "as_of": _iso(at), "sequence": m.sequence,
                                "rows": run.rows, "entered": run.entered, "exited": run.exited,
                                "file": run.file, "entered_file": run.entered_file,
                                "exited_file": run.exited_file, "ran_at": _iso(self.catalog.clock())}) + "\n")
        _write_atomic(self._path(dataset, t.name, ".json"),
                      json.dumps(_task_json(DailyTask(t.name, t.at, t.format, t.fields, t.folder, t.since, day))).encode())
        return run

    def _folder(self, dataset: str, folder: str) -> Path:
        """<export folder>/<dataset>/<folder>, checked not to lead elsewhere (symlinks)."""
        base = (self.export_dir / dataset).resolve()
        path = (base / check_folder(folder)).resolve()
        if path.parent != base:
            raise InvalidArgument("folder", f"{folder!r} leaves the dataset's export folder")
        path.mkdir(parents=True, exist_ok=True)
        return path


def _task_json(t: DailyTask) -> dict:
    return {"name": t.name, "at": t.at, "format": t.format, "fields": list(t.fields), "folder": t.folder,
            "since": _iso(t.since), "last_run_day": t.last_run_day.isoformat() if t.last_run_day else None}
