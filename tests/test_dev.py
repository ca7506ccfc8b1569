"""`make dev` serves the rendered service locally with no Google Cloud account."""

import base64
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pytest

from .combinations import EVERY_FEATURE
from .conftest import Answers, Render, free_port, tool_env

T = TypeVar("T")


def test_make_dev_serves_and_runs_deferred_work_without_credentials(
    render: Callable[[Answers], Render],
) -> None:
    with make_dev(render({})) as dev:
        health = wait_for(lambda: httpx.get(f"{dev.url}/healthz", timeout=1), dev.process)
        assert health.status_code == 200
        assert httpx.get(f"{dev.url}/docs", timeout=5).status_code == 200
        signup = httpx.post(
            f"{dev.url}/signups", json={"email": "ada@example.com", "name": "Ada"}, timeout=30
        )
        assert signup.status_code == 202, signup.text
        wait_for(
            lambda: any("Sent welcome email" in line for line in dev.lines) or None, dev.process
        )
    output = "".join(dev.lines)
    assert f"Serving on {dev.url}" in output


@dataclass
class Dev:
    process: subprocess.Popen[str]
    lines: list[str]  # its output so far
    url: str


@contextmanager
def make_dev(project: Render) -> Iterator[Dev]:
    """`make dev` in `project` on a free port, with no Google credentials; stopped after."""
    project.run("uv", "sync", "--locked")
    port = free_port()
    env = {
        **tool_env(project.env_dir),
        "PORT": str(port),
        "GOOGLE_APPLICATION_CREDENTIALS": os.devnull,
        "NO_GCE_CHECK": "true",
    }
    process = subprocess.Popen(
        ["make", "dev"], cwd=project.path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()
    try:
        yield Dev(process, lines, f"http://127.0.0.1:{port}")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
        reader.join(timeout=5)
        process.stdout.close()


def wait_for(probe: Callable[[], T | None], process: subprocess.Popen[str]) -> T:
    """Call `probe` until it returns something (connection errors count as nothing)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if (result := probe()) is not None:
                return result
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("make dev did not get there in time")


def test_make_dev_fires_schedules_and_delivers_pubsub_messages(
    render: Callable[[Answers], Render],
) -> None:
    """The local Cloud Scheduler runs the committed schedule when asked, as
    `make dev` prints; where Google's Pub/Sub emulator can run, a message
    published to it reaches its subscriber."""
    with make_dev(render(EVERY_FEATURE)) as dev:
        wait_for(lambda: httpx.get(f"{dev.url}/healthz", timeout=1), dev.process)
        output = "".join(dev.lines)
        (run_now,) = re.findall(r"curl -X POST (\S+:run)", output)
        assert httpx.post(run_now, timeout=10).status_code == 200
        wait_for(lambda: any("Sent the report" in line for line in dev.lines) or None, dev.process)
        published = re.findall(r"curl -X POST (\S+:publish)", output)
        if published:
            data = base64.b64encode(b'{"order_id": "A-1", "total_cents": 5}').decode()
            answer = httpx.post(published[0], json={"messages": [{"data": data}]}, timeout=10)
            assert answer.status_code == 200, answer.text
            wait_for(
                lambda: any("Recorded an order" in line for line in dev.lines) or None, dev.process
            )
        else:
            assert "No local Pub/Sub: " in output
            if os.environ.get("REQUIRE_PUBSUB_EMULATOR"):
                pytest.fail(output)
