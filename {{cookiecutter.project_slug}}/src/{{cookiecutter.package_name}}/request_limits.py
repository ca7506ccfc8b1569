"""What a request may cost the service: a bounded body, and errors that do not echo it.

`RequestSizeLimit` answers 413 to a body over `MAX_REQUEST_BYTES`, by its
Content-Length before reading anything, or as soon as a body sent without one
(chunked) passes the limit, so no request holds more than the limit in memory.
Cloud Run's own limit is 32 MiB (https://cloud.google.com/run/quotas): sixteen
of those at once would not fit an instance of 512 MiB.

`validation_error` answers 422 as FastAPI does, but each error carries at most
a short prefix of the input it rejects: the caller knows what it sent, and a
large or hostile input must not come back whole (or break the response, as a
lone surrogate in a JSON string would).
"""

import json
from typing import Any, Final

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ECHO_LIMIT: Final = 64  # characters of a rejected input a 422 repeats


class RequestSizeLimit:
    """A plain ASGI middleware: no copy of the body, no task of its own."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await _too_large(send, self.max_bytes)
                return
        received = 0
        started = refused = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not started:
                    # Answer now; to the app, the client is gone (it stops reading).
                    refused = True
                    await _too_large(send, self.max_bytes)
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if refused:  # the 413 was the answer
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted_receive, tracked_send)


async def _too_large(send: Send, max_bytes: int) -> None:
    body = json.dumps({"detail": f"request body over {max_bytes} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def short(value: Any, limit: int = ECHO_LIMIT) -> str:
    """A printable prefix of `value`, at most `limit` characters and an ellipsis."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (ValueError, RecursionError):
            text = f"<{type(value).__name__}>"
    # A lone surrogate cannot be encoded: escape what UTF-8 cannot hold.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else f"{text[:limit]}…"


async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, each error with a short prefix of its input, if any."""
    details = []
    for problem in error.errors():
        detail: dict[str, Any] = {
            "loc": [part if isinstance(part, int) else short(part) for part in problem["loc"]],
            "msg": short(problem["msg"], 300),
            "type": problem["type"],
        }
        if "input" in problem:
            detail["input"] = short(problem["input"])
        if problem.get("ctx"):
            detail["ctx"] = {key: short(value) for key, value in problem["ctx"].items()}
        details.append(detail)
    return JSONResponse(status_code=422, content={"detail": details})
