"""Google's Pub/Sub emulator, with what it leaves out of a push put back.

The emulator ships with the Google Cloud CLI (the `pubsub-emulator`
component, or Debian's `google-cloud-cli-pubsub-emulator`) and runs on Java
(https://cloud.google.com/pubsub/docs/emulator). It is Pub/Sub's own code path
for topics, publishing and push subscriptions: it POSTs the push envelope
(https://cloud.google.com/pubsub/docs/push#receive_push), takes 102, 200,
201, 202 and 204 as an ack, delivers anything else again by the
subscription's retry policy, and forwards a message to the dead-letter topic
after `max_delivery_attempts`, with the `CloudPubSubDeadLetter*` attributes
(https://cloud.google.com/pubsub/docs/handling-failures).

What it does not do, as of the emulator in Google Cloud CLI 528: it keeps a
push subscription's `oidc_token` but sends no `Authorization` header, and it
leaves out the envelope's `deliveryAttempt`. So each push subscription made
here points the emulator at a `PushAuthenticator`, which does what Pub/Sub
does with them: it adds `Authorization: Bearer <ID token>` for the
subscription's service account and audience, signed by the local issuer
(https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions), and
`deliveryAttempt` where the subscription has a dead-letter topic; then it
forwards the push to the real endpoint (through the local Cloud Run front end
when there is one) and answers the emulator with the endpoint's status.
Everything binds 127.0.0.1.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import grpc
import httpx
from google.pubsub_v1 import PublisherClient, PubsubMessage, ReceivedMessage, SubscriberClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from .issuer import LocalIssuer
from .lifecycle import LocalServer, QuietHandler, serve_in_background, wait_for_count

# What Pub/Sub's pushes say they are (https://cloud.google.com/pubsub/docs/push).
USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
STARTUP_SECONDS = 60.0


def emulator_launcher() -> Path | None:
    """The emulator's own launcher in the Google Cloud CLI on PATH, if installed."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    sdk = Path(gcloud).resolve().parent.parent
    launcher = sdk / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    return launcher if launcher.is_file() else None


