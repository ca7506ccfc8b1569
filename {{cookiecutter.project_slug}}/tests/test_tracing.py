"""Traces to Cloud Trace: the server process, exporting to a local Telemetry API."""

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_google.cloud_trace import LocalCloudTrace

from {{ cookiecutter.package_name }}.tracing import FlushBreaker

from .serving import ServerProcess, free_port

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
# Well under the 3 s a response may wait for its spans' export: a response
# that waited for an export that never ends would not make it.
PROMPTLY = 1.0


@pytest.fixture
def cloud_trace() -> Iterator[LocalCloudTrace]:
    with LocalCloudTrace() as receiver:
        yield receiver


@contextmanager
def traced_server(endpoint: str) -> Iterator[ServerProcess]:
    env = {
        "TRACES_ENDPOINT": endpoint,
        "TRACE_SAMPLE_RATE": "0",
        "LOG_FORMAT": "json",
        "K_SERVICE": "traced-service",
    }
    with ServerProcess(env=env) as server:
        wait_for_line(server, lambda line: "Tracing to" in line["message"])
        yield server


@pytest.fixture
def server(cloud_trace: LocalCloudTrace) -> Iterator[ServerProcess]:
    with traced_server(cloud_trace.endpoint) as server:
        yield server


@pytest.fixture
def unanswering_endpoint() -> Iterator[str]:
    """An endpoint that takes connections (the kernel's backlog does) and
    never answers: Cloud Trace unreachable behind a dropping network."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1/traces"


def log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in list(server.lines) if line.startswith("{")]


def wait_for_line(
    server: ServerProcess, matches: Callable[[dict[str, Any]], bool], timeout: float = 15
) -> None:
    deadline = time.monotonic() + timeout
    while not any(matches(line) for line in log_lines(server)):
        assert time.monotonic() < deadline, "no such log line"
        time.sleep(0.05)


def breaker_lines(server: ServerProcess) -> list[tuple[str, str]]:
    """The severity and message of each line about waiting for exports."""
    return [
        (line["severity"], line["message"])
        for line in log_lines(server)
        if line["message"].startswith("Trace export")
    ]


def sampled(trace: str = TRACE) -> dict[str, str]:
    return {"traceparent": f"00-{trace}-{CALLER_SPAN}-01"}


def test_a_sampled_request_is_exported_before_its_response_ends(
    server: ServerProcess, cloud_trace: LocalCloudTrace
) -> None:
    """With CPU only during requests, what is not exported by the last byte
    may wait for the next request: so it is exported before."""
    response = httpx.get(
        f"{server.url}/readyz", headers={"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"}
    )
    answered = time.time()

    assert response.status_code == 200
    (span,) = cloud_trace.spans  # already there: no waiting
    assert span.received_at <= answered
    assert span.name == "GET /readyz"
    assert (span.trace_id, span.parent_span_id) == (TRACE, CALLER_SPAN)
    assert span.attributes["http.response.status_code"] == 200
    assert span.resource["service.name"] == "traced-service"
    assert span.resource["gcp.project_id"]


def test_an_unsampled_request_is_not_exported(
    server: ServerProcess, cloud_trace: LocalCloudTrace
) -> None:
    """Cloud Run's front end decided not to sample it: nor does the service."""
    httpx.get(f"{server.url}/readyz", headers={"traceparent": f"00-{TRACE}-{CALLER_SPAN}-00"})
    httpx.get(f"{server.url}/readyz")  # no decision, and TRACE_SAMPLE_RATE=0
    assert server.terminate() == 0  # the shutdown exports whatever is left

    assert cloud_trace.spans == []


def test_the_liveness_probe_is_not_traced(
    server: ServerProcess, cloud_trace: LocalCloudTrace
) -> None:
    """Cloud Run probes every instance; a span per probe would be noise (and cost)."""
    sampled = {"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"}
    assert httpx.get(f"{server.url}/healthz", headers=sampled).status_code == 200
    assert httpx.get(f"{server.url}/readyz", headers=sampled).status_code == 200
    assert server.terminate() == 0

    assert [span.name for span in cloud_trace.spans] == ["GET /readyz"]


