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
"""

import logging
import math
import re
from datetime import UTC, datetime
from typing import Literal, cast

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers

from ..logs import cap
from .auth import CertificatesUnavailable, ForbiddenToken, InvalidToken, OidcVerifier
from .client import PUSH_PATH
from .registry import TaskContext, registered

logger = logging.getLogger(__name__)

router = APIRouter(prefix=PUSH_PATH, tags=["tasks"])


class TaskOutcome(BaseModel):
    status: Literal["done", "discarded"]


class ErrorDetail(BaseModel):
    detail: str


async def authenticated(request: Request) -> None:
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


_COUNT = re.compile(r"[0-9]{1,9}")
_LAST_TIMESTAMP = datetime(9999, 12, 31, tzinfo=UTC).timestamp()


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


@router.post(
    "/{name}",
    summary="Run a deferred task (called by Cloud Tasks)",
    dependencies=[Depends(authenticated)],
    responses={
        status.HTTP_401_UNAUTHORIZED: {"model": ErrorDetail},
        status.HTTP_403_FORBIDDEN: {"model": ErrorDetail},
        status.HTTP_500_INTERNAL_SERVER_ERROR: {"model": ErrorDetail},
        status.HTTP_503_SERVICE_UNAVAILABLE: {"model": ErrorDetail},
    },
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
async def run_task(name: str, request: Request) -> TaskOutcome:
    task = registered(name)
    if task is None:
        logger.error("Discarded a push for unknown task %r", cap(name), extra={"task": cap(name)})
        return TaskOutcome(status="discarded")
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
        await task(payload, context)
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
