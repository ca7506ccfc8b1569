"""Run the service as a real server process, the way Cloud Run runs it."""

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
from local_google.cloud_run import LocalCloudRun, stop_instance
from local_google.issuer import LocalIssuer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SERVICE_COMMAND = (sys.executable, "-m", "{{ cookiecutter.package_name }}")


def start_test(front_end: LocalCloudRun, service: "ServerProcess") -> None:
    """A deployment that tests share, as each test finds it: the front end's
    log empty, the service's output only what it logs from now on."""
    exit_status = service.process.poll()
    assert exit_status is None, f"the service exited ({exit_status}) during an earlier test"
    front_end.log.forwarded.clear()
    front_end.log.refused.clear()
    service.forget_output()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`python -m {{ cookiecutter.package_name }}` (or another command) on a free port.

    Its output is collected line by line in `lines`, so tests can read the logs
    it wrote.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] = SERVICE_COMMAND,
        startup_timeout: float = 20.0,
        port: int | None = None,
        unset: Sequence[str] = (),
        cwd: Path = PROJECT_ROOT,
    ) -> None:
        """`env` adds to (`unset` removes from) the variables the process gets."""
        self.port = port or free_port()
        self.cwd = cwd
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = list(command)
        self.env = {
            **os.environ,
            "ENVIRONMENT": "local",
            "HOST": "127.0.0.1",
            "SERVICE_URL": self.url,
            **(env or {}),
            "PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
        }
        for name in unset:
            self.env.pop(name, None)
        self.startup_timeout = startup_timeout
        self.lines: list[str] = []
        self._line_read = threading.Condition()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def process(self) -> subprocess.Popen[str]:
        assert self._process is not None, "server not started"
        return self._process

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._wait_until_healthy()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._join_reader()

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._line_read:
                self.lines.append(line.rstrip("\n"))
                self._line_read.notify_all()

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"server exited with {self.process.returncode} during startup")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.02)
        self._fail("server did not answer /healthz in time")

    def _fail(self, reason: str) -> None:
        self.process.kill()
        self.process.wait()
        self._join_reader()
        output = "\n".join(self.lines[-50:])
        raise AssertionError(f"{reason}; its output:\n{output}")

    def read_all_output(self, timeout: float = 10.0) -> int:
        """Wait until `lines` holds everything the server logged so far: a line
        it wrote before now may still be on its way through the pipe.

        The server logs each request after whatever it logged before it, so
        once the access line of a request of our own is read, so is all that
        came before. That line is in `lines` too; its index is returned."""
        marker = f"/_read-output/{uuid.uuid4().hex}"
        # A 404, logged. (http.client: a new httpx client costs 40 ms, for its TLS context.)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", marker)
            connection.getresponse().read()
        finally:
            connection.close()
        deadline = time.monotonic() + timeout
        checked = 0
        with self._line_read:
            while True:
                for index in range(checked, len(self.lines)):
                    if marker in self.lines[index]:
                        return index
                checked = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"the server never logged the request {marker}")
                self._line_read.wait(remaining)

    def forget_output(self) -> None:
        """Drop every line the server logged so far: `lines` then holds only
        what it logs from now on (one server for many tests, each reading the
        lines of its own)."""
        index = self.read_all_output()
        with self._line_read:
            del self.lines[: index + 1]

    def terminate(self) -> int:
        """Stop it as Cloud Run does (SIGTERM, SIGKILL 10 s later); its exit status.

        Fails the test if it needed the SIGKILL."""
        exited = stop_instance(self.process)
        self._join_reader()
        assert exited, "SIGTERM did not stop the server within 10 s: Cloud Run killed it"
        return self.process.returncode


@dataclass
class FrontedService:
    """The service behind a local Cloud Run front end, and the issuer of the
    tokens it takes."""

    issuer: LocalIssuer
    front_end: LocalCloudRun
    process: ServerProcess


@contextmanager
def behind_front_end(
    *, public: bool, invoker: str, command: Sequence[str] = SERVICE_COMMAND, **settings: str
) -> Iterator[FrontedService]:
    """The service as the deployment runs it, with `settings` on top: private
    (only `invoker` may call it, BEHIND_CLOUD_RUN_IAM set) or public, with no
    warm-up (nothing these tests enqueue)."""
    port = free_port()
    with LocalIssuer() as issuer:
        front_end = LocalCloudRun(
            f"http://127.0.0.1:{port}",
            issuer=issuer,
            invokers=() if public else (invoker,),
            public=public,
        )
        env = {
            "GCP_PROJECT": "test-project",
            "LOG_FORMAT": "json",
            "SERVICE_URL": front_end.url,
            "TASKS_OIDC_CERTS_URL": issuer.certs_url,
            "TASKS_WARM_UP": "false",
            **({} if public else {"BEHIND_CLOUD_RUN_IAM": "true"}),
            **settings,
        }
        with front_end, ServerProcess(env=env, command=command, port=port) as process:
            yield FrontedService(issuer, front_end, process)
