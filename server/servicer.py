"""The gRPC servicers: thin adapters that decode, call the engine, and encode.

Every method is wrapped by `rpc(role)`, which authorizes the call, turns the call's
deadline into the engine's `deadline` (a time.monotonic() value; the server's default
deadline when the caller set none or a later one), and maps any exception to a status
through server.errors, the one place that knows the mapping.

What an answer may reveal follows the roles (docs/security.md): counts and customer ids
are read data, so a token without `read` on the dataset gets acknowledgements without them
(CreateGroup's count, ApplyChanges' not_found and deleted count).
"""
from __future__ import annotations

import datetime as dt
import functools
import secrets
import shutil
import tempfile
import time

import grpc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from segments.engine.model import limits
from segments.engine.model import segment as S
from segments.engine.model import segment_json
from segments.engine.catalog.catalog import Catalog
from segments import __version__
from segments.engine.errors import EngineError, InvalidArgument
from segments.engine.evaluation.exporter import provenance, sidecar_path, write_table
from segments.proto import segments_pb2 as pb
from segments.proto import segments_pb2_grpc as pbg

from . import changes, codec, export, ingest_root, paging
from .auth import Grant, Tokens, authorize
from .errors import DeadlineExceeded, rich_status
from .observe import REQUEST_ID, CallRecord, Observer, with_trailing

DEFAULT_PREVIEW = 20
MAX_PREVIEW = limits.MAX_PREVIEW
DEFAULT_CHUNK_IDS = 65_536
STREAM_BYTES = 1 << 20   # StreamExport message size
MEDIA_TYPES = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}


@dataclass
class Call:
    """What a method body gets besides its request."""
    deadline: Optional[float]   # absolute time.monotonic(), None without a deadline
    context: object
    record: CallRecord
    observer: Observer
    grant: Optional[Grant] = None   # None: a server without tokens (every role)

    def may(self, role: str) -> bool:
        """Whether the caller holds `role` on the call's dataset (checked by authorize)."""
        return self.grant is None or role in self.grant.roles

    def check(self) -> None:
        """Stop a streamed answer between chunks once the deadline passed or the caller left."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DeadlineExceeded("", "deadline exceeded")
        if not self.context.is_active():
            raise DeadlineExceeded("", "call no longer active")

    gate: object = None             # server.fairness.TenantGate, None: no per-dataset limit

    def engine(self, fn, *args, **kwargs):
        """fn(*args, **kwargs) counted as engine time of this call, in one of its dataset's
        slots (server.fairness) when the server limits them."""
        if self.gate is None or not self.record.dataset:
            return self.observer.engine(self.record, fn, *args, **kwargs)
        with self.gate.admit(self.record.dataset, self.deadline):
            return self.observer.engine(self.record, fn, *args, **kwargs)

    def build(self, fn, *args, **kwargs):
        """A bulk load or compaction: engine time, but none of the dataset's call slots (one
        runs at a time per dataset, below the readers' priority, and may take minutes; its
        dataset's reads go on beside it)."""
        return self.observer.engine(self.record, fn, *args, **kwargs)

    def sent(self, rows: int) -> None:
        """Count customer rows this call sends (preview, materialize, export)."""
        self.record.rows = (self.record.rows or 0) + int(rows)


def _deadline(context, default: Optional[float] = None) -> Optional[float]:
    """The caller's deadline, capped by the server's default (seconds) when one is set."""
    remaining = context.time_remaining()
    if remaining is None or remaining > 1e8:  # no deadline set by the caller
        remaining = None
    if default is not None and (remaining is None or remaining > default):
        remaining = default
    return None if remaining is None else time.monotonic() + remaining


def fail(self, context, call: Optional[Call], exc: BaseException, name: str):
    """End a failed call with its status (server.errors), keeping the request id in the
    trailer beside the status details, and close its record with that code (raises)."""
    status = rich_status(exc, name)
    if call is None:
        context.abort_with_status(status)
    self.s.observer.finish(call.record, status.code, status.details)
    context.abort_with_status(with_trailing(status, ((REQUEST_ID, call.record.request_id),)))


