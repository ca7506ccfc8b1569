"""End to end: a message published on the emulator reaches its subscriber
through a push subscription, the Cloud Run front end and the authenticated
push endpoint, and one that keeps failing ends up kept in the dead-letter topic."""

import json
from pathlib import Path

from google.pubsub_v1 import ReceivedMessage
from local_google.pubsub import PubSubEmulator

from ..serving import FrontedService, ServerProcess
from ..tasks.conftest import log_entries, wait_until
from .conftest import deployed


def logged(service: ServerProcess, message: str) -> list[dict[str, object]]:
    return [entry for entry in log_entries(service) if entry.get("message") == message]


def test_a_published_message_reaches_its_subscriber(
    emulator: PubSubEmulator, service: FrontedService
) -> None:
    with deployed(emulator, service) as deployment:
        topic = deployment.topics["record-order"]
        order = {"order_id": "A-1", "total_cents": 1250}

        message_id = deployment.pubsub.publish(topic, json.dumps(order).encode(), source="shop")

        wait_until(lambda: logged(deployment.service, "Recorded an order"))
        (entry,) = logged(deployment.service, "Recorded an order")
        assert entry["message_id"] == message_id
        assert entry["order_id"] == "A-1"
        (push,) = deployment.pubsub.authenticator.wait_for_pushes(1)
        assert push.status == 200
        # Through the front end, which checked the token and removed its signature.
        (forwarded,) = deployment.front_end.log.forwarded
        assert forwarded.path == "/_pubsub/record-order"
        assert forwarded.headers["authorization"].endswith(".SIGNATURE_REMOVED_BY_GOOGLE")


def test_the_subscriber_logs_in_the_trace_the_publisher_sent(
    emulator: PubSubEmulator, service: FrontedService
) -> None:
    """Google's client libraries, tracing, put the publisher's traceparent in
    the googclient_traceparent attribute; the subscriber's log lines join it."""
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with deployed(emulator, service) as deployment:
        deployment.pubsub.publish(
            deployment.topics["record-order"],
            b'{"order_id": "A-2", "total_cents": 1}',
            googclient_traceparent=f"00-{trace}-00f067aa0ba902b7-01",
        )

        wait_until(lambda: logged(deployment.service, "Recorded an order"))
        (entry,) = logged(deployment.service, "Recorded an order")
        assert entry["logging.googleapis.com/trace"] == f"projects/test-project/traces/{trace}"


def test_a_failing_message_is_delivered_again_then_dead_lettered(
    emulator: PubSubEmulator, service: FrontedService, tmp_path: Path
) -> None:
    subscriptions = tmp_path / "subscriptions.json"
    subscriptions.write_text(json.dumps({"always-fails": {"topic": "doomed"}}))
    with deployed(emulator, service, subscriptions=subscriptions) as deployment:
        message_id = deployment.pubsub.publish(deployment.topics["always-fails"], b"{}")

        pushes = deployment.pubsub.authenticator.wait_for_pushes(5)
        dead_letters: list[ReceivedMessage] = []

        def pulled() -> bool:
            dead_letters.extend(deployment.pubsub.pull(deployment.dead_letters))
            return bool(dead_letters)

        wait_until(pulled)

        assert [push.status for push in pushes] == [500] * 5
        assert [push.envelope["deliveryAttempt"] for push in pushes] == [1, 2, 3, 4, 5]
        (dead,) = dead_letters
        assert dead.message.data == b"{}"
        assert dead.message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
        failures = [e for e in log_entries(deployment.service) if e.get("message_id") == message_id]
        assert len(failures) == 5


def test_data_that_does_not_fit_the_model_is_acknowledged_once(
    emulator: PubSubEmulator, service: FrontedService
) -> None:
    """Delivering it again cannot help: it is logged and acked, not retried."""
    with deployed(emulator, service) as deployment:
        deployment.pubsub.publish(deployment.topics["record-order"], b'{"order_id": ""}')

        deployment.pubsub.authenticator.wait_for_pushes(1)
        wait_until(lambda: any("invalid data" in str(e) for e in log_entries(deployment.service)))

        assert [push.status for push in deployment.pubsub.pushes] == [200]
        assert logged(deployment.service, "Recorded an order") == []
