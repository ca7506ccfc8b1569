"""The real server process: startup, structured logs on stdout, graceful SIGTERM."""

import json
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
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.server import serve
from {{ cookiecutter.package_name }}.settings import Settings

settings = Settings()
app = create_app(settings)

@app.get("/slow")
async def slow(seconds: float) -> dict[str, str]:
    await asyncio.sleep(seconds)
    return {"status": "done"}

serve(app, settings)
"""


def test_sigterm_lets_the_in_flight_request_finish() -> None:
    with ServerProcess(command=[sys.executable, "-c", SLOW_APP]) as server:
        result: dict[str, httpx.Response] = {}

        def call_slow() -> None:
            result["response"] = httpx.get(f"{server.url}/slow?seconds=1.5", timeout=10)

        caller = threading.Thread(target=call_slow)
        caller.start()
        time.sleep(0.5)  # the request is now in flight
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
