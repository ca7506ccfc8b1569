"""Secrets from Google Secret Manager: declared fields only, fetched at once, fail loud.

Declare a secret on `Secrets` (in `settings.py`) with its Secret Manager name:

    api_key: Annotated[SecretStr, SecretManager("api-key")]

Where each environment's secrets live is one rule, `secret_version_path()`:

    projects/<GCP_PROJECT>/secrets/<ENVIRONMENT>-<name>/versions/<version>

The environment's own project (Google recommends one project per environment)
and the `<env>-` prefix keep `dev`, `staging` and `prod` apart even when they
share a project. `local` never calls Secret Manager: values come from the
environment or `.env`, and declared defaults apply. Everywhere, an environment
variable wins over Secret Manager, so Cloud Run's `--set-secrets` injection
keeps working (https://cloud.google.com/run/docs/configuring/services/secrets).

Compared with pydantic-settings' own `GoogleSecretManagerSettingsSource`, this
source fetches only the declared fields, all of them concurrently, retries
transient errors only within one short deadline, and turns NOT_FOUND,
PERMISSION_DENIED and an unreachable service into one error that names every
failing secret, its project and the IAM role needed, never a value.

Why the synchronous client in a small thread pool rather than the async client
with `asyncio.gather`: settings sources are synchronous, and both take one round
trip for ten secrets (measured: `make bench-secrets` in the template), so the
simpler one wins; the lifespan runs it in a thread to keep the loop free.
"""

import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

if TYPE_CHECKING:
    from google.cloud.secretmanager_v1 import SecretManagerServiceClient

    from .settings import Environment, Settings

ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"
LOCAL = "local"  # the environment that never calls Secret Manager
_MAX_PARALLEL_FETCHES = 16
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SecretManager:
    """Marks a settings field as a Secret Manager secret (`latest` unless pinned)."""

    name: str
    version: str = "latest"


def secret_version_path(project: str, environment: "Environment", secret: SecretManager) -> str:
    """The one rule for where an environment's secret lives."""
    return f"projects/{project}/secrets/{environment}-{secret.name}/versions/{secret.version}"


class SecretsError(RuntimeError):
    """Startup cannot go on: some declared secrets could not be read."""


@dataclass(frozen=True, slots=True)
class _LoadConfig:
    settings: "Settings"


_loading: ContextVar[_LoadConfig | None] = ContextVar("_loading", default=None)


