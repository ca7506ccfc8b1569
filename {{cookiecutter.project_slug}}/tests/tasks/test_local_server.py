"""The local Cloud Tasks server itself: it must never hold up `make dev`'s exit."""

import subprocess
import sys
import time

from ..serving import PROJECT_ROOT

# A delivery to a socket that listens but never answers (as a reloading dev
# server's socket does once its worker has stopped), then the process exits.
PROGRAM = """
import socket
import time

import grpc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

from local_google.cloud_tasks import LocalCloudTasks

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
queue = "projects/p/locations/l/queues/q"
server = LocalCloudTasks(delivery_timeout=60)
server.add_queue(queue)
server.start()
channel = grpc.insecure_channel(server.address)
client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
url = f"http://127.0.0.1:{listener.getsockname()[1]}/_tasks/x"
client.create_task(parent=queue, task=tasks_v2.Task(http_request=tasks_v2.HttpRequest(url=url)))
time.sleep(0.5)  # the delivery is now waiting for an answer
print("exiting", flush=True)
"""


def test_a_delivery_in_flight_does_not_hold_up_exit() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    assert "exiting" in done.stdout
    assert time.monotonic() - started < 20, "the exit waited for the delivery"
