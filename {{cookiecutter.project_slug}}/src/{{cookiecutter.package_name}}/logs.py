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
import logging.config
import os
import re
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any, Final

import orjson

from .settings import Settings
from .trace_context import active_trace

_TRACE_FIELD: Final = "logging.googleapis.com/trace"
_SPAN_FIELD: Final = "logging.googleapis.com/spanId"
_SAMPLED_FIELD: Final = "logging.googleapis.com/trace_sampled"
_SOURCE_FIELD: Final = "logging.googleapis.com/sourceLocation"
# Control characters (C0, DEL, C1) and Unicode's line and paragraph separators.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE: Final = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_REPORTED_ERROR_EVENT: Final = (
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
)
_RESERVED_RECORD_FIELDS: Final = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colours
}


class CloudLoggingFormatter(logging.Formatter):
    """Formats a record as one line of JSON in Cloud Logging's structured format.

    The project ID that qualifies trace IDs is fixed when the formatter is built,
    so no log line pays for resolving it.
    """

    def __init__(self, project_id: str) -> None:
        super().__init__()
        self._trace_prefix = f"projects/{project_id}/traces/"
        self._service_context = service_context()

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
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
        if trace := active_trace():
            entry[_TRACE_FIELD] = self._trace_prefix + trace.trace_id
            entry[_SAMPLED_FIELD] = trace.sampled
            if trace.span_id:
                entry[_SPAN_FIELD] = trace.span_id
        if record.exc_info and record.exc_info[0] is not None:
            # Error Reporting groups an entry whose `stack_trace` (and message)
            # holds a Python traceback, typed as a ReportedErrorEvent, under the
            # service and version of its serviceContext
            # (https://cloud.google.com/error-reporting/docs/formatting-error-messages).
            stack = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            entry["message"] = f"{message}\n{stack}"
            entry["stack_trace"] = stack
            entry["@type"] = _REPORTED_ERROR_EVENT
            entry["serviceContext"] = self._service_context
        entry.update(_extra_fields(record))
        try:
            # orjson: a line per request makes this the hottest code of the service.
            return orjson.dumps(entry, default=str).decode()
        except (TypeError, orjson.JSONEncodeError):  # e.g. a lone surrogate from a request
            return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, with the extra fields appended.

    Control characters in a message are escaped (a terminal would obey them);
    newlines stay, for messages written on several lines.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-8s %(name)s: %(message)s", "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _CONTROL_BUT_NEWLINE.sub(_escape, record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = _extra_fields(record)
        return f"{line} {json.dumps(extra, default=str)}" if extra else line


def service_context() -> dict[str, str]:
    """Which service and revision log: Cloud Run sets K_SERVICE and K_REVISION
    (https://cloud.google.com/run/docs/container-contract#env-vars)."""
    context = {"service": os.environ.get("K_SERVICE", "{{ cookiecutter.service_name }}")}
    if revision := os.environ.get("K_REVISION"):
        context["version"] = revision
    return context


def wants_json(environ: Mapping[str, str]) -> bool:
    """The rule behind `Settings.json_logs`, read from the environment alone, for
    messages written before (or instead of) settings: LOG_FORMAT if set, else
    JSON everywhere but `local`."""
    log_format = environ.get("LOG_FORMAT", "").lower()
    if log_format in ("json", "text"):
        return log_format == "json"
    return environ.get("ENVIRONMENT", "").lower() not in ("", "local")


def startup_failure(message: str) -> None:
    """Report why the service cannot start: one line on stderr, JSON where the
    service would log JSON (an ERROR that Error Reporting picks up)."""
    if wants_json(os.environ):
        entry = {
            "severity": "CRITICAL",
            "message": message,
            "time": _rfc3339(time.time()),
            "logger": "{{ cookiecutter.package_name }}.startup",
            "@type": _REPORTED_ERROR_EVENT,
            "serviceContext": service_context(),
        }
        line = json.dumps(entry)
    else:
        line = _CONTROL_BUT_NEWLINE.sub(_escape, message)
    print(line, file=sys.stderr, flush=True)


def cap(value: str, limit: int = 200) -> str:
    """`value` fit for a log line when a caller chose it: control characters
    (newlines too) escaped, so it cannot start a line of its own, and at most
    `limit` characters, so it cannot fill the log."""
    if len(value) <= limit and value.isprintable():
        # The common case, without a regex: printable text holds none of
        # _CONTROL's characters (all of them are Cc, Zl or Zp).
        return value
    value = value if len(value) <= limit else f"{value[:limit]}… ({len(value)} characters)"
    return _CONTROL.sub(_escape, value)


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


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


def configure_logging(settings: Settings) -> None:
    """Log as `build_log_config` says, from now on (the server applies it again).

    No line shows a thread or process name, so records do not collect them:
    one lookup fewer per line, the access log's included (the logging HOWTO's
    "Optimization" section: https://docs.python.org/3/howto/logging.html#optimization).
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):
        logging.logAsyncioTasks = False
    logging.config.dictConfig(build_log_config(settings))


def build_log_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the service and for uvicorn's own loggers.

    uvicorn's access log is off (see access_log.py); its error logger
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
