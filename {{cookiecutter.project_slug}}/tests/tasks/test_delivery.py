"""End to end: the service enqueues through the real client, the local Cloud
Tasks server delivers back to the service's push endpoint, the handler runs."""

import time

import grpc
import httpx
from local_google.cloud_tasks import LocalCloudTasks

from ..serving import ServerProcess
from .conftest import runs, wait_until


def defer(server: ServerProcess, **body: object) -> dict[str, object]:
    response = httpx.post(f"{server.url}/test/defer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_deferred_task_runs_once_with_its_typed_payload(
    service: ServerProcess, cloud_tasks: LocalCloudTasks
) -> None:
    defer(service, task="record", payload={"text": "hello", "count": 3})

    wait_until(lambda: runs(service, "record"))
    time.sleep(0.3)  # a second, wrong delivery would show up by now
    (run,) = runs(service, "record")
    assert run["payload_type"] == "Note"
    assert run["payload"] == {"text": "hello", "count": 3}
    assert run["retry_count"] == 0
    assert run["queue_name"] == "default"
    (created,) = cloud_tasks.created
    assert created.http_request.url == f"{service.url}/_tasks/record"
    assert created.http_request.oidc_token.audience == service.url
    assert [d.status for d in cloud_tasks.wait_for_deliveries(1)] == [200]


def test_failing_handler_is_retried_until_it_succeeds(
    service: ServerProcess, cloud_tasks: LocalCloudTasks
) -> None:
    defer(service, task="flaky", payload={"succeed_on_attempt": 3})

    wait_until(lambda: runs(service, "flaky"))
    deliveries = cloud_tasks.wait_for_deliveries(3)
    assert [d.status for d in deliveries] == [500, 500, 200]
    (run,) = runs(service, "flaky")
    assert run["retry_count"] == 2
    assert run["execution_count"] == 2
    failures = [line for line in service.lines if "failing attempt" in line]
    assert len(failures) == 2, "each failure is logged with its traceback"


def test_repeated_dedup_key_runs_once(service: ServerProcess, cloud_tasks: LocalCloudTasks) -> None:
    first = defer(service, task="record", payload={"text": "a", "count": 1}, dedup_key="order-7")
    second = defer(service, task="record", payload={"text": "b", "count": 2}, dedup_key="order-7")

    assert first["already_queued"] is False
    assert second["already_queued"] is True
    assert first["name"] == second["name"]
    wait_until(lambda: runs(service, "record"))
    time.sleep(0.3)
    assert [run["payload"]["text"] for run in runs(service, "record")] == ["a"]


def test_delayed_task_waits_for_its_time(
    service: ServerProcess, cloud_tasks: LocalCloudTasks
) -> None:
    before = time.time()
    defer(service, task="record", payload={"text": "later", "count": 1}, delay_seconds=1.5)

    (created,) = cloud_tasks.created
    assert created.schedule_time.timestamp() >= before + 1.4
    wait_until(lambda: runs(service, "record"))
    (delivery,) = cloud_tasks.wait_for_deliveries(1)
    assert delivery.at >= created.schedule_time.timestamp()


def test_transient_enqueue_failures_are_retried(
    service: ServerProcess, cloud_tasks: LocalCloudTasks
) -> None:
    cloud_tasks.faults.fail_next(grpc.StatusCode.UNAVAILABLE, method="CreateTask", times=2)

    defer(service, task="record", payload={"text": "persistent", "count": 1})

    assert len(cloud_tasks.log.requests("CreateTask")) == 3
    wait_until(lambda: runs(service, "record"))


def test_example_signup_defers_the_welcome_email(
    service: ServerProcess, cloud_tasks: LocalCloudTasks
) -> None:
    signup = {"email": "Ada@example.com", "name": "Ada"}
    first = httpx.post(f"{service.url}/signups", json=signup, timeout=30)
    again = httpx.post(f"{service.url}/signups", json={**signup, "email": "ada@example.com"})

    assert first.status_code == 202
    assert first.json() == {"status": "queued"}
    assert again.json() == {"status": "already_queued"}
    wait_until(lambda: any("Sent welcome email" in line for line in service.lines))
    assert [d.status for d in cloud_tasks.wait_for_deliveries(1)] == [200]


def test_invalid_signup_is_rejected_before_anything_is_queued(
    service: ServerProcess, cloud_tasks: LocalCloudTasks
) -> None:
    response = httpx.post(f"{service.url}/signups", json={"email": "nope", "name": ""})
    assert response.status_code == 422
    assert cloud_tasks.created == []
