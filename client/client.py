"""SegmentsClient: one method per call, plain Python and numpy values back.

    with SegmentsClient("localhost:50051", token="s3cret") as c:
        r = c.count("acme", {"include": {"loyalty_member": {}}})
        ids = c.materialize("acme", segment).customer_ids     # int64 numpy array

A segment may be given as an segments.engine.model.segment.Segment, a JSON-shaped dict, JSON text, or a
proto Segment; or pass saved="name" to use a saved segment. Evaluation results are the
engine's own result types (engine.results), and the evaluation methods take the Engine's
positional arguments, so local and remote answers are interchangeable and compare equal.
Every call has a deadline (the client's timeout unless given) and is retried with backoff
on UNAVAILABLE by the policy of proto/service_config.json (the one every language loads),
and after the server's pushback when it refused a call of a busy dataset (RESOURCE_EXHAUSTED
with grpc-retry-pushback-ms: nothing ran, so even a write is retried),
and so is a change batch with a batch_id, never one without (a retry could apply it twice);
errors surface as client.errors.ServerError, a grpc.RpcError with the server's code and
message and its machine-readable details decoded (field violations, ErrorInfo reason).

Live updates (docs/live-updates.md) take rows as lists of dicts or pyarrow Tables:

    c.append("acme", "purchases", [{"customer_id": 7, "purchased_at": "2026-11-23T14:05:00Z",
                                    "amount": 12500}])
"""
from __future__ import annotations

import datetime as dt
import json
import random
import time
import uuid
from typing import Iterator, Optional, Sequence

import grpc
import numpy as np

from segments.engine.model import segment as S
from segments.engine.model import segment_json
from segments.engine.results import CountResult, ExplainNode, Materialized, Preview, rank_values_of
from segments.proto import segments_pb2 as pb
from segments.proto import segments_pb2_grpc as pbg
from segments.server import changes, codec

from .errors import ServerError

MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def service_config() -> dict:
    """proto/service_config.json: the retry policy shipped beside the contract."""
    import importlib.resources
    return json.loads(importlib.resources.files("segments.proto").joinpath("service_config.json").read_text())


def _retry_policy() -> dict:
    policy = service_config()["methodConfig"][0]["retryPolicy"]
    seconds = lambda text: float(text.rstrip("s"))  # noqa: E731
    return {"attempts": int(policy["maxAttempts"]), "initial": seconds(policy["initialBackoff"]),
            "max": seconds(policy["maxBackoff"]), "multiplier": float(policy["backoffMultiplier"])}


RETRY = _retry_policy()
BUSY_RETRIES = 20   # retries of a call refused with a pushback (a dataset over its call limit)


def _source(segment=None, saved: Optional[str] = None) -> pb.SegmentSource:
    if saved is not None:
        return pb.SegmentSource(saved_segment=saved)
    k, v = _definition(segment)
    return pb.SegmentSource(**{k: v})


def _definition(segment) -> tuple:
    """("segment", pb.Segment) or ("segment_json", text) for any accepted segment form."""
    if segment is None:
        raise ValueError("a segment or saved= is required")
    if isinstance(segment, pb.Segment):
        return "segment", segment
    if isinstance(segment, S.Segment):
        return "segment", codec.encode_segment(segment)
    if isinstance(segment, str):
        return "segment_json", segment
    if isinstance(segment, dict):
        return "segment_json", json.dumps(segment)
    raise TypeError(f"unsupported segment type {type(segment).__name__}")


def _timestamp(as_of):
    """A Timestamp of an aware datetime or ISO-8601 text (None: now, on the server)."""
    if isinstance(as_of, str):
        as_of = dt.datetime.fromisoformat(as_of.strip().replace("Z", "+00:00"))
    if as_of is not None and as_of.tzinfo is None:
        raise ValueError("as_of needs a UTC offset")
    return codec.timestamp(as_of)


