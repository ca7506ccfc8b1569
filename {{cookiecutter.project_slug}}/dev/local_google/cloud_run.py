"""A local stand-in for Cloud Run's front end: the proxy in front of a service.

On Cloud Run nothing reaches the container except through Google's front
end, which does more than forward. This proxy does what the service can
notice, as Google documents it:

- **IAM** (a private service, the default): the caller must send a
  Google-signed ID token for the service's URL in `Authorization` (or in
  `X-Serverless-Authorization`, which wins when both are sent), from a
  principal that holds `roles/run.invoker`. No token: 403; a token that does
  not verify (signature, expiry, audience): 401; a principal without the
  role: 403. The container never sees those requests
  (https://cloud.google.com/run/docs/authenticating/service-to-service,
  https://cloud.google.com/run/docs/troubleshooting#unauthorized-client).
  The checked token is forwarded with its signature replaced by
  `SIGNATURE_REMOVED_BY_GOOGLE`: the container can read its claims but cannot
  verify it (https://cloud.google.com/run/docs/troubleshooting#signature-removed).
  Public mode (`allUsers` holds the invoker role) forwards headers untouched.
- **Request size**: HTTP/1 requests over 32 MiB get 413
  (https://cloud.google.com/run/quotas#cloud_run_limits).
- **Request timeout**: a response not complete within the service's timeout
  (300 s by default) becomes 504
  (https://cloud.google.com/run/docs/configuring/request-timeout).
- **Headers**: `traceparent` and `X-Cloud-Trace-Context` name the request's
  trace, continuing the caller's if it sent one
  (https://cloud.google.com/run/docs/trace); `X-Forwarded-For` gets the
  client's address appended, so its last entry is the one Google saw and any
  earlier ones are the client's own claims; `X-Forwarded-Proto` is `https`,
  as Cloud Run serves only HTTPS to the outside
  (https://cloud.google.com/load-balancing/docs/https#x-forwarded-for_header).
- **Shutdown**: `stop_instance()` sends SIGTERM, then SIGKILL 10 seconds later
  (https://cloud.google.com/run/docs/container-contract#instance-shutdown).
"""

import asyncio
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Self

import httpx
import uvicorn

from .issuer import LocalIssuer
from .lifecycle import LocalServer

SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
MAX_REQUEST_BYTES = 32 * 1024 * 1024
DEFAULT_REQUEST_TIMEOUT = 300.0
SHUTDOWN_GRACE_SECONDS = 10.0
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_CLOUD_TRACE = re.compile(r"([0-9a-f]{32})(?:/(\d{1,20}))?(?:;o=([01]))?")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class Forwarded:
    """A request that reached the service, as the service received it."""

    method: str
    path: str
    headers: dict[str, str]
    body_bytes: int
    sent_headers: dict[str, str] = field(default_factory=dict)  # as the caller sent them


@dataclass
class Refused:
    """A request the front end answered itself."""

    method: str
    path: str
    status: int
    reason: str


@dataclass
class _Log:
    forwarded: list[Forwarded] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


