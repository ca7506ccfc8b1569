"""Secrets from Google Secret Manager: declared fields only, read at once, fail loud.

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

How a settings class gets its values, highest priority first: environment
variables, then `.env` (both pydantic-settings' own sources), then Secret
Manager for the declared fields neither of them sets, then the defaults. The
Secret Manager values reach pydantic-settings as constructor arguments: only
fields that no higher source sets are read, so they never override one.

Compared with pydantic-settings' own `GoogleSecretManagerSettingsSource`, this
reads only the declared fields, all of them concurrently, retries transient
errors only within one short deadline, and turns NOT_FOUND, PERMISSION_DENIED
and an unreachable service into one error that names every failing secret,
its project and the IAM role needed, never a value (`secret_manager.py`).

`PendingSecrets` is a read started early: by the entry point, with the forked
prefetch (`secrets_prefetch.py`), finished by the app's lifespan.
"""

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .secret_manager import SecretsError as SecretsError
from .secret_manager import SecretSource, fetch_secrets
from .secrets_prefetch import SecretPrefetch

LOCAL = "local"  # the environment that never calls Secret Manager


@dataclass(frozen=True, slots=True)
class SecretManager:
    """Marks a settings field as a Secret Manager secret (`latest` unless pinned)."""

    name: str
    version: str = "latest"


def secret_version_path(project: str, environment: str, secret: SecretManager) -> str:
    """The one rule for where an environment's secret lives."""
    return f"projects/{project}/secrets/{environment}-{secret.name}/versions/{secret.version}"


class SecretSettings(BaseSettings):
    """Base class for settings that hold secrets.

    Sources, highest priority first: constructor arguments (where
    `PendingSecrets` passes what it read from Secret Manager), environment
    variables, `.env`, then the declared defaults.

    A field declared `SecretManager(...)` must be a `SecretStr` (or
    `SecretStr | None`): the class is refused otherwise, as it is defined,
    because any other type would print the value in reprs, logs and errors.
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
        return (init_settings, env_settings, dotenv_settings)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, field in cls.model_fields.items():
            if any(
                isinstance(m, SecretManager) for m in field.metadata
            ) and field.annotation not in (
                SecretStr,
                SecretStr | None,
            ):
                raise TypeError(
                    f"{cls.__name__}.{name} is declared a Secret Manager secret, so it must be "
                    f"a SecretStr, not {field.annotation}: any other type prints its value"
                )


S = TypeVar("S", bound=SecretSettings)


def declared_secrets(model: type[BaseSettings]) -> dict[str, SecretManager]:
    """Field name to Secret Manager name, for the fields marked `SecretManager(...)`."""
    return {
        name: marker
        for name, field in model.model_fields.items()
        for marker in field.metadata
        if isinstance(marker, SecretManager)
    }


def secrets_to_read(model: type[SecretSettings], source: SecretSource) -> dict[str, str]:
    """Field to secret version path, for the declared secrets of `model` that
    this environment reads from Secret Manager: none in `local`, and none that
    an environment variable or `.env` sets."""
    if source.environment == LOCAL:
        return {}
    provided = {*EnvSettingsSource(model)(), *DotEnvSettingsSource(model)()}
    return {
        field: secret_version_path(source.project, source.environment, secret)
        for field, secret in declared_secrets(model).items()
        if field not in provided
    }


class PendingSecrets(Generic[S]):
    """The secrets of `model` for `source`: asked for now, built by `result()`.

    With a started `SecretPrefetch`, the child reads them meanwhile (or learns
    there is nothing to read and exits); without one, `result()` reads them.
    """

    def __init__(
        self, model: type[S], source: SecretSource, prefetch: SecretPrefetch | None = None
    ) -> None:
        self.model = model
        self.source = source
        self._result: S | None = None
        self._paths = secrets_to_read(model, source)
        self._prefetch = prefetch
        if prefetch is not None:
            if self._paths:
                prefetch.send(source, self._paths)
            else:
                prefetch.close()
                self._prefetch = None

    def result(self) -> S:
        """The settings object with its secrets. Blocking (gRPC calls in a small
        thread pool): from async code, run it with `asyncio.to_thread`.
        Raises `SecretsError` if any secret cannot be read. Read once: later
        calls return the same object."""
        if self._result is None:
            self._result = self._read()
        return self._result

    def _read(self) -> S:
        values: dict[str, Any] = {}  # constructor arguments: pydantic-settings' init source
        if self._paths:
            prefetched = self._prefetch.values(self._paths) if self._prefetch else None
            values.update(
                prefetched if prefetched is not None else fetch_secrets(self.source, self._paths)
            )
        try:
            return self.model(**values)
        except ValidationError as error:
            # pydantic's own message would quote each rejected value: a secret.
            problems = [
                f"{'.'.join(map(str, problem['loc'])).upper()}: {problem['msg']}"
                for problem in error.errors(
                    include_input=False, include_url=False, include_context=False
                )
            ]
            raise SecretsError(
                f"Invalid secrets for environment '{self.source.environment}': "
                + "; ".join(problems)
            ) from None


def load_secrets(model: type[S], source: SecretSource) -> S:
    """Read `model`'s secrets for `source` now (see `PendingSecrets`)."""
    return PendingSecrets(model, source).result()