def chunk_table(chunk):
    """The pyarrow Table of one materialize chunk: customer_id, the fields, rank_value."""
    import pyarrow as pa
    return pa.ipc.open_stream(chunk.arrow_ipc).read_all()


def _backoff(attempt: int) -> float:
    """Seconds before retry `attempt` + 1: the service config's exponential backoff, jittered."""
    return min(RETRY["initial"] * RETRY["multiplier"] ** attempt, RETRY["max"]) * (0.5 + random.random())


def _pushback(e: grpc.RpcError) -> Optional[float]:
    """Seconds the server asked to wait before a retry (grpc-retry-pushback-ms on a call it
    refused before doing anything: a dataset over its call limit), or None."""
    if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    try:
        for key, value in e.trailing_metadata() or ():
            if key == "grpc-retry-pushback-ms":
                return max(0.0, int(value)) / 1000.0
    except (AttributeError, ValueError):
        return None
    return None


def _export_format(name: str) -> int:
    try:
        return pb.ExportFormat.Value("EXPORT_FORMAT_" + name.upper())
    except ValueError:
        raise ValueError(f"format: expected parquet or csv, got {name!r}") from None


def _exported(r) -> dict:
    out = {"file_name": r.file_name, "rows": r.rows}
    if r.metadata_file_name:
        out["metadata_file_name"] = r.metadata_file_name
    return out


def _time(ts) -> Optional[dt.datetime]:
    return None if ts.seconds == 0 and ts.nanos == 0 else codec.from_timestamp(ts)


def _saved(m: pb.SavedSegment) -> dict:
    return {"name": m.name, "segment": segment_json.loads(m.segment_json), "segment_json": m.segment_json,
            "description": m.description, "active": m.active,
            "created_at": _time(m.created_at), "updated_at": _time(m.updated_at)}


def _group(m: pb.Group) -> dict:
    return {"name": m.name, "description": m.description, "count": m.count, "source": m.source,
            "saved_segment": m.saved_segment or None, "as_of": _time(m.as_of),
            "created_at": _time(m.created_at), "expires_at": _time(m.expires_at), "expired": m.expired}


def _info(m: pb.DatasetInfo) -> dict:
    return json.loads(m.info_json) if m.info_json else {"name": m.name, "timezone": m.timezone,
                                                        "rows": dict(m.rows)}


