import httpx
import pytest
from fastapi import FastAPI

pytestmark = pytest.mark.anyio


async def test_healthz_answers_without_io(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))


async def test_healthz_answers_head_without_a_body(client: httpx.AsyncClient) -> None:
    response = await client.head("/healthz")
    assert response.status_code == 200
    assert response.content == b""


async def test_healthz_refuses_other_methods_as_the_router_would(
    client: httpx.AsyncClient,
) -> None:
    """The probe is answered before routing: it still says what a route would."""
    response = await client.post("/healthz", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.json() == {"detail": "Method Not Allowed"}
    readyz = await client.post("/readyz", json={})
    assert readyz.status_code == 405
    assert readyz.json() == response.json()


async def test_only_the_exact_probe_path_skips_the_router(client: httpx.AsyncClient) -> None:
    for path in ("/healthz/", "/healthzz", "/HEALTHZ"):
        assert (await client.get(path)).status_code == 404, path


async def test_readyz_is_ok_once_started(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_unavailable_before_startup(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "starting"}


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    schema = (await client.get("/openapi.json")).json()
    assert "/readyz" in schema["paths"]
    # Cloud Run's liveness probe is answered before routing, not an API route.
    assert "/healthz" not in schema["paths"]


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-route")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
