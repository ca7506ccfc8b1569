"""The service reads its secrets during startup, and refuses to start without them."""

import json

import httpx
import pytest
from fastapi import FastAPI
from local_google.secret_manager import LocalSecretManager

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.secrets import SecretsError
from {{ cookiecutter.package_name }}.settings import Settings

from ..serving import ServerProcess
from .conftest import PROJECT, seed_declared

pytestmark = pytest.mark.anyio


async def test_lifespan_loads_secrets(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    seeded = seed_declared(secret_manager, "dev")
    app = create_app(dev_settings)
    async with app.router.lifespan_context(app):
        for field, value in seeded.items():
            assert getattr(app.state.secrets, field).get_secret_value() == value


async def test_lifespan_fails_without_its_secrets(dev_settings: Settings) -> None:
    app: FastAPI = create_app(dev_settings)
    with pytest.raises(SecretsError, match=r"dev-[a-z0-9-]+/versions/\w+: not found"):
        async with app.router.lifespan_context(app):
            pass


async def test_openapi_schema_holds_no_secret(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    seeded = seed_declared(secret_manager, "dev")
    app = create_app(dev_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        schema = (await client.get("/openapi.json")).text
    assert not [value for value in seeded.values() if value in schema]


def test_server_starts_with_secrets_from_secret_manager(
    secret_manager: LocalSecretManager,
) -> None:
    seeded = seed_declared(secret_manager, "dev")
    env = {
        "ENVIRONMENT": "dev",
        "GCP_PROJECT": PROJECT,
        "SECRET_MANAGER_EMULATOR_HOST": secret_manager.address,
    }
    with ServerProcess(env=env) as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        assert server.terminate() == 0
    # Read by the entry point's prefetch, while the app was importing.
    assert f"Read {len(seeded)} secrets from Secret Manager in" in "\n".join(server.lines)
    assert "while the app loaded" in "\n".join(server.lines)
    assert not [value for value in seeded.values() if value in "\n".join(server.lines)]


def test_server_refuses_to_start_without_its_secret(secret_manager: LocalSecretManager) -> None:
    env = {
        "ENVIRONMENT": "prod",
        "GCP_PROJECT": PROJECT,
        "SECRET_MANAGER_EMULATOR_HOST": secret_manager.address,
        "SECRETS_DEADLINE_SECONDS": "2",
    }
    server = ServerProcess(env=env, startup_timeout=15)
    with pytest.raises(AssertionError, match="exited with") as failed:
        server.__enter__()
    output = str(failed.value)
    assert f"projects/{PROJECT}/secrets/prod-" in output
    assert ": not found" in output
    # One JSON line (prod logs JSON), no traceback: what Error Reporting shows.
    (failure,) = [line for line in output.splitlines() if "Cannot start" in line]
    entry = json.loads(failure)
    assert entry["severity"] == "CRITICAL"
    assert "Traceback" not in output