def rpc(role: str, dataset: Callable = lambda r: r.dataset, stream: bool = False):
    """Wrap a servicer method body `fn(self, request, call)`: request id, auth, deadline,
    error mapping, and the call's record (access log, metrics, span) closed with its code."""
    def wrap(fn):
        name = fn.__name__

        def start(self, request, context) -> Call:
            obs = self.s.observer
            rec = obs.start(f"{self.SERVICE}/{name}", dataset(request), context)
            call = Call(_deadline(context, self.s.default_deadline), context, rec, obs)
            call.gate = self.s.gate
            call.grant = authorize(self.tokens, context.invocation_metadata(), role, dataset(request))
            return call

        if stream:
            @functools.wraps(fn)
            def handler(self, request, context):
                call = None
                try:
                    call = start(self, request, context)
                    yield from fn(self, request, call)
                    self.s.observer.finish(call.record, grpc.StatusCode.OK)
                except GeneratorExit:  # the caller went away mid-stream
                    if call is not None:
                        self.s.observer.finish(call.record, grpc.StatusCode.CANCELLED)
                    raise
                except Exception as e:  # noqa: BLE001 - mapped, never shown raw
                    fail(self, context, call, e, name)
        else:
            @functools.wraps(fn)
            def handler(self, request, context):
                call = None
                try:
                    call = start(self, request, context)
                    out = fn(self, request, call)
                    self.s.observer.finish(call.record, grpc.StatusCode.OK)
                    return out
                except Exception as e:  # noqa: BLE001
                    fail(self, context, call, e, name)
        return handler
    return wrap


class Services:
    """State the three servicers share."""

    def __init__(self, engine, catalog: Catalog, tokens: Optional[Tokens], export_dir: Path,
                 chunk_ids: int = DEFAULT_CHUNK_IDS, ingest_root: Optional[Path] = None,
                 default_deadline: Optional[float] = None, observer: Optional[Observer] = None,
                 gate=None):
        self.engine = engine
        self.gate = gate   # server.fairness.TenantGate or None
        self.catalog = catalog
        self.tokens = tokens
        self.export_dir = Path(export_dir)
        self.chunk_ids = chunk_ids
        self.ingest_root = ingest_root
        self.default_deadline = default_deadline
        self.observer = observer or Observer()

    def segment(self, dataset: str, source: pb.SegmentSource) -> S.Segment:
        """The engine Segment a request names (definition, JSON text, or active saved segment)."""
        kind = source.WhichOneof("kind")
        if kind in ("segment", "segment_json"):
            return codec.decode_source_definition(kind, getattr(source, kind))
        if kind == "saved_segment":
            return self.catalog.resolve(dataset, source.saved_segment, "source.saved_segment")
        raise InvalidArgument("source", "required: a segment, segment_json or saved_segment")

    def dataset_name(self, name: str) -> str:
        """NotFound for an unknown dataset, before any other work."""
        self.engine.dataset(name)
        return name

    def remove_exports(self, dataset: str) -> None:
        """Delete the dataset's export folder (its files hold customer data)."""
        folder = self.export_dir / dataset
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
        elif folder.is_symlink():
            folder.unlink()

    def export(self, dataset: str, materialize, fmt_code: int, file_name: str, call: Call,
               segment_json: Optional[str] = None, as_of=None, message=pb.ExportResponse):
        """Write what materialize() returns into the export folder, with its provenance
        (exporter.provenance; as_of given for a group's frozen instant). Space is checked
        and reserved inside write_table."""
        fmt = _format(fmt_code)
        path = export.target_path(self.export_dir, dataset, file_name, fmt)
        t0 = time.perf_counter()
        m = call.engine(materialize)
        if as_of is not None:
            m.as_of = as_of
        rows = write_table(m.to_arrow(), path, provenance(m, segment_json, dataset, f"segments {__version__}"))
        call.sent(rows)
        return message(file_name=export.relative_name(self.export_dir, path), rows=rows,
                       elapsed_ms=(time.perf_counter() - t0) * 1e3,
                       metadata_file_name=export.relative_name(self.export_dir, sidecar_path(path))
                       if fmt == "csv" else "")


