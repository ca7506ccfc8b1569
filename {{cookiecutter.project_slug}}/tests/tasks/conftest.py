"""The service with test tasks as a real process, deployed behind a local Cloud
Run front end, with a local Cloud Tasks delivering through it.

Starting them takes a second or more, so the issuer, the Cloud Tasks server
and the two deployments (`private`, `public`) are started once for the
session. Each test still starts from nothing: Cloud Tasks is reset (no task,
task name, delivery or fault of an earlier test), the front end's log is
emptied, and the service's output holds only the lines logged during the test.
"""

import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from google.cloud import tasks_v2
from local_google.cloud_run import LocalCloudRun
from local_google.cloud_tasks import LocalCloudTasks, environment
from local_google.issuer import LocalIssuer

from {{ cookiecutter.package_name }}.settings import Environment, Settings

from ..serving import ServerProcess, free_port, start_test

PROJECT = "test-project"
INVOKER = f"tasks-invoker@{PROJECT}.iam.gserviceaccount.com"
# Another principal that may call the service (one more holder of roles/run.invoker).
CALLER = f"caller@{PROJECT}.iam.gserviceaccount.com"

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


# Cloud Run's request timeout, which the deployment also sets as
# REQUEST_TIMEOUT_SECONDS; not the default, so a test can tell it is followed.
REQUEST_TIMEOUT_SECONDS = 60

# A queue retry configuration as the deployment sets one, but with sub-second backoffs.
RETRY = tasks_v2.RetryConfig(
    max_attempts=6,
    min_backoff=timedelta(seconds=0.05),
    max_backoff=timedelta(seconds=0.4),
    max_doublings=3,
)


@pytest.fixture(scope="session")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as issuer:
        yield issuer


@pytest.fixture(scope="session")
def cloud_tasks_server(issuer: LocalIssuer) -> Iterator[LocalCloudTasks]:
    server = LocalCloudTasks(issuer=issuer)
    settings = Settings(environment=Environment.LOCAL, gcp_project=PROJECT, _env_file=None)
    server.add_queue(
        f"projects/{PROJECT}/locations/{settings.queue_location}/queues/{settings.tasks_queue}",
        RETRY,
    )
    with server:
        yield server


@pytest.fixture
def cloud_tasks(cloud_tasks_server: LocalCloudTasks) -> LocalCloudTasks:
    """The local Cloud Tasks, with nothing queued or recorded."""
    cloud_tasks_server.reset()
    return cloud_tasks_server


@dataclass
class Deployment:
    """The service as Cloud Run runs it: its container behind the front end."""

    service: ServerProcess
    front_end: LocalCloudRun
    issuer: LocalIssuer

    @property
    def url(self) -> str:
        """The service's URL: callers and Cloud Tasks reach it only through the front end."""
        return self.front_end.url

    def post(self, path: str, json: object, caller: str = CALLER) -> httpx.Response:
        """A call through the front end, with the caller's ID token (a private
        service needs one; a public one ignores it)."""
        token = self.issuer.token(caller, self.url)
        return httpx.post(
            f"{self.url}{path}", json=json, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def start_test(self) -> "Deployment":
        """The deployment as a new test finds it (see serving.start_test)."""
        start_test(self.front_end, self.service)
        return self


@functools.cache
def forger() -> LocalIssuer:
    """An issuer whose key no one trusts: its tokens are forged."""
    return LocalIssuer()


def service_env(cloud_tasks: LocalCloudTasks, **extra: str) -> dict[str, str]:
    return {
        "GCP_PROJECT": PROJECT,
        "LOG_FORMAT": "json",
        **environment(cloud_tasks),
        **extra,
    }


@contextmanager
def deployed(cloud_tasks: LocalCloudTasks, *, public: bool, **env: str) -> Iterator[Deployment]:
    """The task app deployed as the deployment configuration deploys it: private
    (only invokers may call it, BEHIND_CLOUD_RUN_IAM set) or public."""
    port = free_port()
    front_end = LocalCloudRun(
        f"http://127.0.0.1:{port}",
        issuer=cloud_tasks.issuer,
        invokers=() if public else (INVOKER, CALLER),
        public=public,
        request_timeout=REQUEST_TIMEOUT_SECONDS,
    )
    settings = {
        "SERVICE_URL": front_end.url,
        "REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_SECONDS),
        **({} if public else {"BEHIND_CLOUD_RUN_IAM": "true"}),
    }
    with (
        front_end,
        ServerProcess(
            env=service_env(cloud_tasks, **settings, **env),
            command=[sys.executable, "-c", TASK_APP],
            port=port,
        ) as service,
    ):
        yield Deployment(service, front_end, cloud_tasks.issuer)


@pytest.fixture(scope="session")
def private_deployment(cloud_tasks_server: LocalCloudTasks) -> Iterator[Deployment]:
    with deployed(cloud_tasks_server, public=False) as deployment:
        yield deployment


@pytest.fixture(scope="session")
def public_deployment(cloud_tasks_server: LocalCloudTasks) -> Iterator[Deployment]:
    with deployed(cloud_tasks_server, public=True) as deployment:
        yield deployment


# `private` and `public` take `cloud_tasks` to reset it first: no delivery of
# an earlier test is still on its way when the service's output is marked.
@pytest.fixture
def private(private_deployment: Deployment, cloud_tasks: LocalCloudTasks) -> Deployment:
    """The default deployment: only invokers may call the service."""
    return private_deployment.start_test()


@pytest.fixture
def public(public_deployment: Deployment, cloud_tasks: LocalCloudTasks) -> Deployment:
    """A public deployment: anyone may call, the push endpoint checks tokens alone."""
    return public_deployment.start_test()


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
        time.sleep(0.01)
    raise AssertionError("condition not met in time")
