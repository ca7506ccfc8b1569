"""Fixtures shared by the test modules.

Tests build the app with explicit settings, so nothing depends on the
developer's `.env` or shell.
"""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Environment, Settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings() -> Settings:
    return Settings(environment=Environment.LOCAL, gcp_project="test-project", _env_file=None)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client wired to the app in-process, with its lifespan running."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        yield client