class LocalCloudRun(LocalServer):
    """The front end of one service whose container listens on `upstream`.

    `invokers` are the principals (service account emails) that hold
    `roles/run.invoker`; `public=True` stands for `allUsers` holding it.
    """

    def __init__(
        self,
        upstream: str,
        *,
        issuer: LocalIssuer | None = None,
        invokers: Collection[str] = (),
        public: bool = False,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        port: int = 0,
    ) -> None:
        if not public and issuer is None:
            raise ValueError("a private service needs the issuer whose tokens it checks")
        self.upstream = upstream.rstrip("/")
        self.issuer = issuer
        self.invokers = set(invokers)
        self.public = public
        self.request_timeout = request_timeout
        self.max_request_bytes = max_request_bytes
        self.log = _Log()
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        """The service's URL: what callers call, and the audience of their tokens."""
        port: int = self._socket.getsockname()[1]
        return f"http://127.0.0.1:{port}"

    # Serving

    def start(self) -> Self:
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            proxy_headers=False,  # the front end is where forwarding headers start
            lifespan="on",
            log_level="warning",
            access_log=False,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the local Cloud Run front end did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._socket.close()

    # The proxy

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        headers = [(k.lower(), v) for k, v in scope["headers"]]
        sent = {key.decode(): value.decode("latin-1") for key, value in headers}
        declared = _header(headers, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_request_bytes:
            await self._refuse(send, method, path, 413, "request too large")
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_request_bytes:
                await self._refuse(send, method, path, 413, "request too large")
                return
        if not self.public:
            refusal = self._authorize(headers)
            if refusal is not None:
                await self._refuse(send, method, path, *refusal)
                return
            headers = self._strip_signature(headers)
        client = scope.get("client")
        headers = _forwarding_headers(headers, client[0] if client else "127.0.0.1")
        headers = _trace_headers(headers)
        forwarded = [(k, v) for k, v in headers if k not in _HOP_BY_HOP]
        query = scope.get("query_string", b"")
        url = f"{self.upstream}{scope.get('raw_path', path.encode()).decode('latin-1')}"
        if query:
            url = f"{url}?{query.decode('latin-1')}"
        try:
            response = await asyncio.wait_for(
                self._http().request(method, url, headers=forwarded, content=bytes(body)),
                self.request_timeout,
            )
        except TimeoutError:
            await self._refuse(send, method, path, 504, "upstream request timeout")
            return
        except httpx.TransportError:
            await self._refuse(send, method, path, 503, "the container did not answer")
            return
        received = {key.decode(): value.decode("latin-1") for key, value in forwarded}
        self.log.forwarded.append(Forwarded(method, path, received, len(body), sent))
        raw = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [*raw, (b"content-length", str(len(response.content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": response.content})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The connection pool to the container lives as long as the server."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                    self._client = None
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # No timeout of its own: the front end's request timeout applies.
            self._client = httpx.AsyncClient(timeout=None, follow_redirects=False)  # noqa: S113
        return self._client

    def _authorize(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        """None if the request may pass; else the status and reason to answer."""
        if self.issuer is None:
            raise RuntimeError("a private service needs the issuer whose tokens it checks")
        name = _credentials_header(headers)
        value = _header(headers, name) if name else None
        if not value:
            return 403, "no identity token"
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return 401, "not a bearer token"
        try:
            claims = self.issuer.verify(token.strip(), [self.url])
        except ValueError as error:
            return 401, f"invalid identity token: {error}"
        if claims.get("email") not in self.invokers or claims.get("email_verified") is not True:
            return 403, f"{claims.get('email')} does not hold roles/run.invoker"
        return None

    @staticmethod
    def _strip_signature(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The checked header's token, its signature replaced; other headers as sent."""
        name = _credentials_header(headers)
        stripped = []
        for key, value in headers:
            if key == name:
                scheme, _, token = value.decode("latin-1").partition(" ")
                unsigned = token.strip().rsplit(".", 1)[0]
                value = f"{scheme} {unsigned}.{SIGNATURE_REMOVED}".encode("latin-1")
            stripped.append((key, value))
        return stripped

    async def _refuse(self, send: Send, method: str, path: str, status: int, reason: str) -> None:
        self.log.refused.append(Refused(method, path, status, reason))
        body = reason.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _credentials_header(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The header Cloud Run checks: X-Serverless-Authorization if sent, else Authorization."""
    names = {key for key, _ in headers}
    for name in (b"x-serverless-authorization", b"authorization"):
        if name in names:
            return name
    return None


def _forwarding_headers(
    headers: list[tuple[bytes, bytes]], client_ip: str
) -> list[tuple[bytes, bytes]]:
    sent = _header(headers, b"x-forwarded-for")
    chain = f"{sent}, {client_ip}" if sent else client_ip
    kept = [(k, v) for k, v in headers if k not in {b"x-forwarded-for", b"x-forwarded-proto"}]
    return [*kept, (b"x-forwarded-for", chain.encode()), (b"x-forwarded-proto", b"https")]


def _trace_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Both trace headers, for the caller's trace if it sent one, else a new one;
    the span is the front end's own."""
    trace_id, sampled = os.urandom(16).hex(), False
    if (parent := _TRACEPARENT.fullmatch(_header(headers, b"traceparent") or "")) and int(
        parent.group(1), 16
    ):
        trace_id, sampled = parent.group(1), bool(int(parent.group(3), 16) & 1)
    elif cloud := _CLOUD_TRACE.fullmatch(_header(headers, b"x-cloud-trace-context") or ""):
        trace_id, sampled = cloud.group(1), cloud.group(3) == "1"
    span = os.urandom(8).hex()
    kept = [(k, v) for k, v in headers if k not in {b"traceparent", b"x-cloud-trace-context"}]
    return [
        *kept,
        (b"traceparent", f"00-{trace_id}-{span}-{'01' if sampled else '00'}".encode()),
        (b"x-cloud-trace-context", f"{trace_id}/{int(span, 16)};o={int(sampled)}".encode()),
    ]


def stop_instance(process: "subprocess.Popen[Any]", grace: float = SHUTDOWN_GRACE_SECONDS) -> bool:
    """Stop a container process as Cloud Run does: SIGTERM, then SIGKILL `grace`
    seconds later. True if it exited by itself within the grace period."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False
    return True
