"""Fixtures shared by the test modules.

Tests build the app with explicit settings, so nothing depends on the
developer's `.env` or shell.
{% if cookiecutter.use_cloud_tasks %}

In-process, what routes `.defer()` is recorded by `deferred` instead of going
to Cloud Tasks; `await deferred.deliver(app, client)` then runs it through
the push endpoint, as Cloud Tasks would. tests/tasks/ runs the real thing.
{% endif %}
"""

import io
import logging
from collections.abc import AsyncIterator, Iterator
{% if cookiecutter.use_cloud_tasks %}
from dataclasses import dataclass
from datetime import timedelta
{% endif %}

import httpx
import pytest
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.logs import CloudLoggingFormatter
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Environment, Settings
{% if cookiecutter.use_cloud_tasks %}
from {{ cookiecutter.package_name }}.tasks import Enqueued
from {{ cookiecutter.package_name }}.tasks.push import authenticated


@dataclass(frozen=True)
class Deferred:
    """A task as `.defer()` sent it."""

    task: str
    body: bytes
    delay: timedelta | None
    dedup_key: str | None


class RecordedTasks:
    """Stands in for the service's queue: keeps what `.defer()` sends."""

    def __init__(self) -> None:
        self.tasks: list[Deferred] = []

    async def enqueue(
        self,
        task_name: str,
        body: bytes,
        *,
        delay: timedelta | None = None,
        dedup_key: str | None = None,
    ) -> Enqueued:
        name = f"tasks/{len(self.tasks)}-{task_name}"
        if dedup_key is not None:  # a second task with the key is refused, as Cloud Tasks does
            name = f"tasks/{task_name}-{dedup_key}"
            if any(t.task == task_name and t.dedup_key == dedup_key for t in self.tasks):
                return Enqueued(name=name, already_queued=True)
        self.tasks.append(Deferred(task_name, body, delay, dedup_key))
        return Enqueued(name=name)

    async def deliver(self, app: FastAPI, client: httpx.AsyncClient) -> list[httpx.Response]:
        """Push every recorded task to the app's push endpoint, as Cloud Tasks
        would (its token check aside), and forget them; the responses, in order."""
        app.dependency_overrides[authenticated] = lambda: None
        try:
            tasks, self.tasks = self.tasks, []
            return [
                await client.post(
                    f"/_tasks/{task.task}",
                    content=task.body,
                    headers={"X-CloudTasks-TaskName": f"{task.task}-{n}"},
                )
                for n, task in enumerate(tasks)
            ]
        finally:
            del app.dependency_overrides[authenticated]
{% endif %}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings() -> Settings:
    return Settings(environment=Environment.LOCAL, gcp_project="test-project", _env_file=None)
{% if cookiecutter.use_cloud_tasks %}


@pytest.fixture
def deferred() -> RecordedTasks:
    return RecordedTasks()


@pytest.fixture
def app(settings: Settings, deferred: RecordedTasks) -> FastAPI:
    return create_app(settings, queue=deferred)
{% else %}


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)
{% endif %}


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


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Everything logged at INFO and above while the test runs, formatted for
    Cloud Logging."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CloudLoggingFormatter(project_id="test-project"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)
