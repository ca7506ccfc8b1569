"""Named, typed Pub/Sub subscribers.

A subscriber is an async function taking the message's data, decoded into a
Pydantic model, and a `PubSubMessage` with the rest of what Pub/Sub pushed.
Pub/Sub delivers at least once, and again when an answer is lost
(https://cloud.google.com/pubsub/docs/subscription-overview#at-least-once-delivery):
subscribers must be idempotent, keyed by `message.message_id`.
"""

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, cast, get_type_hints

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

# A subscriber's name is part of its URL and of its subscription's ID.
_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
# Topic IDs: 3 to 255 characters, starting with a letter, not "goog"
# (https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names); the
# deployment prefixes them with <service>-<environment>-, hence shorter here.
_TOPIC = re.compile(r"[a-z][a-z0-9-]{2,62}")


class InvalidSubscriber(ValueError):
    """A subscriber declaration that cannot be deployed; the message says why."""


@dataclass(frozen=True, slots=True)
class PubSubMessage:
    """What Pub/Sub says about this delivery, from its push envelope
    (https://cloud.google.com/pubsub/docs/push#receive_push).

    `message_id` is unique per message in its topic: the key to stay
    idempotent. `delivery_attempt` counts deliveries, the first being 1; Pub/Sub
    sends it only to subscriptions with a dead-letter topic, as this
    deployment's have.
    """

    message_id: str
    publish_time: datetime | None
    attributes: Mapping[str, str]
    subscription: str
    delivery_attempt: int | None


Handler = Callable[[M, PubSubMessage], Awaitable[None]]


class Subscriber(Generic[M]):
    """A registered handler for the messages of one topic."""

    def __init__(self, name: str, topic: str, model: type[M], handler: Handler[M]) -> None:
        self.name = name
        self.topic = topic
        self.model = model
        self.handler = handler

    async def __call__(self, event: M, message: PubSubMessage) -> None:
        await self.handler(event, message)


_subscribers: dict[str, Subscriber[BaseModel]] = {}


def subscriber(name: str, *, topic: str) -> Callable[[Handler[M]], Subscriber[M]]:
    """Register an async handler for the messages published to `topic`.

    Its URL is `/_pubsub/<name>`; the model of the message data is read from
    the handler's first parameter annotation.
    """
    if not _NAME.fullmatch(name):
        raise InvalidSubscriber(
            f"subscriber name {name!r}: use lowercase letters, digits and hyphens, starting "
            "with a letter, at most 63 characters"
        )
    if not _TOPIC.fullmatch(topic) or topic.startswith("goog"):
        raise InvalidSubscriber(
            f"subscriber {name!r}: topic {topic!r} is not a topic ID: 3 to 63 lowercase "
            "letters, digits and hyphens, starting with a letter, not with 'goog'"
        )

    def register(handler: Handler[M]) -> Subscriber[M]:
        hints = [value for key, value in get_type_hints(handler).items() if key != "return"]
        model = hints[0] if hints else None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise InvalidSubscriber(
                f"subscriber {name!r}: annotate the message data as a Pydantic model"
            )
        if name in _subscribers:
            raise InvalidSubscriber(f"subscriber {name!r} is registered twice")
        registered: Subscriber[M] = Subscriber(name, topic, cast("type[M]", model), handler)
        _subscribers[name] = registered  # type: ignore[assignment]
        return registered

    return register


def registered(name: str) -> Subscriber[BaseModel] | None:
    return _subscribers.get(name)


def manifest() -> dict[str, Mapping[str, Any]]:
    """What `deploy/subscriptions.json` holds: each subscriber's topic, by name."""
    return {name: {"topic": _subscribers[name].topic} for name in sorted(_subscribers)}
