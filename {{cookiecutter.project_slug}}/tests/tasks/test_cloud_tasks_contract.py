"""Cloud Tasks' documented contract, in the local server and in the client.

The local server is the tests' picture of Cloud Tasks, so it is held to what
Google documents: its limits, the request it sends and its retry schedule.
The service's client keeps within the same limits before it calls.
"""

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from google.api_core import exceptions
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from local_google.cloud_tasks import LocalCloudTasks, backoff, retries_exhausted
from local_google.lifecycle import serve_in_background

from {{ cookiecutter.package_name }}.settings import Environment, Settings
from {{ cookiecutter.package_name }}.tasks.client import (
    MAX_TASK_BYTES,
    TaskTooLarge,
    dispatch_deadline,
    task_queue,
)

QUEUE = "projects/p/locations/l/queues/q"


@dataclass
class Worker:
    """A task handler that records each request's headers and answers with
    the next status in `statuses` (200 once they run out)."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def worker() -> Iterator[Worker]:
    worker = Worker()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            worker.received.append(dict(self.headers.items()))
            self.send_response(worker.statuses.pop(0) if worker.statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serve_in_background(server)
    worker.url = f"http://127.0.0.1:{server.server_address[1]}/work"
    yield worker
    server.shutdown()
    server.server_close()


@pytest.fixture
def local_tasks() -> Iterator[tuple[LocalCloudTasks, tasks_v2.CloudTasksClient]]:
    server = LocalCloudTasks()
    server.add_queue(
        QUEUE,
        tasks_v2.RetryConfig(max_attempts=3, min_backoff=timedelta(seconds=0.2), max_doublings=1),
    )
    # The channel closes first: a server stopping under an open one logs its GOAWAY.
    with server, grpc.insecure_channel(server.address) as channel:
        client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        yield server, client


def http_task(url: str, **fields: Any) -> tasks_v2.Task:
    return tasks_v2.Task(http_request=tasks_v2.HttpRequest(url=url, body=b"{}"), **fields)


def test_the_retry_schedule_is_the_documented_one() -> None:
    # RetryConfig's own example: min_backoff 10s, max_backoff 300s, max_doublings 3.
    retry = tasks_v2.RetryConfig(
        min_backoff=timedelta(seconds=10), max_backoff=timedelta(seconds=300), max_doublings=3
    )
    assert [backoff(retry, n) for n in range(8)] == [10, 20, 40, 80, 160, 240, 300, 300]


def test_retries_end_when_both_limits_are_reached() -> None:
    retry = tasks_v2.RetryConfig(max_attempts=20, max_retry_duration=timedelta(days=1))
    assert not retries_exhausted(retry, attempts=20, since_first=3600)
    assert not retries_exhausted(retry, attempts=5, since_first=2 * 86400)
    assert retries_exhausted(retry, attempts=20, since_first=86400)
    forever = tasks_v2.RetryConfig(max_attempts=-1)
    assert not retries_exhausted(forever, attempts=10_000, since_first=10**9)


def test_a_failing_task_is_retried_by_the_queues_config(
    local_tasks: tuple[LocalCloudTasks, tasks_v2.CloudTasksClient], worker: Worker
) -> None:
    server, client = local_tasks
    worker.statuses = [500, 503, 500, 500]

    client.create_task(parent=QUEUE, task=http_task(worker.url))

    deliveries = server.wait_for_deliveries(3)
    server.wait_until_idle()  # max_attempts is 3: no fourth attempt
    assert [d.status for d in server.deliveries] == [500, 503, 500]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(deliveries)]
    assert 0.2 <= gaps[0] < 0.35  # min_backoff
    assert 0.4 <= gaps[1] < 0.55  # doubled once (max_doublings 1)


def test_the_request_carries_cloud_tasks_headers(
    local_tasks: tuple[LocalCloudTasks, tasks_v2.CloudTasksClient], worker: Worker
) -> None:
    server, client = local_tasks
    worker.statuses = [500]
    task = http_task(worker.url, name=f"{QUEUE}/tasks/t-1")
    task.http_request.headers = {"X-Google-Internal": "no", "X-Mine": "yes"}

    client.create_task(parent=QUEUE, task=task)
    server.wait_for_deliveries(2)

    first, second = ({k.lower(): v for k, v in h.items()} for h in worker.received)
    assert first["user-agent"] == "Google-Cloud-Tasks"
    assert first["x-cloudtasks-queuename"] == "q"
    assert first["x-cloudtasks-taskname"] == "t-1"
    assert first["x-cloudtasks-taskretrycount"] == "0"
    assert first["x-cloudtasks-taskexecutioncount"] == "0"
    assert float(first["x-cloudtasks-tasketa"]) > 0
    assert "x-cloudtasks-taskpreviousresponse" not in first
    assert first["x-mine"] == "yes"
    assert "x-google-internal" not in first, "X-Google-* is Google's own"
    assert "content-type" not in first, "Cloud Tasks sets no Content-Type of its own"
    assert second["x-cloudtasks-taskretrycount"] == "1"
    assert second["x-cloudtasks-taskexecutioncount"] == "1"
    assert second["x-cloudtasks-taskpreviousresponse"] == "500"


def test_a_done_task_name_stays_taken(
    local_tasks: tuple[LocalCloudTasks, tasks_v2.CloudTasksClient], worker: Worker
) -> None:
    server, client = local_tasks
    task = http_task(worker.url, name=f"{QUEUE}/tasks/once")
    client.create_task(parent=QUEUE, task=task)
    server.wait_for_deliveries(1)

    with pytest.raises(exceptions.AlreadyExists):
        client.create_task(parent=QUEUE, task=task)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": b"x" * MAX_TASK_BYTES}, "exceeds the maximum"),
        ({"headers": {"X-Big": "x" * 80 * 1024}}, "less than 80KB"),
        ({"dispatch_deadline": timedelta(seconds=10)}, "between 15 seconds and 30 minutes"),
        ({"dispatch_deadline": timedelta(minutes=31)}, "between 15 seconds and 30 minutes"),
    ],
)
def test_out_of_limits_tasks_are_refused(
    local_tasks: tuple[LocalCloudTasks, tasks_v2.CloudTasksClient],
    change: dict[str, Any],
    message: str,
) -> None:
    server, client = local_tasks
    task = http_task("http://127.0.0.1:9/work")
    deadline = change.pop("dispatch_deadline", None)
    if deadline is not None:
        task.dispatch_deadline = deadline
    for name, value in change.items():
        setattr(task.http_request, name, value)

    with pytest.raises(exceptions.InvalidArgument, match=message):
        client.create_task(parent=QUEUE, task=task)
    assert server.created == []


def test_the_size_limit_is_the_one_google_documents_for_create_task() -> None:
    """The client library's own documentation of the call states it."""
    documented = tasks_v2.CloudTasksAsyncClient.create_task.__doc__ or ""
    assert "The maximum task size is 100KB." in documented
    assert MAX_TASK_BYTES == 100 * 1024


def test_the_dispatch_deadline_follows_the_request_timeout() -> None:
    assert dispatch_deadline(300) == timedelta(seconds=305)
    assert dispatch_deadline(1) == timedelta(seconds=15), "Cloud Tasks' minimum"
    assert dispatch_deadline(3600) == timedelta(minutes=30), "Cloud Tasks' maximum"


@pytest.mark.anyio
async def test_defer_refuses_an_oversized_task_before_calling(
    local_tasks: tuple[LocalCloudTasks, tasks_v2.CloudTasksClient],
) -> None:
    server, _ = local_tasks
    settings = Settings(
        environment=Environment.LOCAL,
        gcp_project="p",
        tasks_location="l",
        tasks_queue="q",
        cloud_tasks_emulator_host=server.address,
        tasks_warm_up=False,
        _env_file=None,
    )
    async with task_queue(settings) as queue:
        with pytest.raises(TaskTooLarge, match=r"at most 102400 bytes \(100 KB") as refused:
            await queue.enqueue("record", json.dumps({"blob": "x" * 200_000}).encode())
    assert "Cloud Storage" in str(refused.value)
    assert server.log.requests("CreateTask") == []
