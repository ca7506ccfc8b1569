"""Traces to Cloud Trace: the server process, exporting to a local Telemetry API."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from local_google.cloud_trace import LocalCloudTrace

from .serving import ServerProcess

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def cloud_trace() -> Iterator[LocalCloudTrace]:
    with LocalCloudTrace() as receiver:
        yield receiver


@pytest.fixture
def server(cloud_trace: LocalCloudTrace) -> Iterator[ServerProcess]:
    env = {
        "TRACES_ENDPOINT": cloud_trace.endpoint,
        "TRACE_SAMPLE_RATE": "0",
        "LOG_FORMAT": "json",
        "K_SERVICE": "traced-service",
    }
    with ServerProcess(env=env) as server:
        deadline = time.monotonic() + 15
        while not any("Tracing to" in line for line in server.lines):
            assert time.monotonic() < deadline, "tracing never started"
            time.sleep(0.05)
        yield server


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
