"""The service reads its secrets during startup, and refuses to start without them."""

import httpx
import pytest
from fastapi import FastAPI
from local_google.secret_manager import LocalSecretManager

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.secrets import SecretsError
from {{ cookiecutter.package_name }}.settings import Settings

from ..serving import ServerProcess
from .conftest import PROJECT, secret_path

pytestmark = pytest.mark.anyio


async def test_lifespan_loads_secrets(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), "from-lifespan")
    app = create_app(dev_settings)
    async with app.router.lifespan_context(app):
        assert app.state.secrets.api_key.get_secret_value() == "from-lifespan"


async def test_lifespan_fails_without_its_secrets(dev_settings: Settings) -> None:
    app: FastAPI = create_app(dev_settings)
    with pytest.raises(SecretsError, match="dev-api-key"):
        async with app.router.lifespan_context(app):
            pass


async def test_openapi_schema_holds_no_secret(
    secret_manager: LocalSecretManager, dev_settings: Settings
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), "not-in-the-schema")
    app = create_app(dev_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        schema = (await client.get("/openapi.json")).text
    assert "not-in-the-schema" not in schema


def test_server_starts_with_secrets_from_secret_manager(
    secret_manager: LocalSecretManager,
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), "process-secret")
    env = {
        "ENVIRONMENT": "dev",
        "GCP_PROJECT": PROJECT,
        "SECRET_MANAGER_EMULATOR_HOST": secret_manager.address,
    }
    with ServerProcess(env=env) as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        assert server.terminate() == 0
    # Read by the entry point's prefetch, while the app was importing.
    assert "Read 1 secrets from Secret Manager in" in "\n".join(server.lines)
    assert "while the app loaded" in "\n".join(server.lines)
    assert "process-secret" not in "\n".join(server.lines)


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
    assert f"projects/{PROJECT}/secrets/prod-api-key/versions/latest: not found" in output
