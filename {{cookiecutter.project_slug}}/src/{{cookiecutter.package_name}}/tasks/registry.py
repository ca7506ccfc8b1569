"""Named, typed task handlers and `.defer()`.

A task is an async function taking a Pydantic payload and a `TaskContext`,
then any FastAPI dependencies it needs, as a route would declare them:

    @task("send-invoice")
    async def send_invoice(
        payload: Invoice, context: TaskContext, settings: SettingsDep, billing: BillingDep
    ) -> None: ...

The push endpoint resolves those dependencies for each delivery, exactly as
for a request (push.py), so a handler reaches settings, secrets and the
clients the lifespan owns the same way a route does.

Handlers must be idempotent: Cloud Tasks delivers at least once, and retries
a delivery whose response was lost.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast, get_type_hints

from pydantic import BaseModel

from .client import Enqueued, current_queue

logger = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)
Dependencies = ParamSpec("Dependencies")


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What Cloud Tasks says about this delivery (its `X-CloudTasks-*` headers).

    `retry_count` counts earlier attempts, `execution_count` earlier attempts
    that reached a handler: use them, with `task_name`, to stay idempotent.
    """

    task_name: str
    queue_name: str
    retry_count: int
    execution_count: int
    eta: datetime | None


Handler = Callable[Concatenate[P, TaskContext, Dependencies], Awaitable[None]]


class Task(Generic[P, Dependencies]):
    """A registered handler; `defer()` enqueues a call to it."""

    def __init__(self, name: str, payload_type: type[P], handler: Handler[P, Dependencies]) -> None:
        self.name = name
        self.payload_type = payload_type
        self.handler = handler

    async def defer(
        self,
        payload: P,
        *,
        delay: timedelta | None = None,
        dedup_key: str | None = None,
    ) -> Enqueued:
        """Enqueue this task with `payload`, to run after `delay`.

        Tasks with the same `dedup_key` run once (Cloud Tasks refuses a second
        task of the same name for about an hour after the first).
        """
        body = payload.model_dump_json().encode()
        return await current_queue().enqueue(self.name, body, delay=delay, dedup_key=dedup_key)


_tasks: dict[str, Task[Any, Any]] = {}


def task(
    name: str,
) -> Callable[[Handler[P, Dependencies]], Task[P, Dependencies]]:
    """Register an async handler under `name` (its URL: `/_tasks/<name>`).

    The payload type is read from the handler's first parameter annotation;
    the second is the `TaskContext`; the rest are FastAPI dependencies.
    """

    def register(handler: Handler[P, Dependencies]) -> Task[P, Dependencies]:
        hints = [value for key, value in get_type_hints(handler).items() if key != "return"]
        payload_type = hints[0] if hints else None
        if not (isinstance(payload_type, type) and issubclass(payload_type, BaseModel)):
            raise TypeError(f"task {name!r}: annotate the payload as a Pydantic model")
        if len(hints) < 2 or hints[1] is not TaskContext:
            raise TypeError(f"task {name!r}: the second parameter is the TaskContext")
        if name in _tasks:
            raise ValueError(f"task {name!r} is registered twice")
        registered: Task[P, Dependencies] = Task(name, cast("type[P]", payload_type), handler)
        _tasks[name] = registered
        return registered

    return register


def registered_tasks() -> Mapping[str, Task[Any, Any]]:
    """Every task registered so far, by name."""
    return dict(_tasks)
