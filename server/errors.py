"""The one place where exceptions become gRPC statuses.

Domain errors carry a field path; the status message is "<path>: <message>", bounded
(MAX_MESSAGE_BYTES once percent-encoded on the wire, the path clipped to MAX_PATH_CHARS) so
that an error repeating a huge input never overflows the caller's metadata limit, and made
valid Unicode. Every status carries machine-readable details in `grpc-status-details-bin`
(a google.rpc.Status):
  INVALID_ARGUMENT     google.rpc.BadRequest, one field violation: field = the path the
                       text names (for bad rows "<file>, row N, column C"), description = the
                       message; bad rows also an ErrorInfo (reason BAD_ROW, file/row/column)
  NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS, PERMISSION_DENIED, UNAUTHENTICATED,
  RESOURCE_EXHAUSTED   google.rpc.ErrorInfo: a stable reason (DATASET_NOT_FOUND,
                       GROUP_EXPIRED, INSUFFICIENT_SPACE, ...), domain "segments", metadata
                       {"path": ...} (and needed_bytes / free_bytes for disk space); a
                       dataset over its call limit (DATASET_BUSY) also a google.rpc.RetryInfo
                       and a grpc-retry-pushback-ms trailer
Anything unexpected is logged here with its traceback and answers INTERNAL with a bland
message: a caller never sees a stack trace. Errors a caller's input caused never map to
INTERNAL, UNKNOWN or RESOURCE_EXHAUSTED; RESOURCE_EXHAUSTED means the server ran short
(disk space, memory), and says how much was needed.
"""
from __future__ import annotations

import errno
import logging

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from segments.engine import errors as E

from .observe import with_trailing

log = logging.getLogger("segments.server")

DOMAIN = "segments"
MAX_MESSAGE_BYTES = 1000      # of the status text as sent (non-ASCII bytes count 3: percent-encoded)
MAX_PATH_CHARS = 200
MAX_DETAIL_BYTES = 600        # of each text inside the details
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class Unauthenticated(E.EngineError):
    """No bearer token, or one the server does not know."""

    default_reason = "UNAUTHENTICATED"


class PermissionDenied(E.EngineError):
    """A known token without the dataset or role the call needs."""

    default_reason = "PERMISSION_DENIED"


class DeadlineExceeded(E.EngineError):
    """The call's deadline passed between chunks of a streamed answer."""


# The server cannot go on with the call now (shutting down; in cluster mode every replica
# of a partition down): the caller retries.
Unavailable = E.Unavailable


class ResourceExhausted(E.EngineError):
    """A limit of the server is reached (e.g. its Watch streams); retry later or elsewhere."""

    default_reason = "RESOURCE_EXHAUSTED"


class Overloaded(E.EngineError):
    """The dataset's limit of calls running and waiting is reached (server.fairness)."""

    default_reason = "DATASET_BUSY"

    def __init__(self, path: str, message: str, retry_ms: int):
        super().__init__(path, message)
        self.retry_ms = int(retry_ms)


RETRY_PUSHBACK = "grpc-retry-pushback-ms"


class UndecodableRequest(E.InvalidArgument):
    """The request bytes are not a message of the method's request type."""

    default_reason = "UNDECODABLE_REQUEST"


