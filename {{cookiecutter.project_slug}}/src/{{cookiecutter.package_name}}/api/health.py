"""Probes for Cloud Run.

`/healthz` is the service's startup and liveness probe: it does no I/O, so
it only fails when the process cannot serve at all. Cloud Run calls it
every second while an instance starts and every 30 s after, so `LivenessProbe`
answers it before the framework's routing, validation and serialization: a
probe costs one access log line and a constant response. It is not traced, and
not in the OpenAPI schema, which describes what callers may use.

`/readyz` says whether startup has finished.

Cloud Run's probes reach the container directly; for routes that users call
from outside, avoid paths ending in `z`, which Google's front end reserves
(https://cloud.google.com/run/docs/known-issues#ah).
"""

from typing import Final, Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "starting"]


LIVENESS_PATH: Final = "/healthz"
_OK: Final = Health(status="ok").model_dump_json().encode()
_OK_HEADERS: Final = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_OK)).encode()),
]
_NOT_ALLOWED: Final = b'{"detail":"Method Not Allowed"}'
_NOT_ALLOWED_HEADERS: Final = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_NOT_ALLOWED)).encode()),
    (b"allow", b"GET, HEAD"),
]


class LivenessProbe:
    """A plain ASGI middleware that answers `GET /healthz` (and `HEAD`) itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != LIVENESS_PATH:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method in ("GET", "HEAD"):
            status_code, headers, body = 200, _OK_HEADERS, _OK
        else:
            status_code, headers, body = 405, _NOT_ALLOWED_HEADERS, _NOT_ALLOWED
        await send({"type": "http.response.start", "status": status_code, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


@router.get(
    "/readyz",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Health}},
)
async def readyz(request: Request, response: Response) -> Health:
    if not request.app.state.ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="starting")
    return Health(status="ok")
