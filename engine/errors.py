"""Domain errors. The server maps each class to one gRPC status code in one place."""
from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose.

    `path` names the offending field or thing; `reason` is a stable UPPER_SNAKE word a
    machine can branch on (server: google.rpc.ErrorInfo.reason), defaulting per class."""

    default_reason = "ERROR"

    def __init__(self, path: str, message: str, reason: str | None = None):
        self.path = path
        self.message = message
        self.reason = reason or self.default_reason
        super().__init__(f"{path}: {message}" if path else message)


class InvalidArgument(EngineError):
    """A request or definition is malformed; `path` names the offending field."""


class NotFound(EngineError):
    """A named dataset, saved segment or group does not exist."""

    default_reason = "NOT_FOUND"


class AlreadyExists(EngineError):
    """Creating something whose name is taken."""


class FailedPrecondition(EngineError):
    """The object exists but cannot serve the call now (an expired group, an inactive segment)."""

    default_reason = "FAILED_PRECONDITION"


class IngestError(EngineError):
    """Bad input data: names the file, the 1-based data row (0 = the file as a whole) and the column."""

    def __init__(self, file: str, row: int, column: str, message: str):
        self.file, self.row, self.column = file, row, column
        where = f"{file}" + (f", row {row}" if row else "") + (f", column {column}" if column else "")
        super().__init__(where, message)


class InsufficientSpace(EngineError):
    """A write would not fit on its volume: `needed` bytes (about) against `free`. Nothing
    was changed; the same call succeeds once space is freed."""

    default_reason = "INSUFFICIENT_SPACE"

    def __init__(self, path: str, message: str, needed: int = 0, free: int = 0):
        self.needed, self.free = needed, free
        super().__init__(path, message)


class Unavailable(EngineError):
    """A part of the engine that holds the data cannot answer now (cluster mode: every
    replica of a partition is down); the same call may succeed later."""

    default_reason = "UNAVAILABLE"


class Cancelled(EngineError):
    """Work stopped at a shard boundary because the caller's deadline passed."""
