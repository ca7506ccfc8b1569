"""The example route and task, in-process: what a route defers is recorded by
the `deferred` fixture, then delivered to the push endpoint (tests/conftest.py)."""

import json

import httpx
import pytest
from fastapi import FastAPI

from ..conftest import RecordedTasks

pytestmark = pytest.mark.anyio
SIGNUP = {"email": "Ada@example.com", "name": "Ada"}


async def test_a_signup_defers_one_welcome_email(
    client: httpx.AsyncClient, deferred: RecordedTasks
) -> None:
    first = await client.post("/signups", json=SIGNUP)
    again = await client.post("/signups", json={**SIGNUP, "email": "ada@example.com"})

    assert first.status_code == again.status_code == 202
    assert (first.json(), again.json()) == ({"status": "queued"}, {"status": "already_queued"})
    (task,) = deferred.tasks
    assert task.task == "send-welcome-email"
    assert json.loads(task.body) == SIGNUP
    assert task.dedup_key == "ada@example.com"


async def test_the_deferred_welcome_email_runs_with_its_dependencies(
    app: FastAPI,
    client: httpx.AsyncClient,
    deferred: RecordedTasks,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    await client.post("/signups", json=SIGNUP)

    (response,) = await deferred.deliver(app, client)

    assert response.json() == {"status": "done"}
    (sent,) = [r for r in caplog.records if r.getMessage() == "Sent welcome email"]
    assert vars(sent)["environment"] == "local", "the handler got the app's settings"


async def test_the_push_endpoint_is_not_in_the_public_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/signups" in paths
    assert not [path for path in paths if path.startswith("/_tasks")]
