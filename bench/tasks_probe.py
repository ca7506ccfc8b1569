"""Runs inside a rendered project's environment (see bench_tasks.py).

Enqueues N tasks on the local Cloud Tasks server three ways, alternating run by
run, and prints the samples (seconds per N tasks) as JSON. Tasks are scheduled
an hour ahead so that no delivery competes for the CPU.
"""

import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta

import grpc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from local_google.cloud_tasks import LocalCloudTasks

PACKAGE, COUNT, RUNS, LATENCY = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
client_module = __import__(f"{PACKAGE}.tasks.client", fromlist=["x"])
settings_module = __import__(f"{PACKAGE}.settings", fromlist=["x"])
BODY = b'{"email": "ada@example.com", "name": "Ada"}'
LATER = timedelta(hours=1)


async def ours_concurrent(queue: "client_module.TaskQueue") -> None:
    await asyncio.gather(*(queue.enqueue("bench", BODY, delay=LATER) for _ in range(COUNT)))


async def ours_sequential(queue: "client_module.TaskQueue") -> None:
    for _ in range(COUNT):
        await queue.enqueue("bench", BODY, delay=LATER)


def naive(address: str, queue_path: str, url: str) -> None:
    """A client per call, as code that builds its client inside the handler does."""
    for _ in range(COUNT):
        client = tasks_v2.CloudTasksClient(
            transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(address))
        )
        task = tasks_v2.Task(
            http_request=tasks_v2.HttpRequest(
                url=url,
                http_method=tasks_v2.HttpMethod.POST,
                body=BODY,
                oidc_token=tasks_v2.OidcToken(
                    service_account_email="invoker@p.iam.gserviceaccount.com"
                ),
            ),
            schedule_time=datetime.now(UTC) + LATER,
        )
        client.create_task(parent=queue_path, task=task)
        client.transport.close()


async def main() -> None:
    with LocalCloudTasks() as server:
        settings = settings_module.Settings(
            gcp_project="bench-project", cloud_tasks_emulator_host=server.address, _env_file=None
        )
        queue = client_module.TaskQueue(settings)
        server.add_queue(queue.path)
        server.faults.delay(LATENCY, method="CreateTask")
        await queue.client()  # one client per process, created once
        samples: dict[str, list[float]] = {
            "ours: one client, concurrent": [],
            "one client, one at a time": [],
            "naive: a client per call": [],
        }
        for _ in range(RUNS):
            started = time.perf_counter()
            await ours_concurrent(queue)
            samples["ours: one client, concurrent"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await ours_sequential(queue)
            samples["one client, one at a time"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await asyncio.to_thread(naive, server.address, queue.path, queue.target_url("bench"))
            samples["naive: a client per call"].append(time.perf_counter() - started)
        await queue.close()
    print(json.dumps(samples))


if __name__ == "__main__":
    asyncio.run(main())
