"""End to end: the local Cloud Scheduler runs the committed schedules against
the service deployed behind the Cloud Run front end, as Terraform's jobs do.

The service is started once for the module; each test makes its own jobs."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from local_google.cloud_run import LocalCloudRun
from local_google.cloud_scheduler import Job, LocalCloudScheduler, RetryConfig, jobs_from_schedules
from local_google.issuer import LocalIssuer

from ..serving import PROJECT_ROOT, FrontedService, ServerProcess, behind_front_end, start_test
from ..tasks.conftest import log_entries, wait_until

PROJECT = "test-project"
PARENT = f"projects/{PROJECT}/locations/europe-west3"
INVOKER = f"tasks-invoker@{PROJECT}.iam.gserviceaccount.com"
SERVICE = "my-service-dev"
RETRY = RetryConfig(retry_count=2, min_backoff=0.05, max_backoff=0.2, max_doublings=2)


@dataclass
class Deployment:
    service: ServerProcess
    front_end: LocalCloudRun
    scheduler: LocalCloudScheduler


@pytest.fixture(scope="module")
def private_service() -> Iterator[FrontedService]:
    with behind_front_end(public=False, invoker=INVOKER) as service:
        yield service


@pytest.fixture
def service(private_service: FrontedService) -> FrontedService:
    """The service as a new test finds it (see serving.start_test)."""
    start_test(private_service.front_end, private_service.process)
    return private_service


@contextmanager
def deployed(service: FrontedService, audience: str | None = None) -> Iterator[Deployment]:
    """The service and the jobs made from deploy/schedules.json (their tokens
    for `audience`, by default the service's)."""
    jobs = jobs_from_schedules(
        PROJECT_ROOT / "deploy" / "schedules.json",
        parent=PARENT,
        service=SERVICE,
        service_url=service.front_end.url,
        invoker=INVOKER,
        audience=audience or service.front_end.url,
        retry=RETRY,
    )
    with LocalCloudScheduler(jobs, issuer=service.issuer) as scheduler:
        yield Deployment(service.process, service.front_end, scheduler)


def reports_sent(service: ServerProcess) -> list[dict[str, object]]:
    return [e for e in log_entries(service) if e.get("message") == "Sent the report"]


def test_a_scheduled_task_runs_on_the_authenticated_push_endpoint(service: FrontedService) -> None:
    with deployed(service) as deployment:
        job = f"{PARENT}/jobs/{SERVICE}-nightly-report"
        assert set(deployment.scheduler.jobs) == {job}

        deployment.scheduler.run(job)

        (attempt,) = deployment.scheduler.wait_for_attempts(1)
        assert attempt.status == 200
        wait_until(lambda: reports_sent(deployment.service))
        (report,) = reports_sent(deployment.service)
        assert report["report_days"] == 1
        (forwarded,) = deployment.front_end.log.forwarded
        assert forwarded.path == "/_tasks/send-report"
        assert forwarded.headers["x-cloudscheduler"] == "true"
        assert forwarded.headers["x-cloudscheduler-jobname"] == f"{SERVICE}-nightly-report"
        assert forwarded.headers["authorization"].endswith(".SIGNATURE_REMOVED_BY_GOOGLE")


def test_a_job_with_a_token_for_another_audience_is_refused_and_retried(
    service: FrontedService,
) -> None:
    """Cloud Run's front end refuses it (401): the job retries as its retry
    config says, then waits for its next time; the task never runs."""
    with deployed(service, audience="https://another-service.example") as deployment:
        (job,) = deployment.scheduler.jobs

        deployment.scheduler.run(job)

        attempts = deployment.scheduler.wait_for_attempts(RETRY.retry_count + 1)
        assert [a.status for a in attempts] == [401] * (RETRY.retry_count + 1)
        assert reports_sent(deployment.service) == []


def test_a_job_runs_at_its_times_by_its_clock() -> None:
    """The clock `make dev` relies on: each job's next run, in its time zone."""
    job = Job(
        name=f"{PARENT}/jobs/every-minute", schedule="* * * * *", time_zone="Asia/Kolkata",
        uri="http://127.0.0.1:9/",
    )  # fmt: skip
    now = datetime.now(UTC)
    with LocalIssuer() as issuer, LocalCloudScheduler([job], issuer=issuer) as scheduler:
        (due,) = scheduler.next_runs(now).values()
    # Kolkata is UTC+05:30: its whole minutes are UTC's too.
    assert (due.second, due.microsecond) == (0, 0)
    assert 0 < (due - now).total_seconds() <= 60
