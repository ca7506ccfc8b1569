"""The service deployed behind a local Cloud Run front end, with Google's
Pub/Sub emulator pushing to it through the subscriptions the deployment makes.

The emulator is started once for the session; where it cannot run (no Java,
no Google Cloud CLI or no emulator component) the tests that need it are
skipped with the reason, unless REQUIRE_PUBSUB_EMULATOR is set, as in CI.
So is the service behind its front end (`service`): each test makes its own
subscriptions, and finds the front end's log empty and the service's output
holding only what it logs during the test.
"""

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from local_google.cloud_run import LocalCloudRun
from local_google.pubsub import LocalPubSub, PubSubEmulator, unavailable

from ..serving import PROJECT_ROOT, FrontedService, ServerProcess, behind_front_end, start_test

PROJECT = "test-project"
INVOKER = f"tasks-invoker@{PROJECT}.iam.gserviceaccount.com"
SUBSCRIPTIONS = PROJECT_ROOT / "deploy" / "subscriptions.json"

# The service, plus a subscriber that always fails, served as in production.
APP = """
import logging

from pydantic import BaseModel

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.pubsub import PubSubMessage, subscriber
from {{ cookiecutter.package_name }}.server import serve
from {{ cookiecutter.package_name }}.settings import Settings


class Anything(BaseModel):
    pass


@subscriber("always-fails", topic="doomed")
async def always_fails(event: Anything, message: PubSubMessage) -> None:
    raise RuntimeError(f"failing delivery {message.delivery_attempt}")


settings = Settings()
serve(create_app(settings), settings)
"""


@pytest.fixture(scope="session")
def emulator() -> Iterator[PubSubEmulator]:
    reason = unavailable()
    if reason is not None:
        if os.environ.get("REQUIRE_PUBSUB_EMULATOR"):
            pytest.fail(f"REQUIRE_PUBSUB_EMULATOR is set, but {reason}")
        pytest.skip(reason)
    with PubSubEmulator() as emulator:
        yield emulator


@dataclass
class Deployment:
    service: ServerProcess
    front_end: LocalCloudRun
    pubsub: LocalPubSub
    topics: dict[str, str]  # subscriber name: topic ID
    dead_letters: str  # the dead-letter topic's subscription ID


@contextmanager
def serving(*, public: bool, **settings: str) -> Iterator[FrontedService]:
    """The test app as the deployment runs it, with `settings` on top."""
    command = [sys.executable, "-c", APP]
    with behind_front_end(public=public, invoker=INVOKER, command=command, **settings) as service:
        yield service


@pytest.fixture(scope="session")
def private_service(emulator: PubSubEmulator) -> Iterator[FrontedService]:
    with serving(public=False) as service:
        yield service


@pytest.fixture
def service(private_service: FrontedService) -> FrontedService:
    """The service, private as deployed by default, as a new test finds it
    (see serving.start_test)."""
    start_test(private_service.front_end, private_service.process)
    return private_service


@contextmanager
def deployed(
    emulator: PubSubEmulator, service: FrontedService, *, subscriptions: Path = SUBSCRIPTIONS
) -> Iterator[Deployment]:
    """`service` with its subscriptions as Terraform makes them from
    `subscriptions` (under a fresh prefix: the emulator outlives each test),
    with sub-second backoff and 5 deliveries at most."""
    prefix = f"svc-{uuid.uuid4().hex[:8]}"
    with LocalPubSub(emulator, project=PROJECT, issuer=service.issuer) as pubsub:
        topics = pubsub.deploy_subscriptions(
            subscriptions,
            prefix=prefix,
            service_url=service.front_end.url,
            invoker=INVOKER,
            audience=service.front_end.url,
            max_delivery_attempts=5,
            minimum_backoff=0.1,
            maximum_backoff=0.2,
        )
        yield Deployment(
            service.process, service.front_end, pubsub, topics, f"{prefix}-dead-letter"
        )
