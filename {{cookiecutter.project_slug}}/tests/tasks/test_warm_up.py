"""The Cloud Tasks client is created once the server listens, or on first use."""

import asyncio
import logging
import time

import httpx
import pytest
from local_google.cloud_tasks import LocalCloudTasks

from {{ cookiecutter.package_name }}.settings import Environment, Settings
from {{ cookiecutter.package_name }}.tasks.client import WARM_UP_WAIT_SECONDS, task_queue

from ..serving import ServerProcess
from .conftest import service_env, wait_until

READY = "Cloud Tasks client ready for projects/"
SIGNUP = {"email": "grace@example.com", "name": "Grace"}


def test_the_client_is_ready_before_the_first_defer(cloud_tasks: LocalCloudTasks) -> None:
    with ServerProcess(env=service_env(cloud_tasks)) as server:
        wait_until(lambda: any(READY in line for line in server.lines))
        assert server.terminate() == 0
    assert cloud_tasks.created == []


def test_without_warm_up_the_first_defer_creates_it(cloud_tasks: LocalCloudTasks) -> None:
    with ServerProcess(env=service_env(cloud_tasks, TASKS_WARM_UP="false")) as server:
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        time.sleep(1.0)  # what a warm-up would have needed, and more
        assert not any(READY in line for line in server.lines)

        response = httpx.post(f"{server.url}/signups", json=SIGNUP, timeout=30)

        assert response.status_code == 202, response.text
        wait_until(lambda: any(READY in line for line in server.lines))
        assert server.terminate() == 0
    assert len(cloud_tasks.created) == 1


@pytest.mark.anyio
async def test_the_warm_up_waits_for_the_server_to_listen(
    cloud_tasks: LocalCloudTasks, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Importing the library holds the GIL for about half a second: before the
    server listens, that would delay the instance's first response instead."""
    for name, value in service_env(cloud_tasks).items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO)
    listening = asyncio.Event()
    settings = Settings(environment=Environment.LOCAL, _env_file=None)
    async with task_queue(settings, listening=listening):
        await asyncio.sleep(WARM_UP_WAIT_SECONDS * 0.75)  # ample for the import
        assert not any(READY in record.getMessage() for record in caplog.records)

        listening.set()
        for _ in range(400):
            if any(READY in record.getMessage() for record in caplog.records):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the client did not warm up once the server listened")
    assert cloud_tasks.created == []
