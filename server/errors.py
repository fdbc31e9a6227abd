"""The one place where exceptions become gRPC status codes.

Domain errors carry a field path; the status message is "<path>: <message>". Anything
unexpected is logged here with its traceback and answers INTERNAL with a bland message:
a caller never sees a stack trace.
"""
from __future__ import annotations

import logging

import grpc

from segments.engine import errors as E

log = logging.getLogger("segments.server")


class Unauthenticated(E.EngineError):
    """No bearer token, or one the server does not know."""


class PermissionDenied(E.EngineError):
    """A known token without the dataset or role the call needs."""


class DeadlineExceeded(E.EngineError):
    """The call's deadline passed between chunks of a streamed answer."""


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
)


def status_of(exc: BaseException, method: str = "") -> tuple:
    """(grpc.StatusCode, message) for an exception raised while serving `method`."""
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code, str(exc)
    if isinstance(exc, RecursionError):
        return grpc.StatusCode.INVALID_ARGUMENT, "request nested too deep"
    if isinstance(exc, MemoryError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "out of memory serving the request"
    log.exception("internal error in %s", method or "a call", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error in {method or 'the call'} (logged on the server)"
