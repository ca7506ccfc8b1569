"""A local Cloud Tasks server, and the service with test tasks as a real process."""

import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from local_google.cloud_tasks import LocalCloudTasks, environment

from {{ cookiecutter.package_name }}.settings import Settings

from ..serving import ServerProcess

PROJECT = "test-project"
INVOKER = f"tasks-invoker@{PROJECT}.iam.gserviceaccount.com"

# The service plus tasks that report each run in the log, and a route to defer
# them, served by the same `serve()` as production.
TASK_APP = """
import asyncio
from datetime import timedelta

from pydantic import BaseModel

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.server import serve
from {{ cookiecutter.package_name }}.settings import Settings
from {{ cookiecutter.package_name }}.tasks import TaskContext, task
import logging

log = logging.getLogger("test.tasks")


class Note(BaseModel):
    text: str
    count: int


class Flaky(BaseModel):
    succeed_on_attempt: int


@task("record")
async def record(payload: Note, context: TaskContext) -> None:
    log.info("ran", extra={"task_ran": "record", "payload_type": type(payload).__name__,
                           "payload": payload.model_dump(), "retry_count": context.retry_count,
                           "task_name": context.task_name, "queue_name": context.queue_name})


@task("flaky")
async def flaky(payload: Flaky, context: TaskContext) -> None:
    if context.retry_count + 1 < payload.succeed_on_attempt:
        raise RuntimeError(f"failing attempt {context.retry_count + 1}")
    log.info("ran", extra={"task_ran": "flaky", "retry_count": context.retry_count,
                           "execution_count": context.execution_count})


class DeferRequest(BaseModel):
    task: str
    payload: dict[str, object]
    delay_seconds: float = 0
    dedup_key: str | None = None


settings = Settings()
app = create_app(settings)


@app.post("/test/defer")
async def defer(request: DeferRequest) -> dict[str, object]:
    target = {"record": record, "flaky": flaky}[request.task]
    queued = await target.defer(
        target.payload_type.model_validate(request.payload),
        delay=timedelta(seconds=request.delay_seconds) if request.delay_seconds else None,
        dedup_key=request.dedup_key,
    )
    return {"name": queued.name, "already_queued": queued.already_queued}


serve(app, settings)
"""


@pytest.fixture
def cloud_tasks() -> Iterator[LocalCloudTasks]:
    server = LocalCloudTasks(min_backoff=0.05, max_backoff=0.4, max_attempts=6)
    settings = Settings(gcp_project=PROJECT, _env_file=None)
    server.add_queue(
        f"projects/{PROJECT}/locations/{settings.queue_location}/queues/{settings.tasks_queue}"
    )
    with server:
        yield server


def service_env(cloud_tasks: LocalCloudTasks, **extra: str) -> dict[str, str]:
    return {
        "GCP_PROJECT": PROJECT,
        "LOG_FORMAT": "json",
        **environment(cloud_tasks),
        **extra,
    }


@pytest.fixture
def service(cloud_tasks: LocalCloudTasks) -> Iterator[ServerProcess]:
    with ServerProcess(
        env=service_env(cloud_tasks), command=[sys.executable, "-c", TASK_APP]
    ) as server:
        yield server


def log_entries(server: ServerProcess) -> list[dict[str, Any]]:
    entries = []
    for line in list(server.lines):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def runs(server: ServerProcess, task: str) -> list[dict[str, Any]]:
    return [e for e in log_entries(server) if e.get("task_ran") == task]


def wait_until(condition: Callable[[], object], timeout: float = 20.0) -> None:
    """The server's output arrives through a pipe: wait for what a test expects in it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
