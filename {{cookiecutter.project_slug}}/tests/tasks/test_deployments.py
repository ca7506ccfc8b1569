"""Who can run a task through Cloud Run's front end, private and public.

Every kind of push a caller can send, through the local front end, to the
service deployed the two ways the deployment configuration deploys it. The
table below is the contract: the status the caller gets, and whether the
handler ran (exactly once when it did).
"""

import itertools

import httpx
import pytest

from .conftest import CALLER, INVOKER, Deployment, forger, runs, wait_until


def without_signature(token: str) -> str:
    return f"{token.rsplit('.', 1)[0]}.SIGNATURE_REMOVED_BY_GOOGLE"


def pushes(deployment: Deployment) -> dict[str, dict[str, str]]:
    """The headers of each kind of push."""
    issuer, url = deployment.issuer, deployment.url
    invoker = issuer.token(INVOKER, url)
    caller = issuer.token(CALLER, url)
    stranger = issuer.token("stranger@elsewhere.iam.gserviceaccount.com", url)
    forged = forger().token(INVOKER, url)
    return {
        "no token": {},
        "forged token": {"Authorization": f"Bearer {forged}"},
        "token of a principal without run.invoker": {"Authorization": f"Bearer {stranger}"},
        "token of another invoker": {"Authorization": f"Bearer {caller}"},
        "Cloud Tasks' token for the invoker": {"Authorization": f"Bearer {invoker}"},
        "unsigned token for the invoker": {"Authorization": f"Bearer {without_signature(invoker)}"},
        "other invoker in X-Serverless-Authorization, unsigned token in Authorization": {
            "X-Serverless-Authorization": f"Bearer {caller}",
            "Authorization": f"Bearer {without_signature(invoker)}",
        },
        "other invoker in X-Serverless-Authorization, signed token in Authorization": {
            "X-Serverless-Authorization": f"Bearer {caller}",
            "Authorization": f"Bearer {invoker}",
        },
    }


# (push, deployment) -> (status, whether the handler ran)
EXPECTED: dict[tuple[str, str], tuple[int, bool]] = {
    ("no token", "private"): (403, False),
    ("no token", "public"): (401, False),
    ("forged token", "private"): (401, False),
    ("forged token", "public"): (401, False),
    ("token of a principal without run.invoker", "private"): (403, False),
    ("token of a principal without run.invoker", "public"): (403, False),
    ("token of another invoker", "private"): (403, False),
    ("token of another invoker", "public"): (403, False),
    ("Cloud Tasks' token for the invoker", "private"): (200, True),
    ("Cloud Tasks' token for the invoker", "public"): (200, True),
    ("unsigned token for the invoker", "private"): (401, False),
    ("unsigned token for the invoker", "public"): (401, False),
    (
        "other invoker in X-Serverless-Authorization, unsigned token in Authorization",
        "private",
    ): (401, False),
    (
        "other invoker in X-Serverless-Authorization, unsigned token in Authorization",
        "public",
    ): (401, False),
    (
        "other invoker in X-Serverless-Authorization, signed token in Authorization",
        "private",
    ): (200, True),
    (
        "other invoker in X-Serverless-Authorization, signed token in Authorization",
        "public",
    ): (200, True),
}
KINDS = sorted({kind for kind, _ in EXPECTED})


@pytest.fixture
def deployments(private: Deployment, public: Deployment) -> dict[str, Deployment]:
    """Both deployments of the task app."""
    return {"private": private, "public": public}


@pytest.mark.parametrize(("kind", "mode"), list(itertools.product(KINDS, ["private", "public"])))
def test_who_can_run_a_task(kind: str, mode: str, deployments: dict[str, Deployment]) -> None:
    deployment = deployments[mode]
    marker = f"{kind} / {mode}"
    expected_status, expected_run = EXPECTED[(kind, mode)]

    response = httpx.post(
        f"{deployment.url}/_tasks/record",
        json={"text": marker, "count": 1},
        headers=pushes(deployment)[kind],
    )

    assert response.status_code == expected_status, response.text

    def ran() -> int:
        texts = [run["payload"]["text"] for run in runs(deployment.service, "record")]
        return texts.count(marker)

    if expected_run:
        wait_until(ran)
    # The service logs a run before it answers: all it logged for this push is read now.
    deployment.service.read_all_output()
    assert ran() == (1 if expected_run else 0)
