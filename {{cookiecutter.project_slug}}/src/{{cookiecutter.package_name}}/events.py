"""An example of event-driven work: react to each order published on a topic.

Pub/Sub pushes every message published to the `orders` topic to this
subscriber (its push subscription is made by Terraform from
`deploy/subscriptions.json`; `make triggers` writes that file from the
`@subscriber` declarations). Replace the body with real work; keep it
idempotent by `message.message_id`, as Pub/Sub may deliver a message twice.
"""

import logging

from pydantic import BaseModel, Field

from .pubsub import PubSubMessage, subscriber

logger = logging.getLogger(__name__)


class OrderPlaced(BaseModel):
    order_id: str = Field(min_length=1, max_length=100)
    total_cents: int = Field(ge=0)


@subscriber("record-order", topic="orders")
async def record_order(event: OrderPlaced, message: PubSubMessage) -> None:
    logger.info(
        "Recorded an order",
        extra={
            "subscriber": "record-order",
            "message_id": message.message_id,
            "order_id": event.order_id,
        },
    )