def test_without_credentials_the_service_serves_untraced(tmp_path: Path) -> None:
    """Tracing to Google with no credentials (`local` without a gcloud login):
    one warning that says so, and every request still served."""
    env = {
        "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json"),
        "LOG_FORMAT": "json",
    }
    with ServerProcess(env=env, unset=("TRACES_ENDPOINT",)) as server:
        deadline = time.monotonic() + 15
        while not any("Tracing is off" in line for line in server.lines):
            assert time.monotonic() < deadline, "no word that tracing is off"
            time.sleep(0.05)
        response = httpx.get(
            f"{server.url}/healthz", headers={"traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"}
        )
        assert response.status_code == 200
        (warning,) = [json.loads(line) for line in server.lines if "Tracing is off" in line]
        assert warning["severity"] == "WARNING"
        assert "telemetry.googleapis.com" in warning["message"]


def test_an_unanswering_endpoint_delays_one_response_not_every_one(
    unanswering_endpoint: str,
) -> None:
    """Cloud Trace unreachable: one sampled response waits for its export
    until that wait runs out; those after it do not wait, and one warning
    says so. The spans still due fit in the 10 s Cloud Run gives on SIGTERM."""
    with traced_server(unanswering_endpoint) as server:
        first = httpx.get(f"{server.url}/readyz", headers=sampled(), timeout=30)
        assert first.status_code == 200
        for _ in range(5):
            response = httpx.get(f"{server.url}/readyz", headers=sampled(), timeout=PROMPTLY)
            assert response.status_code == 200
        assert server.terminate() == 0

        ((severity, _),) = breaker_lines(server)
        assert severity == "WARNING"


@pytest.mark.parametrize("outage", ["answers 503", "refuses connections"])
def test_a_failing_endpoint_does_not_slow_the_service_down(
    outage: str, cloud_trace: LocalCloudTrace
) -> None:
    """The exporter retries a 503 or a refused connection for a while: the
    responses do not wait for that, and one warning says exports fail."""
    if outage == "answers 503":
        cloud_trace.failing_with = 503
        endpoint = cloud_trace.endpoint
    else:
        endpoint = f"http://127.0.0.1:{free_port()}/v1/traces"  # nothing listens there
    with traced_server(endpoint) as server:
        assert httpx.get(f"{server.url}/readyz", headers=sampled(), timeout=30).status_code == 200
        for _ in range(5):
            response = httpx.get(f"{server.url}/readyz", headers=sampled(), timeout=PROMPTLY)
            assert response.status_code == 200

        ((severity, _),) = breaker_lines(server)
        assert severity == "WARNING"


def test_once_an_export_succeeds_responses_wait_for_theirs_again(
    cloud_trace: LocalCloudTrace,
) -> None:
    """The outage ends: the spans held back meanwhile go out in the
    background, and from that success on, sampled requests are exported
    before their responses end again."""
    held_back, after = "1" * 32, "2" * 32
    cloud_trace.failing_with = 503
    with traced_server(cloud_trace.endpoint) as server:
        assert httpx.get(f"{server.url}/readyz", headers=sampled(), timeout=30).status_code == 200
        cloud_trace.failing_with = None
        response = httpx.get(f"{server.url}/readyz", headers=sampled(held_back), timeout=PROMPTLY)
        assert response.status_code == 200
        wait_for_line(server, lambda line: "works again" in line["message"])

        httpx.get(f"{server.url}/readyz", headers=sampled(after))
        answered = time.time()

        spans = {span.trace_id: span for span in cloud_trace.spans}
        assert held_back in spans
        assert spans[after].received_at <= answered  # already there: no waiting
        assert [severity for severity, _ in breaker_lines(server)] == ["WARNING", "INFO"]


def test_after_the_cool_down_one_response_tries_waiting_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Exports fail and none has succeeded since: after the cool-down one
    sampled request waits for its export again, the others still do not,
    and nothing more is logged until an export succeeds."""
    now = 0.0
    breaker = FlushBreaker(cool_down=60, clock=lambda: now)
    caplog.set_level(logging.INFO)
    assert breaker.should_flush()

    breaker.failed("failed")
    breaker.failed("failed")
    assert not breaker.should_flush()
    now = 59.0
    assert not breaker.should_flush()
    now = 60.0
    assert breaker.should_flush()  # this one tries
    assert not breaker.should_flush()  # while it does, the others do not
    breaker.failed("took over 3000 ms")
    now = 119.0
    assert not breaker.should_flush()  # the cool-down starts over
    breaker.succeeded()
    assert breaker.should_flush()
    assert breaker.should_flush()

    assert [record.levelname for record in caplog.records] == ["WARNING", "INFO"]
