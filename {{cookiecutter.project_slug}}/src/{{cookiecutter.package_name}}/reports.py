"""An example of scheduled work: a report sent every night.

Cloud Scheduler runs it at 03:00 Berlin time (its job is made by Terraform
from `deploy/schedules.json`; `make triggers` writes that file from the
`@scheduled` declarations). Replace the body with real work; keep it
idempotent, as Cloud Scheduler may run it twice.
"""

import logging

from pydantic import BaseModel, Field

from .tasks import TaskContext, task
from .tasks.schedules import scheduled

logger = logging.getLogger(__name__)


class Report(BaseModel):
    days: int = Field(ge=1, le=31, description="How many days back the report covers.")


@scheduled("nightly-report", cron="0 3 * * *", time_zone="Europe/Berlin", payload=Report(days=1))
@task("send-report")
async def send_report(payload: Report, context: TaskContext) -> None:
    logger.info("Sent the report", extra={"task": "send-report", "report_days": payload.days})
