"""A local Cloud Scheduler: runs HTTP-target jobs at their cron times.

It runs the jobs that the deployment's Terraform makes from
`deploy/schedules.json` (`jobs_from_schedules`), as Cloud Scheduler documents
them:

- **Schedule**: five unix-cron fields (numbers, `JAN`-`DEC`, `SUN`-`SAT`, 7
  for Sunday, `*`, ranges, steps, lists) read in the job's time zone on
  wall-clock time (https://cloud.google.com/scheduler/docs/configuring/cron-job-schedules).
  When both day fields are restricted, either one matching will do, as in
  unix cron (crontab(5)).
- **The request**: the job's method, URI, body and headers, with
  `User-Agent: Google-Cloud-Scheduler`, `X-CloudScheduler: true`,
  `X-CloudScheduler-JobName` and `X-CloudScheduler-ScheduleTime` (RFC 3339)
  (https://cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs#HttpTarget),
  and for an `oidc_token` `Authorization: Bearer <ID token>` for its service
  account and audience, signed by the local issuer
  (https://cloud.google.com/scheduler/docs/http-target-auth).
- **Attempts**: a 2xx answer within the attempt deadline succeeds; anything
  else is retried `retry_count` times (0 to 5; 0: wait for the next run),
  waiting `min_backoff`, doubled `max_doublings` times, then growing linearly,
  capped at `max_backoff`
  (https://cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs#RetryConfig).
- **Run now**: `POST /v1/<job name>:run` on `url` starts a run at once, as
  Cloud Scheduler's `jobs.run` does
  (https://cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs/run);
  `GET /v1/projects/<p>/locations/<l>/jobs` lists the jobs.

Sub-second backoffs are allowed here, so tests run fast. Everything binds 127.0.0.1.
"""

import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo

import httpx

from .issuer import LocalIssuer
from .lifecycle import LocalServer, QuietHandler, serve_in_background, wait_for_count

