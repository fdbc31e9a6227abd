"""Requests that cannot be decoded answer INVALID_ARGUMENT, not INTERNAL.

grpcio deserializes a request before any servicer code runs, and a message it cannot parse
(bytes that are not the method's request type, invalid UTF-8 in a string field, nesting
deeper than the protobuf runtime's limit of 100) would end the call as INTERNAL. This
interceptor wraps every method's deserializer: a failure becomes a marker object, and the
method answers it through server.errors like any bad input.

It also holds requests to the server's size limit: the transport takes messages up to a
larger bound, so that one over the limit gets INVALID_ARGUMENT saying so, instead of the
transport's RESOURCE_EXHAUSTED (which only messages past the transport bound still get).
"""
from __future__ import annotations

import grpc

from .errors import UndecodableRequest, abort


class _Undecodable:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


class TooLarge(Exception):
    pass


def _safe(deserialize, type_name: str, max_bytes: int):
    def decode(data):
        if max_bytes and len(data) > max_bytes:
            return _Undecodable(TooLarge(f"{len(data):,} bytes, more than the limit of {max_bytes:,}: "
                                         "split a change batch into smaller ones, or use Ingest"))
        try:
            return deserialize(data)
        except Exception as e:  # noqa: BLE001 - DecodeError, RecursionError, anything the runtime raises
            return _Undecodable(e)
    decode.type_name = type_name
    return decode


def _refuse(request, context, type_name: str):
    if isinstance(request.error, TooLarge):
        abort(context, UndecodableRequest("request", f"a {type_name} of {request.error}"))
    why = str(request.error) or type(request.error).__name__
    if "MaxDepth" in why or isinstance(request.error, RecursionError):
        why = "nested deeper than the protobuf limit of 100 levels"
    abort(context, UndecodableRequest("request", f"not a valid {type_name} message ({why})"))


def _guard_unary(behavior, type_name):
    def call(request, context):
        if isinstance(request, _Undecodable):
            _refuse(request, context, type_name)
        return behavior(request, context)
    return call


def _guard_stream(behavior, type_name):
    def call(request, context):
        if isinstance(request, _Undecodable):
            _refuse(request, context, type_name)
        yield from behavior(request, context)
    return call


class DecodeGuard(grpc.ServerInterceptor):
    """Wraps each unary-request method: undecodable or oversized bytes -> INVALID_ARGUMENT."""

    def __init__(self, max_bytes: int = 0):
        self.max_bytes = max_bytes

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        name = getattr(getattr(handler.request_deserializer, "__self__", None), "DESCRIPTOR", None)
        type_name = name.name if name is not None else handler_call_details.method.rsplit("/", 1)[-1] + " request"
        safe = _safe(handler.request_deserializer, type_name, self.max_bytes)
        if handler.response_streaming:
            return handler._replace(request_deserializer=safe,
                                    unary_stream=_guard_stream(handler.unary_stream, type_name))
        return handler._replace(request_deserializer=safe, unary_unary=_guard_unary(handler.unary_unary, type_name))
