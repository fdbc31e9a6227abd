"""Domain errors. The server maps each class to one gRPC status code in one place."""
from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class InvalidArgument(EngineError):
    """A request or definition is malformed; `path` names the offending field."""


class NotFound(EngineError):
    """A named dataset, saved segment or group does not exist."""


class AlreadyExists(EngineError):
    """Creating something whose name is taken."""


class FailedPrecondition(EngineError):
    """The object exists but cannot serve the call now (an expired group, an inactive segment)."""


class IngestError(EngineError):
    """Bad input data: names the file, the 1-based data row (0 = the file as a whole) and the column."""

    def __init__(self, file: str, row: int, column: str, message: str):
        self.file, self.row, self.column = file, row, column
        where = f"{file}" + (f", row {row}" if row else "") + (f", column {column}" if column else "")
        super().__init__(where, message)


class Cancelled(EngineError):
    """Work stopped at a shard boundary because the caller's deadline passed."""
