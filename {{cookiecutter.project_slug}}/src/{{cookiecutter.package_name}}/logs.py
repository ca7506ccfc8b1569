"""Logs that Cloud Logging understands: one JSON object per line on stdout.

Cloud Run forwards stdout to Cloud Logging, which lifts the special fields of a
JSON line into the log entry: `severity`, `message`, the trace that groups all
lines of one request, and the source location. See
https://cloud.google.com/logging/docs/structured-logging and
https://cloud.google.com/run/docs/logging#correlate-logs for the field names.

Locally (`ENVIRONMENT=local`) the same records are printed as plain text.
"""

import json
import logging
import time
import traceback
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import Settings

ACCESS_LOGGER: Final = "{{ cookiecutter.package_name }}.access"
_TRACE_FIELD: Final = "logging.googleapis.com/trace"
_SPAN_FIELD: Final = "logging.googleapis.com/spanId"
_SAMPLED_FIELD: Final = "logging.googleapis.com/trace_sampled"
_SOURCE_FIELD: Final = "logging.googleapis.com/sourceLocation"
_LOGGED_HEADERS: Final = frozenset((b"traceparent", b"x-cloud-trace-context", b"user-agent"))
_RESERVED_RECORD_FIELDS: Final = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


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


class CloudLoggingFormatter(logging.Formatter):
    """Formats a record as one line of JSON in Cloud Logging's structured format.

    The project ID that qualifies trace IDs is fixed when the formatter is built,
    so no log line pays for resolving it.
    """

    def __init__(self, project_id: str) -> None:
        super().__init__()
        self._trace_prefix = f"projects/{project_id}/traces/"

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            # Error Reporting recognises a Python traceback inside `message`.
            message = f"{message}\n{''.join(traceback.format_exception(*record.exc_info))}"
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": message,
            "time": _rfc3339(record.created),
            "logger": record.name,
            _SOURCE_FIELD: {
                "file": record.pathname,
                "line": str(record.lineno),
                "function": record.funcName,
            },
        }
        if trace := current_trace.get():
            entry[_TRACE_FIELD] = self._trace_prefix + trace.trace_id
            entry[_SAMPLED_FIELD] = trace.sampled
            if trace.span_id:
                entry[_SPAN_FIELD] = trace.span_id
        entry.update(_extra_fields(record))
        # orjson: a line per request makes this the hottest code of the service.
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, with the extra fields appended."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-8s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = _extra_fields(record)
        return f"{line} {json.dumps(extra, default=str)}" if extra else line


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Fields passed with `extra={...}` become fields of the JSON entry."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RESERVED_RECORD_FIELDS and not key.startswith("_")
    }


_second: tuple[int, str] = (-1, "")


def _rfc3339(timestamp: float) -> str:
    """UTC with microseconds; the part up to the second is formatted once a second."""
    global _second
    seconds = int(timestamp)
    if _second[0] != seconds:
        _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{_second[1]}.{int((timestamp - seconds) * 1_000_000):06d}Z"


def build_log_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the service and for uvicorn's own loggers.

    uvicorn's access log is off (see `RequestLogMiddleware`); its error logger
    keeps reporting startup, shutdown and crashes in the same format.
    """
    formatter: dict[str, Any] = (
        {"()": CloudLoggingFormatter, "project_id": settings.gcp_project}
        if settings.json_logs
        else {"()": TextFormatter}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": settings.log_level},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
        },
    }


class RequestLogMiddleware:
    """Sets the trace of each request for every log line it causes, and writes
    one access line per request with Cloud Logging's `httpRequest` fields.

    A plain ASGI middleware (not `BaseHTTPMiddleware`): it adds no task and no
    copy of the body to the request path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.logger = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k: v for k, v in scope["headers"] if k in _LOGGED_HEADERS}
        trace = trace_from_headers(
            _decode(headers.get(b"traceparent")), _decode(headers.get(b"x-cloud-trace-context"))
        )
        token = current_trace.set(trace)
        started = time.perf_counter()
        status = 500
        size = 0

        async def send_and_record(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            latency = time.perf_counter() - started
            self._log(scope, status, size, latency, _decode(headers.get(b"user-agent")))
            current_trace.reset(token)

    def _log(
        self, scope: Scope, status: int, size: int, latency: float, user_agent: str | None
    ) -> None:
        level = logging.INFO
        if status >= 500:
            level = logging.ERROR
        elif status >= 400:
            level = logging.WARNING
        if not self.logger.isEnabledFor(level):
            return
        path = scope.get("path", "")
        if query := scope.get("query_string", b""):
            path = f"{path}?{query.decode('latin-1')}"
        client = scope.get("client")
        request: dict[str, Any] = {
            "requestMethod": scope.get("method", ""),
            "requestUrl": path,
            "status": status,
            "responseSize": str(size),
            "latency": f"{latency:.6f}s",
            "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
        }
        if user_agent:
            request["userAgent"] = user_agent
        if client:
            request["remoteIp"] = client[0]
        # makeRecord + handle rather than log(): the caller's location is known,
        # and finding it on the stack costs more than the rest of the line.
        record = self.logger.makeRecord(
            self.logger.name,
            level,
            __file__,
            0,
            "%s %s %d %.1fms",
            (request["requestMethod"], path, status, latency * 1000),
            None,
            "RequestLogMiddleware",
            {"httpRequest": request},
        )
        self.logger.handle(record)


def _decode(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None