def _format(code: int) -> str:
    """"csv" or "parquet" (the default) of an ExportFormat."""
    return "csv" if code == pb.EXPORT_FORMAT_CSV else "parquet"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _fields(request) -> tuple:
    return tuple(request.fields)


class SegmentsServicer(pbg.SegmentsServiceServicer):
    """Count, preview, materialize, export and explain."""
    SERVICE = pb.DESCRIPTOR.services_by_name["SegmentsService"].full_name

    def __init__(self, s: Services):
        self.s, self.tokens = s, s.tokens

    @rpc("read")
    def Count(self, request, call):
        seg = self.s.segment(self.s.dataset_name(request.dataset), request.source)
        return codec.encode_count(call.engine(self.s.engine.count, request.dataset, seg,
                                              codec.decode_as_of(request), call.deadline))

    @rpc("read")
    def Preview(self, request, call):
        n = request.n or DEFAULT_PREVIEW
        if not 1 <= n <= MAX_PREVIEW:
            raise InvalidArgument("n", f"must be between 1 and {MAX_PREVIEW}, got {n}")
        fp = paging.fingerprint(request)
        as_of = codec.decode_as_of(request)
        seg = self.s.segment(self.s.dataset_name(request.dataset), request.source)
        if request.page_token:
            token_as_of, after, offset = paging.decode_token(request.page_token, fp)
            if as_of is not None and as_of != token_as_of:
                raise InvalidArgument("as_of", "differs from the first page's instant (leave it unset)")
            p, nxt = call.engine(paging.later_page, self.s.engine, request.dataset, seg, n, _fields(request),
                                 token_as_of, after, offset, call.deadline)
            as_of = token_as_of
        else:
            as_of = as_of or _now()
            p = call.engine(self.s.engine.preview, request.dataset, seg, n, _fields(request), as_of, call.deadline)
            nxt = (p.rows[-1]["customer_id"], len(p.rows)) if len(p.rows) < p.total and p.rows else None
        call.sent(len(p.rows))
        out = codec.encode_preview(p)
        out.as_of.CopyFrom(codec.timestamp(as_of))
        if nxt is not None:
            out.next_page_token = paging.encode_token(fp, as_of, *nxt)
        return out

    @rpc("export", stream=True)
    def Materialize(self, request, call):
        seg = self.s.segment(self.s.dataset_name(request.dataset), request.source)
        # in pieces: a cluster coordinator merges its partitions' streams as they are sent
        stream = call.engine(self.s.engine.materialize_stream, request.dataset, seg, _fields(request),
                             codec.decode_as_of(request), call.deadline, self.s.chunk_ids)
        call.sent(stream.total)
        yield from codec.stream_chunks(stream, call.check)

    @rpc("export")
    def Export(self, request, call):
        seg = self.s.segment(self.s.dataset_name(request.dataset), request.source)
        return self.s.export(
            request.dataset,
            lambda: self.s.engine.materialize(request.dataset, seg, _fields(request),
                                              codec.decode_as_of(request), call.deadline),
            request.format, request.file_name, call, segment_json.dumps(seg))

    @rpc("export", stream=True)
    def StreamExport(self, request, call):
        seg = self.s.segment(self.s.dataset_name(request.dataset), request.source)
        fmt = _format(request.format)
        t0 = time.perf_counter()
        m = call.engine(self.s.engine.materialize, request.dataset, seg, _fields(request),
                        codec.decode_as_of(request), call.deadline)
        meta = provenance(m, segment_json.dumps(seg), request.dataset, f"segments {__version__}")
        name = f"{request.dataset}-{m.as_of.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}.{fmt}"
        with tempfile.TemporaryDirectory(prefix="segments-export-") as tmp:
            path = Path(tmp) / name
            rows = write_table(m.to_arrow(), path, meta)
            call.sent(rows)
            if fmt == "csv":  # the sidecar's text, for the caller to keep beside the file
                meta = {**meta, "sidecar": sidecar_path(path).read_text()}
            with open(path, "rb") as f:
                first = pb.StreamExportResponse(file_name=name, media_type=MEDIA_TYPES[fmt], rows=rows,
                                                metadata=meta, elapsed_ms=(time.perf_counter() - t0) * 1e3)
                data = f.read(STREAM_BYTES)
                first.data = data
                yield first
                while data:
                    call.check()
                    data = f.read(STREAM_BYTES)
                    if data:
                        yield pb.StreamExportResponse(data=data)

    @rpc("read")
    def Explain(self, request, call):
        seg = self.s.segment(self.s.dataset_name(request.dataset), request.source)
        node = call.engine(self.s.engine.explain, request.dataset, seg, codec.decode_as_of(request), call.deadline)
        return pb.ExplainResponse(root=codec.encode_explain(node))


