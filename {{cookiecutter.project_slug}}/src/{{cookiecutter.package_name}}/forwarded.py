"""The client's address and scheme, as Cloud Run's front end reports them.

The container's peer is Google's front end, not the client. Google's front end
appends the address it saw to `X-Forwarded-For`
(https://cloud.google.com/load-balancing/docs/https#x-forwarded-for_header),
after whatever the client sent in that header itself. So only the last entry
can be trusted: every earlier one is the client's own claim. Behind an
external Application Load Balancer, Google appends two (the client's, then
the load balancer's): set `FORWARDED_HOPS=2` there.

uvicorn's own proxy-header support, trusting every peer, would take the first
entry, which any caller can write; this middleware takes the one Google wrote,
and the scheme from `X-Forwarded-Proto`.
"""

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send


class CloudRunForwarding:
    """Sets the scope's client and scheme from Google's forwarding headers."""

    def __init__(self, app: ASGIApp, hops: int = 1) -> None:
        self.app = app
        self.hops = hops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            forwarded_for = proto = None
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":  # repeated headers form one list
                    forwarded_for = value if forwarded_for is None else forwarded_for + b"," + value
                elif name == b"x-forwarded-proto":
                    proto = value
            if forwarded_for is not None and (client := self._client(forwarded_for)):
                scope["client"] = (client, 0)
            if proto in (b"http", b"https"):
                scope["scheme"] = proto.decode()
        await self.app(scope, receive, send)

    def _client(self, forwarded_for: bytes) -> str | None:
        entries = [entry.strip() for entry in forwarded_for.split(b",")]
        if len(entries) < self.hops:
            return None
        candidate = entries[-self.hops].decode("latin-1")
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            return None
