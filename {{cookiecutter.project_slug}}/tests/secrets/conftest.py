"""A local Secret Manager for each test, and settings that point at it.

Tests of how secrets are read declare their own models (`ApiKey` below, and
others in the modules): they keep passing whatever secrets the service's own
`Secrets` declares. Tests of the service's startup seed every one it declares
(`seed_declared`).
"""

from collections.abc import Iterator
from typing import Annotated

import pytest
from local_google.secret_manager import LocalSecretManager
from pydantic import Field, SecretStr

from {{ cookiecutter.package_name }}.secrets import SecretManager, SecretSettings, declared_secrets
from {{ cookiecutter.package_name }}.settings import Environment, Secrets, Settings

PROJECT = "test-project"


class ApiKey(SecretSettings):
    """One secret, as the service's `Secrets` declares its example."""

    api_key: Annotated[SecretStr, SecretManager("api-key")] = Field(
        default=SecretStr("local-only-api-key")
    )


@pytest.fixture
def secret_manager() -> Iterator[LocalSecretManager]:
    with LocalSecretManager() as server:
        yield server


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No secret from the developer's shell or `.env` leaks into a test."""
    monkeypatch.delenv("API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # google-auth must not probe a metadata server
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path_factory.mktemp("gcloud")))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture
def dev_settings(secret_manager: LocalSecretManager, clean_env: None) -> Settings:
    return Settings(
        environment=Environment.DEV,
        gcp_project=PROJECT,
        secret_manager_emulator_host=secret_manager.address,
        secrets_deadline_seconds=2.0,
        _env_file=None,
    )


def secret_path(environment: str, name: str) -> str:
    return f"projects/{PROJECT}/secrets/{environment}-{name}"


def seed_declared(secret_manager: LocalSecretManager, environment: str) -> dict[str, str]:
    """A value for every secret the service's `Secrets` declares (as many
    versions as a pinned one needs); field name to the value it should read."""
    values = {}
    for field, secret in declared_secrets(Secrets).items():
        value = f"{secret.name}-{environment}-value"
        versions = int(secret.version) if secret.version.isdigit() else 1
        for _ in range(versions):
            secret_manager.put(secret_path(environment, secret.name), value)
        values[field] = value
    return values
