"""What only the real server sees: clients that are slow, bloated or many.

The server process runs as in the image (`python -m`), with short limits so
the tests are quick; the defaults are in settings.py and the README.
"""

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .serving import ServerProcess

LIMITS = {
    "HTTP_HEADER_TIMEOUT_SECONDS": "1",
    "HTTP_BODY_TIMEOUT_SECONDS": "1",
    "MAX_HEADER_BYTES": "16384",
    "LOG_FORMAT": "json",
}


# The service with a route that reads its body, served by the production `serve()`.
READING_APP = """
from fastapi import Request
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.server import serve
from {{ cookiecutter.package_name }}.settings import Settings

settings = Settings()
app = create_app(settings)

@app.post("/read")
async def read(request: Request) -> dict[str, int]:
    return {"size": len(await request.body())}

serve(app, settings)
"""


def connect(server: ServerProcess) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    connection.settimeout(10)
    return connection


def answer(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except ConnectionResetError:  # closed with our bytes unread: what came first stands
        pass
    return received


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One server for the module: each test opens connections of its own."""
    with ServerProcess(env=LIMITS, command=[sys.executable, "-c", READING_APP]) as server:
        yield server


def test_headers_that_never_finish_are_cut_off(server: ServerProcess) -> None:
    with connect(server) as connection:
        started = time.monotonic()
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        reply = answer(connection)
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert 0.8 < time.monotonic() - started < 5


def test_a_connection_that_sends_nothing_is_closed(server: ServerProcess) -> None:
    with connect(server) as connection:
        reply = answer(connection)
    assert reply.startswith(b"HTTP/1.1 408 ")


def test_headers_a_byte_at_a_time_are_cut_off_all_the_same(server: ServerProcess) -> None:
    """Slowloris: each byte in time, the whole too late."""
    with connect(server) as connection:
        started = time.monotonic()
        try:
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 100:
                connection.send(bytes([byte]))
                time.sleep(0.05)
        except OSError:  # the server closed the connection: the point
            pass
        reply = answer(connection)
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 5


def test_oversized_headers_get_431(server: ServerProcess) -> None:
    with connect(server) as connection:
        connection.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n"
        )
        reply = answer(connection)
    assert reply.startswith(b"HTTP/1.1 431 ")


def test_a_body_that_stalls_is_cut_off(server: ServerProcess) -> None:
    with connect(server) as connection:
        connection.sendall(
            b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10
        )
        reply = answer(connection)
    assert reply.startswith(b"HTTP/1.1 408 ")


def test_the_server_still_serves_everyone_else(server: ServerProcess) -> None:
    with connect(server) as slow, connect(server) as fast:
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        fast.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer(fast).startswith(b"HTTP/1.1 200 ")


def peak_rss_kib(pid: int) -> int:
    """The process's high-water mark of resident memory (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def settled_peak_rss_kib(pid: int, timeout: float = 15.0) -> int:
    """The resident set once start-up work done after the first 200 (the
    clients' warm-up, tracing's SDK) has stopped growing it for a second, as
    the new high-water mark."""
    deadline = time.monotonic() + timeout
    peak, steady_since = peak_rss_kib(pid), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - steady_since < 1.0:
        time.sleep(0.1)
        now = peak_rss_kib(pid)
        if now > peak + 256:
            peak, steady_since = now, time.monotonic()
    # Writing 5 to clear_refs resets the high-water mark to the resident set
    # now (proc(5)), so what follows is measured from here, not from the
    # warm-up's own peak.
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return peak_rss_kib(pid)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("chunked", [False, True])
def test_sixteen_bodies_of_32_mib_at_once_do_not_grow_memory(chunked: bool) -> None:
    """Cloud Run lets 32 MiB requests through; sixteen at once would be 512 MiB,
    the instance's whole memory. Refused at the limit, they cost next to nothing."""
    with ServerProcess(
        env={"LOG_FORMAT": "json"}, command=[sys.executable, "-c", READING_APP]
    ) as server:
        idle = settled_peak_rss_kib(server.process.pid)
        statuses: list[bytes] = []

        def upload() -> None:
            with connect(server) as connection:
                framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: 33554432"
                connection.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n\r\n")
                chunk = b"x" * 65536
                try:
                    for _ in range(512):  # 32 MiB
                        connection.sendall(b"10000\r\n" + chunk + b"\r\n" if chunked else chunk)
                except OSError:  # refused and closed before it was all sent
                    pass
                statuses.append(answer(connection)[:12])

        threads = [threading.Thread(target=upload) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        peak = peak_rss_kib(server.process.pid)
    assert statuses == [b"HTTP/1.1 413"] * 16
    assert peak < 1.5 * idle, f"peak {peak} KiB against {idle} KiB idle"
