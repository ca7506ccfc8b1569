"""The push endpoint's own check of the token, sent straight to the container.

On Cloud Run nothing reaches the container but through the front end; these
requests skip it to show what the service itself accepts: in a public
deployment only a fully verified token, in a private one also a token whose
signature Cloud Run removed, its claims checked all the same. A bad push is
answered so that the queue neither retries forever nor loses real work.
"""

import time
from typing import Any

import httpx
import pytest
from local_google.cloud_tasks import LocalCloudTasks

from .conftest import INVOKER, Deployment, deployed, forger, log_entries, runs, wait_until

NOTE = {"text": "hi", "count": 1}


def push(
    deployment: Deployment,
    token: str | None,
    task: str = "record",
    body: object = NOTE,
    **headers: str,
) -> httpx.Response:
    """POST to the container itself, past the front end."""
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{deployment.service.url}/_tasks/{task}", json=body, headers=headers)


def good_token(deployment: Deployment, **claims: Any) -> str:
    return deployment.issuer.token(INVOKER, deployment.url, **claims)


def without_signature(token: str) -> str:
    """The token as Cloud Run hands it to a private service's container."""
    return f"{token.rsplit('.', 1)[0]}.SIGNATURE_REMOVED_BY_GOOGLE"


def bad_tokens(deployment: Deployment) -> dict[str, tuple[str | None, int]]:
    """Token, and the status the endpoint must answer."""
    now = int(time.time())
    issuer = deployment.issuer
    return {
        "missing": (None, 401),
        "malformed": ("not.a.jwt", 401),
        "forged": (forger().token(INVOKER, deployment.url), 401),
        "expired": (good_token(deployment, iat=now - 7200, exp=now - 3600), 401),
        "wrong audience": (issuer.token(INVOKER, "https://other.example"), 401),
        "wrong issuer": (good_token(deployment, iss="https://evil.example"), 401),
        "wrong email": (issuer.token("other@x.iam.gserviceaccount.com", deployment.url), 403),
        "unverified email": (good_token(deployment, email_verified=False), 403),
    }


CASES = [
    "missing",
    "malformed",
    "forged",
    "expired",
    "wrong audience",
    "wrong issuer",
    "wrong email",
    "unverified email",
]


def test_a_genuine_push_runs_the_task(public: Deployment) -> None:
    response = push(public, good_token(public))
    assert response.status_code == 200
    assert response.json() == {"status": "done"}
    wait_until(lambda: runs(public.service, "record"))
    assert len(runs(public.service, "record")) == 1


@pytest.mark.parametrize("case", CASES)
def test_bad_tokens_are_refused_and_nothing_runs(public: Deployment, case: str) -> None:
    token, expected = bad_tokens(public)[case]

    response = push(public, token)

    assert response.status_code == expected, response.text
    public.service.read_all_output()  # a run is logged before the answer: it would be read
    assert runs(public.service, "record") == []


def test_a_public_service_refuses_a_token_without_signature(public: Deployment) -> None:
    """Anyone could write one: only Cloud Run IAM's check makes it worth anything."""
    response = push(public, without_signature(good_token(public)))

    assert response.status_code == 401
    wait_until(lambda: "BEHIND_CLOUD_RUN_IAM is off" in str(log_entries(public.service)))
    assert runs(public.service, "record") == []


def test_a_private_service_takes_the_token_cloud_run_checked(private: Deployment) -> None:
    response = push(private, without_signature(good_token(private)))

    assert response.status_code == 200, response.text
    wait_until(lambda: runs(private.service, "record"))


@pytest.mark.parametrize("case", ["expired", "wrong audience", "wrong issuer", "wrong email"])
def test_a_private_service_still_checks_the_claims_of_a_checked_token(
    private: Deployment, case: str
) -> None:
    token, expected = bad_tokens(private)[case]
    assert token is not None

    response = push(private, without_signature(token))

    assert response.status_code == expected, response.text
    private.service.read_all_output()
    assert runs(private.service, "record") == []


def test_a_private_service_verifies_a_signed_token_in_full(private: Deployment) -> None:
    """A caller that authenticates to Cloud Run with X-Serverless-Authorization
    keeps Authorization as it wrote it: a signed token there is verified."""
    genuine = push(private, good_token(private))
    forged = push(private, bad_tokens(private)["forged"][0])

    assert genuine.status_code == 200
    assert forged.status_code == 401


def test_no_token_without_signature_next_to_x_serverless_authorization(
    private: Deployment,
) -> None:
    """Cloud Run checked X-Serverless-Authorization, not this one."""
    caller = private.issuer.token("caller@x.iam.gserviceaccount.com", private.url)
    response = push(
        private,
        without_signature(good_token(private)),
        **{"X-Serverless-Authorization": f"Bearer {without_signature(caller)}"},
    )

    assert response.status_code == 401
    private.service.read_all_output()
    assert runs(private.service, "record") == []


def test_certificates_are_fetched_once(cloud_tasks: LocalCloudTasks) -> None:
    """A service of its own: the shared one has them from earlier tests."""
    with deployed(cloud_tasks, public=True) as public:
        before = public.issuer.certs_requests
        for _ in range(5):
            assert push(public, good_token(public)).status_code == 200
        assert public.issuer.certs_requests - before == 1


def test_unknown_task_is_acknowledged_and_logged(public: Deployment) -> None:
    response = push(public, good_token(public), task="no-such-task")

    assert response.status_code == 200
    assert response.json() == {"status": "discarded"}
    wait_until(
        lambda: any(
            e["severity"] == "ERROR" and "unknown task 'no-such-task'" in e["message"]
            for e in log_entries(public.service)
        )
    )


def test_invalid_payload_is_acknowledged_and_logged(public: Deployment) -> None:
    response = push(public, good_token(public), body={"text": 5})

    assert response.status_code == 200
    assert response.json() == {"status": "discarded"}
    wait_until(
        lambda: any(
            e["severity"] == "ERROR" and "invalid payload" in e["message"]
            for e in log_entries(public.service)
        )
    )
    assert runs(public.service, "record") == []
