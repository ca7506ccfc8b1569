"""The local Cloud Run front end behaves as Google documents it (see its module).

It stands between every test of a deployment and the service, so what it
models is tested here against a small upstream that echoes what it received.
"""

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from local_google.cloud_run import SIGNATURE_REMOVED, LocalCloudRun, stop_instance
from local_google.issuer import LocalIssuer
from local_google.lifecycle import serve_in_background

INVOKER = "caller@test-project.iam.gserviceaccount.com"


class Echo(BaseHTTPRequestHandler):
    """Answers with the headers and body size it received; `/slow` takes a second."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/slow":
            time.sleep(1.0)
        answer = json.dumps({"headers": dict(self.headers.items()), "size": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    serve_in_background(server)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def private_front_end(upstream: str, issuer: LocalIssuer) -> Iterator[LocalCloudRun]:
    with LocalCloudRun(upstream, issuer=issuer, invokers=[INVOKER], request_timeout=0.5) as front:
        yield front


@pytest.fixture(scope="module")
def public_front_end(upstream: str) -> Iterator[LocalCloudRun]:
    with LocalCloudRun(upstream, public=True, max_request_bytes=1024) as front:
        yield front


def with_empty_log(front: LocalCloudRun) -> LocalCloudRun:
    """The front end as a new one starts: nothing forwarded or refused yet."""
    front.log.forwarded.clear()
    front.log.refused.clear()
    return front


@pytest.fixture
def private(private_front_end: LocalCloudRun) -> LocalCloudRun:
    return with_empty_log(private_front_end)


@pytest.fixture
def public(public_front_end: LocalCloudRun) -> LocalCloudRun:
    return with_empty_log(public_front_end)


def received(response: httpx.Response) -> dict[str, str]:
    """The headers the upstream got, names lowercased."""
    assert response.status_code == 200, response.text
    return {k.lower(): v for k, v in response.json()["headers"].items()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_private_refuses_before_the_container_sees_anything(
    private: LocalCloudRun, issuer: LocalIssuer
) -> None:
    cases = {
        "no token": ({}, 403),
        "not bearer": ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        "forged": (bearer(LocalIssuer().token(INVOKER, private.url)), 401),
        "other audience": (bearer(issuer.token(INVOKER, "https://other.example")), 401),
        "expired": (bearer(issuer.token(INVOKER, private.url, exp=int(time.time()) - 60)), 401),
        "no run.invoker": (bearer(issuer.token("x@y.iam.gserviceaccount.com", private.url)), 403),
    }
    for name, (headers, status) in cases.items():
        assert httpx.get(f"{private.url}/", headers=headers).status_code == status, name
    assert private.log.forwarded == []
    assert [refused.status for refused in private.log.refused] == [403, 401, 401, 401, 401, 403]


def test_private_forwards_the_checked_token_without_its_signature(
    private: LocalCloudRun, issuer: LocalIssuer
) -> None:
    token = issuer.token(INVOKER, private.url)

    headers = received(httpx.get(f"{private.url}/", headers=bearer(token)))

    header, claims, _ = token.split(".")
    assert headers["authorization"] == f"Bearer {header}.{claims}.{SIGNATURE_REMOVED}"


def test_x_serverless_authorization_is_the_one_checked(
    private: LocalCloudRun, issuer: LocalIssuer
) -> None:
    token = issuer.token(INVOKER, private.url)
    own = "an application's own credentials"

    headers = received(
        httpx.get(
            f"{private.url}/",
            headers={"X-Serverless-Authorization": f"Bearer {token}", "Authorization": own},
        )
    )

    assert headers["x-serverless-authorization"].endswith(f".{SIGNATURE_REMOVED}")
    assert headers["authorization"] == own


def test_public_forwards_the_token_as_sent(public: LocalCloudRun, issuer: LocalIssuer) -> None:
    token = issuer.token(INVOKER, public.url)
    assert received(httpx.get(f"{public.url}/", headers=bearer(token)))["authorization"] == (
        f"Bearer {token}"
    )
    assert httpx.get(f"{public.url}/").status_code == 200


def test_a_request_over_the_size_limit_gets_413(public: LocalCloudRun) -> None:
    assert httpx.post(f"{public.url}/", content=b"x" * 1024).json()["size"] == 1024
    declared = httpx.post(f"{public.url}/", content=b"x" * 1025)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield from (b"x" * 512 for _ in range(3))

    streamed = httpx.post(f"{public.url}/", content=chunks())

    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert len(public.log.forwarded) == 1


def test_the_default_size_limit_is_cloud_runs_32_mib(upstream: str) -> None:
    """Refused by its Content-Length, before a byte of the body is sent."""
    with LocalCloudRun(upstream, public=True) as front:
        port = int(front.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(
                b"POST / HTTP/1.1\r\nHost: service\r\n"
                + f"Content-Length: {32 * 1024 * 1024 + 1}\r\n\r\n".encode()
            )
            status_line = connection.recv(64).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"


def test_a_request_past_the_timeout_gets_504(private: LocalCloudRun, issuer: LocalIssuer) -> None:
    token = issuer.token(INVOKER, private.url)

    response = httpx.post(f"{private.url}/slow", headers=bearer(token), timeout=5)

    assert response.status_code == 504


def test_trace_headers_continue_the_callers_trace(public: LocalCloudRun) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"

    headers = received(
        httpx.get(f"{public.url}/", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    )

    version, trace_id, span, flags = headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", trace, "01")
    assert span != "00f067aa0ba902b7", "the front end's own span"
    assert headers["x-cloud-trace-context"] == f"{trace}/{int(span, 16)};o=1"


def test_a_request_without_a_trace_gets_one(public: LocalCloudRun) -> None:
    headers = received(httpx.get(f"{public.url}/"))

    trace_id = headers["traceparent"].split("-")[1]
    assert len(trace_id) == 32
    assert headers["x-cloud-trace-context"].startswith(f"{trace_id}/")


def test_forwarding_headers_append_the_client(public: LocalCloudRun) -> None:
    headers = received(
        httpx.get(f"{public.url}/", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.1"})
    )

    assert headers["x-forwarded-for"] == "203.0.113.9, 198.51.100.1, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "https"


IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"  # noqa: E501
EXITS_ON_SIGTERM = "import time; print('up', flush=True); time.sleep(60)"


@pytest.mark.parametrize(
    ("program", "exits_by_itself"), [(EXITS_ON_SIGTERM, True), (IGNORES_SIGTERM, False)]
)
def test_an_instance_gets_sigterm_then_sigkill(program: str, exits_by_itself: bool) -> None:
    process = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "up\n"
    started = time.monotonic()

    assert stop_instance(process, grace=1.0) is exits_by_itself

    elapsed = time.monotonic() - started
    assert elapsed < 1.0 if exits_by_itself else 1.0 <= elapsed < 5
    process.stdout.close()