def _saved(s) -> pb.SavedSegment:
    return pb.SavedSegment(name=s.name, segment=codec.encode_segment(s.segment),
                           segment_json=segment_json.dumps(s.segment), description=s.description,
                           active=s.active, created_at=codec.timestamp(s.created_at),
                           updated_at=codec.timestamp(s.updated_at))


def _group(g, now) -> pb.Group:
    return pb.Group(name=g.name, description=g.description, count=g.count, source=g.source,
                    saved_segment=g.saved_segment or "", as_of=codec.timestamp(g.as_of),
                    created_at=codec.timestamp(g.created_at), expires_at=codec.timestamp(g.expires_at),
                    expired=g.expired(now))


class CatalogServicer(pbg.CatalogServiceServicer):
    """Saved segments and customer groups."""
    SERVICE = pb.DESCRIPTOR.services_by_name["CatalogService"].full_name

    def __init__(self, s: Services):
        self.s, self.tokens, self.c = s, s.tokens, s.catalog

    @rpc("write")
    def CreateSavedSegment(self, request, call):
        seg = codec.decode_definition(request)
        if seg is None:
            raise InvalidArgument("definition", "required: a segment or segment_json")
        active = request.active if request.HasField("active") else True
        return pb.CreateSavedSegmentResponse(saved_segment=_saved(
            self.c.create_segment(request.dataset, request.name, seg, request.description, active)))

    @rpc("read")
    def GetSavedSegment(self, request, call):
        return pb.GetSavedSegmentResponse(saved_segment=_saved(self.c.get_segment(request.dataset, request.name)))

    @rpc("read")
    def ListSavedSegments(self, request, call):
        return pb.ListSavedSegmentsResponse(saved_segments=[_saved(x) for x in self.c.list_segments(request.dataset)])

    @rpc("write")
    def UpdateSavedSegment(self, request, call):
        return pb.UpdateSavedSegmentResponse(saved_segment=_saved(self.c.update_segment(
            request.dataset, request.name, codec.decode_definition(request),
            request.description if request.HasField("description") else None,
            request.active if request.HasField("active") else None)))

    @rpc("write")
    def DeleteSavedSegment(self, request, call):
        self.c.delete_segment(request.dataset, request.name)
        return pb.DeleteSavedSegmentResponse()

    @rpc("write")
    def CreateGroup(self, request, call):
        saved = request.saved_segment if request.WhichOneof("definition") == "saved_segment" else None
        seg = codec.decode_definition(request)
        g = call.engine(self.c.create_group, request.dataset, request.name, seg, saved_segment=saved,
                        as_of=codec.decode_as_of(request), description=request.description,
                        ttl_days=request.ttl_days if request.HasField("ttl_days") else None,
                        deadline=call.deadline)
        out = _group(g, self.c.clock())
        if not call.may("read"):  # a group's size is read data
            out.count = 0
        return pb.CreateGroupResponse(group=out)

    @rpc("read")
    def GetGroup(self, request, call):
        return pb.GetGroupResponse(group=_group(self.c.get_group(request.dataset, request.name), self.c.clock()))

    @rpc("read")
    def ListGroups(self, request, call):
        now = self.c.clock()
        return pb.ListGroupsResponse(groups=[_group(g, now) for g in self.c.list_groups(request.dataset)])

    @rpc("write")
    def DeleteGroup(self, request, call):
        self.c.delete_group(request.dataset, request.name)
        return pb.DeleteGroupResponse()

    @rpc("export", stream=True)
    def MaterializeGroup(self, request, call):
        g = self.c.get_group(request.dataset, request.name)
        m = call.engine(self.c.materialize_group, request.dataset, request.name, _fields(request), call.deadline)
        m.as_of = g.as_of
        call.sent(len(m.customer_ids))
        yield from codec.materialize_chunks(m, self.s.chunk_ids, call.check, pb.MaterializeGroupResponse)

    @rpc("export")
    def ExportGroup(self, request, call):
        g = self.c.get_group(request.dataset, request.name)  # NotFound / expired before any file work
        return self.s.export(
            request.dataset,
            lambda: self.c.materialize_group(request.dataset, request.name, _fields(request), call.deadline),
            request.format, request.file_name, call, g.source, g.as_of, pb.ExportGroupResponse)


