"""The Pub/Sub push endpoint in-process: who may push, and what each push is
answered, which is what Pub/Sub acks, retries or dead-letters by. Needs no
emulator: these are the pushes Pub/Sub would never send."""

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from local_google.issuer import LocalIssuer
from pydantic import BaseModel

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.pubsub import PubSubMessage, subscriber
from {{ cookiecutter.package_name }}.settings import Environment, Settings

from .conftest import INVOKER, PROJECT

AUDIENCE = "http://testserver"


class Reading(BaseModel):
    sensor: str
    value: float


received: list[tuple[Reading, PubSubMessage]] = []


@subscriber("test-readings", topic="readings")
async def record_reading(event: Reading, message: PubSubMessage) -> None:
    if event.sensor == "broken":
        raise RuntimeError("the sensor store is down")
    received.append((event, message))


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as issuer:
        yield issuer


@pytest.fixture
async def client(issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    received.clear()
    settings = Settings(
        environment=Environment.LOCAL,
        gcp_project=PROJECT,
        service_url=AUDIENCE,
        tasks_oidc_certs_url=issuer.certs_url,
        tasks_warm_up=False,
        _env_file=None,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=AUDIENCE) as client,
    ):
        yield client


def envelope(event: object = None, **message: Any) -> dict[str, Any]:
    """A push envelope as Pub/Sub sends it, with `event` as its data
    (https://cloud.google.com/pubsub/docs/push#receive_push)."""
    raw = json.dumps(event if event is not None else {"sensor": "s1", "value": 21.5}).encode()
    return {
        "message": {
            "data": base64.b64encode(raw).decode(),
            "attributes": {"site": "north"},
            "messageId": "1234",
            "message_id": "1234",
            "publishTime": "2026-01-02T03:04:05.678Z",
            **message,
        },
        "subscription": f"projects/{PROJECT}/subscriptions/svc-test-readings",
        "deliveryAttempt": 2,
    }


async def push(
    client: httpx.AsyncClient,
    token: str | None,
    body: object,
    name: str = "test-readings",
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(
        f"/_pubsub/{name}",
        content=content,
        headers={**headers, "Content-Type": "application/json"},
    )


@pytest.mark.anyio
async def test_a_genuine_push_runs_the_subscriber(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    response = await push(client, issuer.token(INVOKER, AUDIENCE), envelope())

    assert (response.status_code, response.json()) == (200, {"status": "done"})
    ((event, message),) = received
    assert event == Reading(sensor="s1", value=21.5)
    assert message.message_id == "1234"
    assert message.attributes == {"site": "north"}
    assert message.delivery_attempt == 2
    assert message.subscription.endswith("/svc-test-readings")
    assert message.publish_time is not None
    assert message.publish_time.year == 2026


def forged_tokens(issuer: LocalIssuer) -> dict[str, tuple[str | None, int]]:
    return {
        "no token": (None, 401),
        "signed by another key": (LocalIssuer().token(INVOKER, AUDIENCE), 401),
        "for another audience": (issuer.token(INVOKER, "https://elsewhere.example"), 401),
        "without its signature, not behind Cloud Run IAM": (
            f"{issuer.token(INVOKER, AUDIENCE).rsplit('.', 1)[0]}.SIGNATURE_REMOVED_BY_GOOGLE",
            401,
        ),
        "of another account": (issuer.token("other@x.iam.gserviceaccount.com", AUDIENCE), 403),
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    "case",
    [
        "no token",
        "signed by another key",
        "for another audience",
        "without its signature, not behind Cloud Run IAM",
        "of another account",
    ],
)
async def test_a_forged_push_is_refused_and_nothing_runs(
    client: httpx.AsyncClient, issuer: LocalIssuer, case: str
) -> None:
    token, expected = forged_tokens(issuer)[case]

    response = await push(client, token, envelope())

    assert response.status_code == expected, response.text
    assert received == []


MALFORMED: dict[str, object] = {
    "not JSON": b"{not json",
    "no message": {"subscription": "projects/p/subscriptions/s"},
    "no message ID": {"message": {"data": ""}, "subscription": "projects/p/subscriptions/s"},
    "data not base64": envelope(data="%%%not base64%%%"),
    "attributes not strings": envelope(attributes={"site": 3}),
    "delivery attempt zero": {**envelope(), "deliveryAttempt": 0},
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_envelope_is_refused_so_pubsub_keeps_it(
    client: httpx.AsyncClient, issuer: LocalIssuer, case: str
) -> None:
    """400: not acknowledged, so Pub/Sub delivers it again and then
    dead-letters it, where it is kept. The answer says what is wrong without
    repeating what was sent."""
    response = await push(client, issuer.token(INVOKER, AUDIENCE), MALFORMED[case])

    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith("not a Pub/Sub push envelope")
    assert "not base64%%%" not in response.text
    assert received == []


@pytest.mark.anyio
async def test_data_the_model_refuses_is_acknowledged_and_logged(
    client: httpx.AsyncClient, issuer: LocalIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    response = await push(client, issuer.token(INVOKER, AUDIENCE), envelope({"sensor": "s1"}))

    assert (response.status_code, response.json()) == (200, {"status": "discarded"})
    assert "invalid data" in caplog.text
    assert received == []


@pytest.mark.anyio
async def test_a_failing_subscriber_is_retried(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    body = envelope({"sensor": "broken", "value": 0})
    response = await push(client, issuer.token(INVOKER, AUDIENCE), body)

    assert response.status_code == 500
    assert "down" not in response.text


@pytest.mark.anyio
async def test_an_unknown_subscriber_is_retried_until_its_code_arrives(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    response = await push(client, issuer.token(INVOKER, AUDIENCE), envelope(), name="not-yet")

    assert response.status_code == 404
