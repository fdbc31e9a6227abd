"""AudiencesService: tracked saved segments, their snapshots and diffs, Watch, daily tasks.

A thin adapter like server/servicer.py (same `rpc` wrapper: auth, deadline, error mapping,
access log). Watch holds one server thread per watcher; it ends with UNAVAILABLE when the
server begins to shut down (the caller reconnects with the last snapshot it saw) and with
DEADLINE_EXCEEDED at the call's deadline. At most half the server's threads stream
watches (RESOURCE_EXHAUSTED beyond).
"""
from __future__ import annotations

import threading

import grpc

import numpy as np
from segments.engine.errors import InvalidArgument
from segments.proto import segments_pb2 as pb
from segments.proto import segments_pb2_grpc as pbg

from . import codec
from .errors import PermissionDenied, ResourceExhausted, Unavailable
from .servicer import Services, rpc

FORMATS = {"parquet": pb.EXPORT_FORMAT_PARQUET, "csv": pb.EXPORT_FORMAT_CSV}
EVALUATION = {"full": pb.EVALUATION_KIND_FULL, "incremental": pb.EVALUATION_KIND_INCREMENTAL}
WAIT_SLICE = 0.5   # seconds between checks of the deadline, the caller and shutdown


def _tracking(t) -> pb.Tracking:
    return pb.Tracking(name=t.name, keep=t.keep, keep_days=t.keep_days, since=codec.timestamp(t.since))


def _snapshot(s) -> pb.AudienceSnapshot:
    return pb.AudienceSnapshot(number=s.number, as_of=codec.timestamp(s.as_of), change_sequence=s.sequence,
                               count=s.count, entered=s.entered, exited=s.exited,
                               evaluation=EVALUATION.get(s.evaluation, pb.EVALUATION_KIND_UNSPECIFIED),
                               recorded_at=codec.timestamp(s.recorded_at))


def _ipc(table) -> bytes:
    import pyarrow as pa
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