class SecretSettings(BaseSettings):
    """Base class for settings that hold secrets.

    Sources, highest priority first: constructor arguments, environment
    variables, `.env`, then Secret Manager (only inside `load_secrets()`).
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = (init_settings, env_settings, dotenv_settings)
        config = _loading.get()
        if config is None or config.settings.environment == LOCAL:
            return sources
        provided = {*init_settings(), *env_settings(), *dotenv_settings()}
        return (*sources, SecretManagerSettingsSource(settings_cls, config.settings, provided))


S = TypeVar("S", bound=SecretSettings)


def declared_secrets(model: type[BaseSettings]) -> dict[str, SecretManager]:
    """Field name to Secret Manager name, for the fields marked `SecretManager(...)`."""
    return {
        name: marker
        for name, field in model.model_fields.items()
        for marker in field.metadata
        if isinstance(marker, SecretManager)
    }


def load_secrets(model: type[S], settings: "Settings") -> S:
    """Build `model`, reading its declared secrets from Secret Manager unless the
    environment is `local` or an environment variable already sets them.

    Blocking (gRPC calls in a small thread pool): from async code, run it with
    `asyncio.to_thread`. Raises `SecretsError` if any secret cannot be read.
    """
    token = _loading.set(_LoadConfig(settings))
    try:
        return model()
    finally:
        _loading.reset(token)


class SecretManagerSettingsSource(PydanticBaseSettingsSource):
    """Reads the declared secrets that nothing else provides, concurrently."""

    def __init__(
        self, settings_cls: type[BaseSettings], settings: "Settings", provided: set[str]
    ) -> None:
        super().__init__(settings_cls)
        self._settings = settings
        self._wanted = {
            field: secret
            for field, secret in declared_secrets(settings_cls).items()
            if field not in provided
        }

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ fetches every wanted field at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self._wanted:
            return {}
        return dict(fetch_secrets(self._settings, self._wanted))


def _client(settings: "Settings") -> "SecretManagerServiceClient":
    """The official client; an insecure channel to the emulator host if one is set.

    The client's own loggers can record whole responses, secret payloads
    included, at DEBUG: they stay at INFO whatever LOG_LEVEL says.
    """
    logging.getLogger("google.cloud.secretmanager_v1").setLevel(logging.INFO)
    from google.cloud.secretmanager_v1 import SecretManagerServiceClient

    if not settings.secret_manager_emulator_host:
        return SecretManagerServiceClient()
    import grpc
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
        SecretManagerServiceGrpcTransport,
    )

    channel = grpc.insecure_channel(settings.secret_manager_emulator_host)
    return SecretManagerServiceClient(transport=SecretManagerServiceGrpcTransport(channel=channel))


def fetch_secrets(settings: "Settings", wanted: Mapping[str, SecretManager]) -> dict[str, str]:
    """Fetch every wanted secret concurrently within `secrets_deadline_seconds`.

    The client lives only for this one round trip: secrets are read once, at
    startup, so there is nothing to keep a connection open for.
    """
    from google.api_core import exceptions, retry
    from google.auth.exceptions import GoogleAuthError

    deadline = time.monotonic() + settings.secrets_deadline_seconds
    transient = retry.if_exception_type(
        exceptions.ServiceUnavailable, exceptions.DeadlineExceeded, exceptions.InternalServerError
    )
    try:
        client = _client(settings)
    except GoogleAuthError as error:
        raise SecretsError(
            f"No Google credentials to read the secrets of '{settings.environment}': "
            "on Cloud Run the service account provides them; elsewhere run "
            "`gcloud auth application-default login`, or use ENVIRONMENT=local. "
            f"({type(error).__name__})"
        ) from None
    paths = {
        field: secret_version_path(settings.gcp_project, settings.environment, secret)
        for field, secret in wanted.items()
    }

    def fetch(path: str) -> str:
        remaining = max(deadline - time.monotonic(), 0.01)
        policy = retry.Retry(
            predicate=transient, initial=0.05, maximum=1.0, multiplier=2, timeout=remaining
        )
        response = client.access_secret_version(name=path, retry=policy, timeout=remaining)
        return response.payload.data.decode("utf-8")

    values: dict[str, str] = {}
    failures: list[str] = []
    # Leaving `client` closes its channel.
    with client, ThreadPoolExecutor(min(len(paths), _MAX_PARALLEL_FETCHES)) as pool:
        futures = {field: pool.submit(fetch, path) for field, path in paths.items()}
        for field, future in futures.items():
            try:
                values[field] = future.result()
            except Exception as error:  # each failure is reported below, by secret
                failures.append(_explain(paths[field], settings, error))
    elapsed_ms = (time.monotonic() - deadline + settings.secrets_deadline_seconds) * 1000
    if failures:
        raise SecretsError(
            f"Could not read {len(failures)} of {len(paths)} secrets for environment "
            f"'{settings.environment}':\n- " + "\n- ".join(failures)
        )
    logger.info("Read %d secrets from Secret Manager in %.0f ms", len(values), elapsed_ms)
    return values


def _explain(path: str, settings: "Settings", error: Exception) -> str:
    """One line saying what went wrong with one secret and how to fix it."""
    from google.api_core import exceptions

    secret = path.split("/secrets/", 1)[1].split("/versions/", 1)[0]
    project = settings.gcp_project
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
    if isinstance(
        error, exceptions.RetryError | exceptions.ServiceUnavailable | exceptions.DeadlineExceeded
    ):
        return (
            f"{path}: Secret Manager did not answer within "
            f"{settings.secrets_deadline_seconds:g} s ({type(error).__name__})."
        )
    if isinstance(error, UnicodeDecodeError):
        return f"{path}: the secret's value is not UTF-8 text."
    message = error.message if isinstance(error, exceptions.GoogleAPICallError) else ""
    return f"{path}: {type(error).__name__} {message}".rstrip()
