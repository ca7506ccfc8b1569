import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.access_log import ACCESS_LOGGER
from {{ cookiecutter.package_name }}.trace_context import (
    TraceContext,
    current_trace,
    parse_cloud_trace_context,
    parse_traceparent,
    trace_from_headers,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def entries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def test_traceparent_is_parsed() -> None:
    assert parse_traceparent(TRACEPARENT) == TraceContext(TRACE_ID, "00f067aa0ba902b7", True)
    assert parse_traceparent(f"00-{TRACE_ID}-00f067aa0ba902b7-00") == TraceContext(
        TRACE_ID, "00f067aa0ba902b7", False
    )


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"00-{TRACE_ID}-00f067aa0ba902b7",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{TRACE_ID[:-1]}x-00f067aa0ba902b7-01",
        f"00-{TRACE_ID}-short-01",
    ],
)
def test_malformed_traceparent_is_ignored(header: str) -> None:
    assert parse_traceparent(header) is None


def test_cloud_trace_context_is_parsed_and_span_made_hex() -> None:
    assert parse_cloud_trace_context(f"{TRACE_ID}/1;o=1") == TraceContext(
        TRACE_ID, "0000000000000001", True
    )
    assert parse_cloud_trace_context(f"{TRACE_ID}") == TraceContext(TRACE_ID, None, False)
    assert parse_cloud_trace_context("not-a-trace/1;o=1") is None


def test_traceparent_wins_over_cloud_trace_context() -> None:
    other = "0af7651916cd43dd8448eb211c80319c"
    trace = trace_from_headers(TRACEPARENT, f"{other}/5;o=1")
    assert trace is not None
    assert trace.trace_id == TRACE_ID
    fallback = trace_from_headers("garbage", f"{other}/5;o=1")
    assert fallback is not None
    assert fallback.trace_id == other


def test_log_line_has_cloud_logging_fields(log_output: io.StringIO) -> None:
    token = current_trace.set(TraceContext(TRACE_ID, "00f067aa0ba902b7", True))
    try:
        logging.getLogger("demo").warning("disk %s", "almost full", extra={"disk": "/data"})
    finally:
        current_trace.reset(token)
    (entry,) = entries(log_output)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "disk almost full"
    assert entry["logging.googleapis.com/trace"] == f"projects/test-project/traces/{TRACE_ID}"
    assert entry["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert entry["logging.googleapis.com/trace_sampled"] is True
    location = entry["logging.googleapis.com/sourceLocation"]
    assert location["file"].endswith("test_logging.py")
    assert location["function"] == "test_log_line_has_cloud_logging_fields"
    assert int(location["line"]) > 0
    assert entry["disk"] == "/data"
    assert entry["time"].endswith("Z")


def test_line_outside_a_request_has_no_trace(log_output: io.StringIO) -> None:
    logging.getLogger("demo").info("starting")
    (entry,) = entries(log_output)
    assert "logging.googleapis.com/trace" not in entry


def test_exception_traceback_is_in_the_message(log_output: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("demo").exception("handler failed")
    (entry,) = entries(log_output)
    assert entry["severity"] == "ERROR"
    assert entry["message"].startswith("handler failed\nTraceback (most recent call last):")
    assert "RuntimeError: boom" in entry["message"]


@pytest.mark.anyio
async def test_one_access_line_per_request_with_trace(
    client: httpx.AsyncClient, log_output: io.StringIO
) -> None:
    response = await client.get(
        "/healthz?probe=1", headers={"traceparent": TRACEPARENT, "user-agent": "probe/1.0"}
    )
    assert response.status_code == 200
    access = [e for e in entries(log_output) if e["logger"] == ACCESS_LOGGER]
    assert len(access) == 1
    (entry,) = access
    assert entry["severity"] == "INFO"
    assert entry["logging.googleapis.com/trace"] == f"projects/test-project/traces/{TRACE_ID}"
    request = entry["httpRequest"]
    assert request["requestMethod"] == "GET"
    assert request["requestUrl"] == "/healthz?probe=1"
    assert request["status"] == 200
    assert request["userAgent"] == "probe/1.0"
    assert request["remoteIp"] == "203.0.113.7"
    assert request["latency"].endswith("s")
    assert float(request["latency"][:-1]) >= 0
    assert int(request["responseSize"]) == len(response.content)
    assert current_trace.get() is None


@pytest.mark.anyio
async def test_client_errors_are_logged_as_warnings(
    client: httpx.AsyncClient, log_output: io.StringIO
) -> None:
    await client.get("/missing")
    (entry,) = [e for e in entries(log_output) if e["logger"] == ACCESS_LOGGER]
    assert entry["severity"] == "WARNING"
    assert entry["httpRequest"]["status"] == 404
