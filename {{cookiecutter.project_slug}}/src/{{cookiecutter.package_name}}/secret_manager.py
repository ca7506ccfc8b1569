"""Reading secret versions from Secret Manager, and doing it while the app loads.

`fetch_secrets()` reads given secret versions with the official client, all at
once, within one deadline, and turns every failure into one `SecretsError`
that names each secret, its project and the fix, never a value.

`SecretPrefetch` overlaps that with startup. Importing the Secret Manager
library (gRPC, protobuf, google-auth) costs about as much CPU as importing
FastAPI, so `python -m` (the image's command) forks a child first thing: the
child imports the library on another CPU (Cloud Run's startup CPU boost) while
the parent imports pydantic and the app; the parent sends it the secrets to
read as soon as its settings are parsed, and takes the values back over a pipe
when the lifespan asks. The server process never loads the library for
secrets. A child that reports nothing leaves the parent to read them itself.

This module imports nothing heavy at module level (no pydantic, no Google
library), so the entry point can fork before anything else is loaded.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.cloud.secretmanager_v1 import SecretManagerServiceClient

ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"
DEPLOYED = frozenset({"dev", "staging", "prod"})  # the environments that read Secret Manager
_MAX_PARALLEL_FETCHES = 16
_PREFETCH_GRACE_SECONDS = 10.0  # on top of the deadline, for the child's imports
logger = logging.getLogger(__name__)


class SecretsError(RuntimeError):
    """Startup cannot go on: some declared secrets could not be read."""


class CorruptPayload(Exception):
    """A payload did not match the CRC32C checksum Secret Manager stored with it."""


@dataclass(frozen=True, slots=True)
class SecretSource:
    """Where and how to read: what `fetch_secrets()` needs from the settings."""

    project: str
    environment: str
    emulator_host: str | None
    deadline_seconds: float


def fetch_secrets(source: SecretSource, paths: Mapping[str, str]) -> dict[str, str]:
    """Read every secret version in `paths` (field: version path) concurrently,
    within `source.deadline_seconds`.

    The client lives only for this one round trip: secrets are read once, at
    startup, so there is nothing to keep a connection open for.
    """
    import google_crc32c
    from google.api_core import exceptions, retry
    from google.auth.exceptions import GoogleAuthError

    deadline = time.monotonic() + source.deadline_seconds
    # A payload damaged on the way is read again, like a dropped connection.
    transient = retry.if_exception_type(
        exceptions.ServiceUnavailable,
        exceptions.DeadlineExceeded,
        exceptions.InternalServerError,
        CorruptPayload,
    )
    try:
        client = _client(source)
    except GoogleAuthError as error:
        raise SecretsError(
            f"No Google credentials to read the secrets of '{source.environment}': "
            "on Cloud Run the service account provides them; elsewhere run "
            "`gcloud auth application-default login`, or use ENVIRONMENT=local. "
            f"({type(error).__name__})"
        ) from None

    def read(path: str) -> bytes:
        """One attempt, checked against the checksum stored with the version."""
        remaining = max(deadline - time.monotonic(), 0.01)
        payload = client.access_secret_version(name=path, retry=None, timeout=remaining).payload
        if "data_crc32c" in payload and google_crc32c.value(payload.data) != payload.data_crc32c:
            raise CorruptPayload(path)
        return payload.data

    def fetch(path: str) -> str:
        policy = retry.Retry(
            predicate=transient,
            initial=0.05,
            maximum=1.0,
            multiplier=2,
            timeout=max(deadline - time.monotonic(), 0.01),
        )
        return policy(read)(path).decode("utf-8")

    values: dict[str, str] = {}
    failures: list[str] = []
    # Leaving `client` closes its channel.
    with client, ThreadPoolExecutor(min(len(paths), _MAX_PARALLEL_FETCHES)) as pool:
        futures = {field: pool.submit(fetch, path) for field, path in paths.items()}
        for field, future in futures.items():
            try:
                values[field] = future.result()
            except Exception as error:  # each failure is reported below, by secret
                failures.append(_explain(paths[field], source, error))
    elapsed_ms = (time.monotonic() - deadline + source.deadline_seconds) * 1000
    if failures:
        raise SecretsError(
            f"Could not read {len(failures)} of {len(paths)} secrets for environment "
            f"'{source.environment}':\n- " + "\n- ".join(failures)
        )
    logger.info("Read %d secrets from Secret Manager in %.0f ms", len(values), elapsed_ms)
    return values


def _client(source: SecretSource) -> "SecretManagerServiceClient":
    """The official client; an insecure channel to the emulator host if one is set.

    The client's own loggers can record whole responses, secret payloads
    included, at DEBUG: they stay at INFO whatever LOG_LEVEL says.
    """
    logging.getLogger("google.cloud.secretmanager_v1").setLevel(logging.INFO)
    from google.cloud.secretmanager_v1 import SecretManagerServiceClient

    if not source.emulator_host:
        return SecretManagerServiceClient()
    import grpc
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
        SecretManagerServiceGrpcTransport,
    )

    channel = grpc.insecure_channel(source.emulator_host)
    return SecretManagerServiceClient(transport=SecretManagerServiceGrpcTransport(channel=channel))


def _explain(path: str, source: SecretSource, error: Exception) -> str:
    """One line saying what went wrong with one secret and how to fix it."""
    from google.api_core import exceptions

    secret = path.split("/secrets/", 1)[1].split("/versions/", 1)[0]
    project = source.project
    if isinstance(error, exceptions.NotFound):
        return (
            f"{path}: not found. Create it with `gcloud secrets create {secret} "
            f"--project {project}` and add a version, or set the variable in the environment."
        )
    if isinstance(error, exceptions.PermissionDenied):
        return (
            f"{path}: permission denied. Grant {ACCESSOR_ROLE} on secret '{secret}' in "
            f"project '{project}' to the service's runtime service account."
        )
    # The retry policy ends every run of damaged copies with a RetryError.
    if isinstance(error, exceptions.RetryError) and isinstance(error.cause, CorruptPayload):
        return (
            f"{path}: every copy received within {source.deadline_seconds:g} s failed "
            "its CRC32C check (the payload was damaged on the way)."
        )
    if isinstance(
        error, exceptions.RetryError | exceptions.ServiceUnavailable | exceptions.DeadlineExceeded
    ):
        return (
            f"{path}: Secret Manager did not answer within "
            f"{source.deadline_seconds:g} s ({type(error).__name__})."
        )
    if isinstance(error, UnicodeDecodeError):
        return f"{path}: the secret's value is not UTF-8 text."
    message = error.message if isinstance(error, exceptions.GoogleAPICallError) else ""
    return f"{path}: {type(error).__name__} {message}".rstrip()


class SecretPrefetch:
    """A forked child that reads secrets for this process, over two pipes.

    Parent to child: `{"source": SecretSource, "paths": {field: path}}`, or
    nothing (the child exits). Child to parent: `{"values": {...}, "ms": ...}`
    or `{"error": message}`; anything else, or silence past the deadline,
    means "read them yourself".
    """

    def __init__(self, pid: int, requests: int, reports: int) -> None:
        self._pid = pid
        self._requests: int | None = requests
        self._reports: int | None = reports
        self._deadline = 0.0
        self.source: SecretSource | None = None

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
        self.source = source
        self._deadline = time.monotonic() + source.deadline_seconds + _PREFETCH_GRACE_SECONDS
        request = json.dumps({"source": asdict(source), "paths": dict(paths)}).encode()
        requests, self._requests = self._requests, None
        try:
            with os.fdopen(requests, "wb") as pipe:
                pipe.write(request)
        except OSError:  # the child is gone: values() will say so
            pass

    def values(self, paths: Mapping[str, str]) -> dict[str, str] | None:
        """The child's values for `paths`; None if the caller must read them."""
        report = self._receive() if self.source is not None else {}
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
        self.close()
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
