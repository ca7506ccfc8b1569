"""The Cloud Tasks client is created right after startup, or on first use."""

import time

import httpx
from local_google.cloud_tasks import LocalCloudTasks

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