_FIELDS = (
    (0, 59, ()),
    (0, 23, ()),
    (1, 31, ()),
    (1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    (0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_PART = re.compile(r"(?:\*|(\w+)(?:-(\w+))?)(?:/(\d+))?")
MAX_RETRY_COUNT = 5
MIN_ATTEMPT_DEADLINE = timedelta(seconds=15)
MAX_ATTEMPT_DEADLINE = timedelta(minutes=30)
DEFAULT_ATTEMPT_DEADLINE = timedelta(minutes=3)


class Cron:
    """A unix-cron schedule: which minutes, hours, days, months and weekdays it runs."""

    def __init__(self, text: str) -> None:
        fields = text.split()
        if len(fields) != len(_FIELDS):
            raise ValueError(f"{text!r}: a schedule has 5 fields, not {len(fields)}")
        self.text = text
        values = [_field(f, *spec) for f, spec in zip(fields, _FIELDS, strict=True)]
        self.minutes, self.hours, self.days, self.months, weekdays = values
        self.weekdays = {day % 7 for day in weekdays}  # 7 is Sunday too
        self.any_day = fields[2] == "*"
        self.any_weekday = fields[4] == "*"

    def matches(self, local: datetime) -> bool:
        if local.minute not in self.minutes or local.hour not in self.hours:
            return False
        return local.month in self.months and self._day_matches(local)

    def _day_matches(self, local: datetime) -> bool:
        day = local.day in self.days
        weekday = (local.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime:
        """The first run strictly after `after` (aware), as an aware UTC time."""
        local = after.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None)
        local += timedelta(minutes=1)
        limit = local + timedelta(days=366 * 5)
        while local < limit:
            if local.month not in self.months or not self._day_matches(local):
                local = (local + timedelta(days=1)).replace(hour=0, minute=0)
            elif local.hour not in self.hours:
                local = (local + timedelta(hours=1)).replace(minute=0)
            elif local.minute not in self.minutes:
                local += timedelta(minutes=1)
            else:
                return local.replace(tzinfo=zone).astimezone(UTC)
        raise ValueError(f"{self.text!r} never runs")


def _field(text: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    def number(value: str) -> int:
        if value.upper() in names:
            return names.index(value.upper()) + (1 if low == 1 else 0)
        if not value.isdigit() or not low <= int(value) <= high:
            raise ValueError(f"{value!r} is not within {low}-{high}")
        return int(value)

    chosen: set[int] = set()
    for part in text.split(","):
        match = _PART.fullmatch(part)
        if match is None:
            raise ValueError(f"{part!r} is not a cron field")
        first, last, step = match.groups()
        start = number(first) if first else low
        end = number(last) if last else (high if first is None or step else start)
        if start > end or (step is not None and int(step) == 0):
            raise ValueError(f"{part!r} is not a range")
        chosen.update(range(start, end + 1, int(step or 1)))
    return chosen


@dataclass(frozen=True)
class RetryConfig:
    retry_count: int = 0
    min_backoff: float = 5.0
    max_backoff: float = 3600.0
    max_doublings: int = 5

    def backoff(self, retries_so_far: int) -> float:
        """Seconds before retry number `retries_so_far + 1`."""
        doublings = min(retries_so_far, self.max_doublings)
        interval = self.min_backoff * float(2**doublings)
        if retries_so_far > self.max_doublings:
            interval *= retries_so_far - self.max_doublings + 1
        return min(interval, self.max_backoff)


@dataclass(frozen=True)
class Job:
    """An HTTP-target job, as Terraform's `google_cloud_scheduler_job` makes it."""

    name: str  # projects/<p>/locations/<l>/jobs/<id>
    schedule: str
    time_zone: str
    uri: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    http_method: str = "POST"
    oidc_service_account: str | None = None
    oidc_audience: str | None = None
    retry: RetryConfig = RetryConfig()
    attempt_deadline: timedelta = DEFAULT_ATTEMPT_DEADLINE

    def __post_init__(self) -> None:
        Cron(self.schedule)  # refuses what Cloud Scheduler would
        ZoneInfo(self.time_zone)
        if not 0 <= self.retry.retry_count <= MAX_RETRY_COUNT:
            raise ValueError(f"retry_count {self.retry.retry_count} is not within 0-5")
        if not MIN_ATTEMPT_DEADLINE <= self.attempt_deadline <= MAX_ATTEMPT_DEADLINE:
            raise ValueError("attempt_deadline must be between 15 seconds and 30 minutes")


@dataclass
class Attempt:
    """One attempt of a run, as the target answered it."""

    job: str
    schedule_time: datetime
    attempt: int
    status: int | None  # None: no HTTP answer (refused, deadline)
    headers: dict[str, str]


def jobs_from_schedules(
    path: Path,
    *,
    parent: str,
    service: str,
    service_url: str,
    invoker: str,
    audience: str,
    retry: RetryConfig = RetryConfig(),
) -> list[Job]:
    """The jobs that deploy/terraform/modules/service/scheduler.tf makes from
    `deploy/schedules.json`: `<service>-<schedule>`, POSTing the body as JSON
    to the task's push endpoint with an ID token for the invoker."""
    schedules: dict[str, dict[str, str]] = json.loads(path.read_text())
    return [
        Job(
            name=f"{parent}/jobs/{service}-{name}",
            schedule=entry["cron"],
            time_zone=entry["time_zone"],
            uri=f"{service_url.rstrip('/')}/_tasks/{entry['task']}",
            body=entry["body"].encode(),
            headers={"Content-Type": "application/json"},
            oidc_service_account=invoker,
            oidc_audience=audience,
            retry=retry,
        )
        for name, entry in sorted(schedules.items())
    ]


class LocalCloudScheduler(LocalServer):
    def __init__(self, jobs: list[Job], *, issuer: LocalIssuer) -> None:
        self.jobs = {job.name: job for job in jobs}
        self.issuer = issuer
        self.attempts: list[Attempt] = []
        self._changed = threading.Condition()
        self._stopping = False
        self._http = httpx.Client()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local Cloud Scheduler is not running: start() it")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def next_runs(self, after: datetime | None = None) -> dict[str, datetime]:
        now = after or datetime.now(UTC)
        return {
            name: Cron(job.schedule).next_after(now, ZoneInfo(job.time_zone))
            for name, job in self.jobs.items()
        }

    def run(self, name: str, schedule_time: datetime | None = None) -> None:
        """Start a run of the job now, in the background (`jobs.run`)."""
        job = self.jobs[name]
        when = schedule_time or datetime.now(UTC)
        threading.Thread(target=self._run, args=(job, when), daemon=True).start()

    def _run(self, job: Job, schedule_time: datetime) -> None:
        for attempt in range(1, job.retry.retry_count + 2):
            headers = {
                **job.headers,
                "User-Agent": "Google-Cloud-Scheduler",
                "X-CloudScheduler": "true",
                "X-CloudScheduler-JobName": job.name.rsplit("/", 1)[-1],
                "X-CloudScheduler-ScheduleTime": schedule_time.isoformat().replace("+00:00", "Z"),
            }
            if job.oidc_service_account:
                token = self.issuer.token(job.oidc_service_account, job.oidc_audience or job.uri)
                headers["Authorization"] = f"Bearer {token}"
            status: int | None
            try:
                status = self._http.request(
                    job.http_method,
                    job.uri,
                    headers=headers,
                    content=job.body,
                    timeout=job.attempt_deadline.total_seconds(),
                ).status_code
            except httpx.HTTPError:
                status = None
            with self._changed:
                self.attempts.append(Attempt(job.name, schedule_time, attempt, status, headers))
                self._changed.notify_all()
            if status is not None and 200 <= status < 300:
                return
            if self._stopping:
                return
            time.sleep(job.retry.backoff(attempt - 1))

    def _clock(self) -> None:
        due = self.next_runs()
        while True:
            with self._changed:
                name = min(due, key=lambda n: due[n]) if due else None
                wait = (due[name] - datetime.now(UTC)).total_seconds() if name else None
                if not self._stopping and (wait is None or wait > 0):
                    self._changed.wait(wait)
                if self._stopping:
                    return
            if name is not None and due[name] <= datetime.now(UTC):
                self.run(name, due[name])
                due[name] = self.next_runs(due[name])[name]

    def wait_for_attempts(self, count: int, timeout: float = 20.0) -> list[Attempt]:
        return wait_for_count(self._changed, self.attempts, count, timeout, "attempts made")

    def start(self) -> Self:
        scheduler = self

        class Api(QuietHandler):
            def do_GET(self) -> None:
                parent = self.path.removeprefix("/v1/") + "/"
                jobs = [
                    {"name": name, "schedule": job.schedule, "timeZone": job.time_zone}
                    for name, job in scheduler.jobs.items()
                    if name.startswith(parent)
                ]
                self._answer(200, {"jobs": jobs})

            def do_POST(self) -> None:
                name = self.path.removeprefix("/v1/").removesuffix(":run")
                if not self.path.endswith(":run") or name not in scheduler.jobs:
                    self._answer(404, {"error": {"code": 404, "status": "NOT_FOUND",
                                                 "message": f"Job not found: {name}"}})  # fmt: skip
                    return
                scheduler.run(name)
                self._answer(200, {"name": name, "state": "ENABLED"})

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
        serve_in_background(self._server)
        threading.Thread(target=self._clock, daemon=True).start()
        return self

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._http.close()
