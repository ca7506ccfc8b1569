"""What every local server shares: `with` to start and stop it, a quiet HTTP
handler served in the background, and waiting for the requests it records."""

import socketserver
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")

# How often a serving loop looks for `shutdown()`. The standard library's
# default, half a second, is what every stop would wait.
POLL_INTERVAL = 0.05


class LocalServer:
    """A server that `start()` starts and `stop()` stops; `with` does both."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class QuietHandler(BaseHTTPRequestHandler):
    """An HTTP handler that keeps the test output free of access lines."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_in_background(server: socketserver.BaseServer) -> None:
    """Serve `server` on a daemon thread until its `shutdown()`."""
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True
    ).start()


def wait_for_count(
    changed: threading.Condition, records: Sequence[T], count: int, timeout: float, what: str
) -> list[T]:
    """Block until `records` (appended to under `changed`, which is notified)
    holds at least `count` items; all of them."""
    deadline = time.monotonic() + timeout
    with changed:
        while len(records) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(records)} of {count} {what}")
            changed.wait(remaining)
        return list(records)