class SegmentsClient:
    """A connection to a segments server."""

    def __init__(self, target: str, token: Optional[str] = None, timeout: float = 30.0,
                 retries: int = RETRY["attempts"] - 1, root_certificates: Optional[bytes] = None, tls: bool = False):
        # The policy of service_config.json is applied here, call by call, so that a change
        # batch with a batch_id is retried too; the channel's own retries are off, or a
        # call would be tried attempts x attempts times.
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.enable_retries", 0)]
        if tls or root_certificates is not None:
            self.channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates), options)
        else:
            self.channel = grpc.insecure_channel(target, options)
        self.timeout = timeout
        self.retries = retries
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._segments = pbg.SegmentsServiceStub(self.channel)
        self._catalog = pbg.CatalogServiceStub(self.channel)
        self._datasets = pbg.DatasetsServiceStub(self.channel)
        self._audiences = pbg.AudiencesServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ plumbing
    def _unary(self, method, request, timeout: Optional[float], retry: bool = True):
        """Call with a deadline; retry UNAVAILABLE with jittered exponential backoff unless
        retry is False (a write the server cannot recognise as already applied)."""
        timeout = self.timeout if timeout is None else timeout
        end = time.monotonic() + timeout
        attempts = self.retries + 1 if retry else 1
        busy = 0
        attempt = 0
        while True:
            try:
                return method(request, timeout=max(end - time.monotonic(), 0.001), metadata=self.metadata)
            except grpc.RpcError as e:
                pause = _pushback(e)   # refused before anything ran: safe to retry, even a write
                if pause is not None and busy < BUSY_RETRIES:
                    busy += 1
                    pause *= 0.5 + random.random()
                elif e.code() != grpc.StatusCode.UNAVAILABLE or attempt >= attempts - 1:
                    raise ServerError.wrap(e) from None
                else:
                    pause = _backoff(attempt)
                    attempt += 1
                if time.monotonic() + pause >= end:
                    raise ServerError.wrap(e) from None
                time.sleep(pause)

    def _stream(self, method, request, timeout: Optional[float]) -> Iterator:
        """Chunks of a server stream; UNAVAILABLE before the first chunk is retried."""
        timeout = self.timeout if timeout is None else timeout
        end = time.monotonic() + timeout
        busy = 0
        attempt = 0
        while True:
            got = False
            try:
                for msg in method(request, timeout=max(end - time.monotonic(), 0.001), metadata=self.metadata):
                    got = True
                    yield msg
                return
            except grpc.RpcError as e:
                pause = None if got else _pushback(e)
                if pause is not None and busy < BUSY_RETRIES:
                    busy += 1
                    pause *= 0.5 + random.random()
                elif got or e.code() != grpc.StatusCode.UNAVAILABLE or attempt >= self.retries:
                    raise ServerError.wrap(e) from None
                else:
                    pause = _backoff(attempt)
                    attempt += 1
                if time.monotonic() + pause >= end:
                    raise ServerError.wrap(e) from None
                time.sleep(pause)

    @staticmethod
    def _collect(chunks: Iterator) -> Materialized:
        import pyarrow as pa

        batches, first = [], None
        for c in chunks:
            if first is None:
                first = c
            batches.append(pa.ipc.open_stream(c.arrow_ipc).read_all())
        if not batches:
            return Materialized(np.zeros(0, np.int64))
        table = pa.concat_tables(batches)
        customer_ids = np.zeros(0, np.int64)
        columns, rank = {}, None
        for name in table.column_names:
            col = table.column(name).combine_chunks()
            if name == "customer_id":
                customer_ids = col.to_numpy(zero_copy_only=False)
            elif name == "rank_value":
                rank = col
            else:
                columns[name] = col
        key = first.rank_key or None
        return Materialized(customer_ids.astype(np.int64, copy=False), columns,
                            None if rank is None else rank_values_of(rank, key), key,
                            tuple(first.missing_ids), first.elapsed_ms,
                            _time(first.as_of) if first.HasField("as_of") else None, first.change_sequence)

    # ------------------------------------------------------------ evaluation
    def count(self, dataset: str, segment=None, as_of=None, *, saved: Optional[str] = None,
              timeout: Optional[float] = None) -> CountResult:
        """Result size and email / SMS reachable counts."""
        r = self._unary(self._segments.Count, pb.CountRequest(
            dataset=dataset, source=_source(segment, saved), as_of=_timestamp(as_of)), timeout)
        return CountResult(r.count, r.email_reachable, r.sms_reachable, tuple(r.missing_ids), r.elapsed_ms)

    def preview(self, dataset: str, segment=None, n: int = 20, fields: Sequence[str] = (), as_of=None, *,
                saved: Optional[str] = None, page_token: str = "", timeout: Optional[float] = None) -> Preview:
        """The first n customers with chosen fields (and rank_value when ranked); with the
        page_token of a previous answer (its next_page_token), the n after those."""
        r = self._unary(self._segments.Preview, pb.PreviewRequest(
            dataset=dataset, source=_source(segment, saved), as_of=_timestamp(as_of), n=n, fields=fields,
            page_token=page_token), timeout)
        rows = []
        for row in r.rows:
            d = {"customer_id": row.customer_id}
            for f in fields:
                d[f] = codec.decode_value(row.fields[f]) if f in row.fields else None
            if row.HasField("rank_value"):
                d["rank_value"] = codec.decode_value(row.rank_value)
            rows.append(d)
        return Preview(rows, r.total, tuple(r.missing_ids), r.elapsed_ms, r.next_page_token)

    def preview_pages(self, dataset: str, segment=None, n: int = 20, fields: Sequence[str] = (), as_of=None, *,
                      saved: Optional[str] = None, timeout: Optional[float] = None) -> Iterator[Preview]:
        """Every page of a result, n rows at a time, all evaluated as of the first page's instant."""
        token = ""
        while True:
            p = self.preview(dataset, segment, n, fields, as_of if not token else None, saved=saved,
                             page_token=token, timeout=timeout)
            yield p
            token = p.next_page_token
            if not token:
                return

    def iter_materialize(self, dataset: str, segment=None, fields: Sequence[str] = (), as_of=None, *,
                         saved: Optional[str] = None, timeout: Optional[float] = None) -> Iterator:
        """The raw chunks of a materialize: MaterializeResponse messages as they arrive
        (chunk_table(chunk) is the chunk's Arrow table, customer_id first)."""
        return self._stream(self._segments.Materialize, pb.MaterializeRequest(
            dataset=dataset, source=_source(segment, saved), as_of=_timestamp(as_of), fields=fields), timeout)

    def materialize(self, dataset: str, segment=None, fields: Sequence[str] = (), as_of=None, *,
                    saved: Optional[str] = None, timeout: Optional[float] = None) -> Materialized:
        """Every customer_id (int64 numpy array) and chosen fields (pyarrow arrays)."""
        return self._collect(self.iter_materialize(dataset, segment, fields, saved=saved, as_of=as_of,
                                                   timeout=timeout))

    def export(self, dataset: str, segment=None, fields: Sequence[str] = (), format: str = "parquet",
               file_name: str = "", as_of=None, *, saved: Optional[str] = None,
               timeout: Optional[float] = None) -> dict:
        """Write the result into the server's export folder: {"file_name", "rows"} (and
        "metadata_file_name", a CSV's sidecar)."""
        r = self._unary(self._segments.Export, pb.ExportRequest(
            dataset=dataset, source=_source(segment, saved), as_of=_timestamp(as_of), fields=fields,
            format=_export_format(format), file_name=file_name), timeout)
        return _exported(r)

    def download(self, dataset: str, segment=None, path=None, fields: Sequence[str] = (), format: str = "parquet",
                 as_of=None, *, saved: Optional[str] = None, timeout: Optional[float] = None) -> dict:
        """Export the result and stream the file here (StreamExport): written to `path`
        (atomically; a CSV also gets its sidecar <path>.json), nothing kept on the server.
        Returns {"path", "rows", "metadata", "media_type"}."""
        import os
        from pathlib import Path

        if path is None:
            raise ValueError("download: a path to write to is required")
        path = Path(path)
        tmp = path.with_name(f".{path.name}.part")
        first = None
        try:
            with open(tmp, "wb") as f:
                for msg in self._stream(self._segments.StreamExport, pb.StreamExportRequest(
                        dataset=dataset, source=_source(segment, saved), as_of=_timestamp(as_of), fields=fields,
                        format=_export_format(format)), timeout):
                    first = first or msg
                    f.write(msg.data)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        meta = dict(first.metadata)
        side = meta.pop("sidecar", None)
        if side is not None:  # a CSV: the sidecar the server would have written beside it
            Path(str(path) + ".json").write_text(side)
        return {"path": str(path), "rows": first.rows, "metadata": meta, "media_type": first.media_type}

    def explain(self, dataset: str, segment=None, as_of=None, *, saved: Optional[str] = None,
                timeout: Optional[float] = None) -> ExplainNode:
        """The evaluated tree with each node's size and time."""
        r = self._unary(self._segments.Explain, pb.ExplainRequest(
            dataset=dataset, source=_source(segment, saved), as_of=_timestamp(as_of)), timeout)
        return codec.decode_explain(r.root)

    # ------------------------------------------------------------ saved segments
    def create_saved_segment(self, dataset: str, name: str, segment, description: str = "",
                             active: bool = True, timeout: Optional[float] = None) -> dict:
        """Save a named definition."""
        k, v = _definition(segment)
        return _saved(self._unary(self._catalog.CreateSavedSegment, pb.CreateSavedSegmentRequest(
            dataset=dataset, name=name, description=description, active=active, **{k: v}), timeout).saved_segment)

    def get_saved_segment(self, dataset: str, name: str, timeout: Optional[float] = None) -> dict:
        """A saved segment: name, segment, description, active, created_at, updated_at."""
        return _saved(self._unary(self._catalog.GetSavedSegment, pb.GetSavedSegmentRequest(dataset=dataset, name=name),
                                  timeout).saved_segment)

    def list_saved_segments(self, dataset: str, timeout: Optional[float] = None) -> list:
        """Every saved segment of a dataset."""
        r = self._unary(self._catalog.ListSavedSegments, pb.ListSavedSegmentsRequest(dataset=dataset), timeout)
        return [_saved(m) for m in r.saved_segments]

    def update_saved_segment(self, dataset: str, name: str, segment=None, description: Optional[str] = None,
                             active: Optional[bool] = None, timeout: Optional[float] = None) -> dict:
        """Change the given parts of a saved segment."""
        req = pb.UpdateSavedSegmentRequest(dataset=dataset, name=name)
        if segment is not None:
            k, v = _definition(segment)
            if k == "segment":
                req.segment.CopyFrom(v)
            else:
                req.segment_json = v
        if description is not None:
            req.description = description
        if active is not None:
            req.active = active
        return _saved(self._unary(self._catalog.UpdateSavedSegment, req, timeout).saved_segment)

    def delete_saved_segment(self, dataset: str, name: str, timeout: Optional[float] = None) -> None:
        """Remove a saved segment."""
        self._unary(self._catalog.DeleteSavedSegment, pb.DeleteSavedSegmentRequest(dataset=dataset, name=name), timeout)

    # ------------------------------------------------------------ groups
    def create_group(self, dataset: str, name: str, segment=None, *, saved: Optional[str] = None,
                     as_of=None, description: str = "", ttl_days: Optional[int] = None,
                     timeout: Optional[float] = None) -> dict:
        """Freeze the members of a definition or saved segment as a named group."""
        req = pb.CreateGroupRequest(dataset=dataset, name=name, as_of=_timestamp(as_of), description=description)
        if saved is not None:
            req.saved_segment = saved
        else:
            k, v = _definition(segment)
            if k == "segment":
                req.segment.CopyFrom(v)
            else:
                req.segment_json = v
        if ttl_days is not None:
            req.ttl_days = ttl_days
        return _group(self._unary(self._catalog.CreateGroup, req, timeout).group)

    def get_group(self, dataset: str, name: str, timeout: Optional[float] = None) -> dict:
        """A group's record (count frozen at creation)."""
        return _group(self._unary(self._catalog.GetGroup, pb.GetGroupRequest(dataset=dataset, name=name), timeout).group)

    def list_groups(self, dataset: str, timeout: Optional[float] = None) -> list:
        """Every group of a dataset, expired ones flagged."""
        return [_group(g) for g in self._unary(self._catalog.ListGroups, pb.ListGroupsRequest(dataset=dataset),
                                               timeout).groups]

    def delete_group(self, dataset: str, name: str, timeout: Optional[float] = None) -> None:
        """Delete a group for good."""
        self._unary(self._catalog.DeleteGroup, pb.DeleteGroupRequest(dataset=dataset, name=name), timeout)

    def materialize_group(self, dataset: str, name: str, fields: Sequence[str] = (),
                          timeout: Optional[float] = None) -> Materialized:
        """A group's members still in the dataset, with chosen fields."""
        return self._collect(self._stream(self._catalog.MaterializeGroup, pb.MaterializeGroupRequest(
            dataset=dataset, name=name, fields=fields), timeout))

    def export_group(self, dataset: str, name: str, fields: Sequence[str] = (), format: str = "parquet",
                     file_name: str = "", timeout: Optional[float] = None) -> dict:
        """Write a group's members still in the dataset into the export folder."""
        r = self._unary(self._catalog.ExportGroup, pb.ExportGroupRequest(
            dataset=dataset, name=name, fields=fields, format=_export_format(format),
            file_name=file_name), timeout)
        return _exported(r)

    # ------------------------------------------------------------ datasets
    def create_dataset(self, name: str, timezone: str, timeout: Optional[float] = None) -> dict:
        """Create an empty dataset; its info."""
        return _info(self._unary(self._datasets.CreateDataset,
                                 pb.CreateDatasetRequest(name=name, timezone=timezone), timeout).dataset)

    def ingest(self, dataset: str, folder: str, timeout: Optional[float] = None) -> dict:
        """Load a folder on the server; rows loaded per table."""
        r = self._unary(self._datasets.Ingest, pb.IngestRequest(dataset=dataset, folder=str(folder)),
                        timeout if timeout is not None else max(self.timeout, 600.0))
        return dict(r.rows)

    def dataset_info(self, dataset: str, timeout: Optional[float] = None) -> dict:
        """Row counts, shards, bytes on disk, timezone."""
        return _info(self._unary(self._datasets.GetDatasetInfo, pb.GetDatasetInfoRequest(dataset=dataset),
                                 timeout).dataset)

    def list_datasets(self, timeout: Optional[float] = None) -> list:
        """Names of the datasets this token may see."""
        return list(self._unary(self._datasets.ListDatasets, pb.ListDatasetsRequest(), timeout).names)

    def delete_dataset(self, dataset: str, timeout: Optional[float] = None) -> None:
        """Delete a dataset and everything in it."""
        self._unary(self._datasets.DeleteDataset, pb.DeleteDatasetRequest(dataset=dataset), timeout)

    # ------------------------------------------------------------ live updates
    def apply_changes(self, dataset: str, customers=None, purchases=None, visits=None, laybys=None,
                      delete: Sequence[int] = (), batch_id: Optional[str] = None,
                      timeout: Optional[float] = None) -> dict:
        """Apply one atomic batch: deletes, then customer upserts, then appended lines.

        Rows are lists of dicts keyed by the data model's column names (datetime.date and
        aware datetime values, or CSV-convention text) or pyarrow Tables. Returns the
        engine's answer: {"sequence", "rows": {customers, purchases, visits, laybys,
        deleted}, "not_found": [ids], "duplicate"}. A bad row raises grpc.RpcError
        INVALID_ARGUMENT naming table, row and column, and nothing is applied.

        batch_id defaults to a fresh uuid4: the server applies a batch id once, so the call
        is safely retried on UNAVAILABLE (a batch that was applied before the connection
        dropped answers its first ack again, with duplicate=True). Pass your own id to make
        retries across processes safe too, or batch_id="" to send none; the call is then
        never retried. The batch travels as one message and must fit the server's receive
        limit (16 MiB: about 150,000 purchase lines with every column set, 600,000 with
        only the required ones): split bigger loads, or use ingest.
        """
        if batch_id is None:
            batch_id = uuid.uuid4().hex
        req = changes.encode_batch(dataset, customers, purchases, visits, laybys, delete, batch_id)
        return changes.decode_ack(self._unary(self._datasets.ApplyChanges, req, timeout, retry=bool(batch_id)))

    def upsert_customers(self, dataset: str, rows, batch_id: Optional[str] = None,
                         timeout: Optional[float] = None) -> dict:
        """Insert or replace customers (a row replaces the customer's whole row): apply_changes."""
        return self.apply_changes(dataset, customers=rows, batch_id=batch_id, timeout=timeout)

    def append(self, dataset: str, table: str, rows, batch_id: Optional[str] = None,
               timeout: Optional[float] = None) -> dict:
        """Append lines to purchases, visits or laybys: apply_changes."""
        if table not in ("purchases", "visits", "laybys"):
            raise ValueError(f"append: table must be purchases, visits or laybys, got {table!r}")
        return self.apply_changes(dataset, batch_id=batch_id, timeout=timeout, **{table: rows})

    def delete_customers(self, dataset: str, customer_ids: Sequence[int], batch_id: Optional[str] = None,
                         timeout: Optional[float] = None) -> dict:
        """Erase customers from every answer from now on; ids not in the dataset are in not_found."""
        return self.apply_changes(dataset, delete=customer_ids, batch_id=batch_id, timeout=timeout)

    def compact(self, dataset: str, timeout: Optional[float] = None) -> dict:
        """Fold the changes applied so far into a new version now: {"version", "sequence", "seconds"}.
        Retried on UNAVAILABLE like a read: compacting again changes no answer."""
        r = self._unary(self._datasets.Compact, pb.CompactRequest(dataset=dataset),
                        timeout if timeout is not None else max(self.timeout, 600.0))
        return changes.decode_compaction(r)

    # ------------------------------------------------------------ tracked segments (docs/audiences.md)
    def track_segment(self, dataset: str, name: str, keep: Optional[int] = None, keep_days: Optional[int] = None,
                      timeout: Optional[float] = None) -> dict:
        """Track a saved segment (or change its retention): {name, keep, keep_days, since}."""
        req = pb.TrackSavedSegmentRequest(dataset=dataset, name=name)
        if keep is not None:
            req.keep = keep
        if keep_days is not None:
            req.keep_days = keep_days
        return _tracking(self._unary(self._audiences.TrackSavedSegment, req, timeout).tracking)

    def untrack_segment(self, dataset: str, name: str, timeout: Optional[float] = None) -> None:
        """Stop tracking a saved segment and drop its snapshots."""
        self._unary(self._audiences.UntrackSavedSegment, pb.UntrackSavedSegmentRequest(dataset=dataset, name=name),
                    timeout)

    def snapshots(self, dataset: str, name: str, timeout: Optional[float] = None) -> dict:
        """{"tracking": {...}, "snapshots": [{number, as_of, sequence, count, entered, exited,
        evaluation, recorded_at}, ...]} oldest first."""
        r = self._unary(self._audiences.ListSnapshots, pb.ListSnapshotsRequest(dataset=dataset, name=name), timeout)
        return {"tracking": _tracking(r.tracking), "snapshots": [_audience_snapshot(x) for x in r.snapshots]}

    def diff(self, dataset: str, name: str, from_snapshot: int, to_snapshot: Optional[int] = None,
             fields: Sequence[str] = (), timeout: Optional[float] = None) -> dict:
        """Who entered and who left: {from_snapshot, to_snapshot (None: now), as_of, sequence,
        entered_ids, exited_ids (int64 arrays), entered (pyarrow Table with fields, or None)}."""
        import pyarrow as pa
        req = pb.DiffSnapshotsRequest(dataset=dataset, name=name, from_snapshot=from_snapshot, fields=list(fields))
        if to_snapshot is not None:
            req.to_snapshot = to_snapshot
        r = self._unary(self._audiences.DiffSnapshots, req, timeout)
        return {"from_snapshot": r.from_snapshot, "to_snapshot": r.to_snapshot or None, "as_of": _time(r.as_of),
                "sequence": r.change_sequence, "entered_ids": np.asarray(r.entered_ids, np.int64),
                "exited_ids": np.asarray(r.exited_ids, np.int64),
                "entered": pa.ipc.open_stream(r.entered_arrow_ipc).read_all() if r.entered_arrow_ipc else None}

    def watch(self, dataset: str, name: str, after: int = 0, timeout: Optional[float] = None,
              reconnect: bool = True) -> Iterator[dict]:
        """Each new snapshot of a tracked segment as it is recorded: {snapshot,
        previous_snapshot, as_of, sequence, count, entered, exited (int64 arrays),
        evaluation}. after=0 starts with the newest snapshot (entered: every member). With
        reconnect, a stream the server ends as UNAVAILABLE (restart, shutdown, network) is
        opened again after the last snapshot seen, so nothing is missed or repeated; it
        runs until `timeout` seconds (None: for ever) or the caller stops iterating."""
        end = None if timeout is None else time.monotonic() + timeout
        attempt = 0
        while True:
            left = None if end is None else max(end - time.monotonic(), 0.001)
            try:
                for m in self._audiences.Watch(pb.WatchRequest(dataset=dataset, name=name, after_snapshot=after),
                                               timeout=left, metadata=self.metadata):
                    attempt = 0
                    after = m.snapshot
                    yield {"snapshot": m.snapshot, "previous_snapshot": m.previous_snapshot,
                           "as_of": _time(m.as_of), "sequence": m.change_sequence, "count": m.count,
                           "entered": np.asarray(m.entered_ids, np.int64),
                           "exited": np.asarray(m.exited_ids, np.int64),
                           "evaluation": pb.EvaluationKind.Name(m.evaluation).removeprefix("EVALUATION_KIND_").lower()}
                return
            except grpc.RpcError as e:
                code = e.code()
                if end is not None and time.monotonic() >= end and code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    return
                retry = code == grpc.StatusCode.UNAVAILABLE or (
                    code == grpc.StatusCode.DEADLINE_EXCEEDED and end is None)  # a server's default deadline
                if not reconnect or not retry:
                    raise ServerError.wrap(e) from None
                pause = _backoff(min(attempt, 6))
                attempt += 1
                if end is not None and time.monotonic() + pause >= end:
                    return
                time.sleep(pause)

    # ------------------------------------------------------------ daily tasks
    def set_daily_task(self, dataset: str, name: str, at: str, format: str = "parquet", fields: Sequence[str] = (),
                       folder: str = "daily", timeout: Optional[float] = None) -> dict:
        """Export a saved segment every day at local HH:MM into <export folder>/<dataset>/<folder>/."""
        return _daily_task(self._unary(self._audiences.SetDailyTask, pb.SetDailyTaskRequest(
            dataset=dataset, name=name, at=at, format=_export_format(format), fields=list(fields), folder=folder),
            timeout).task)

    def delete_daily_task(self, dataset: str, name: str, timeout: Optional[float] = None) -> None:
        self._unary(self._audiences.DeleteDailyTask, pb.DeleteDailyTaskRequest(dataset=dataset, name=name), timeout)

    def list_daily_tasks(self, dataset: str, timeout: Optional[float] = None) -> list:
        r = self._unary(self._audiences.ListDailyTasks, pb.ListDailyTasksRequest(dataset=dataset), timeout)
        return [_daily_task(t) for t in r.tasks]

    def run_daily_tasks(self, dataset: str, timeout: Optional[float] = None) -> list:
        """Run the days that are due now (missed days too): one dict per day run."""
        r = self._unary(self._audiences.RunDailyTasks, pb.RunDailyTasksRequest(dataset=dataset), timeout, retry=False)
        return [{"name": x.name, "day": x.day, "as_of": _time(x.as_of), "rows": x.rows, "entered": x.entered,
                 "exited": x.exited, "file": x.file_name, "entered_file": x.entered_file_name,
                 "exited_file": x.exited_file_name} for x in r.runs]


def _daily_task(m) -> dict:
    return {"name": m.name, "at": m.at, "format": pb.ExportFormat.Name(m.format).removeprefix("EXPORT_FORMAT_").lower(),
            "fields": list(m.fields), "folder": m.folder, "last_run_day": m.last_run_day or None,
            "next_run": _time(m.next_run)}


def _tracking(m) -> dict:
    return {"name": m.name, "keep": m.keep, "keep_days": m.keep_days, "since": _time(m.since)}


def _audience_snapshot(m) -> dict:
    return {"number": m.number, "as_of": _time(m.as_of), "sequence": m.change_sequence, "count": m.count,
            "entered": m.entered, "exited": m.exited,
            "evaluation": pb.EvaluationKind.Name(m.evaluation).removeprefix("EVALUATION_KIND_").lower(),
            "recorded_at": _time(m.recorded_at)}