class DatasetsServicer(pbg.DatasetsServiceServicer):
    """Create, ingest, change, compact, inspect, list and delete datasets."""
    SERVICE = pb.DESCRIPTOR.services_by_name["DatasetsService"].full_name

    def __init__(self, s: Services):
        self.s, self.tokens, self.e = s, s.tokens, s.engine

    @rpc("admin", dataset=lambda r: r.name)
    def CreateDataset(self, request, call):
        if not request.timezone:
            raise InvalidArgument("timezone", "required (an IANA name such as America/New_York)")
        info = self.e.create_dataset(request.name, request.timezone)
        self.s.remove_exports(request.name)   # files left by an earlier dataset of that name
        return pb.CreateDatasetResponse(dataset=codec.dataset_info(request.name, info))

    @rpc("write")
    def Ingest(self, request, call):
        if not request.folder:
            raise InvalidArgument("folder", "required: a folder inside this dataset's ingest folder "
                                            "(\".\" for that folder itself)")
        self.s.dataset_name(request.dataset)
        root = self.s.ingest_root
        folder = ingest_root.resolve(root, request.dataset, request.folder)
        if not folder.is_dir():
            raise InvalidArgument("folder", f"{ingest_root.shown(root, request.dataset, folder)!r} is not a "
                                            "folder in this dataset's ingest folder")
        t0 = time.perf_counter()
        try:
            rows = call.build(self.e.ingest, request.dataset, folder)
        except EngineError as e:  # name the folder as the caller did, not by the server's path
            e.path = e.path.replace(str(folder), ingest_root.shown(root, request.dataset, folder))
            e.message = e.message.replace(str(folder), ingest_root.shown(root, request.dataset, folder))
            raise
        return pb.IngestResponse(rows={k: int(v) for k, v in rows.items()},
                                 elapsed_ms=(time.perf_counter() - t0) * 1e3)

    @rpc("write")
    def ApplyChanges(self, request, call):
        self.s.dataset_name(request.dataset)    # NotFound before any row is looked at
        ack = changes.encode_ack(call.engine(self.e.apply_changes, request.dataset, **changes.decode_batch(request)))
        if not call.may("read"):  # which customer_ids exist is read data
            del ack.not_found[:]
            ack.rows.deleted = 0
        return ack

    @rpc("write")
    def Compact(self, request, call):
        self.s.dataset_name(request.dataset)
        return changes.encode_compaction(call.build(self.e.compact, request.dataset))

    @rpc("read")
    def GetDatasetInfo(self, request, call):
        return pb.GetDatasetInfoResponse(dataset=codec.dataset_info(request.dataset, self.e.info(request.dataset)))

    @rpc("admin", dataset=lambda r: None)
    def ListDatasets(self, request, call):
        names = self.e.datasets()
        if self.tokens is not None:
            g = self.tokens.grant(call.context.invocation_metadata())
            names = [n for n in names if g.covers(n)]
        return pb.ListDatasetsResponse(names=names)

    @rpc("admin")
    def DeleteDataset(self, request, call):
        self.e.delete_dataset(request.dataset)
        self.s.remove_exports(request.dataset)
        return pb.DeleteDatasetResponse()
