"""Which trace a request belongs to, from the headers Cloud Run's front end sets.

Cloud Run adds `traceparent` (W3C Trace Context) and `X-Cloud-Trace-Context`
to every request (https://cloud.google.com/run/docs/trace); log lines that
carry the trace ID group together in Logs Explorer.
"""

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The trace a request belongs to, as sent by Cloud Run's front end."""

    trace_id: str
    span_id: str | None
    sampled: bool


current_trace: ContextVar[TraceContext | None] = ContextVar("current_trace", default=None)


def _is_hex(value: str, length: int) -> bool:
    if len(value) != length:
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


def parse_traceparent(header: str) -> TraceContext | None:
    """W3C `traceparent`: `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`."""
    parts = header.strip().split("-")
    if len(parts) != 4:
        return None
    version, trace_id, span_id, flags = parts
    if not (_is_hex(version, 2) and _is_hex(trace_id, 32) and _is_hex(span_id, 16)):
        return None
    if not _is_hex(flags, 2) or trace_id == "0" * 32:
        return None
    return TraceContext(trace_id.lower(), span_id.lower(), bool(int(flags, 16) & 1))


def parse_cloud_trace_context(header: str) -> TraceContext | None:
    """Legacy `X-Cloud-Trace-Context`: `TRACE_ID/SPAN_ID;o=OPTIONS` (span decimal)."""
    trace_part, _, options = header.strip().partition(";")
    trace_id, _, span = trace_part.partition("/")
    if not _is_hex(trace_id, 32):
        return None
    span_id = f"{int(span):016x}" if span.isdigit() and 0 < int(span) < 2**64 else None
    return TraceContext(trace_id.lower(), span_id, options.strip() == "o=1")


def trace_from_headers(traceparent: str | None, cloud_trace: str | None) -> TraceContext | None:
    """Prefer the W3C header; fall back to Google's own."""
    if traceparent and (trace := parse_traceparent(traceparent)):
        return trace
    if cloud_trace:
        return parse_cloud_trace_context(cloud_trace)
    return None
