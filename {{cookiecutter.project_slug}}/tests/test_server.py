"""The real server process: startup, structured logs on stdout, graceful SIGTERM."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from .serving import ServerProcess

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

# The service with one slow route, served by the same `serve()` as production.
SLOW_APP = """
import asyncio
import logging
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.server import serve
from {{ cookiecutter.package_name }}.settings import Settings

settings = Settings()
app = create_app(settings)

@app.get("/slow")
async def slow(seconds: float) -> dict[str, str]:
    logging.getLogger("test").warning("slow request in flight")
    await asyncio.sleep(seconds)
    return {"status": "done"}

serve(app, settings)
"""


def test_sigterm_lets_the_in_flight_request_finish() -> None:
    with ServerProcess(command=[sys.executable, "-c", SLOW_APP]) as server:
        result: dict[str, httpx.Response] = {}

        def call_slow() -> None:
            result["response"] = httpx.get(f"{server.url}/slow?seconds=1.5", timeout=20)

        caller = threading.Thread(target=call_slow)
        caller.start()
        deadline = time.monotonic() + 10
        while not any("slow request in flight" in line for line in server.lines):
            assert time.monotonic() < deadline, "the request never reached the app"
            time.sleep(0.02)
        code = server.terminate()
        caller.join(timeout=10)

    assert code == 0, "\n".join(server.lines)
    assert result["response"].status_code == 200
    assert result["response"].json() == {"status": "done"}
    assert any("Application shutdown complete" in line for line in server.lines)


def test_logs_are_json_with_the_trace_of_the_request() -> None:
    env = {"LOG_FORMAT": "json", "GCP_PROJECT": "log-test-project"}
    with ServerProcess(env=env) as server:
        httpx.get(
            f"{server.url}/healthz",
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        )
        assert server.terminate() == 0

    entries = [json.loads(line) for line in server.lines]
    assert all({"severity", "message", "time"} <= entry.keys() for entry in entries)
    traced = [e for e in entries if e.get("httpRequest", {}).get("requestUrl") == "/healthz"]
    assert traced, "\n".join(server.lines)
    assert traced[-1]["logging.googleapis.com/trace"] == (
        f"projects/log-test-project/traces/{TRACE_ID}"
    )
    assert any("Application startup complete" in e["message"] for e in entries)
    assert not any("color_message" in entry for entry in entries)


def test_without_environment_the_service_refuses_to_start(tmp_path: Path) -> None:
    """An image started without ENVIRONMENT must not serve as `local`, with
    harmless defaults in place of its secrets. (Run outside the project, whose
    .env could set it.)"""
    server = ServerProcess(unset=["ENVIRONMENT"], cwd=tmp_path, startup_timeout=15)
    with pytest.raises(AssertionError, match="exited with 1") as refused:
        server.__enter__()
    assert (
        "Cannot start: Invalid settings: ENVIRONMENT: Field required "
        "(local, dev, staging, prod)" in str(refused.value)
    )


BROKEN_APP = """
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.server import serve
from {{ cookiecutter.package_name }}.settings import Settings

settings = Settings()
app = create_app(settings)

@app.get("/boom")
async def boom() -> None:
    raise RuntimeError("boom")

serve(app, settings)
"""


def test_an_unhandled_exception_is_one_line_error_reporting_groups() -> None:
    """Error Reporting groups a JSON entry of type ReportedErrorEvent whose
    stack_trace holds the traceback, by serviceContext (Cloud Run's K_SERVICE
    and K_REVISION)."""
    env = {"LOG_FORMAT": "json", "K_SERVICE": "svc", "K_REVISION": "svc-00042-abc"}
    with ServerProcess(env=env, command=[sys.executable, "-c", BROKEN_APP]) as server:
        assert httpx.get(f"{server.url}/boom").status_code == 500
        assert server.terminate() == 0

    entries = [json.loads(line) for line in server.lines]
    (error,) = [e for e in entries if "stack_trace" in e]
    assert error["@type"].endswith("clouderrorreporting.v1beta1.ReportedErrorEvent")
    assert error["severity"] == "ERROR"
    assert error["stack_trace"].startswith("Traceback (most recent call last):")
    assert error["stack_trace"].endswith("RuntimeError: boom")
    assert error["serviceContext"] == {"service": "svc", "version": "svc-00042-abc"}


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"ENVIRONMENT": "prod", "PORT": "eighty"}, "PORT"),
        ({"ENVIRONMENT": "staging", "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ],
)
def test_a_startup_failure_is_one_json_line(
    env: dict[str, str], names: str, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}"]
    done = subprocess.run(
        command,
        env={**os.environ, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    (entry,) = [json.loads(line) for line in lines]
    assert entry["severity"] == "CRITICAL"
    assert entry["message"].startswith("Cannot start: Invalid settings: ")
    assert names in entry["message"]