def unavailable() -> str | None:
    """Why the emulator cannot run here, or None if it can."""
    if shutil.which("java") is None:
        return "the Pub/Sub emulator needs Java, and there is no `java` on PATH"
    if shutil.which("gcloud") is None:
        return "the Pub/Sub emulator ships with the Google Cloud CLI, and there is no `gcloud`"
    if emulator_launcher() is None:
        return (
            "the Google Cloud CLI has no Pub/Sub emulator: `gcloud components install "
            "pubsub-emulator` (or Debian's google-cloud-cli-pubsub-emulator package)"
        )
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PubSubEmulator(LocalServer):
    """`cloud-pubsub-emulator` on 127.0.0.1, started and stopped with this object."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        reason = unavailable()
        launcher = emulator_launcher()
        if reason is not None or launcher is None:
            raise RuntimeError(reason)
        self._process = subprocess.Popen(  # noqa: S603
            [str(launcher), "--host=127.0.0.1", f"--port={self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its JVM stops with the group
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the Pub/Sub emulator exited with {self._process.returncode}")
            try:
                httpx.get(f"http://{self.host}/", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the Pub/Sub emulator did not answer within {STARTUP_SECONDS} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._process = None


@dataclass(frozen=True)
class PushTarget:
    """Where a push subscription delivers, and the token Pub/Sub would attach."""

    endpoint: str
    service_account: str
    audience: str
    dead_lettering: bool


@dataclass
class Push:
    """One push the emulator made, as the endpoint answered it."""

    subscription: str
    status: int | None  # None: no HTTP answer
    headers: dict[str, str]
    envelope: dict[str, Any]


class PushAuthenticator(LocalServer):
    """Receives the emulator's pushes at `/<subscription ID>`, adds what
    Pub/Sub would (the ID token, `deliveryAttempt`) and forwards them."""

    def __init__(self, issuer: LocalIssuer) -> None:
        self.issuer = issuer
        self.targets: dict[str, PushTarget] = {}
        self.pushes: list[Push] = []
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._changed = threading.Condition()
        self._http = httpx.Client()
        self._server: ThreadingHTTPServer | None = None

    def url(self, subscription_id: str) -> str:
        if self._server is None:
            raise RuntimeError("the push authenticator is not running: start() it")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{subscription_id}"

    def forward(self, subscription_id: str, body: bytes, content_type: str) -> int | None:
        target = self.targets.get(subscription_id)
        if target is None:
            return None
        try:
            envelope = json.loads(body)
        except ValueError:
            envelope = None
        if isinstance(envelope, dict) and target.dead_lettering:
            message_id = str(envelope.get("message", {}).get("messageId", ""))
            with self._changed:
                self._attempts[(subscription_id, message_id)] += 1
                envelope["deliveryAttempt"] = self._attempts[(subscription_id, message_id)]
            body = json.dumps(envelope).encode()
        token = self.issuer.token(target.service_account, target.audience)
        headers = {
            "Content-Type": content_type,
            "User-Agent": USER_AGENT,
            "Authorization": f"Bearer {token}",
        }
        status: int | None
        try:
            status = self._http.post(
                target.endpoint, content=body, headers=headers, timeout=60
            ).status_code
        except httpx.HTTPError:
            status = None
        with self._changed:
            self.pushes.append(
                Push(
                    subscription_id, status, headers, envelope if isinstance(envelope, dict) else {}
                )
            )
            self._changed.notify_all()
        return status

    def wait_for_pushes(self, count: int, timeout: float = 30.0) -> list[Push]:
        return wait_for_count(self._changed, self.pushes, count, timeout, "pushes made")

    def start(self) -> Self:
        authenticator = self

        class Relay(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = authenticator.forward(
                    self.path.strip("/"), body, self.headers.get("Content-Type", "")
                )
                # No answer from the endpoint: a nack, as Pub/Sub counts it.
                self.send_response(status or 502)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
        serve_in_background(self._server)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._http.close()


class LocalPubSub(LocalServer):
    """Topics and push subscriptions on the emulator, through the official
    client library, with their pushes authenticated as Pub/Sub does."""

    def __init__(self, emulator: PubSubEmulator, *, project: str, issuer: LocalIssuer) -> None:
        self.emulator = emulator
        self.project = project
        self.authenticator = PushAuthenticator(issuer)
        self._channels: list[grpc.Channel] = []
        self.publisher = PublisherClient(transport=PublisherGrpcTransport(channel=self._channel()))
        self.subscriber = SubscriberClient(
            transport=SubscriberGrpcTransport(channel=self._channel())
        )

    def _channel(self) -> grpc.Channel:
        channel = grpc.insecure_channel(self.emulator.host)
        self._channels.append(channel)
        return channel

    @property
    def pushes(self) -> list[Push]:
        return self.authenticator.pushes

    def topic_path(self, topic_id: str) -> str:
        return f"projects/{self.project}/topics/{topic_id}"

    def subscription_path(self, subscription_id: str) -> str:
        return f"projects/{self.project}/subscriptions/{subscription_id}"

    def create_topic(self, topic_id: str) -> str:
        return str(self.publisher.create_topic(name=self.topic_path(topic_id)).name)

    def create_push_subscription(
        self,
        subscription_id: str,
        *,
        topic_id: str,
        endpoint: str,
        service_account: str,
        audience: str,
        dead_letter_topic_id: str | None = None,
        max_delivery_attempts: int = 5,
        minimum_backoff: float = 10.0,
        maximum_backoff: float = 600.0,
    ) -> str:
        """A push subscription as the deployment's Terraform makes one: OIDC
        token, retry policy and, if named, a dead-letter topic."""
        self.authenticator.targets[subscription_id] = PushTarget(
            endpoint, service_account, audience, dead_letter_topic_id is not None
        )
        request: dict[str, Any] = {
            "name": self.subscription_path(subscription_id),
            "topic": self.topic_path(topic_id),
            "push_config": {
                "push_endpoint": self.authenticator.url(subscription_id),
                "oidc_token": {"service_account_email": service_account, "audience": audience},
            },
            "retry_policy": {
                "minimum_backoff": timedelta(seconds=minimum_backoff),
                "maximum_backoff": timedelta(seconds=maximum_backoff),
            },
        }
        if dead_letter_topic_id is not None:
            request["dead_letter_policy"] = {
                "dead_letter_topic": self.topic_path(dead_letter_topic_id),
                "max_delivery_attempts": max_delivery_attempts,
            }
        return str(self.subscriber.create_subscription(request=request).name)

    def deploy_subscriptions(
        self,
        path: Path,
        *,
        prefix: str,
        service_url: str,
        invoker: str,
        audience: str,
        max_delivery_attempts: int = 10,
        minimum_backoff: float = 10.0,
        maximum_backoff: float = 600.0,
    ) -> dict[str, str]:
        """What deploy/terraform/modules/service/pubsub.tf makes from
        `deploy/subscriptions.json`: a topic `<prefix>-<topic>` for each topic
        named, a dead-letter topic `<prefix>-dead-letter` with a subscription
        of the same name that keeps its messages, and for each subscriber a
        push subscription `<prefix>-<name>` to `/_pubsub/<name>` with an ID
        token for `invoker`. Returns each subscriber's topic ID."""
        subscriptions: dict[str, dict[str, str]] = json.loads(path.read_text())
        topics = {name: f"{prefix}-{entry['topic']}" for name, entry in subscriptions.items()}
        for topic_id in sorted({*topics.values(), f"{prefix}-dead-letter"}):
            self.create_topic(topic_id)
        self.create_pull_subscription(f"{prefix}-dead-letter", topic_id=f"{prefix}-dead-letter")
        for name, topic_id in sorted(topics.items()):
            self.create_push_subscription(
                f"{prefix}-{name}",
                topic_id=topic_id,
                endpoint=f"{service_url.rstrip('/')}/_pubsub/{name}",
                service_account=invoker,
                audience=audience,
                dead_letter_topic_id=f"{prefix}-dead-letter",
                max_delivery_attempts=max_delivery_attempts,
                minimum_backoff=minimum_backoff,
                maximum_backoff=maximum_backoff,
            )
        return topics

    def create_pull_subscription(self, subscription_id: str, *, topic_id: str) -> str:
        created = self.subscriber.create_subscription(
            name=self.subscription_path(subscription_id), topic=self.topic_path(topic_id)
        )
        return str(created.name)

    def publish(self, topic_id: str, data: bytes, **attributes: str) -> str:
        """Publish one message; its ID once Pub/Sub has it."""
        response = self.publisher.publish(
            topic=self.topic_path(topic_id),
            messages=[PubsubMessage(data=data, attributes=attributes)],
            timeout=30,
        )
        return str(response.message_ids[0])

    def pull(self, subscription_id: str, max_messages: int = 10) -> list[ReceivedMessage]:
        response = self.subscriber.pull(
            subscription=self.subscription_path(subscription_id),
            max_messages=max_messages,
            timeout=10,
        )
        return list(response.received_messages)

    def start(self) -> Self:
        self.authenticator.start()
        return self

    def stop(self) -> None:
        self.authenticator.stop()
        for channel in self._channels:
            channel.close()
