"""An example of deferred work: accept a sign-up now, welcome the user later.

The route answers 202 as soon as the task is queued; Cloud Tasks then calls
`send_welcome_email` through the push endpoint, retrying it until it succeeds.
Replace the body of the handler with a real email provider call.
"""

import logging
from typing import Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from ..dependencies import SettingsDep
from ..tasks import TaskContext, task
from ..tasks.client import EnqueueError

logger = logging.getLogger(__name__)

router = APIRouter(tags=["signups"])


class Signup(BaseModel):
    # A shape check only (the email provider is the real judge); written without
    # \s or ., which JSON Schema and Python's regular expressions read differently.
    email: str = Field(pattern=r"^[^@]+@[^@]+[.][^@]+$", max_length=254)
    name: str = Field(min_length=1, max_length=100)


class SignupAccepted(BaseModel):
    status: Literal["queued", "already_queued"]


class WelcomeEmail(BaseModel):
    email: str
    name: str


@task("send-welcome-email")
async def send_welcome_email(
    payload: WelcomeEmail, context: TaskContext, settings: SettingsDep
) -> None:
    """Idempotent as a real one must be: a provider call keyed by
    `context.task_name` (most providers accept an idempotency key) sends once
    even when Cloud Tasks delivers twice. Its dependencies (here the settings)
    come as a route's would."""
    logger.info(
        "Sent welcome email",
        extra={
            "task": "send-welcome-email",
            "task_name": context.task_name,
            "attempt": context.retry_count + 1,
            "recipient_name": payload.name,
            "environment": settings.environment.value,
        },
    )


@router.post(
    "/signups",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        status.HTTP_400_BAD_REQUEST: {"description": "The body is not JSON"},
        status.HTTP_503_SERVICE_UNAVAILABLE: {"description": "Could not queue the work"},
    },
)
async def create_signup(signup: Signup) -> SignupAccepted:
    try:
        queued = await send_welcome_email.defer(
            WelcomeEmail(email=signup.email, name=signup.name),
            dedup_key=signup.email.lower(),
        )
    except EnqueueError:
        logger.exception("Could not queue the welcome email")
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "could not queue the work; try again"
        ) from None
    return SignupAccepted(status="already_queued" if queued.already_queued else "queued")
