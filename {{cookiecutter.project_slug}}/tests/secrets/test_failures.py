"""Every way reading secrets can fail stops startup, fast, with one clear message."""

import time
from typing import Annotated

import grpc
import pytest
from local_google.secret_manager import LocalSecretManager
from pydantic import Field, SecretStr

from {{ cookiecutter.package_name }}.secrets import (
    SecretManager,
    SecretsError,
    SecretSettings,
    load_secrets,
)
from {{ cookiecutter.package_name }}.settings import Settings

from ..serving import free_port
from .conftest import PROJECT, ApiKey, secret_path

VALUE = "must-never-be-printed"


def load_error(settings: Settings) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(SecretsError) as raised:
        load_secrets(ApiKey, settings.secret_source)
    return str(raised.value), time.monotonic() - started


def test_missing_secret_names_secret_and_project(dev_settings: Settings) -> None:
    message, _ = load_error(dev_settings)
    assert f"{secret_path('dev', 'api-key')}/versions/latest: not found" in message
    assert f"--project {PROJECT}" in message


class PinnedToMissingVersion(SecretSettings):
    api_key: Annotated[SecretStr, SecretManager("api-key", version="9")]


def test_missing_pinned_version(secret_manager: LocalSecretManager, dev_settings: Settings) -> None:
    secret_manager.put(secret_path("dev", "api-key"), VALUE)

    with pytest.raises(SecretsError, match="versions/9: not found") as raised:
        load_secrets(PinnedToMissingVersion, dev_settings.secret_source)
    assert VALUE not in str(raised.value)


def test_permission_denied_names_the_role(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), VALUE)
    secret_manager.faults.fail_always(grpc.StatusCode.PERMISSION_DENIED, "denied")

    message, _ = load_error(dev_settings)

    assert "permission denied" in message
    assert "roles/secretmanager.secretAccessor" in message
    assert f"project '{PROJECT}'" in message
    assert "'dev-api-key'" in message
    assert VALUE not in message


def test_unavailable_service_fails_within_the_deadline(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), VALUE)
    secret_manager.faults.fail_always(grpc.StatusCode.UNAVAILABLE, "down")

    message, elapsed = load_error(dev_settings)

    assert "did not answer within 2 s" in message
    assert len(secret_manager.log.requests("AccessSecretVersion")) > 1, "transient: retried"
    # Bounded by the deadline (2 s), not by the client library's 60 s default retry.
    assert elapsed < dev_settings.secrets_deadline_seconds + 3


def test_nothing_listening_fails_within_the_deadline(dev_settings: Settings) -> None:
    down = dev_settings.model_copy(
        update={"secret_manager_emulator_host": f"127.0.0.1:{free_port()}"}
    )
    message, elapsed = load_error(down)
    assert "did not answer within 2 s" in message
    assert elapsed < down.secrets_deadline_seconds + 3


def test_a_transient_error_is_retried(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), "eventually")
    secret_manager.faults.fail_next(grpc.StatusCode.UNAVAILABLE, times=2)

    assert (
        load_secrets(ApiKey, dev_settings.secret_source).api_key.get_secret_value() == "eventually"
    )


def test_a_slow_service_hits_the_deadline(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), VALUE)
    secret_manager.faults.delay(3.0)
    fast = dev_settings.model_copy(update={"secrets_deadline_seconds": 0.5})

    message, elapsed = load_error(fast)

    assert "did not answer within 0.5 s" in message
    assert elapsed < 3.0


def test_no_credentials_outside_local_is_explained(dev_settings: Settings) -> None:
    real_google = dev_settings.model_copy(update={"secret_manager_emulator_host": None})

    message, _ = load_error(real_google)

    assert "No Google credentials" in message
    assert "gcloud auth application-default login" in message


def test_a_damaged_payload_is_read_again(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), "intact")
    secret_manager.corrupt_next(secret_path("dev", "api-key"))

    assert load_secrets(ApiKey, dev_settings.secret_source).api_key.get_secret_value() == "intact"
    assert len(secret_manager.log.requests("AccessSecretVersion")) == 2


def test_a_payload_damaged_every_time_stops_startup(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), VALUE)
    secret_manager.corrupt_next(secret_path("dev", "api-key"), times=1_000_000)
    fast = dev_settings.model_copy(update={"secrets_deadline_seconds": 0.5})

    message, elapsed = load_error(fast)

    assert f"{secret_path('dev', 'api-key')}/versions/latest: every copy received" in message
    assert "CRC32C" in message
    assert VALUE not in message
    assert VALUE[1:] not in message
    assert elapsed < 3.0


def test_a_secret_declared_with_another_type_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match=r"PlainSecret.token .* must be a SecretStr"):

        class PlainSecret(SecretSettings):
            token: Annotated[str, SecretManager("token")]


class ConstrainedSecret(SecretSettings):
    api_key: Annotated[SecretStr, SecretManager("api-key"), Field(min_length=32)]


def test_a_secret_that_fails_validation_is_not_quoted(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), VALUE)

    with pytest.raises(SecretsError, match="API_KEY: Value should have at least 32") as raised:
        load_secrets(ConstrainedSecret, dev_settings.secret_source)
    assert VALUE not in str(raised.value)
    assert "input" not in str(raised.value)
