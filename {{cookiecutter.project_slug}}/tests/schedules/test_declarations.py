"""Schedule declarations: what Cloud Scheduler would refuse is refused at
once, with a message that says why, and the file Terraform reads is in step
with the code."""

import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from local_google.cloud_scheduler import Cron
from pydantic import BaseModel

from {{ cookiecutter.package_name }}.tasks import TaskContext, schedules, task
from {{ cookiecutter.package_name }}.tasks.registry import Task
from {{ cookiecutter.package_name }}.tasks.schedules import InvalidSchedule, scheduled

from ..serving import PROJECT_ROOT


class Sweep(BaseModel):
    older_than_days: int


class Other(BaseModel):
    pass


# A task with no dependencies beyond its payload and context.
SweepTask = Task[Sweep, []]


@pytest.fixture(autouse=True)
def own_schedules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test declares into an empty registry of its own."""
    monkeypatch.setattr(schedules, "_schedules", {})


@pytest.fixture(scope="module")
def sweep() -> SweepTask:
    async def handler(payload: Sweep, context: TaskContext) -> None:
        pass

    return task("test-sweep")(handler)


def test_a_declaration_is_what_terraform_gets(sweep: SweepTask) -> None:
    scheduled(
        "weekday-sweep", cron="30 6 * * MON-FRI", time_zone="Europe/Berlin",
        payload=Sweep(older_than_days=7),
    )(sweep)  # fmt: skip

    assert schedules.manifest() == {
        "weekday-sweep": {
            "task": "test-sweep",
            "cron": "30 6 * * MON-FRI",
            "time_zone": "Europe/Berlin",
            "body": '{"older_than_days":7}',
        }
    }


VALID_CRONS = ["* * * * *", "*/15 * * * *", "0 9 * * MON-FRI", "0 0 1 JAN,JUL *", "0 0 * * 7",
               "5-55/10 8-18 1,15 * sun", "0 3 * * *"]  # fmt: skip
# A cron Cloud Scheduler refuses, and what the error says.
INVALID_CRONS = {
    "0 3 * *": "has 4 fields; Cloud Scheduler takes 5",
    "0 3 * * * *": "has 6 fields",
    "60 * * * *": "'60' is not a valid minute (0-59)",
    "0 24 * * *": "'24' is not a valid hour (0-23)",
    "0 0 0 * *": "'0' is not a valid day of the month (1-31)",
    "0 0 * 13 *": "'13' is not a valid month (1-12)",
    "0 0 * * 8": "'8' is not a valid day of the week (0-7)",
    "0 0 * * FUNDAY": "'FUNDAY' is not a valid day of the week",
    "0 18-9 * * *": "the hour range '18-9' runs backwards",
    "*/0 * * * *": "a step of 0 in the minute never advances",
    "0 3 L * *": "'L' is not a valid day of the month",
    "@daily": "has 1 fields",
    "every 5 minutes": "has 3 fields",
}


@pytest.mark.parametrize("cron", VALID_CRONS)
def test_cloud_scheduler_crons_are_accepted(sweep: SweepTask, cron: str) -> None:
    scheduled("sweep", cron=cron, time_zone="Etc/UTC", payload=Sweep(older_than_days=1))(sweep)
    Cron(cron)  # and the local Cloud Scheduler reads them


@pytest.mark.parametrize("cron", sorted(INVALID_CRONS))
def test_a_cron_cloud_scheduler_refuses_is_refused(cron: str) -> None:
    with pytest.raises(InvalidSchedule, match=re.escape(INVALID_CRONS[cron])):
        scheduled("sweep", cron=cron, time_zone="Etc/UTC", payload=Sweep(older_than_days=1))
    with pytest.raises(ValueError, match=r"."):
        Cron(cron)  # the local Cloud Scheduler refuses them too


@pytest.mark.parametrize(
    ("name", "error"),
    [("Nightly", "lowercase letters"), ("2am", "starting with a letter"),
     ("a" * 64, "at most 63"), ("night_ly", "hyphens")],
)  # fmt: skip
def test_a_schedule_name_that_cannot_name_a_job_is_refused(name: str, error: str) -> None:
    with pytest.raises(InvalidSchedule, match=error):
        scheduled(name, cron="0 3 * * *", time_zone="Etc/UTC", payload=Sweep(older_than_days=1))


def test_a_payload_the_task_does_not_take_is_refused(sweep: SweepTask) -> None:
    declare = scheduled("sweep", cron="0 3 * * *", time_zone="Etc/UTC", payload=Other())
    with pytest.raises(InvalidSchedule, match="payload is a Other, but task 'test-sweep' takes"):
        declare(sweep)


def test_scheduled_goes_above_task() -> None:
    async def handler(payload: Sweep, context: TaskContext) -> None:
        pass

    payload = Sweep(older_than_days=1)
    declare = scheduled("sweep", cron="0 3 * * *", time_zone="Etc/UTC", payload=payload)
    with pytest.raises(InvalidSchedule, match="put @scheduled above @task"):
        declare(handler)  # type: ignore[arg-type]


def test_a_schedule_name_is_declared_once(sweep: SweepTask) -> None:
    payload = Sweep(older_than_days=1)
    scheduled("sweep", cron="0 3 * * *", time_zone="Etc/UTC", payload=payload)(sweep)
    with pytest.raises(InvalidSchedule, match="'sweep' is declared twice"):
        scheduled("sweep", cron="0 4 * * *", time_zone="Etc/UTC", payload=payload)(sweep)


@pytest.mark.parametrize("time_zone", ["Europe/Berlinn", "CEST", "+02:00", "../etc/passwd", ""])
def test_a_time_zone_outside_the_tz_database_is_refused(sweep: SweepTask, time_zone: str) -> None:
    payload = Sweep(older_than_days=1)
    scheduled("sweep", cron="0 3 * * *", time_zone=time_zone, payload=payload)(sweep)
    with pytest.raises(InvalidSchedule, match=r"schedule 'sweep': time zone .* is not a tz"):
        schedules.manifest()


def test_runs_follow_wall_clock_time_in_the_time_zone() -> None:
    """03:00 in Berlin is 02:00 UTC in winter and 01:00 UTC from the last
    Sunday of March (2026-03-29), as Cloud Scheduler runs on wall-clock time."""
    berlin = ZoneInfo("Europe/Berlin")
    nightly = Cron("0 3 * * *")
    assert nightly.next_after(datetime(2026, 3, 27, 12, tzinfo=UTC), berlin) == datetime(
        2026, 3, 28, 2, tzinfo=UTC
    )
    assert nightly.next_after(datetime(2026, 3, 28, 12, tzinfo=UTC), berlin) == datetime(
        2026, 3, 29, 1, tzinfo=UTC
    )
    # Both day fields restricted: either will do, as in unix cron.
    friday_or_13th = Cron("0 0 13 * FRI")
    after = datetime(2026, 2, 1, tzinfo=UTC)
    utc = ZoneInfo("Etc/UTC")
    assert friday_or_13th.next_after(after, utc) == datetime(2026, 2, 6, tzinfo=UTC)  # a Friday
    assert friday_or_13th.next_after(datetime(2026, 2, 12, 1, tzinfo=UTC), utc) == datetime(
        2026, 2, 13, tzinfo=UTC
    )


def run_triggers(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(project / "scripts" / "triggers.py"), *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_committed_schedules_are_in_step_with_the_code() -> None:
    done = run_triggers(PROJECT_ROOT, "--check")
    assert done.returncode == 0, done.stderr


def test_a_stale_schedules_file_is_found_and_rewritten(tmp_path: Path) -> None:
    shutil.copytree(PROJECT_ROOT / "scripts", tmp_path / "scripts")
    shutil.copytree(PROJECT_ROOT / "deploy", tmp_path / "deploy")
    stale = tmp_path / "deploy" / "schedules.json"
    stale.write_text(json.dumps({"removed-long-ago": {}}))

    checked = run_triggers(tmp_path, "--check")
    assert checked.returncode == 1
    assert "Out of step with the code: deploy/schedules.json" in checked.stderr
    assert "removed-long-ago" in stale.read_text(), "--check writes nothing"

    assert run_triggers(tmp_path).returncode == 0
    assert stale.read_text() == (PROJECT_ROOT / "deploy" / "schedules.json").read_text()
