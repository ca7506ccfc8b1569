"""Input a hostile client controls: bounded memory, no 5xx, nothing echoed or logged whole.

In-process through the app's own middleware; `test_slow_clients.py` covers
what only a real server sees (slow and oversized requests on the socket).
"""

import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings, strategies
from pydantic import BaseModel, Field

from {{ cookiecutter.package_name }}.access_log import ACCESS_LOGGER
from {{ cookiecutter.package_name }}.logs import TextFormatter, cap
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Environment, Settings
from {{ cookiecutter.package_name }}.trace_context import parse_cloud_trace_context, parse_traceparent

pytestmark = pytest.mark.anyio
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Payload(BaseModel):
    text: str = Field(max_length=10)


def app_with_echo(**overrides: Any) -> FastAPI:
    """The app, with a route of the test's own that reads a typed JSON body."""
    app = create_app(
        Settings(environment=Environment.LOCAL, gcp_project="p", _env_file=None, **overrides)
    )

    @app.post("/echo")
    async def echo(payload: Payload) -> dict[str, str]:
        return {"text": payload.text}

    return app


def access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [entry for entry in entries if entry["logger"] == ACCESS_LOGGER]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = app_with_echo(max_request_bytes=1024)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        yield client


async def test_a_body_over_the_limit_by_its_length_gets_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", content=b"x" * 1025)
    assert response.status_code == 413
    assert (await client.post("/echo", json={"text": "fits"})).status_code == 200


async def test_a_body_over_the_limit_while_it_streams_gets_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(3):
            yield b"x" * 512

    response = await client.post("/echo", content=chunks())
    assert response.status_code == 413


