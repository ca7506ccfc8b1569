"""Reading the secrets in a forked child while the app loads.

Importing the Secret Manager library (gRPC, protobuf, google-auth) costs about
as much CPU as importing FastAPI. So `python -m {{ cookiecutter.package_name }}` (the
image's command) forks a child first thing: the child imports the library on
another CPU (Cloud Run's startup CPU boost) while the parent imports pydantic
and the app; the parent sends it the secrets to read as soon as its settings
are parsed (`send()`), and takes the values back over a pipe when the lifespan
asks (`values()`). The server process never loads the library for secrets. A
child that reports nothing leaves the parent to read them itself.

The protocol, over two pipes. Parent to child: `{"source": SecretSource,
"paths": {field: path}}`, or nothing (the child exits). Child to parent:
`{"values": {...}, "ms": ...}` or `{"error": message}`; anything else, or
silence past the deadline, means "read them yourself".

This module and what it imports load nothing but the standard library, so
the entry point can fork before anything else is loaded.
"""

import json
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict

from .secret_manager import SecretsError, SecretSource, fetch_secrets

# The environments that read Secret Manager (settings.Environment, which this
# module cannot import: pydantic loads after the fork).
DEPLOYED = frozenset({"dev", "staging", "prod"})
_GRACE_SECONDS = 10.0  # on top of the deadline, for the child's imports
logger = logging.getLogger(__name__)


class SecretPrefetch:
    """A forked child that reads secrets for this process."""

    def __init__(self, pid: int, requests: int, reports: int) -> None:
        self._pid = pid
        self._requests: int | None = requests
        self._reports: int | None = reports
        self._deadline = 0.0
        self._asked: Mapping[str, str] | None = None

    @classmethod
    def start(cls) -> "SecretPrefetch | None":
        """Fork the child now, if this process will read Secret Manager.

        Only where the `ENVIRONMENT` variable names a deployed environment (as
        on Cloud Run), `fork` exists, and no other thread runs: a fork copies
        only the calling thread.
        """
        if (
            os.environ.get("ENVIRONMENT", "").lower() not in DEPLOYED
            or not hasattr(os, "fork")
            or threading.active_count() > 1
        ):
            return None
        requests_out, requests_in = os.pipe()
        reports_out, reports_in = os.pipe()
        sys.stdout.flush()  # or the child would print again what the parent buffered
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: it never returns into the parent's code
            os.close(requests_in)
            os.close(reports_out)
            status = 1
            try:
                _child(requests_out, reports_in)
                status = 0
            finally:
                os._exit(status)
        os.close(requests_out)
        os.close(reports_in)
        return cls(pid, requests_in, reports_out)

    def send(self, source: SecretSource, paths: Mapping[str, str]) -> None:
        """Ask the child to read `paths` (field: version path)."""
        if self._requests is None:
            raise RuntimeError("a prefetch is asked once")
        self._asked = dict(paths)
        self._deadline = time.monotonic() + source.deadline_seconds + _GRACE_SECONDS
        request = json.dumps({"source": asdict(source), "paths": dict(paths)}).encode()
        requests, self._requests = self._requests, None
        try:
            with os.fdopen(requests, "wb") as pipe:
                pipe.write(request)
        except OSError:  # the child is gone: values() will say so
            pass

    def values(self, paths: Mapping[str, str]) -> dict[str, str] | None:
        """The child's values for `paths`; None if the caller must read them.

        Raises `SecretsError` if the child could not read them either.
        """
        report = self._receive() if self._asked == paths else {}
        self.close()
        if "error" in report:
            raise SecretsError(str(report["error"]))
        values = report.get("values")
        if not isinstance(values, dict) or not paths.keys() <= values.keys():
            logger.warning("Reading secrets in the server process: the prefetch gave none")
            return None
        logger.info(
            "Read %d secrets from Secret Manager in %.0f ms, while the app loaded",
            len(paths),
            report.get("ms", 0),
        )
        return {field: str(values[field]) for field in paths}

    def _receive(self) -> dict[str, object]:
        chunks: list[bytes] = []
        while self._reports is not None:
            timeout = max(self._deadline - time.monotonic(), 0)
            ready, _, _ = select.select([self._reports], [], [], timeout)
            chunk = os.read(self._reports, 65536) if ready else b""
            if not chunk:
                break
            chunks.append(chunk)
        try:
            report = json.loads(b"".join(chunks))
        except ValueError:
            return {}
        return report if isinstance(report, dict) else {}

    def close(self) -> None:
        """Close the pipes and reap the child (killed if it is still running)."""
        for end in (self._requests, self._reports):
            if end is not None:
                os.close(end)
        self._requests = self._reports = None
        try:
            if os.waitpid(self._pid, os.WNOHANG) == (0, 0):
                os.kill(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
        except ChildProcessError:  # already reaped
            pass


def _child(requests: int, reports: int) -> None:
    """In the prefetch child: load the library, then read what the parent asks."""
    import google.cloud.secretmanager_v1  # noqa: F401  (the slow part, done first)

    with os.fdopen(requests, "rb") as pipe:
        request = pipe.read()
    if not request:
        return
    asked = json.loads(request)
    started = time.monotonic()
    try:
        values = fetch_secrets(SecretSource(**asked["source"]), asked["paths"])
    except SecretsError as error:
        report: dict[str, object] = {"error": str(error)}
    else:
        report = {"values": values, "ms": (time.monotonic() - started) * 1000}
    with os.fdopen(reports, "wb") as pipe:
        pipe.write(json.dumps(report).encode())
