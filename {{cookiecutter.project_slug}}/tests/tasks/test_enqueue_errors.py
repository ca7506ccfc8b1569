"""Enqueueing fails loudly and names the queue; nothing is dropped silently."""

import httpx
from local_google.cloud_tasks import LocalCloudTasks

from ..serving import ServerProcess
from .conftest import PROJECT, service_env


def test_missing_queue_is_a_clear_error(cloud_tasks: LocalCloudTasks) -> None:
    env = service_env(cloud_tasks, TASKS_QUEUE="missing")
    with ServerProcess(env=env) as server:
        response = httpx.post(
            f"{server.url}/signups", json={"email": "a@example.com", "name": "A"}, timeout=30
        )
        assert server.terminate() == 0

    assert response.status_code == 503
    output = "\n".join(server.lines)
    assert "Could not enqueue task 'send-welcome-email' on queue" in output
    assert f"projects/{PROJECT}/locations/" in output
    assert "/queues/missing" in output
    assert cloud_tasks.created == []