async def test_a_validation_error_echoes_only_a_short_prefix(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", json={"text": "y" * 900})

    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["input"] == "y" * 64 + "…"
    assert len(response.content) < 400


@pytest.mark.parametrize(
    "body",
    [
        b'{"text": "\\ud800"}',  # a lone surrogate: not encodable as UTF-8
        b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # deep nesting
        b"\xff\xfe not UTF-8",
        b'{"text": 1e999999}',
    ],
)
async def test_a_malformed_body_is_a_client_error(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/echo", content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize(
    "header",
    [
        f"{TRACE_ID}/{'9' * 5000};o=1",  # more digits than int() takes
        f"{TRACE_ID}/18446744073709551616;o=1",  # 2**64: out of a span's range
        f"0x{TRACE_ID[2:]}/1;o=1",
        f"+{TRACE_ID[1:]}/1;o=1",
        f"1_{TRACE_ID[2:]}/1;o=1",
        f"{TRACE_ID}/1;o=1\u0085",
    ],
)
async def test_a_malformed_trace_header_is_ignored_on_every_route(
    client: httpx.AsyncClient, log_output: io.StringIO, header: str
) -> None:
    raw = header.encode("latin-1")  # bytes as they come off the wire, not only ASCII
    response = await client.get("/healthz", headers={b"x-cloud-trace-context": raw})

    assert response.status_code == 200
    (line,) = access_lines(log_output)
    assert "logging.googleapis.com/trace" not in line


@pytest.mark.parametrize(
    "header",
    [
        f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",  # W3C: lowercase only
        f"00-{TRACE_ID}-0000000000000000-01",
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",
        f"00-{TRACE_ID}-00f067aa0ba902b7-01-extra",
        f"00-0x{TRACE_ID[2:]}-00f067aa0ba902b7-01",
    ],
)
def test_traceparent_must_be_exactly_w3c(header: str) -> None:
    assert parse_traceparent(header) is None


def test_trace_ids_are_exactly_32_hex_digits() -> None:
    assert parse_cloud_trace_context(f"{TRACE_ID}/1;o=1") is not None
    for bad in (f"0x{TRACE_ID[2:]}", f"+{TRACE_ID[1:]}", f"1_1{TRACE_ID[3:]}", TRACE_ID[:-1]):
        assert parse_cloud_trace_context(f"{bad}/1;o=1") is None, bad


async def test_the_client_is_the_address_google_appended(
    client: httpx.AsyncClient, log_output: io.StringIO
) -> None:
    """X-Forwarded-For's first entries are the caller's own claims; Cloud Run's
    front end appends the address it saw last."""
    headers = {"x-forwarded-for": "6.6.6.6, 203.0.113.9", "x-forwarded-proto": "https"}

    await client.get("/healthz", headers=headers)
    await client.get("/healthz", headers={"x-forwarded-for": "not-an-address"})

    spoofed, garbage = access_lines(log_output)
    assert spoofed["httpRequest"]["remoteIp"] == "203.0.113.9"
    assert garbage["httpRequest"]["remoteIp"] == "10.0.0.1", "the peer, for lack of better"


async def test_behind_a_load_balancer_the_client_is_two_entries_from_the_end(
    log_output: io.StringIO,
) -> None:
    app = app_with_echo(forwarded_hops=2)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        await client.get(
            "/healthz", headers={"x-forwarded-for": "6.6.6.6, 198.51.100.4, 130.211.0.1"}
        )
    (line,) = access_lines(log_output)
    assert line["httpRequest"]["remoteIp"] == "198.51.100.4"


async def test_what_a_caller_chose_is_capped_in_the_access_log(
    client: httpx.AsyncClient, log_output: io.StringIO
) -> None:
    await client.get("/" + "a" * 10_000 + "%0Afake%20line", headers={"user-agent": "u" * 10_000})

    (line,) = access_lines(log_output)
    assert len(line["httpRequest"]["requestUrl"]) < 2100
    assert len(line["httpRequest"]["userAgent"]) < 600
    assert "\n" not in line["message"]


def test_text_logs_escape_control_characters() -> None:
    formatter = TextFormatter()
    message = "bell \a, escape \x1b[31m, next \u2028 line"
    record = logging.LogRecord("demo", logging.WARNING, __file__, 1, message, None, None)
    line = formatter.format(record)
    assert "\a" not in line
    assert "\x1b" not in line
    assert "\u2028" not in line
    assert "\\x07" in line
    assert "\\x1b[31m" in line


def test_cap_escapes_newlines_and_bounds_length() -> None:
    assert cap("a\nb") == "a\\nb"
    capped = cap("t" * 1_000_000, 200)
    assert capped.startswith("t" * 200)
    assert len(capped) < 250


# Anything a client can put in a request, through every route of the app.
HEADER_TEXT = strategies.text(
    alphabet=strategies.characters(
        min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"
    ),
    max_size=200,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    path=strategies.sampled_from(
        ["/healthz", "/readyz", "/echo", "/docs", "/openapi.json", "/nope"]
    ),
    method=strategies.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    headers=strategies.dictionaries(
        strategies.sampled_from(
            [
                "traceparent",
                "x-cloud-trace-context",
                "x-forwarded-for",
                "x-forwarded-proto",
                "content-type",
                "user-agent",
                "authorization",
                "accept",
            ]
        ),
        HEADER_TEXT,
        max_size=5,
    ),
    body=strategies.one_of(
        strategies.binary(max_size=2048),
        strategies.recursive(
            strategies.none() | strategies.booleans() | strategies.floats() | strategies.text(),
            lambda inner: (
                strategies.lists(inner) | strategies.dictionaries(strategies.text(), inner)
            ),
            max_leaves=20,
        ).map(lambda value: json.dumps(value).encode()),
    ),
)
async def test_no_request_shape_gets_a_server_error(
    client: httpx.AsyncClient, path: str, method: str, headers: dict[str, str], body: bytes
) -> None:
    raw = {name.encode(): value.encode("latin-1") for name, value in headers.items()}
    response = await client.request(method, path, headers=raw, content=body)
    assert response.status_code < 500, (method, path, headers, body[:100], response.text[:200])
