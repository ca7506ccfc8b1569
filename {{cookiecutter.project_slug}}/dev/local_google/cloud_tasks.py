"""A local Cloud Tasks: `google.cloud.tasks.v2.CloudTasks`, delivering HTTP tasks.

It serves CreateTask, GetQueue and CreateQueue with the client library's own
types, and delivers each task to its URL when its `schedule_time` comes, as
Cloud Tasks documents it:

- **Limits at CreateTask**: a task larger than 100 KB
  (`CloudTasksClient.create_task`'s own contract: "The maximum task size is
  100KB"), headers of 80 KB or more, and a `dispatch_deadline` outside
  [15 s, 30 min] are INVALID_ARGUMENT
  (https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#task,
  #httprequest).
- **Names**: a task name is refused with ALREADY_EXISTS while the task exists
  and for an hour after it was done, the deduplication window
  (https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#createtaskrequest).
- **The request**: the task's own headers (but Host, Content-Length,
  User-Agent, `X-Google-*` and `X-AppEngine-*`, which are Cloud Tasks' own)
  and body, and no Content-Type the task did not set; `User-Agent:
  Google-Cloud-Tasks`; the `X-CloudTasks-*` headers (queue, task, retry and
  execution counts, ETA, and the previous response on a retry); and, for an
  `oidc_token`, `Authorization: Bearer <ID token>` for the task's service
  account and audience, signed by the local issuer
  (https://cloud.google.com/tasks/docs/creating-http-target-tasks#handler).
- **Attempts**: 2xx acknowledges; anything else, no answer, or no answer
  within the task's `dispatch_deadline` (10 minutes unless set) is retried by
  the queue's `RetryConfig`: backoff from `min_backoff`, doubling
  `max_doublings` times, then growing linearly, capped at `max_backoff`;
  retries end only when `max_attempts` and `max_retry_duration` are both
  reached (https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#retryconfig).

Sub-second backoffs are allowed here, so tests run fast; Cloud Tasks rounds
them to whole seconds. Everything binds 127.0.0.1.
"""

import heapq
import itertools
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
import httpx
from google.cloud import tasks_v2

from .grpc_server import LocalGrpcServer, RpcError
from .issuer import LocalIssuer
from .lifecycle import wait_for_count

SERVICE = "google.cloud.tasks.v2.CloudTasks"
MAX_TASK_BYTES = 100 * 1024
MIN_DISPATCH_DEADLINE = timedelta(seconds=15)
MAX_DISPATCH_DEADLINE = timedelta(minutes=30)
DEFAULT_DISPATCH_DEADLINE = timedelta(minutes=10)
MAX_HEADER_BYTES = 80 * 1024
DEDUP_WINDOW = timedelta(hours=1)
_RESERVED_HEADER_PREFIXES = ("x-google-", "x-appengine-", "x-cloudtasks-")
# What a queue created without a retry configuration gets
# (https://cloud.google.com/tasks/docs/configuring-queues#retry).
DEFAULT_RETRY = tasks_v2.RetryConfig(
    max_attempts=100,
    min_backoff=timedelta(seconds=0.1),
    max_backoff=timedelta(hours=1),
    max_doublings=16,
)


@dataclass
class Delivery:
    """One attempt to deliver a task, as the service answered it."""

    task: str
    attempt: int
    status: int | None  # None: no HTTP response (connection refused, deadline)
    at: float
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(order=True)
class _Scheduled:
    due: float
    order: int
    task: tasks_v2.Task = field(compare=False)
    attempt: int = field(default=1, compare=False)
    responses: int = field(default=0, compare=False)
    first_attempt: float | None = field(default=None, compare=False)
    previous_status: int | None = field(default=None, compare=False)


def backoff(retry: tasks_v2.RetryConfig, retries_so_far: int) -> float:
    """Seconds before retry number `retries_so_far + 1`, by `RetryConfig`'s rule:
    `min_backoff`, doubled `max_doublings` times, then growing by the last
    doubled interval each time, never above `max_backoff`."""
    minimum: float = retry.min_backoff.total_seconds()
    doublings: int = retry.max_doublings
    interval: float
    if retries_so_far <= doublings:
        interval = minimum * 2**retries_so_far
    else:
        interval = minimum * 2**doublings * (retries_so_far - doublings + 1)
    maximum: float = retry.max_backoff.total_seconds()
    return min(interval, maximum)


