"""Run the app under uvicorn the way Cloud Run needs it.

- One process per instance: Cloud Run scales instances, not workers.
- `PORT` from the environment; `HOST` is 0.0.0.0 in the container image.
- uvicorn's proxy headers off: the app reads Google's forwarding headers
  itself, trusting only the entry Google wrote (forwarded.py).
- Slow and bloated requests are cut off (`GuardedHttpProtocol`).
- On SIGTERM uvicorn stops accepting connections, lets in-flight requests
  finish for `graceful_shutdown_seconds`, then runs the lifespan shutdown
  (https://cloud.google.com/run/docs/container-contract#instance-shutdown).
"""

import asyncio
import contextlib
import signal
import socket
import sys
from http import HTTPStatus
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .logs import build_log_config
from .settings import Settings


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a refused request."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, with the limits it lacks for slow or bloated
    clients: the headers of a request must arrive within `header_timeout`
    seconds and fit in `max_header_bytes`; its body must arrive within
    `body_timeout` seconds. A client over a limit gets 431 or 408, and its
    connection is closed, before the app sees anything of the request.

    On Cloud Run, Google's front end stands between clients and the container
    and buffers requests; these limits protect the service wherever else it
    runs, and from a misbehaving caller inside the same network.
    """

    header_timeout = 10.0
    body_timeout = 30.0
    max_header_bytes = 64 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._refused = False
        self._deadline: asyncio.TimerHandle | None = None
        # A connection that never sends a request is a slow request too.
        self._arm(self.header_timeout, 408, "request headers too slow")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a refusal already answered and closed
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        if self._deadline is None:
            self._arm(self.header_timeout, 408, "request headers too slow")

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if self._expects_body():
            self._arm(self.body_timeout, 408, "request body too slow")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _expects_body(self) -> bool:
        headers = dict(self.headers)
        return b"content-length" in headers or b"transfer-encoding" in headers

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._refuse(431, "request headers too large")
            raise _Refused

    def _arm(self, seconds: float, status: int, reason: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._refuse, status, reason)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, status: int, reason: str) -> None:
        """Answer `status` unless a response has begun, then close the connection."""
        self._disarm()
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        started = self.cycle is not None and self.cycle.response_started
        if not started:
            body = reason.encode()
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, HTTPStatus(status).phrase.encode(), len(body), body)
            )
        if self.cycle is not None:
            self.cycle.disconnected = True
        self.logger.warning("Closed a connection from %s: %s", self.client, reason)
        self.transport.close()


def guarded_protocol(settings: Settings) -> type[GuardedHttpProtocol]:
    """`GuardedHttpProtocol` with the settings' limits."""

    class Protocol(GuardedHttpProtocol):
        header_timeout = settings.http_header_timeout_seconds
        body_timeout = settings.http_body_timeout_seconds
        max_header_bytes = settings.max_header_bytes

    return Protocol


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    """uvicorn handles SIGTERM itself, then replays it to the previous handler
    once shutdown is complete. Installed as that previous handler, this makes a
    finished graceful shutdown exit with status 0 instead of dying by signal."""


class _Server(uvicorn.Server):
    """uvicorn's server, which tells the app once it accepts connections by
    setting `app.state.listening` if the app has one: background work that
    must not delay the instance's first response waits for it."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.served = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        listening = getattr(self.served.state, "listening", None)
        if self.started and isinstance(listening, asyncio.Event):
            listening.set()


def serve(app: FastAPI, settings: Settings) -> None:
    signal.signal(signal.SIGTERM, _after_graceful_shutdown)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=build_log_config(settings),
        access_log=False,
        http=guarded_protocol(settings),
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
    )
    server = _Server(config, app)
    with contextlib.suppress(KeyboardInterrupt):  # as `uvicorn.run`
        server.run()
    if not server.started:  # as `uvicorn.run`: startup failed, and said why
        sys.exit(STARTUP_FAILURE)
