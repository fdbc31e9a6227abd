"""Optional OpenTelemetry tracing: one SERVER span per call (a child of the caller's span when
its `traceparent` metadata is given) and a child span for the engine's part.

Needs the `tracing` extra (opentelemetry-api and -sdk; opentelemetry-exporter-otlp for
"otlp"). Nothing here is imported unless tracing is on.
"""
from __future__ import annotations

import contextlib

MODES = ("off", "on", "console", "otlp")


def make_tracer(mode: str):
    """The tracer for `segments serve --tracing MODE`, or None for "off".

    "on" uses whatever tracer provider the process has (e.g. one set up by
    opentelemetry-instrument); "console" prints finished spans to stdout; "otlp" exports
    them with the OTLP exporter, configured by the standard OTEL_EXPORTER_OTLP_* variables.
    ImportError (with what to install) when the packages are missing."""
    if mode == "off":
        return None
    if mode not in MODES:
        raise ValueError(f"tracing: expected one of {', '.join(MODES)}, got {mode!r}")
    try:
        from opentelemetry import trace
    except ImportError:
        raise ImportError("tracing needs OpenTelemetry: pip install 'segments[tracing]'") from None
    if mode in ("console", "otlp"):
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
            if mode == "otlp":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError as e:
            raise ImportError(f"tracing {mode} needs {e.name}: pip install 'segments[tracing]'"
                              + (" opentelemetry-exporter-otlp" if mode == "otlp" else "")) from None
        provider = TracerProvider(resource=Resource.create({"service.name": "segments"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter() if mode == "otlp" else ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
    from segments import __version__
    return trace.get_tracer("segments.server", __version__)


def start_call(tracer, rec, metadata):
    """A started SERVER span for a call, continuing the caller's trace context if any."""
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    carrier = {k: v for k, v in metadata or () if isinstance(v, str)}
    service, _, method = rec.method.rpartition("/")
    attrs = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method,
             "segments.request_id": rec.request_id}
    if rec.dataset:
        attrs["segments.dataset"] = rec.dataset
    return tracer.start_span(rec.method, context=extract(carrier), kind=trace.SpanKind.SERVER, attributes=attrs)


@contextlib.contextmanager
def child(tracer, parent, name: str):
    """A child span of `parent` around a block."""
    from opentelemetry import trace

    with tracer.start_as_current_span(name, context=trace.set_span_in_context(parent)):
        yield


def end_call(span, code, message: str) -> None:
    """Record the call's status code on its span and end it."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code.name != "OK":
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {message}"[:300]))
    span.end()
