"""`make dev` serves the rendered service locally with no Google Cloud account."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable

import httpx

from .conftest import Answers, Render, tool_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_make_dev_serves_healthz_and_docs_without_credentials(
    render: Callable[[Answers], Render],
) -> None:
    project = render({})
    project.run("uv", "sync", "--locked")
    port = free_port()
    env = {
        **tool_env(project.env_dir),
        "PORT": str(port),
        "GOOGLE_APPLICATION_CREDENTIALS": os.devnull,
        "NO_GCE_CHECK": "true",
    }
    env.pop("ENVIRONMENT", None)
    process = subprocess.Popen(
        ["make", "dev"],
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, "make dev never answered"
        assert health.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5).status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}" in output
