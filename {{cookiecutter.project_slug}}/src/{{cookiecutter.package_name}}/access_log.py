"""One access log line per request, in Cloud Logging's `httpRequest` shape.

https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry#HttpRequest
"""

import logging
import time
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .logs import cap
from .trace_context import current_trace, trace_from_headers

ACCESS_LOGGER: Final = "{{ cookiecutter.package_name }}.access"
_LOGGED_HEADERS: Final = frozenset((b"traceparent", b"x-cloud-trace-context", b"user-agent"))


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
        # What the caller chose (path, query, agent) is capped and escaped.
        path = scope.get("path", "")
        if query := scope.get("query_string", b""):
            path = f"{path}?{query.decode('latin-1')}"
        path = cap(path, 2048)
        client = scope.get("client")
        request: dict[str, Any] = {
            "requestMethod": cap(scope.get("method", ""), 20),
            "requestUrl": path,
            "status": status,
            "responseSize": str(size),
            "latency": f"{latency:.6f}s",
            "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
        }
        if user_agent:
            request["userAgent"] = cap(user_agent, 512)
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
