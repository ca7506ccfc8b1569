"""Only Cloud Tasks, with our invoker's token, can run a task; bad pushes are
answered so the queue neither retries forever nor loses real work."""

import time
from typing import Any

import httpx
import pytest
from local_google.cloud_tasks import LocalCloudTasks, TokenSigner

from ..serving import ServerProcess
from .conftest import INVOKER, log_entries, runs, wait_until

NOTE = {"text": "hi", "count": 1}


def push(
    server: ServerProcess, token: str | None, task: str = "record", body: object = NOTE
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{server.url}/_tasks/{task}", json=body, headers=headers)


def good_token(cloud_tasks: LocalCloudTasks, server: ServerProcess, **claims: Any) -> str:
    return cloud_tasks.signer.token(INVOKER, server.url, **claims)


def test_a_genuine_push_runs_the_task(service: ServerProcess, cloud_tasks: LocalCloudTasks) -> None:
    response = push(service, good_token(cloud_tasks, service))
    assert response.status_code == 200
    assert response.json() == {"status": "done"}
    wait_until(lambda: runs(service, "record"))
    assert len(runs(service, "record")) == 1


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", 401),
        ("malformed", 401),
        ("forged", 401),
        ("expired", 401),
        ("wrong audience", 401),
        ("wrong issuer", 401),
        ("wrong email", 403),
        ("unverified email", 403),
    ],
)
def test_bad_tokens_are_refused_and_nothing_runs(
    service: ServerProcess, cloud_tasks: LocalCloudTasks, case: str, expected: int
) -> None:
    now = int(time.time())
    tokens: dict[str, str | None] = {
        "missing": None,
        "malformed": "not.a.jwt",
        "forged": TokenSigner().token(INVOKER, service.url),
        "expired": good_token(cloud_tasks, service, iat=now - 7200, exp=now - 3600),
        "wrong audience": cloud_tasks.signer.token(INVOKER, "https://other.example"),
        "wrong issuer": good_token(cloud_tasks, service, iss="https://evil.example"),
        "wrong email": cloud_tasks.signer.token("other@x.iam.gserviceaccount.com", service.url),
        "unverified email": good_token(cloud_tasks, service, email_verified=False),
    }
    response = push(service, tokens[case])

    assert response.status_code == expected, response.text
    time.sleep(0.2)
    assert runs(service, "record") == []


def test_certificates_are_fetched_once(
    service: ServerProcess, cloud_tasks: LocalCloudTasks
) -> None:
    for _ in range(5):
        assert push(service, good_token(cloud_tasks, service)).status_code == 200
    assert cloud_tasks.certs_requests == 1


def test_unknown_task_is_acknowledged_and_logged(
    service: ServerProcess, cloud_tasks: LocalCloudTasks
) -> None:
    response = push(service, good_token(cloud_tasks, service), task="no-such-task")

    assert response.status_code == 200
    assert response.json() == {"status": "discarded"}
    wait_until(
        lambda: any(
            e["severity"] == "ERROR" and "unknown task 'no-such-task'" in e["message"]
            for e in log_entries(service)
        )
    )


def test_invalid_payload_is_acknowledged_and_logged(
    service: ServerProcess, cloud_tasks: LocalCloudTasks
) -> None:
    response = push(service, good_token(cloud_tasks, service), body={"text": 5})

    assert response.status_code == 200
    assert response.json() == {"status": "discarded"}
    wait_until(
        lambda: any(
            e["severity"] == "ERROR" and "invalid payload" in e["message"]
            for e in log_entries(service)
        )
    )
    assert runs(service, "record") == []
