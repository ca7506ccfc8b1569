"""Pushes a hostile caller controls: tokens and headers of every strange shape.

None may reach a handler unless genuine, none may cost a 5xx (the queue would
retry it; a client error it would not), and none may fill the log. In-process,
against the app with its token check pointed at a local issuer.
"""

import io
import json
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies
from local_google.issuer import LocalIssuer
from local_google.lifecycle import serve_in_background
from pydantic import BaseModel

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Environment, Settings
from {{ cookiecutter.package_name }}.tasks import TaskContext, task

pytestmark = pytest.mark.anyio
AUDIENCE = "https://service.example"
INVOKER = "tasks-invoker@p.iam.gserviceaccount.com"


class Marker(BaseModel):
    text: str


RAN: list[tuple[str, TaskContext]] = []


@task("hostile-test")
async def hostile_test(payload: Marker, context: TaskContext) -> None:
    RAN.append((payload.text, context))


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as issuer:
        yield issuer


def app_for(certs_url: str, *, behind_cloud_run_iam: bool = False) -> Any:
    return create_app(
        Settings(
            environment=Environment.LOCAL,
            gcp_project="p",
            service_url=AUDIENCE,
            tasks_oidc_certs_url=certs_url,
            tasks_warm_up=False,
            behind_cloud_run_iam=behind_cloud_run_iam,
            _env_file=None,
        )
    )


@pytest.fixture
async def client(issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = app_for(issuer.certs_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=AUDIENCE) as client,
    ):
        RAN.clear()
        yield client


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": INVOKER,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    }
    return {**base, **overrides}


def push(client: httpx.AsyncClient, token: str, text: str = "x", **headers: str) -> Any:
    """POST the push, the token as UTF-8 bytes (the server reads them as Latin-1)."""
    raw = {name.lower().encode(): value.encode() for name, value in headers.items()}
    raw[b"authorization"] = f"Bearer {token}".encode()
    return client.post("/_tasks/hostile-test", json={"text": text}, headers=raw)


def strange_tokens(issuer: LocalIssuer) -> dict[str, str]:
    header = {"alg": "RS256", "typ": "JWT", "kid": issuer.key_id}
    nested = "[" * 10_000 + "]" * 10_000
    return {
        "kid is a list": issuer.signed({**header, "kid": [issuer.key_id]}, claims()),
        "kid is missing": issuer.signed({"alg": "RS256", "typ": "JWT"}, claims()),
        "header deeply nested": f"{nested}.{nested}.sig",
        "claims deeply nested": issuer.signed(header, {"a": json.loads("[" * 900 + "]" * 900)}),
        "claims not an object": issuer.signed(header, [1, 2, 3]),
        "exp is null": issuer.signed(header, claims(exp=None)),
        "iat is a string": issuer.signed(header, claims(iat="yesterday")),
        "exp is huge": issuer.signed(header, claims(exp=10**400)),
        "iss is a list": issuer.signed(header, claims(iss=["https://accounts.google.com"])),
        "aud is a dict": issuer.signed(header, claims(aud={"a": 1})),
        "a megabyte": "a" * 1_000_000,
        "not base64": "!!!.???.###",
        "unicode": "ä.ö.ü",
    }


STRANGE = [
    "kid is a list",
    "kid is missing",
    "header deeply nested",
    "claims deeply nested",
    "claims not an object",
    "exp is null",
    "iat is a string",
    "exp is huge",
    "iss is a list",
    "aud is a dict",
    "a megabyte",
    "not base64",
    "unicode",
]


@pytest.mark.parametrize("case", STRANGE)
async def test_a_strange_token_is_refused_without_a_server_error(
    client: httpx.AsyncClient, issuer: LocalIssuer, log_output: io.StringIO, case: str
) -> None:
    response = await push(client, strange_tokens(issuer)[case])

    assert response.status_code == 401, response.text
    assert RAN == []
    assert all(len(line) < 2000 for line in log_output.getvalue().splitlines()), "capped"


@pytest.mark.parametrize(
    "case", ["exp is null", "iat is a string", "iss is a list", "aud is a dict"]
)
async def test_strange_claims_without_a_signature_are_refused_too(
    issuer: LocalIssuer, case: str
) -> None:
    """A private service reads a stripped token's claims itself: same care."""
    app = app_for(issuer.certs_url, behind_cloud_run_iam=True)
    token = strange_tokens(issuer)[case].rsplit(".", 1)[0] + ".SIGNATURE_REMOVED_BY_GOOGLE"
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=AUDIENCE) as client,
    ):
        response = await push(client, token)
    assert response.status_code == 401, response.text


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-CloudTasks-TaskETA", "1e300"),
        ("X-CloudTasks-TaskETA", "inf"),
        ("X-CloudTasks-TaskETA", "nan"),
        ("X-CloudTasks-TaskETA", "-1"),
        ("X-CloudTasks-TaskRetryCount", "9" * 5000),
        ("X-CloudTasks-TaskRetryCount", "²"),
        ("X-CloudTasks-TaskExecutionCount", "-3"),
        ("X-CloudTasks-TaskName", "n" * 10_000),
    ],
)
async def test_strange_delivery_headers_read_as_absent(
    client: httpx.AsyncClient, issuer: LocalIssuer, header: str, value: str
) -> None:
    response = await push(client, issuer.token(INVOKER, AUDIENCE), **{header: value})

    assert response.status_code == 200, response.text
    ((_, context),) = RAN
    assert context.retry_count >= 0
    assert len(context.task_name) <= 600


class NotJson(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>maintenance</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_certificates_that_are_not_json_answer_503(issuer: LocalIssuer) -> None:
    """Not the caller's fault: the queue must retry later, not drop the task."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotJson)
    serve_in_background(server)
    app = app_for(f"http://127.0.0.1:{server.server_address[1]}/certs")
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=AUDIENCE) as c,
        ):
            response = await push(c, issuer.token(INVOKER, AUDIENCE))
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 503


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    token=strategies.text(max_size=300),
    serverless=strategies.one_of(strategies.none(), strategies.text(max_size=100)),
    body=strategies.binary(max_size=300),
)
async def test_no_push_gets_a_server_error(
    client: httpx.AsyncClient, token: str, serverless: str | None, body: bytes
) -> None:
    # As bytes off the wire: UTF-8 of any text, which the server sees as Latin-1.
    headers = {b"authorization": f"Bearer {token}".encode("utf-8", "surrogatepass")}
    if serverless is not None:
        headers[b"x-serverless-authorization"] = serverless.encode("utf-8", "surrogatepass")
    headers = {k: v for k, v in headers.items() if not {*b"\r\n\x00"} & {*v}}
    response = await client.post("/_tasks/hostile-test", content=body, headers=headers)
    assert response.status_code in (401, 403), response.text
    assert RAN == []
