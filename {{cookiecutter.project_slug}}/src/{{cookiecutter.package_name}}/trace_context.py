"""Which trace a request belongs to, from the headers Cloud Run's front end sets.

Cloud Run adds `traceparent` (W3C Trace Context) and `X-Cloud-Trace-Context`
to every request (https://cloud.google.com/run/docs/trace); log lines that
carry the trace ID group together in Logs Explorer.
"""

import os
import re
from contextvars import ContextVar
from dataclasses import dataclass

from opentelemetry import trace as otel_trace


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The trace a request belongs to, as sent by Cloud Run's front end."""

    trace_id: str
    span_id: str | None
    sampled: bool


current_trace: ContextVar[TraceContext | None] = ContextVar("current_trace", default=None)


# W3C Trace Context (https://www.w3.org/TR/trace-context/#traceparent-header):
# lowercase hex only; version ff is invalid; a later version may add fields.
_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?"
)
# Google's own header (https://cloud.google.com/trace/docs/trace-context#legacy-http-header):
# TRACE_ID/SPAN_ID;o=OPTIONS, the span a decimal unsigned 64-bit number.
_CLOUD_TRACE = re.compile(
    r"(?P<trace>[0-9a-fA-F]{32})(?:/(?P<span>[0-9]{1,20}))?(?:;o=(?P<o>[01]))?"
)
_NO_TRACE = "0" * 32


def parse_traceparent(header: str) -> TraceContext | None:
    """W3C `traceparent`: `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`;
    None for anything else."""
    match = _TRACEPARENT.fullmatch(header.strip(" \t"))
    if match is None or match["version"] == "ff" or (match["version"] == "00" and match["rest"]):
        return None
    if match["trace"] == _NO_TRACE or match["span"] == "0" * 16:
        return None
    return TraceContext(match["trace"], match["span"], bool(int(match["flags"], 16) & 1))


def parse_cloud_trace_context(header: str) -> TraceContext | None:
    """`X-Cloud-Trace-Context`: `TRACE_ID/SPAN_ID;o=OPTIONS`; None for anything else."""
    match = _CLOUD_TRACE.fullmatch(header.strip(" \t"))
    if match is None or match["trace"] == _NO_TRACE:
        return None
    span_id = None
    if match["span"] is not None:
        span = int(match["span"])
        if not 0 < span < 2**64:
            return None
        span_id = f"{span:016x}"
    return TraceContext(match["trace"].lower(), span_id, match["o"] == "1")


def trace_from_headers(traceparent: str | None, cloud_trace: str | None) -> TraceContext | None:
    """Prefer the W3C header; fall back to Google's own."""
    if traceparent and (trace := parse_traceparent(traceparent)):
        return trace
    if cloud_trace:
        return parse_cloud_trace_context(cloud_trace)
    return None


def propagation_headers(trace: TraceContext | None) -> dict[str, str]:
    """Headers that carry `trace` on to a request this service sends, in both
    forms Cloud Run understands; empty outside a trace."""
    if trace is None:
        return {}
    span = trace.span_id or os.urandom(8).hex()
    return {
        "traceparent": f"00-{trace.trace_id}-{span}-{'01' if trace.sampled else '00'}",
        "X-Cloud-Trace-Context": f"{trace.trace_id}/{int(span, 16)};o={int(trace.sampled)}",
    }


def active_trace() -> TraceContext | None:
    """The trace and span the code runs in now: the OpenTelemetry span when one
    records (with tracing on), else the request's trace from its headers."""
    span = otel_trace.get_current_span().get_span_context()
    if span.is_valid:
        return TraceContext(
            f"{span.trace_id:032x}", f"{span.span_id:016x}", span.trace_flags.sampled
        )
    return current_trace.get()
