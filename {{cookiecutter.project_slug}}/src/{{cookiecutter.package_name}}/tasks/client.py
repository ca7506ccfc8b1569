"""Enqueueing through the official `CloudTasksAsyncClient`.

One client per process, created once the server listens, off the request path
(`TASKS_WARM_UP`), or else on first use, and closed when the app shuts down.
The Cloud Tasks library is imported only then: it costs a few hundred
milliseconds that a cold start should not pay before serving its first request.
"""

import asyncio
import contextlib
import hashlib
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from opentelemetry import trace as otel_trace

from ..settings import Settings
from ..trace_context import active_trace, propagation_headers

if TYPE_CHECKING:
    from google.cloud.tasks_v2 import CloudTasksAsyncClient

logger = logging.getLogger(__name__)
_tracer = otel_trace.get_tracer(__name__)

PUSH_PATH = "/_tasks"
# CreateTask's contract, in the API reference and in the client library's own
# documentation of `create_task`: "The maximum task size is 100KB". The quotas
# page gives 1 MB; the method's contract is the narrower of the two and the
# one the call is made under, so a task that passes here passes both.
# (https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#createtaskrequest)
MAX_TASK_BYTES = 100 * 1024
# A task's dispatch deadline: Cloud Tasks waits this long for the push to be
# answered, within [15 s, 30 min] for HTTP tasks. Google recommends "at most a
# few seconds more than the app handler's timeout", here Cloud Run's request
# timeout (https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#task).
DISPATCH_DEADLINE_MARGIN = timedelta(seconds=5)
MIN_DISPATCH_DEADLINE = timedelta(seconds=15)
MAX_DISPATCH_DEADLINE = timedelta(minutes=30)
# How long the warm-up waits for the server to say it listens (server.py does);
# served any other way, the client warms up after this.
WARM_UP_WAIT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The result of `.defer()`: the task's full name, and whether a task with
    the same dedup key was already queued (then nothing new was enqueued)."""

    name: str
    already_queued: bool = False


class EnqueueError(RuntimeError):
    """A task could not be enqueued; the message names the task and the queue."""


class TaskTooLarge(ValueError):
    """The task is over Cloud Tasks' size limit: defer a reference, not the data.

    Not an `EnqueueError`: trying again cannot help, so a route must not answer
    "try again later" (503) for it."""


def dispatch_deadline(request_timeout_seconds: int) -> timedelta:
    """How long Cloud Tasks waits for a push: Cloud Run's request timeout and a
    few seconds, within the bounds Cloud Tasks accepts."""
    deadline = timedelta(seconds=request_timeout_seconds) + DISPATCH_DEADLINE_MARGIN
    return min(max(deadline, MIN_DISPATCH_DEADLINE), MAX_DISPATCH_DEADLINE)


class TaskQueue:
    """The service's queue: where `.defer()` sends its tasks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = (
            f"projects/{settings.gcp_project}/locations/{settings.queue_location}"
            f"/queues/{settings.tasks_queue}"
        )
        self._client: CloudTasksAsyncClient | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> "CloudTasksAsyncClient":
        async with self._lock:
            if self._client is None:
                # The import is slow and blocking: keep it off the event loop.
                await asyncio.to_thread(importlib.import_module, "google.cloud.tasks_v2")
                from google.auth.exceptions import GoogleAuthError

                try:
                    self._client = _new_client(self.settings)
                except GoogleAuthError as error:
                    raise EnqueueError(
                        f"No Google credentials to enqueue on {self.path}: on Cloud Run the "
                        "service account provides them; elsewhere run `gcloud auth "
                        "application-default login` or set CLOUD_TASKS_EMULATOR_HOST."
                    ) from error
                logger.info("Cloud Tasks client ready for %s", self.path)
            return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.transport.close()  # type: ignore[no-untyped-call]
            self._client = None

    def target_url(self, task_name: str) -> str:
        return f"{self.settings.service_url.rstrip('/')}{PUSH_PATH}/{task_name}"

    def task_id(self, task_name: str, dedup_key: str) -> str:
        """A valid task ID for a dedup key. Hashed first: Cloud Tasks spreads load
        by name, and sequential names make hot spots
        (https://cloud.google.com/tasks/docs/reference/rpc/google.cloud.tasks.v2#task)."""
        digest = hashlib.sha256(f"{task_name}\0{dedup_key}".encode()).hexdigest()
        return f"{digest[:32]}-{task_name}"[:500]

    async def enqueue(
        self,
        task_name: str,
        body: bytes,
        *,
        delay: timedelta | None = None,
        dedup_key: str | None = None,
    ) -> Enqueued:
        # A span of its own (a no-op unless tracing is on): the task's push is its child.
        with _tracer.start_as_current_span(
            f"enqueue {task_name}",
            kind=otel_trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "gcp_cloud_tasks",
                "messaging.destination.name": self.path,
            },
        ):
            return await self._enqueue(task_name, body, delay=delay, dedup_key=dedup_key)

    async def _enqueue(
        self,
        task_name: str,
        body: bytes,
        *,
        delay: timedelta | None,
        dedup_key: str | None,
    ) -> Enqueued:
        from google.api_core import exceptions, retry_async
        from google.cloud import tasks_v2

        settings = self.settings
        task = tasks_v2.Task(
            http_request=tasks_v2.HttpRequest(
                url=self.target_url(task_name),
                http_method=tasks_v2.HttpMethod.POST,
                # The task's push joins the trace of the request that deferred it:
                # Cloud Tasks sends the task's headers as they are, and Cloud Run
                # continues the trace its traceparent names
                # (https://cloud.google.com/run/docs/trace).
                headers={
                    "Content-Type": "application/json",
                    **propagation_headers(active_trace()),
                },
                body=body,
                oidc_token=tasks_v2.OidcToken(
                    service_account_email=settings.invoker_email,
                    audience=settings.oidc_audience,
                ),
            ),
            dispatch_deadline=dispatch_deadline(settings.request_timeout_seconds),
        )
        if dedup_key is not None:
            task.name = f"{self.path}/tasks/{self.task_id(task_name, dedup_key)}"
        if delay:
            task.schedule_time = datetime.now(UTC) + delay
        size = tasks_v2.Task.pb(task).ByteSize()
        if size > MAX_TASK_BYTES:
            raise TaskTooLarge(
                f"Task {task_name!r} is {size} bytes; Cloud Tasks takes at most "
                f"{MAX_TASK_BYTES} bytes (100 KB, CreateTask's documented limit). Store "
                "the data elsewhere (Cloud Storage, a database) and defer its key."
            )
        # Transient failures are retried with backoff; a retry after a lost
        # response may meet ALREADY_EXISTS for the task the first try created.
        policy = retry_async.AsyncRetry(
            predicate=retry_async.if_exception_type(
                exceptions.ServiceUnavailable, exceptions.DeadlineExceeded
            ),
            initial=0.1,
            maximum=5.0,
            multiplier=2.0,
            timeout=settings.tasks_enqueue_timeout_seconds,
        )
        client = await self.client()
        try:
            created = await client.create_task(
                parent=self.path, task=task, retry=policy, timeout=10.0
            )
        except exceptions.AlreadyExists:
            logger.info("Task %s is already queued", task.name, extra={"task": task_name})
            return Enqueued(name=task.name, already_queued=True)
        except (exceptions.GoogleAPICallError, exceptions.RetryError) as error:
            raise EnqueueError(
                f"Could not enqueue task {task_name!r} on queue {self.path}: {error}"
            ) from error
        return Enqueued(name=created.name)


