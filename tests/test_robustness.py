"""The rendered service under generated and concurrent traffic, as a real
server process: schemathesis against its own OpenAPI schema, and a SIGTERM in
the middle of a load of 32 connections."""

import asyncio
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from .conftest import (
    Answers,
    Render,
    free_port,
    isolated_tool,
    record_figure,
    tool_env,
    wait_until_healthy,
)


@dataclass
class Service:
    url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def schemathesis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return isolated_tool("schemathesis", tmp_path_factory)


@pytest.fixture
def service(render: Callable[[Answers], Render]) -> Iterator[Service]:
    """The default render behind its own `python -m <package>`, with the local
    Cloud Tasks server delivering its tasks; JSON logs, one line per request."""
    project = render({})
    project.run("uv", "sync", "--locked")
    queue = "projects/your-gcp-project/locations/europe-west3/queues/default"
    with project.local_google("--queue", queue) as google:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [str(project.env_dir / "bin" / "python"), "-m", project.context["package_name"]],
            cwd=project.path,
            env={**tool_env(project.env_dir), **google, "PORT": str(port), "SERVICE_URL": url,
                 "LOG_FORMAT": "json", "ENVIRONMENT": "local"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        service = Service(url, process)
        reader = threading.Thread(
            target=lambda: service.lines.extend(line.rstrip("\n") for line in process.stdout or []),
            daemon=True,
        )
        reader.start()
        try:
            wait_until_healthy(url)
            yield service
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            reader.join(timeout=5)


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    service: Service, schemathesis: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(schemathesis), "run", f"{service.url}/openapi.json", "--checks", "all",
         "--max-examples", "1000", "--phases", "examples,coverage,fuzzing",
         "--seed", "20261128", "--no-color"],
        capture_output=True, text=True, check=False, timeout=1200, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    requests = answered(service)
    record_figure("schemathesis: requests the service answered", str(requests))
    assert requests >= 1000, f"only {requests} requests were generated"
    statuses = [int(m) for m in re.findall(r'"status": ?(\d{3})', "\n".join(service.lines))]
    assert statuses
    assert not [s for s in statuses if s >= 500], "a request got a server error"


LOAD_AGENT = "sigterm-under-load"


async def _load(url: str, stop: asyncio.Event, outcomes: list[str]) -> None:
    """32 connections sending requests back to back until `stop`."""

    async def connection() -> None:
        async with httpx.AsyncClient(
            base_url=url,
            timeout=15,
            limits=httpx.Limits(max_connections=1),
            headers={"User-Agent": LOAD_AGENT},
        ) as client:
            while not stop.is_set():
                try:
                    response = await client.get("/healthz")
                    outcomes.append(str(response.status_code))
                except httpx.ConnectError:
                    outcomes.append("refused")  # the server no longer accepts: fine
                    await asyncio.sleep(0.05)
                except httpx.TransportError as error:
                    outcomes.append(type(error).__name__)

    await asyncio.gather(*(connection() for _ in range(32)))


def answered(service: Service, agent: str = "") -> int:
    """Requests the service logged (from clients with `agent` in their User-Agent)."""
    return sum(1 for line in service.lines if '"httpRequest"' in line and agent in line)


def test_sigterm_under_load_completes_every_accepted_request(service: Service) -> None:
    outcomes: list[str] = []

    async def scenario() -> int:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(service.url, stop, outcomes))
        await asyncio.sleep(3)
        service.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(service.process.wait, 10)
        stop.set()
        await load
        return code

    code = asyncio.run(scenario())
    time.sleep(0.5)

    assert code == 0
    # Only the load's requests: a readiness check's line may still be on its way.
    logged = answered(service, LOAD_AGENT)
    ok = outcomes.count("200")
    record_figure("SIGTERM under load: requests answered", str(ok))
    assert ok > 100
    # Every request the server accepted was answered, and every answer arrived.
    assert logged == ok, f"server logged {logged}, clients got {ok}: {set(outcomes)}"
    # The rest never reached the application: refused once the server stopped
    # listening, or sent on a kept-alive connection the server was closing,
    # which the client sees as a close (RemoteProtocolError) or, when its bytes
    # arrive after the close, as a reset (ReadError, WriteError).
    not_accepted = {"refused", "RemoteProtocolError", "ReadError", "WriteError"}
    unexpected = {o for o in outcomes if o != "200" and o not in not_accepted}
    assert not unexpected, unexpected
