"""The physical floor: a raw ASGI app, no framework, served like the FastAPI
floor (uvloop, httptools, no access log). `/orders` validates the same
pydantic model as the other contenders, straight from the body's bytes."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from order import Order, receipt
from pydantic import ValidationError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = [(b"content-type", b"application/json")]


async def respond(send: Send, status: int, body: bytes) -> None:
    headers = [*JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path, method = scope["path"], scope["method"]
    if path == "/healthz" and method == "GET":
        await respond(send, 200, b'{"status":"ok"}')
    elif path == "/orders" and method == "POST":
        try:
            order = Order.model_validate_json(await read_body(receive))
        except ValidationError as error:
            await respond(send, 422, error.json(include_url=False).encode())
            return
        await respond(send, 200, receipt(order).model_dump_json().encode())
    else:
        await respond(send, 404, b'{"detail":"Not Found"}')
