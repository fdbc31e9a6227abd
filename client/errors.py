"""A failed call as the client raises it: grpc.RpcError plus the server's machine-readable details.

The server attaches a google.rpc.Status to every error (server/errors.py): INVALID_ARGUMENT
carries google.rpc.BadRequest field violations (the path the message names), other codes a
google.rpc.ErrorInfo with a stable reason. ServerError keeps code() and details() of the
original error, so `except grpc.RpcError` code keeps working, and adds them as plain values:

    try:
        c.count("acme", {"include": {"age": {">": "x"}}})
    except ServerError as e:
        e.code()          # grpc.StatusCode.INVALID_ARGUMENT
        e.field           # "include.age.>"
        e.violations      # [("include.age.>", "expected an integer, got 'x'")]
        e.reason          # None here; "DATASET_NOT_FOUND", "GROUP_EXPIRED", ... elsewhere
        e.info            # ErrorInfo metadata: {"path": ...} (+ file/row/column, bytes needed)
"""
from __future__ import annotations

from typing import Optional

import grpc


class ServerError(grpc.RpcError):
    """A grpc.RpcError with the status details decoded (see the module docstring)."""

    def __init__(self, error: grpc.RpcError):
        super().__init__(str(error))
        self._error = error
        self.violations: list = []
        self.reason: Optional[str] = None
        self.info: dict = {}
        _decode(self, error)

    @classmethod
    def wrap(cls, error: BaseException) -> BaseException:
        """A ServerError of a grpc.RpcError from a call (other exceptions unchanged)."""
        if isinstance(error, grpc.RpcError) and not isinstance(error, ServerError) and hasattr(error, "code"):
            return cls(error)
        return error

    @property
    def field(self) -> Optional[str]:
        """The path of the first field violation (INVALID_ARGUMENT), else None."""
        return self.violations[0][0] if self.violations else None

    def code(self) -> grpc.StatusCode:
        return self._error.code()

    def details(self) -> str:
        return self._error.details()

    def trailing_metadata(self):
        return self._error.trailing_metadata()

    def initial_metadata(self):
        return self._error.initial_metadata()

    def debug_error_string(self) -> str:
        return self._error.debug_error_string()

    def __str__(self) -> str:
        return f"{self.code().name}: {self.details()}"


def _decode(out: ServerError, error: grpc.RpcError) -> None:
    try:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status
        status = rpc_status.from_call(error)
    except Exception:  # noqa: BLE001 - no or inconsistent details: the plain error is still right
        return
    if status is None:
        return
    for any_msg in status.details:
        if any_msg.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            any_msg.Unpack(br)
            out.violations.extend((v.field, v.description) for v in br.field_violations)
        elif any_msg.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            ei = error_details_pb2.ErrorInfo()
            any_msg.Unpack(ei)
            out.reason = ei.reason
            out.info = dict(ei.metadata)
