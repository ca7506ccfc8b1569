"""Event-driven work: Pub/Sub pushes each message to a typed subscriber.

    @subscriber("order-placed", topic="orders")
    async def on_order_placed(event: OrderPlaced, message: PubSubMessage) -> None: ...

Each subscriber gets a push subscription on its topic (Terraform, from
`deploy/subscriptions.json`, which `make subscriptions` writes from the
declarations) that delivers to `POST /_pubsub/<name>` with an OIDC token for
the invoker account. The endpoint verifies that token exactly as the tasks'
push endpoint does, decodes the message into the subscriber's Pydantic model
and runs it.
"""

from .subscribers import PubSubMessage, subscriber

__all__ = ["PubSubMessage", "subscriber"]
