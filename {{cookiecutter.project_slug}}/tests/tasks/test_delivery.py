"""End to end, as deployed by default: the service enqueues through the real
client; the local Cloud Tasks delivers through the local Cloud Run front end,
which checks the token and hands it on without its signature; the handler runs."""

import time
from datetime import timedelta

import grpc
import httpx
from local_google.cloud_tasks import LocalCloudTasks

from ..serving import ServerProcess
from .conftest import CALLER, REQUEST_TIMEOUT_SECONDS, Deployment, log_entries, runs, wait_until


def defer(deployment: Deployment, **body: object) -> dict[str, object]:
    response = deployment.post("/test/defer", body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_deferred_task_runs_once_with_its_typed_payload(
    private: Deployment, cloud_tasks: LocalCloudTasks
) -> None:
    defer(private, task="record", payload={"text": "hello", "count": 3})

    wait_until(lambda: runs(private.service, "record"))
    cloud_tasks.wait_until_idle()  # a second, wrong delivery would be made by now
    private.service.read_all_output()
    (run,) = runs(private.service, "record")
    assert run["payload_type"] == "Note"
    assert run["payload"] == {"text": "hello", "count": 3}
    assert run["retry_count"] == 0
    assert run["queue_name"] == "default"
    (created,) = cloud_tasks.created
    assert created.http_request.url == f"{private.url}/_tasks/record"
    assert created.http_request.oidc_token.audience == private.url
    assert [d.status for d in cloud_tasks.wait_for_deliveries(1)] == [200]
    # It came through the front end, which checked the token and removed its signature.
    (push,) = [f for f in private.front_end.log.forwarded if f.path == "/_tasks/record"]
    assert push.headers["authorization"].endswith(".SIGNATURE_REMOVED_BY_GOOGLE")


def test_failing_handler_is_retried_until_it_succeeds(
    private: Deployment, cloud_tasks: LocalCloudTasks
) -> None:
    defer(private, task="flaky", payload={"succeed_on_attempt": 3})

    wait_until(lambda: runs(private.service, "flaky"))
    deliveries = cloud_tasks.wait_for_deliveries(3)
    assert [d.status for d in deliveries] == [500, 500, 200]
    (run,) = runs(private.service, "flaky")
    assert run["retry_count"] == 2
    assert run["execution_count"] == 2
    failures = [line for line in private.service.lines if "failing attempt" in line]
    assert len(failures) == 2, "each failure is logged with its traceback"


def test_repeated_dedup_key_runs_once(private: Deployment, cloud_tasks: LocalCloudTasks) -> None:
    first = defer(private, task="record", payload={"text": "a", "count": 1}, dedup_key="order-7")
    second = defer(private, task="record", payload={"text": "b", "count": 2}, dedup_key="order-7")

    assert first["already_queued"] is False
    assert second["already_queued"] is True
    assert first["name"] == second["name"]
    wait_until(lambda: runs(private.service, "record"))
    cloud_tasks.wait_until_idle()
    private.service.read_all_output()
    assert [run["payload"]["text"] for run in runs(private.service, "record")] == ["a"]


def test_delayed_task_waits_for_its_time(private: Deployment, cloud_tasks: LocalCloudTasks) -> None:
    before = time.time()
    defer(private, task="record", payload={"text": "later", "count": 1}, delay_seconds=1.5)

    (created,) = cloud_tasks.created
    assert created.schedule_time.timestamp() >= before + 1.4
    wait_until(lambda: runs(private.service, "record"))
    (delivery,) = cloud_tasks.wait_for_deliveries(1)
    assert delivery.at >= created.schedule_time.timestamp()


def test_transient_enqueue_failures_are_retried(
    private: Deployment, cloud_tasks: LocalCloudTasks
) -> None:
    cloud_tasks.faults.fail_next(grpc.StatusCode.UNAVAILABLE, method="CreateTask", times=2)

    defer(private, task="record", payload={"text": "persistent", "count": 1})

    assert len(cloud_tasks.log.requests("CreateTask")) == 3
    wait_until(lambda: runs(private.service, "record"))


def test_example_signup_defers_the_welcome_email(
    private: Deployment, cloud_tasks: LocalCloudTasks
) -> None:
    signup = {"email": "Ada@example.com", "name": "Ada"}
    first = private.post("/signups", signup)
    again = private.post("/signups", {**signup, "email": "ada@example.com"})

    assert first.status_code == 202
    assert first.json() == {"status": "queued"}
    assert again.json() == {"status": "already_queued"}
    wait_until(lambda: any("Sent welcome email" in line for line in private.service.lines))
    assert [d.status for d in cloud_tasks.wait_for_deliveries(1)] == [200]


def test_invalid_signup_is_rejected_before_anything_is_queued(
    private: Deployment, cloud_tasks: LocalCloudTasks
) -> None:
    response = private.post("/signups", {"email": "nope", "name": ""})
    assert response.status_code == 422
    assert cloud_tasks.created == []


def test_each_task_carries_a_dispatch_deadline_from_the_request_timeout(
    private: Deployment, cloud_tasks: LocalCloudTasks
) -> None:
    defer(private, task="record", payload={"text": "deadline", "count": 1})
    wait_until(lambda: runs(private.service, "record"))

    (created,) = cloud_tasks.created
    # Cloud Run's timeout plus a few seconds, as Cloud Tasks recommends.
    assert created.dispatch_deadline == timedelta(seconds=REQUEST_TIMEOUT_SECONDS + 5)


def test_the_handler_logs_in_the_trace_of_the_request_that_deferred_it(
    private: Deployment,
) -> None:
    """Cloud Tasks sends the task's traceparent on; Cloud Run continues it: a
    request, the task it deferred and the task's log lines share one trace."""
    trace = "0af7651916cd43dd8448eb211c80319c"
    token = private.issuer.token(CALLER, private.url)
    response = httpx.post(
        f"{private.url}/test/defer",
        json={"task": "record", "payload": {"text": "traced", "count": 1}},
        headers={
            "Authorization": f"Bearer {token}",
            "traceparent": f"00-{trace}-b7ad6b7169203331-01",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text

    # The push's access line follows its handler's lines: wait for it too.
    wait_until(lambda: "/_tasks/record" in access_paths(private.service))
    entries = log_entries(private.service)
    (run,) = runs(private.service, "record")
    traced = [e for e in entries if e.get("logging.googleapis.com/trace", "").endswith(trace)]
    paths = {e["httpRequest"]["requestUrl"] for e in traced if "httpRequest" in e}
    assert paths == {"/test/defer", "/_tasks/record"}, "the request and the push, one trace"
    assert run["logging.googleapis.com/trace"] == f"projects/test-project/traces/{trace}"


def access_paths(server: ServerProcess) -> set[str]:
    return {e["httpRequest"]["requestUrl"] for e in log_entries(server) if "httpRequest" in e}
