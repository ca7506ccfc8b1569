"""Secrets load from Secret Manager per environment, concurrently, env first."""

import logging
from pathlib import Path
from typing import Annotated

import pytest
from local_google.secret_manager import LocalSecretManager
from pydantic import SecretStr

from {{ cookiecutter.package_name }}.secrets import (
    SecretManager,
    SecretSettings,
    load_secrets,
    secret_version_path,
)
from {{ cookiecutter.package_name }}.settings import Environment, Settings

from .conftest import ApiKey, secret_path

ACCESS = "AccessSecretVersion"


def test_the_rule_for_where_secrets_live() -> None:
    assert (
        secret_version_path("acme-prod", Environment.PROD, SecretManager("api-key"))
        == "projects/acme-prod/secrets/prod-api-key/versions/latest"
    )
    assert (
        secret_version_path("acme", Environment.DEV, SecretManager("db", version="7"))
        == "projects/acme/secrets/dev-db/versions/7"
    )


def test_dev_reads_its_own_secret(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), "dev-value")
    secret_manager.put(secret_path("staging", "api-key"), "staging-value")

    secrets = load_secrets(ApiKey, dev_settings.secret_source)

    assert secrets.api_key.get_secret_value() == "dev-value"
    (request,) = secret_manager.log.requests(ACCESS)
    assert request.name == f"{secret_path('dev', 'api-key')}/versions/latest"


def test_staging_reads_staging_secret(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("staging", "api-key"), "staging-value")
    staging = dev_settings.model_copy(update={"environment": Environment.STAGING})

    assert load_secrets(ApiKey, staging.secret_source).api_key.get_secret_value() == "staging-value"


def test_latest_is_the_newest_version(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), "old")
    secret_manager.put(secret_path("dev", "api-key"), "new")

    assert load_secrets(ApiKey, dev_settings.secret_source).api_key.get_secret_value() == "new"


class PinnedSecrets(SecretSettings):
    api_key: Annotated[SecretStr, SecretManager("api-key", version="1")]


def test_a_pinned_version_is_read_even_when_newer_exist(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), "first")
    secret_manager.put(secret_path("dev", "api-key"), "second")

    assert (
        load_secrets(PinnedSecrets, dev_settings.secret_source).api_key.get_secret_value()
        == "first"
    )


def test_environment_variable_wins_and_costs_no_call(
    secret_manager: LocalSecretManager, dev_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), "from-secret-manager")
    monkeypatch.setenv("API_KEY", "from-environment")

    secrets = load_secrets(ApiKey, dev_settings.secret_source)

    assert secrets.api_key.get_secret_value() == "from-environment"
    assert secret_manager.log.requests(ACCESS) == []


def test_local_never_calls_secret_manager(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    local = dev_settings.model_copy(update={"environment": Environment.LOCAL})

    secrets = load_secrets(ApiKey, local.secret_source)

    assert secrets.api_key.get_secret_value() == "local-only-api-key"
    assert secret_manager.log.calls == []


def test_local_reads_dotenv(
    dev_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("API_KEY=from-dotenv\n")
    local = dev_settings.model_copy(update={"environment": Environment.LOCAL})

    assert load_secrets(ApiKey, local.secret_source).api_key.get_secret_value() == "from-dotenv"


class ManySecrets(SecretSettings):
    s0: Annotated[SecretStr, SecretManager("s0")]
    s1: Annotated[SecretStr, SecretManager("s1")]
    s2: Annotated[SecretStr, SecretManager("s2")]
    s3: Annotated[SecretStr, SecretManager("s3")]
    s4: Annotated[SecretStr, SecretManager("s4")]
    s5: Annotated[SecretStr, SecretManager("s5")]
    s6: Annotated[SecretStr, SecretManager("s6")]
    s7: Annotated[SecretStr, SecretManager("s7")]
    s8: Annotated[SecretStr, SecretManager("s8")]
    s9: Annotated[SecretStr, SecretManager("s9")]
    plain: str = "not a secret"


def test_ten_secrets_are_fetched_concurrently(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    for i in range(10):
        secret_manager.put(secret_path("dev", f"s{i}"), f"value-{i}")
    # Long enough that every call overlaps even on a busy machine; one at a time never would.
    secret_manager.faults.delay(0.4)

    secrets = load_secrets(ManySecrets, dev_settings.secret_source)

    assert [getattr(secrets, f"s{i}").get_secret_value() for i in range(10)] == [
        f"value-{i}" for i in range(10)
    ]
    # Every call was in flight at once: one round trip, not ten.
    assert secret_manager.log.max_in_flight == 10
    # Only declared fields cost a call.
    assert len(secret_manager.log.requests(ACCESS)) == 10


def test_values_never_reach_logs_or_reprs(
    secret_manager: LocalSecretManager,
    dev_settings: Settings,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), "hunter2-very-secret")
    caplog.set_level(logging.DEBUG)

    secrets = load_secrets(ApiKey, dev_settings.secret_source)
    logging.getLogger("test").info("loaded %s / %r", secrets, secrets)

    assert "hunter2-very-secret" not in repr(secrets)
    assert "hunter2-very-secret" not in str(secrets)
    assert "hunter2-very-secret" not in secrets.model_dump_json()
    assert "hunter2-very-secret" not in caplog.text
    captured = capsys.readouterr()
    assert "hunter2-very-secret" not in captured.out + captured.err
