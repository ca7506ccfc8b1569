"""A local Secret Manager for each test, and settings that point at it."""

from collections.abc import Iterator

import pytest
from local_google.secret_manager import LocalSecretManager

from {{ cookiecutter.package_name }}.settings import Environment, Settings

PROJECT = "test-project"


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
