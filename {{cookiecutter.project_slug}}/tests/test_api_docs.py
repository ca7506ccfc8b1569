"""/docs, /redoc and /openapi.json: served where people build against the API."""

import httpx
import pytest

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Environment, Settings

pytestmark = pytest.mark.anyio
DOCS = ("/docs", "/redoc", "/openapi.json")


async def served(**settings: object) -> list[int]:
    app = create_app(Settings(gcp_project="p", _env_file=None, **settings))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [(await client.get(path)).status_code for path in DOCS]


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        (Environment.LOCAL, 200),
        (Environment.DEV, 200),
        (Environment.STAGING, 404),
        (Environment.PROD, 404),
    ],
)
async def test_docs_by_environment(environment: Environment, expected: int) -> None:
    assert await served(environment=environment) == [expected] * len(DOCS)


async def test_the_setting_decides_when_given() -> None:
    assert await served(environment=Environment.PROD, api_docs=True) == [200] * len(DOCS)
    assert await served(environment=Environment.LOCAL, api_docs=False) == [404] * len(DOCS)