# Most specific first: IngestError, Cancelled etc. are all EngineErrors.
STATUS = (
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (E.Cancelled, grpc.StatusCode.DEADLINE_EXCEEDED),
    (E.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (E.IngestError, grpc.StatusCode.INVALID_ARGUMENT),
    (E.NotFound, grpc.StatusCode.NOT_FOUND),
    (E.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (E.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (E.InsufficientSpace, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
)
# Default ErrorInfo reasons by code (an error may name a more specific one).
REASONS = {
    grpc.StatusCode.ALREADY_EXISTS: "ALREADY_EXISTS",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
}


def clip_text(text: str, max_bytes: int = MAX_MESSAGE_BYTES) -> str:
    """text as valid Unicode whose percent-encoded form stays within about max_bytes."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    if _wire_bytes(text) <= max_bytes:
        return text
    lo, hi = 0, len(text)
    while hi - lo > 1:  # the longest prefix that fits, leaving room for the note
        mid = (lo + hi) // 2
        if _wire_bytes(text[:mid]) <= max_bytes - 40:
            lo = mid
        else:
            hi = mid
    return f"{text[:lo]}... ({len(text) - lo} more characters)"


def _wire_bytes(text: str) -> int:
    raw = text.encode("utf-8")
    return len(raw) + 2 * sum(1 for b in raw if b >= 0x80 or b < 0x20)


def _clip_path(path: str) -> str:
    path = str(path or "").encode("utf-8", "backslashreplace").decode("utf-8")
    return path if len(path) <= MAX_PATH_CHARS else f"{path[:MAX_PATH_CHARS - 20]}...({len(path)} chars)"


def _classify(exc: BaseException):
    """(code, path, message, reason) of an exception, or None when it is unexpected."""
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code, exc.path, exc.message, getattr(exc, "reason", None)
    if isinstance(exc, RecursionError):
        return grpc.StatusCode.INVALID_ARGUMENT, "request", "nested too deep", "NESTED_TOO_DEEP"
    if isinstance(exc, UnicodeError):
        return grpc.StatusCode.INVALID_ARGUMENT, "request", "text is not valid Unicode", "INVALID_TEXT"
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return (grpc.StatusCode.RESOURCE_EXHAUSTED, "disk", "the server's disk is full; retry once space is "
                "freed", "INSUFFICIENT_SPACE")
    if isinstance(exc, MemoryError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "", "out of memory serving the request", "OUT_OF_MEMORY"
    return None


def status_of(exc: BaseException, method: str = "") -> tuple:
    """(grpc.StatusCode, message) for an exception raised while serving `method`."""
    s = rich_status(exc, method)
    return s.code, s.details


def rich_status(exc: BaseException, method: str = "") -> grpc.Status:
    """The grpc.Status (code, bounded message, details trailer) of an exception."""
    got = _classify(exc)
    if got is None:
        log.error("internal error in %s", method or "a call", exc_info=exc)
        msg = f"internal error in {method or 'the call'} (logged on the server)"
        return rpc_status.to_status(status_pb2.Status(code=grpc.StatusCode.INTERNAL.value[0], message=msg))
    code, path, message, reason = got
    path = _clip_path(path)
    text = clip_text(f"{path}: {message}" if path else str(message))
    details = []
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        details.append(error_details_pb2.BadRequest(field_violations=[error_details_pb2.BadRequest.FieldViolation(
            field=path, description=clip_text(message, MAX_DETAIL_BYTES))]))
        if isinstance(exc, E.IngestError):
            details.append(_info("BAD_ROW", {"file": exc.file, "row": str(exc.row), "column": exc.column}))
        elif reason and reason != "ERROR":
            details.append(_info(reason, {"path": path}))
    else:
        meta = {"path": path}
        if isinstance(exc, E.InsufficientSpace):
            meta.update(needed_bytes=str(exc.needed), free_bytes=str(exc.free))
        if isinstance(exc, Overloaded):
            meta.update(retry_ms=str(exc.retry_ms))
        if reason in (None, "ERROR"):
            reason = REASONS.get(code, code.name)
        details.append(_info(reason, meta))
        if isinstance(exc, Overloaded):
            ms = exc.retry_ms
            details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(
                seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)))
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    status = rpc_status.to_status(status_pb2.Status(code=code.value[0], message=text, details=packed))
    if isinstance(exc, Overloaded):  # the retry hint grpc's own retry policy reads
        status = with_trailing(status, ((RETRY_PUSHBACK, str(exc.retry_ms)),))
    return status


def _info(reason: str, metadata: dict) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN,
                                       metadata={k: clip_text(str(v), 200) for k, v in metadata.items()})


def abort(context, exc: BaseException, method: str = ""):
    """End the call with the status of exc (raises, as context.abort does)."""
    context.abort_with_status(rich_status(exc, method))
