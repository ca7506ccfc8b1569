"""The push endpoint Cloud Tasks calls: `POST /_tasks/<name>`.

Its status codes are what the queue acts on
(https://cloud.google.com/tasks/docs/creating-http-target-tasks#handler):

- 2xx acknowledges: the task is done and leaves the queue.
- A handler that raises answers 500, so the queue retries with its backoff,
  up to the queue's retry limits. Handlers must therefore be idempotent.
- An unknown task name or a payload that does not validate is logged and
  acknowledged (200, `discarded`): retrying cannot fix it, and an endless
  retry would only hide it. The log line is the place to notice it.
- A missing or invalid token answers 401, a genuine token of another caller
  403; no handler runs.

Each task is a route of its own, built when the app is (`task_router()`), so
FastAPI resolves a handler's dependencies for each delivery as for a request.
None of them is in the OpenAPI schema: they are for Cloud Tasks, not callers.
"""

import inspect
import logging
import math
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_type_hints

from fastapi import APIRouter, Depends, HTTPException, Request, status
from opentelemetry import trace as otel_trace
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers

from ..logs import cap
from .auth import CertificatesUnavailable, ForbiddenToken, InvalidToken, OidcVerifier
from .client import PUSH_PATH
from .registry import Task, TaskContext, registered_tasks

logger = logging.getLogger(__name__)
_tracer = otel_trace.get_tracer(__name__)

_COUNT = re.compile(r"[0-9]{1,9}")
_LAST_TIMESTAMP = datetime(9999, 12, 31, tzinfo=UTC).timestamp()


class TaskOutcome(BaseModel):
    status: Literal["done", "discarded"]


async def authenticated(request: Request) -> None:
    """Only Cloud Tasks, with our invoker's token, gets past (see auth.py)."""
    verifier = cast("OidcVerifier", request.app.state.task_verifier)
    try:
        await verifier.verify(
            request.headers.get("authorization"),
            serverless_authorization=request.headers.get("x-serverless-authorization"),
        )
    except InvalidToken as error:
        logger.warning("Rejected a task push: %s", cap(str(error)))
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or missing token",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    except ForbiddenToken as error:
        logger.warning("Rejected a task push: %s", cap(str(error)))
        raise HTTPException(status.HTTP_403_FORBIDDEN, "caller may not run tasks") from None
    except CertificatesUnavailable as error:
        # Not the caller's fault: answer so that the queue retries later.
        logger.error("Cannot verify task pushes: %s", error)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "cannot verify tokens right now"
        ) from None


def task_context(headers: Headers, name: str) -> TaskContext:
    """The delivery's `X-CloudTasks-*` headers; a value out of shape reads as absent."""

    def number(header: str) -> int:
        value = headers.get(header, "0")
        return int(value) if _COUNT.fullmatch(value) else 0

    when = None
    try:
        eta = float(headers.get("x-cloudtasks-tasketa", "nan"))
    except ValueError:
        eta = math.nan
    if 0 <= eta <= _LAST_TIMESTAMP:  # False for NaN and infinities
        when = datetime.fromtimestamp(eta, UTC)
    return TaskContext(
        task_name=cap(headers.get("x-cloudtasks-taskname", name), 500),
        queue_name=cap(headers.get("x-cloudtasks-queuename", ""), 100),
        retry_count=number("x-cloudtasks-taskretrycount"),
        execution_count=number("x-cloudtasks-taskexecutioncount"),
        eta=when,
    )


def task_router() -> APIRouter:
    """The push endpoint: a route for each task registered so far (import the
    modules that define tasks before building the app), and one that
    acknowledges pushes for any other name."""
    router = APIRouter(
        prefix=PUSH_PATH, dependencies=[Depends(authenticated)], include_in_schema=False
    )
    for name, registered in registered_tasks().items():
        router.add_api_route(f"/{name}", _endpoint(registered), methods=["POST"])
    router.add_api_route("/{name}", _unknown_task, methods=["POST"])
    return router


async def _unknown_task(name: str) -> TaskOutcome:
    logger.error("Discarded a push for unknown task %r", cap(name), extra={"task": cap(name)})
    return TaskOutcome(status="discarded")


def _endpoint(task: Task[Any, Any]) -> Callable[..., Awaitable[TaskOutcome]]:
    """A route that runs `task`: FastAPI resolves the handler's own
    dependencies (its parameters after the payload and the context)."""
    hints = get_type_hints(task.handler, include_extras=True)
    _payload, _context, *dependencies = inspect.signature(task.handler).parameters.values()
    name = task.name

    async def run(request: Request, **resolved: Any) -> TaskOutcome:
        try:
            payload = task.payload_type.model_validate_json(await request.body())
        except ValidationError as error:
            logger.error(
                "Discarded task %r: invalid payload: %s",
                name,
                error.errors(include_url=False, include_input=False),
                extra={"task": name},
            )
            return TaskOutcome(status="discarded")
        context = task_context(request.headers, name)
        try:
            with _tracer.start_as_current_span(
                f"run task {name}",
                kind=otel_trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "gcp_cloud_tasks",
                    "messaging.message.id": context.task_name,
                },
            ):
                await task.handler(payload, context, **resolved)
        except Exception:
            logger.exception(
                "Task %r failed on attempt %d; Cloud Tasks will retry it",
                name,
                context.retry_count + 1,
                extra={"task": name, "task_name": context.task_name},
            )
            raise HTTPException(
                status.HTTP_500_INTERNAL_SERVER_ERROR, "task failed; the queue will retry it"
            ) from None
        return TaskOutcome(status="done")

    request_parameter = inspect.Parameter(
        "request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request
    )
    run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            request_parameter,
            *(
                parameter.replace(
                    kind=inspect.Parameter.KEYWORD_ONLY,
                    annotation=hints.get(parameter.name, parameter.annotation),
                )
                for parameter in dependencies
            ),
        ],
        return_annotation=TaskOutcome,
    )
    run.__name__ = f"run_{name.replace('-', '_')}"
    return run
