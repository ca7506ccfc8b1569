"""Tasks that run on a schedule: Cloud Scheduler calls their push endpoint.

    @scheduled("nightly-report", cron="0 3 * * *", time_zone="Europe/Berlin",
               payload=Report(days=1))
    @task("send-report")
    async def send_report(payload: Report, context: TaskContext) -> None: ...

A schedule is declared in code, next to its task, and each one becomes a
Cloud Scheduler job (deploy/terraform/modules/service/scheduler.tf) that
POSTs its payload to `/_tasks/<task>` with an OIDC token for the invoker
account, as Cloud Tasks does: the push endpoint verifies both alike
(https://cloud.google.com/scheduler/docs/http-target-auth).

Terraform cannot import Python, so `make schedules` writes the declarations
to `deploy/schedules.json`, a committed file that Terraform reads and that
`make dev` fires locally; a test fails while it is out of step with the code.
A schedule change is then reviewed as a diff of that file, next to the code.

Cloud Scheduler runs a job at least once per schedule time and retries a
failed attempt by the job's retry config, so handlers must be idempotent, as
every task's must.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from zoneinfo import available_timezones

from pydantic import BaseModel

from .registry import Task

P = TypeVar("P", bound=BaseModel)
Dependencies = ParamSpec("Dependencies")

# Cloud Scheduler's unix-cron fields, their bounds and names
# (https://cloud.google.com/scheduler/docs/configuring/cron-job-schedules).
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of the month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                      "NOV", "DEC")),
    ("day of the week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)  # fmt: skip
_PART = re.compile(r"(?P<range>\*|(?P<low>\w+)(?:-(?P<high>\w+))?)(?:/(?P<step>\d+))?")
# Part of a Cloud Scheduler job ID, which allows letters, digits, hyphens and
# underscores up to 500 characters
# (https://cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs#Job).
_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")


class InvalidSchedule(ValueError):
    """A schedule declaration Cloud Scheduler would refuse; the message says which and why."""


def check_cron(cron: str) -> None:
    """Raise `InvalidSchedule` unless `cron` is five unix-cron fields as Cloud
    Scheduler reads them: numbers or names, `*`, ranges, steps and lists."""
    fields = cron.split()
    if len(fields) != len(_FIELDS):
        raise InvalidSchedule(
            f"cron {cron!r} has {len(fields)} fields; Cloud Scheduler takes 5: "
            "minute hour day-of-month month day-of-week"
        )
    for text, (field, low, high, names) in zip(fields, _FIELDS, strict=True):
        for part in text.split(","):
            match = _PART.fullmatch(part)
            if match is None:
                raise InvalidSchedule(f"cron {cron!r}: {part!r} is not a valid {field}")
            bounds = [
                _value(match.group(name), field, low, high, names, cron)
                for name in ("low", "high")
                if match.group(name) is not None
            ]
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                raise InvalidSchedule(f"cron {cron!r}: the {field} range {part!r} runs backwards")
            if match.group("step") is not None and int(match.group("step")) == 0:
                raise InvalidSchedule(f"cron {cron!r}: a step of 0 in the {field} never advances")


def _value(text: str, field: str, low: int, high: int, names: tuple[str, ...], cron: str) -> int:
    if text.upper() in names:
        return names.index(text.upper()) + (low if field == "month" else 0)
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidSchedule(f"cron {cron!r}: {text!r} is not a valid {field} ({low}-{high})")
    return int(text)


def check_time_zone(time_zone: str) -> None:
    """Cloud Scheduler takes a name from the tz database, such as Europe/Berlin
    (https://cloud.google.com/scheduler/docs/configuring/cron-job-schedules#time_zone).

    Checked when the schedules are written for Terraform, not at import: the
    service's image need not carry the tz database to serve.
    """
    if time_zone not in available_timezones():
        raise InvalidSchedule(
            f"time zone {time_zone!r} is not a tz database name such as 'Europe/Berlin' or "
            "'Etc/UTC'"
        )


@dataclass(frozen=True, slots=True)
class Schedule:
    """One Cloud Scheduler job: run `task` with `body` at each `cron` time in `time_zone`."""

    name: str
    task: str
    cron: str
    time_zone: str
    body: str

    def as_json(self) -> Mapping[str, Any]:
        return {"task": self.task, "cron": self.cron, "time_zone": self.time_zone,
                "body": self.body}  # fmt: skip


_schedules: dict[str, Schedule] = {}


def scheduled(
    name: str, *, cron: str, time_zone: str, payload: BaseModel
) -> Callable[[Task[P, Dependencies]], Task[P, Dependencies]]:
    """Run the task below at each time `cron` names in `time_zone`, with `payload`.

    Put it above `@task(...)`. `name` is the schedule's own (its job is
    `<service>-<environment>-<name>`); a task may have several schedules.
    A name, cron or payload Cloud Scheduler or the task would refuse is refused
    here, at import; the time zone when `make schedules` writes them out.
    """
    if not _NAME.fullmatch(name):
        raise InvalidSchedule(
            f"schedule name {name!r}: use lowercase letters, digits and hyphens, starting "
            "with a letter, at most 63 characters"
        )
    check_cron(cron)

    def register(task: Task[P, Dependencies]) -> Task[P, Dependencies]:
        if not isinstance(task, Task):
            raise InvalidSchedule(f"schedule {name!r}: put @scheduled above @task(...)")
        if not isinstance(payload, task.payload_type):
            raise InvalidSchedule(
                f"schedule {name!r}: its payload is a {type(payload).__name__}, but task "
                f"{task.name!r} takes a {task.payload_type.__name__}"
            )
        body = payload.model_dump_json()
        if name in _schedules:
            raise InvalidSchedule(f"schedule {name!r} is declared twice")
        _schedules[name] = Schedule(name, task.name, cron, time_zone, body)
        return task

    return register


def declared() -> Mapping[str, Schedule]:
    """Every schedule declared so far, by name (the modules that declare them
    are imported by the app)."""
    return dict(sorted(_schedules.items()))


def manifest() -> dict[str, Mapping[str, Any]]:
    """What `deploy/schedules.json` holds: each schedule's job, by name."""
    schedules = declared()
    for schedule in schedules.values():
        try:
            check_time_zone(schedule.time_zone)
        except InvalidSchedule as error:
            raise InvalidSchedule(f"schedule {schedule.name!r}: {error}") from None
    return {name: schedule.as_json() for name, schedule in schedules.items()}