def _new_client(settings: Settings) -> "CloudTasksAsyncClient":
    """The official client; an insecure channel to the emulator host if one is set."""
    from google.cloud.tasks_v2 import CloudTasksAsyncClient

    if not settings.cloud_tasks_emulator_host:
        return CloudTasksAsyncClient()
    import grpc
    from google.cloud.tasks_v2.services.cloud_tasks.transports import (
        CloudTasksGrpcAsyncIOTransport,
    )

    channel = grpc.aio.insecure_channel(settings.cloud_tasks_emulator_host)
    return CloudTasksAsyncClient(transport=CloudTasksGrpcAsyncIOTransport(channel=channel))


class Queue(Protocol):
    """Where `.defer()` sends tasks: `TaskQueue` on Cloud Tasks, or a test's
    stand-in that records them (passed to `create_app(queue=...)`)."""

    async def enqueue(
        self,
        task_name: str,
        body: bytes,
        *,
        delay: timedelta | None = None,
        dedup_key: str | None = None,
    ) -> Enqueued: ...


_current: Queue | None = None


def current_queue() -> Queue:
    if _current is None:
        raise RuntimeError("Cloud Tasks is not set up: the app's lifespan opens the queue")
    return _current


async def _warm_up(queue: TaskQueue, listening: asyncio.Event | None) -> None:
    # Not before the server listens: the import holds the GIL for about half a
    # second, and would delay the instance's first response (Cloud Run's
    # startup probe) rather than its first `.defer()`.
    if listening is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listening.wait(), WARM_UP_WAIT_SECONDS)
    try:
        await queue.client()
    except EnqueueError as error:
        logger.warning("Cloud Tasks client not ready: %s", error)


@asynccontextmanager
async def task_queue(
    settings: Settings, queue: Queue | None = None, *, listening: asyncio.Event | None = None
) -> AsyncIterator[Queue]:
    """Open the process's queue for the app's lifetime, Cloud Tasks unless
    `queue` is given; close its client after.

    The client warms up once `listening` is set (the server accepts
    connections), or `WARM_UP_WAIT_SECONDS` after startup if nothing sets it."""
    global _current
    if queue is not None:
        _current = queue
        try:
            yield queue
        finally:
            _current = None
        return
    cloud_tasks = TaskQueue(settings)
    _current = cloud_tasks
    # Create the client in the background, so the first `.defer()` is fast and
    # startup does not wait for it (unless TASKS_WARM_UP is off).
    warm_up = (
        asyncio.create_task(_warm_up(cloud_tasks, listening)) if settings.tasks_warm_up else None
    )
    try:
        yield cloud_tasks
    finally:
        if warm_up is not None:
            warm_up.cancel()
            await asyncio.gather(warm_up, return_exceptions=True)
        await cloud_tasks.close()
        _current = None
