"""A local Cloud Tasks: `google.cloud.tasks.v2.CloudTasks`, delivering HTTP tasks.

It accepts CreateTask (ALREADY_EXISTS for a name it has seen), GetQueue and
CreateQueue with the client library's own types, then delivers each task to
its URL when its `schedule_time` comes, as Cloud Tasks does: the documented
`X-CloudTasks-*` headers, and an OIDC token for the task's service account
signed by a key generated at start, whose certificate it serves over HTTP
(point `TASKS_OIDC_CERTS_URL` at `certs_url`). A delivery that does not answer
2xx is retried with exponential backoff up to `max_attempts`.
Everything binds 127.0.0.1. Standalone:

    python -m local_google.cloud_tasks --queue projects/p/locations/l/queues/default

prints its addresses as JSON, then serves until interrupted.
"""

import argparse
import heapq
import itertools
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt
from google.cloud import tasks_v2

from .grpc_server import LocalGrpcServer, RpcError, serve_until_interrupted

SERVICE = "google.cloud.tasks.v2.CloudTasks"
ISSUER = "https://accounts.google.com"


class TokenSigner:
    """Signs Google-style OIDC tokens with a local RSA key; serves its certificate."""

    def __init__(self) -> None:
        self.key_id = uuid.uuid4().hex
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local-cloud-tasks")])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(datetime(now.year + 1, 1, 1, tzinfo=UTC))
            .sign(key, hashes.SHA256())
        )
        self.certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._signer = crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
            private_pem, self.key_id
        )

    @property
    def certificates(self) -> dict[str, str]:
        return {self.key_id: self.certificate_pem}

    def token(self, email: str, audience: str, **overrides: Any) -> str:
        """An OIDC token as Google issues it to Cloud Tasks; `overrides` replace claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "azp": "1234567890",
            "sub": "1234567890",
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(overrides)
        token: bytes = jwt.encode(self._signer, claims)  # type: ignore[no-untyped-call]
        return token.decode()


@dataclass
class Delivery:
    """One attempt to deliver a task, as the service answered it."""

    task: str
    attempt: int
    status: int | None  # None: no HTTP response (connection refused, timeout)
    at: float


@dataclass(order=True)
class _Scheduled:
    due: float
    order: int
    task: tasks_v2.Task = field(compare=False)
    attempt: int = field(default=1, compare=False)
    responses: int = field(default=0, compare=False)
    previous_status: int | None = field(default=None, compare=False)


class LocalCloudTasks(LocalGrpcServer):
    def __init__(
        self,
        *,
        port: int = 0,
        max_attempts: int = 5,
        min_backoff: float = 0.1,
        max_backoff: float = 1.0,
        delivery_timeout: float = 30.0,
    ) -> None:
        self.signer = TokenSigner()
        self.queues: set[str] = set()
        self.max_attempts = max_attempts
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.delivery_timeout = delivery_timeout
        self.created: list[tasks_v2.Task] = []
        self.deliveries: list[Delivery] = []
        self.certs_requests = 0
        self._names: set[str] = set()
        self._schedule: list[_Scheduled] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._stopping = False
        self._deliveries = threading.BoundedSemaphore(8)  # concurrent deliveries
        self._http = httpx.Client(timeout=delivery_timeout)
        self._certs_server = ThreadingHTTPServer(("127.0.0.1", 0), self._certs_handler())
        super().__init__(
            SERVICE,
            {
                "CreateTask": (self._create_task, tasks_v2.CreateTaskRequest, tasks_v2.Task),
                "GetQueue": (self._get_queue, tasks_v2.GetQueueRequest, tasks_v2.Queue),
                "CreateQueue": (self._create_queue, tasks_v2.CreateQueueRequest, tasks_v2.Queue),
            },
            port=port,
        )

    @property
    def certs_url(self) -> str:
        host, port = self._certs_server.server_address[:2]
        return f"http://{host!s}:{port}/certs"

    def add_queue(self, path: str) -> None:
        self.queues.add(path)

    # gRPC methods

    def _create_task(self, request: tasks_v2.CreateTaskRequest) -> tasks_v2.Task:
        if request.parent not in self.queues:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Queue {request.parent} does not exist.")
        task = tasks_v2.Task(request.task)
        if not task.name:
            task.name = f"{request.parent}/tasks/{uuid.uuid4().int % 10**19}"
        elif not task.name.startswith(f"{request.parent}/tasks/"):
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Task name {task.name} is invalid.")
        now = time.time()
        if not task.schedule_time:
            task.schedule_time = datetime.fromtimestamp(now, UTC)
        task.create_time = datetime.fromtimestamp(now, UTC)
        with self._changed:
            if task.name in self._names:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Requested entity already exists")
            self._names.add(task.name)
            self.created.append(task)
            due = task.schedule_time.timestamp()
            heapq.heappush(self._schedule, _Scheduled(due, next(self._order), task))
            self._changed.notify_all()
        return task

    def _get_queue(self, request: tasks_v2.GetQueueRequest) -> tasks_v2.Queue:
        if request.name not in self.queues:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Queue {request.name} does not exist.")
        return tasks_v2.Queue(name=request.name, state=tasks_v2.Queue.State.RUNNING)

    def _create_queue(self, request: tasks_v2.CreateQueueRequest) -> tasks_v2.Queue:
        if request.queue.name in self.queues:
            raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Queue already exists")
        self.add_queue(request.queue.name)
        return tasks_v2.Queue(name=request.queue.name, state=tasks_v2.Queue.State.RUNNING)

    # Delivery

    def _dispatch_loop(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and (
                    not self._schedule or self._schedule[0].due > time.time()
                ):
                    timeout = self._schedule[0].due - time.time() if self._schedule else None
                    self._changed.wait(timeout)
                if self._stopping:
                    return
                item = heapq.heappop(self._schedule)
            # Daemon threads: a process that exits abandons deliveries in flight (Cloud
            # Tasks would retry them), instead of waiting up to `delivery_timeout`.
            self._deliveries.acquire()
            threading.Thread(target=self._deliver, args=(item,), daemon=True).start()

    def _deliver(self, item: _Scheduled) -> None:
        try:
            self._attempt(item)
        finally:
            self._deliveries.release()

    def _attempt(self, item: _Scheduled) -> None:
        task = item.task
        request = task.http_request
        headers = dict(request.headers)
        queue_path, _, task_id = task.name.partition("/tasks/")
        headers.update(
            {
                "User-Agent": "Google-Cloud-Tasks",
                "X-CloudTasks-QueueName": queue_path.rsplit("/", 1)[-1],
                "X-CloudTasks-TaskName": task_id,
                "X-CloudTasks-TaskRetryCount": str(item.attempt - 1),
                "X-CloudTasks-TaskExecutionCount": str(item.responses),
                "X-CloudTasks-TaskETA": f"{task.schedule_time.timestamp():.6f}",
            }
        )
        if item.previous_status is not None:
            headers["X-CloudTasks-TaskPreviousResponse"] = str(item.previous_status)
        if request.oidc_token.service_account_email:
            audience = request.oidc_token.audience or request.url
            token = self.signer.token(request.oidc_token.service_account_email, audience)
            headers["Authorization"] = f"Bearer {token}"
        method = tasks_v2.HttpMethod(request.http_method or tasks_v2.HttpMethod.POST).name
        status: int | None
        try:
            status = self._http.request(
                method, request.url, headers=headers, content=request.body
            ).status_code
        except httpx.HTTPError:
            status = None
        with self._changed:
            self.deliveries.append(Delivery(task.name, item.attempt, status, time.time()))
            failed = status is None or not 200 <= status < 300
            if failed and item.attempt < self.max_attempts:
                backoff = min(self.min_backoff * 2 ** (item.attempt - 1), self.max_backoff)
                heapq.heappush(
                    self._schedule,
                    _Scheduled(
                        time.time() + backoff,
                        next(self._order),
                        task,
                        item.attempt + 1,
                        item.responses + (status is not None),
                        status,
                    ),
                )
            self._changed.notify_all()

    def wait_for_deliveries(self, count: int, timeout: float = 20.0) -> list[Delivery]:
        """Block until at least `count` delivery attempts were made."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.deliveries) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self.deliveries)} of {count} deliveries made")
                self._changed.wait(remaining)
            return list(self.deliveries)

    def _certs_handler(self) -> type[BaseHTTPRequestHandler]:
        signer = self.signer
        fake = self

        class CertsHandler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.certs_requests += 1
                body = json.dumps(signer.certificates).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=3600")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return CertsHandler

    def start(self) -> "LocalCloudTasks":
        super().start()
        threading.Thread(target=self._certs_server.serve_forever, daemon=True).start()
        threading.Thread(target=self._dispatch_loop, daemon=True).start()
        return self

    def stop(self, grace: float | None = None) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._certs_server.shutdown()
        self._certs_server.server_close()
        self._http.close()
        super().stop(grace)


def serve(queues: list[str], *, port: int = 0) -> LocalCloudTasks:
    server = LocalCloudTasks(port=port)
    for queue in queues:
        server.add_queue(queue)
    return server.start()


def environment(server: LocalCloudTasks) -> Mapping[str, str]:
    """The settings that point the service at this server."""
    return {
        "CLOUD_TASKS_EMULATOR_HOST": server.address,
        "TASKS_OIDC_CERTS_URL": server.certs_url,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--queue", action="append", default=[], help="full queue path")
    args = parser.parse_args()
    server = serve(args.queue, port=args.port)
    serve_until_interrupted(server, environment(server))


if __name__ == "__main__":
    main()