def retries_exhausted(retry: tasks_v2.RetryConfig, attempts: int, since_first: float) -> bool:
    """Whether both limits are reached: `max_attempts` (-1: none) and
    `max_retry_duration` (0: none)."""
    attempts_done = retry.max_attempts != -1 and attempts >= retry.max_attempts
    duration = retry.max_retry_duration.total_seconds()
    return attempts_done and (duration == 0 or since_first >= duration)


class LocalCloudTasks(LocalGrpcServer):
    def __init__(
        self,
        *,
        issuer: LocalIssuer | None = None,
        port: int = 0,
        delivery_timeout: float | None = None,
    ) -> None:
        """`issuer` signs the tasks' tokens (one of its own if None);
        `delivery_timeout` overrides every task's dispatch deadline (tests)."""
        self.issuer = issuer or LocalIssuer()
        self._own_issuer = issuer is None
        self.queues: dict[str, tasks_v2.Queue] = {}
        self.delivery_timeout = delivery_timeout
        self.created: list[tasks_v2.Task] = []
        self.deliveries: list[Delivery] = []
        self._names: dict[str, float | None] = {}  # name: when it may be used again
        self._schedule: list[_Scheduled] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._stopping = False
        self._in_flight = 0  # attempts taken off the schedule and not yet recorded
        self._deliveries = threading.BoundedSemaphore(8)  # concurrent deliveries
        self._http = httpx.Client()
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
        return self.issuer.certs_url

    def add_queue(self, path: str, retry: tasks_v2.RetryConfig | None = None) -> None:
        """A queue; what `retry` leaves unset (or zero) takes Cloud Tasks' default."""
        config = tasks_v2.RetryConfig(DEFAULT_RETRY)
        for name in ("max_attempts", "min_backoff", "max_backoff", "max_doublings"):
            if retry is not None and getattr(retry, name):
                setattr(config, name, getattr(retry, name))
        if retry is not None and "max_retry_duration" in retry:
            config.max_retry_duration = retry.max_retry_duration
        self.queues[path] = tasks_v2.Queue(
            name=path, state=tasks_v2.Queue.State.RUNNING, retry_config=config
        )

    # gRPC methods

    def _create_task(self, request: tasks_v2.CreateTaskRequest) -> tasks_v2.Task:
        queue = self.queues.get(request.parent)
        if queue is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Queue {request.parent} does not exist.")
        task = tasks_v2.Task(request.task)
        size = tasks_v2.Task.pb(task).ByteSize()
        if size > MAX_TASK_BYTES:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Task size {size} bytes exceeds the maximum of {MAX_TASK_BYTES} bytes.",
            )
        header_bytes = sum(len(k) + len(v) for k, v in task.http_request.headers.items())
        if header_bytes >= MAX_HEADER_BYTES:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT, "The size of the headers must be less than 80KB."
            )
        deadline = task.dispatch_deadline if "dispatch_deadline" in task else None
        if deadline is not None and not MIN_DISPATCH_DEADLINE <= deadline <= MAX_DISPATCH_DEADLINE:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "dispatch_deadline must be between 15 seconds and 30 minutes.",
            )
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
                free_after = self._names[task.name]
                if free_after is None or free_after > now:
                    raise RpcError(
                        grpc.StatusCode.ALREADY_EXISTS, "Requested entity already exists"
                    )
            self._names[task.name] = None
            self.created.append(task)
            due = task.schedule_time.timestamp()
            heapq.heappush(self._schedule, _Scheduled(due, next(self._order), task))
            self._changed.notify_all()
        return task

    def _get_queue(self, request: tasks_v2.GetQueueRequest) -> tasks_v2.Queue:
        queue = self.queues.get(request.name)
        if queue is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"Queue {request.name} does not exist.")
        return queue

    def _create_queue(self, request: tasks_v2.CreateQueueRequest) -> tasks_v2.Queue:
        if request.queue.name in self.queues:
            raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Queue already exists")
        retry = request.queue.retry_config if "retry_config" in request.queue else None
        self.add_queue(request.queue.name, retry)
        return self.queues[request.queue.name]

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
                self._in_flight += 1
            # Daemon threads: a process that exits abandons deliveries in flight (Cloud
            # Tasks would retry them), instead of waiting up to their deadline.
            self._deliveries.acquire()
            threading.Thread(target=self._deliver, args=(item,), daemon=True).start()

    def _deliver(self, item: _Scheduled) -> None:
        try:
            self._attempt(item)
        finally:
            self._deliveries.release()
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def request_headers(self, item: _Scheduled) -> dict[str, str]:
        """The headers of one attempt: the task's own, then Cloud Tasks' own."""
        task = item.task
        request = task.http_request
        # Cloud Tasks computes Host and Content-Length, keeps X-Google-* and
        # X-AppEngine-* for itself, and sets no Content-Type of its own.
        headers = {
            name: value
            for name, value in request.headers.items()
            if not name.lower().startswith(_RESERVED_HEADER_PREFIXES)
            and name.lower() not in {"host", "content-length", "user-agent"}
        }
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
            token = self.issuer.token(request.oidc_token.service_account_email, audience)
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _attempt(self, item: _Scheduled) -> None:
        task = item.task
        request = task.http_request
        headers = self.request_headers(item)
        method = tasks_v2.HttpMethod(request.http_method or tasks_v2.HttpMethod.POST).name
        deadline = (
            task.dispatch_deadline if "dispatch_deadline" in task else DEFAULT_DISPATCH_DEADLINE
        )
        timeout = self.delivery_timeout or deadline.total_seconds()
        started = time.time()
        first_attempt = item.first_attempt if item.first_attempt is not None else started
        status: int | None
        try:
            status = self._http.request(
                method, request.url, headers=headers, content=request.body, timeout=timeout
            ).status_code
        except httpx.HTTPError:
            status = None
        with self._changed:
            self.deliveries.append(Delivery(task.name, item.attempt, status, started, headers))
            queue = self.queues.get(task.name.partition("/tasks/")[0])
            retry = queue.retry_config if queue is not None else DEFAULT_RETRY
            done = status is not None and 200 <= status < 300
            if done or retries_exhausted(retry, item.attempt, time.time() - first_attempt):
                self._names[task.name] = time.time() + DEDUP_WINDOW.total_seconds()
            else:
                heapq.heappush(
                    self._schedule,
                    _Scheduled(
                        time.time() + backoff(retry, item.attempt - 1),
                        next(self._order),
                        task,
                        item.attempt + 1,
                        item.responses + (status is not None),
                        first_attempt,
                        status,
                    ),
                )
            self._changed.notify_all()

    def wait_for_deliveries(self, count: int, timeout: float = 20.0) -> list[Delivery]:
        """Block until at least `count` delivery attempts were made."""
        return wait_for_count(self._changed, self.deliveries, count, timeout, "deliveries made")

    def wait_until_idle(self, timeout: float = 20.0) -> None:
        """Block until no task is queued and no attempt is in flight: nothing
        more is delivered until a task is created."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._schedule or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"{len(self._schedule)} tasks queued, {self._in_flight} in flight"
                    )
                self._changed.wait(remaining)

    def reset(self, timeout: float = 20.0) -> None:
        """Forget every task, task name, delivery, call and fault, as a new
        server would have none (for tests that share one server). Tasks not
        yet due are dropped; attempts in flight are waited for, and retries
        they schedule dropped too."""
        deadline = time.monotonic() + timeout
        with self._changed:
            self._schedule.clear()
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self._in_flight} deliveries still in flight")
                self._changed.wait(remaining)
            self._schedule.clear()
            self._names.clear()
            self.created.clear()
            self.deliveries.clear()
        self.faults.clear()
        self.log.reset()

    def start(self) -> "LocalCloudTasks":
        if self._own_issuer:
            self.issuer.start()
        super().start()
        threading.Thread(target=self._dispatch_loop, daemon=True).start()
        return self

    def stop(self, grace: float | None = None) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._own_issuer:
            self.issuer.stop()
        self._http.close()
        super().stop(grace)


def environment(server: LocalCloudTasks) -> Mapping[str, str]:
    """The settings that point the service at this server."""
    return {
        "CLOUD_TASKS_EMULATOR_HOST": server.address,
        "TASKS_OIDC_CERTS_URL": server.certs_url,
    }
