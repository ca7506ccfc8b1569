"""Reading secret versions from Secret Manager, all at once, failing loudly.

`fetch_secrets()` reads given secret versions with the official client,
concurrently, within one deadline, checks each payload against the CRC32C
checksum Secret Manager stores with it, and turns every failure into one
`SecretsError` that names each secret, its project and the fix, never a value.

Only the standard library is imported at module level (the Google libraries
load inside `fetch_secrets()`), so the prefetch (`secrets_prefetch.py`) can
import this module before it forks.
"""

import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.cloud.secretmanager_v1 import SecretManagerServiceClient

ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"
_MAX_PARALLEL_FETCHES = 16
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
