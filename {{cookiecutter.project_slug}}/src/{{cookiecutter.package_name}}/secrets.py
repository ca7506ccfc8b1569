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

Cold start: `python -m` forks a child that imports the Secret Manager library
and reads the secrets while the app loads (see `secrets_fetch.py`);
`prefetch_secrets()` tells it which, `load_secrets()` takes its values.
"""

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .secrets_fetch import ACCESSOR_ROLE as ACCESSOR_ROLE
from .secrets_fetch import SecretPrefetch, SecretSource, fetch_secrets
from .secrets_fetch import SecretsError as SecretsError

if TYPE_CHECKING:
    from .settings import Environment, Settings

LOCAL = "local"  # the environment that never calls Secret Manager


@dataclass(frozen=True, slots=True)
class SecretManager:
    """Marks a settings field as a Secret Manager secret (`latest` unless pinned)."""

    name: str
    version: str = "latest"


def secret_version_path(project: str, environment: "Environment", secret: SecretManager) -> str:
    """The one rule for where an environment's secret lives."""
    return f"projects/{project}/secrets/{environment}-{secret.name}/versions/{secret.version}"


@dataclass(frozen=True, slots=True)
class _LoadConfig:
    settings: "Settings"
    prefetched: SecretPrefetch | None = None


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
        return (*sources, SecretManagerSettingsSource(settings_cls, config, provided))


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
    prefetched = _prefetches.pop(model, None)
    if prefetched is not None and prefetched.source != source_of(settings):
        prefetched.close()  # asked for other settings' secrets
        prefetched = None
    token = _loading.set(_LoadConfig(settings, prefetched))
    try:
        return model()
    finally:
        _loading.reset(token)
        if prefetched is not None:
            prefetched.close()


class SecretManagerSettingsSource(PydanticBaseSettingsSource):
    """Reads the declared secrets that nothing else provides, concurrently."""

    def __init__(
        self, settings_cls: type[BaseSettings], config: _LoadConfig, provided: set[str]
    ) -> None:
        super().__init__(settings_cls)
        self._config = config
        self._paths = secret_paths(settings_cls, config.settings, provided)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ fetches every wanted field at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self._paths:
            return {}
        prefetched = self._config.prefetched
        values = prefetched.values(self._paths) if prefetched is not None else None
        if values is None:
            values = fetch_secrets(source_of(self._config.settings), self._paths)
        return dict(values)


def source_of(settings: "Settings") -> SecretSource:
    return SecretSource(
        project=settings.gcp_project,
        environment=str(settings.environment),
        emulator_host=settings.secret_manager_emulator_host,
        deadline_seconds=settings.secrets_deadline_seconds,
    )


def secret_paths(
    model: type[BaseSettings], settings: "Settings", provided: set[str]
) -> dict[str, str]:
    """Field to secret version path, for the declared secrets not `provided` otherwise."""
    return {
        field: secret_version_path(settings.gcp_project, settings.environment, secret)
        for field, secret in declared_secrets(model).items()
        if field not in provided
    }


_prefetches: dict[type[BaseSettings], SecretPrefetch] = {}


def prefetch_secrets(
    prefetch: SecretPrefetch | None, model: type[SecretSettings], settings: "Settings"
) -> None:
    """Tell a started prefetch (`SecretPrefetch.start()`) which of `model`'s
    secrets to read, for `load_secrets(model, settings)` to take later; or let
    it go if this environment reads none from Secret Manager."""
    if prefetch is None:
        return
    paths: dict[str, str] = {}
    if settings.environment != LOCAL:
        # The same sources, so the same fields, as `settings_customise_sources`.
        provided = {*EnvSettingsSource(model)(), *DotEnvSettingsSource(model)()}
        paths = secret_paths(model, settings, provided)
    if not paths:
        prefetch.close()
        return
    prefetch.send(source_of(settings), paths)
    _prefetches[model] = prefetch
