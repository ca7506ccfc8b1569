"""Deferred work on Cloud Tasks.

Cloud Run may stop giving an instance CPU once a response is sent
(https://cloud.google.com/run/docs/tips/general#avoiding_background_activities),
so work that must outlive the request is not run in `BackgroundTasks` or a
stray coroutine. It is enqueued on Cloud Tasks, which calls this service back
on its push endpoint, retries failures with backoff, and deduplicates by name.

    @task("send-welcome-email")
    async def send_welcome_email(payload: WelcomeEmail, context: TaskContext) -> None: ...

    await send_welcome_email.defer(WelcomeEmail(...), dedup_key=user_id)
"""

from .client import Enqueued
from .registry import TaskContext, task

__all__ = ["Enqueued", "TaskContext", "task"]