class AudiencesServicer(pbg.AudiencesServiceServicer):
    """Tracking, snapshots, diffs, Watch and daily tasks."""
    SERVICE = pb.DESCRIPTOR.services_by_name["AudiencesService"].full_name

    def __init__(self, s: Services, stopping: threading.Event, max_watchers: int = 8):
        self.s, self.tokens, self.a = s, s.tokens, s.catalog.audiences
        self.stopping = stopping
        # each Watch holds a server thread while it waits: at most this many at once, so
        # that watchers never take every thread from the other calls
        self.max_watchers = max_watchers
        self._watchers = threading.BoundedSemaphore(max_watchers)

    @rpc("write")
    def TrackSavedSegment(self, request, call):
        kw = {}
        if request.HasField("keep"):
            kw["keep"] = request.keep
        if request.HasField("keep_days"):
            kw["keep_days"] = request.keep_days
        t = self.a.track(self.s.dataset_name(request.dataset), request.name, **kw)
        self.s.catalog.wake_maintenance()
        return pb.TrackSavedSegmentResponse(tracking=_tracking(t))

    @rpc("write")
    def UntrackSavedSegment(self, request, call):
        self.a.untrack(self.s.dataset_name(request.dataset), request.name)
        return pb.UntrackSavedSegmentResponse()

    @rpc("read")
    def ListSnapshots(self, request, call):
        t = self.a.require_tracking(self.s.dataset_name(request.dataset), request.name)
        return pb.ListSnapshotsResponse(tracking=_tracking(t), snapshots=[
            _snapshot(x) for x in self.a.snapshots(request.dataset, request.name)])

    @rpc("read")
    def DiffSnapshots(self, request, call):
        if request.fields and not call.may("export"):
            raise PermissionDenied("fields", "customer fields need the 'export' role (ids alone: 'read')")
        to = request.to_snapshot if request.HasField("to_snapshot") else None
        d = call.engine(self.a.diff, self.s.dataset_name(request.dataset), request.name,
                        int(request.from_snapshot), None if to is None else int(to), tuple(request.fields),
                        None, call.deadline)
        out = pb.DiffSnapshotsResponse(from_snapshot=d.from_snapshot, to_snapshot=d.to_snapshot or 0,
                                       as_of=codec.timestamp(d.as_of), change_sequence=d.sequence,
                                       entered_ids=d.entered_ids.tolist(), exited_ids=d.exited_ids.tolist())
        if request.fields:
            out.entered_arrow_ipc = _ipc(d.entered.to_arrow())
        call.sent(d.entered_ids.size + d.exited_ids.size)
        return out

    @rpc("read", stream=True)
    def Watch(self, request, call):
        if not self._watchers.acquire(blocking=False):
            raise ResourceExhausted("", f"this server already streams {self.max_watchers} watches (half its "
                                        "threads); retry later or on another server")
        try:
            yield from self._watch(request, call)
        finally:
            self._watchers.release()

    def _watch(self, request, call):
        dataset = self.s.dataset_name(request.dataset)
        name = request.name
        self.a.require_tracking(dataset, name)
        after = int(request.after_snapshot)
        if after < 0:
            raise InvalidArgument("after_snapshot", f"must be >= 0, got {after}")
        if after > 0:
            newest = self.a.latest(dataset, name)
            if newest is None or after > newest.number:
                raise InvalidArgument("after_snapshot", f"snapshot {after} of {name!r} has not been recorded "
                                                        f"(newest: {newest.number if newest else 'none'})")
            self._retained(dataset, name, after)
        while True:
            version = self.a.version
            snaps = self.a.snapshots(dataset, name, after)
            if after == 0 and snaps:  # a fresh watcher starts from the newest snapshot: every member
                snap = snaps[-1]
                entered, exited = self._read(self.a.members, dataset, name, snap.number), np.zeros(0, np.int64)
                yield self._message(call, snap, 0, entered, exited)
                after = snap.number
                snaps = []
            for snap in snaps:
                if snap.number != after + 1:
                    raise _gone(name, after + 1)
                entered, exited = self._read(self.a.delta, dataset, name, snap.number)
                yield self._message(call, snap, after, entered, exited)
                after = snap.number
            with self.a.changed:
                while self.a.version == version:
                    if self.stopping.is_set():
                        raise Unavailable("", f"the server is shutting down; reconnect with after_snapshot={after}")
                    call.check()
                    if self.a.tracking(dataset, name) is None:
                        raise _untracked(name)
                    if self.a.newest_number(dataset, name) > after:  # recorded by another process
                        break
                    self.a.changed.wait(WAIT_SLICE)

    @staticmethod
    def _message(call, snap, previous, entered, exited) -> pb.WatchResponse:
        call.sent(entered.size + exited.size)
        return pb.WatchResponse(snapshot=snap.number, previous_snapshot=previous, as_of=codec.timestamp(snap.as_of),
                                change_sequence=snap.sequence, count=snap.count, entered_ids=entered.tolist(),
                                exited_ids=exited.tolist(),
                                evaluation=EVALUATION.get(snap.evaluation, pb.EVALUATION_KIND_UNSPECIFIED))

    def _retained(self, dataset, name, number) -> None:
        """FAILED_PRECONDITION when a watcher's last snapshot is no longer kept."""
        self._read(self.a.snapshot, dataset, name, number)

    # ------------------------------------------------------------ daily tasks
    def _task(self, dataset, t) -> pb.DailyTask:
        return pb.DailyTask(name=t.name, at=t.at, format=FORMATS[t.format], fields=list(t.fields), folder=t.folder,
                            last_run_day=t.last_run_day.isoformat() if t.last_run_day else "",
                            next_run=codec.timestamp(self.s.catalog.schedules.next_run(dataset, t)))

    @rpc("write")
    def SetDailyTask(self, request, call):
        dataset = self.s.dataset_name(request.dataset)
        fmt = "csv" if request.format == pb.EXPORT_FORMAT_CSV else "parquet"
        t = self.s.catalog.schedules.set_task(dataset, request.name, request.at, fmt, tuple(request.fields),
                                              request.folder or "daily")
        self.s.catalog.wake_maintenance()
        return pb.SetDailyTaskResponse(task=self._task(dataset, t))

    @rpc("write")
    def DeleteDailyTask(self, request, call):
        self.s.catalog.schedules.delete_task(self.s.dataset_name(request.dataset), request.name)
        return pb.DeleteDailyTaskResponse()

    @rpc("read")
    def ListDailyTasks(self, request, call):
        dataset = self.s.dataset_name(request.dataset)
        return pb.ListDailyTasksResponse(tasks=[self._task(dataset, t)
                                                for t in self.s.catalog.schedules.tasks(dataset)])

    @rpc("export")
    def RunDailyTasks(self, request, call):
        runs = call.engine(self.s.catalog.schedules.run_due, self.s.dataset_name(request.dataset))
        return pb.RunDailyTasksResponse(runs=[pb.DailyTaskRun(
            name=r.name, day=r.day.isoformat(), as_of=codec.timestamp(r.as_of), rows=r.rows, entered=r.entered,
            exited=r.exited, file_name=r.file, entered_file_name=r.entered_file, exited_file_name=r.exited_file)
            for r in runs])

    def _read(self, fn, dataset, name, number):
        """fn(dataset, name, number) of a snapshot; its absence as a status a watcher acts on."""
        from segments.engine.errors import NotFound
        try:
            return fn(dataset, name, number, "after_snapshot")
        except NotFound:
            if self.a.tracking(dataset, name) is None:
                raise _untracked(name) from None
            raise _gone(name, number) from None


def _gone(name: str, number: int):
    from segments.engine.errors import FailedPrecondition
    return FailedPrecondition("after_snapshot", f"snapshot {number} of {name!r} is no longer retained: "
                                                "start again with after_snapshot=0 (every member)",
                              reason="SNAPSHOT_NOT_RETAINED")


def _untracked(name: str):
    from segments.engine.errors import FailedPrecondition
    return FailedPrecondition("name", f"saved segment {name!r} is no longer tracked", reason="SEGMENT_NOT_TRACKED")


__all__ = ["AudiencesServicer", "grpc"]
