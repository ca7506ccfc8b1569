"""The push endpoint Pub/Sub calls: `POST /_pubsub/<subscriber>`.

Pub/Sub sends each message as a JSON envelope: `message` (`data` in base64,
`attributes`, `messageId`, `publishTime`), `subscription` and, where the
subscription has a dead-letter topic, `deliveryAttempt`
(https://cloud.google.com/pubsub/docs/push#receive_push). The token it
attaches (https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions)
is checked by the same verifier, with the same audience and invoker account,
as the tasks' push endpoint, before anything else is read.

The status code is the acknowledgement: 102, 200, 201, 202 and 204 ack the
message, anything else nacks it and Pub/Sub delivers it again by the
subscription's retry policy, until its dead-letter policy forwards it to the
dead-letter topic (https://cloud.google.com/pubsub/docs/push#receive_push,
https://cloud.google.com/pubsub/docs/handling-failures):

- 200 `done`: the subscriber returned.
- 200 `discarded`: the data does not decode into the subscriber's model.
  Delivering it again cannot help; the log line is where to notice it.
- 500: the subscriber raised; Pub/Sub retries, so subscribers are idempotent.
- 400: the body is not a push envelope. No message can be read from it, so
  none is acknowledged: a real one is retried and then dead-lettered, kept.
- 404: no subscriber of that name, as while a subscription created by
  Terraform waits for the code that handles it: retried, then dead-lettered.
- 401/403/503: the token, as on the tasks' push endpoint.

A message published with tracing on in Google's client libraries carries its
publisher's trace in the `googclient_traceparent` attribute
(https://cloud.google.com/pubsub/docs/open-telemetry-tracing): the
subscriber runs and logs in that trace, as a task's handler does in the trace
of the request that deferred it.
"""

import base64
import binascii
import logging
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from opentelemetry import trace as otel_trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import AliasChoices, BaseModel, Field, ValidationError

from ..logs import cap
from ..tasks.push import authenticated
from ..trace_context import current_trace, parse_traceparent
from .subscribers import PubSubMessage, registered

logger = logging.getLogger(__name__)
_tracer = otel_trace.get_tracer(__name__)

PUSH_PATH = "/_pubsub"
# Where Google's client libraries put the publisher's W3C traceparent.
TRACEPARENT_ATTRIBUTE = "googclient_traceparent"

# For Pub/Sub, not for callers: out of the OpenAPI schema, as the tasks' push is.
router = APIRouter(prefix=PUSH_PATH, include_in_schema=False)


class PushedMessage(BaseModel):
    # Pub/Sub sends both spellings of these fields; either will do.
    data: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    message_id: str = Field(
        min_length=1, max_length=200, validation_alias=AliasChoices("messageId", "message_id")
    )
    publish_time: datetime | None = Field(
        default=None, validation_alias=AliasChoices("publishTime", "publish_time")
    )


class PushEnvelope(BaseModel):
    message: PushedMessage
    subscription: str = Field(max_length=500)
    delivery_attempt: int | None = Field(default=None, ge=1, alias="deliveryAttempt")


class MessageOutcome(BaseModel):
    status: Literal["done", "discarded"]


@router.post("/{name}", dependencies=[Depends(authenticated)])
async def receive_message(name: str, request: Request) -> MessageOutcome:
    try:
        envelope = PushEnvelope.model_validate_json(await request.body())
        data = base64.b64decode(envelope.message.data, validate=True)
    except (ValidationError, binascii.Error) as error:
        reason = (
            f"{error.error_count()} problem(s) at "
            f"{sorted({'.'.join(map(str, e['loc'])) for e in error.errors()})}"
            if isinstance(error, ValidationError)
            else "message.data is not base64"
        )
        logger.error("Refused a Pub/Sub push for %r: not a push envelope: %s", cap(name), reason)
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"not a Pub/Sub push envelope: {reason}"
        ) from None
    message = PubSubMessage(
        message_id=envelope.message.message_id,
        publish_time=envelope.message.publish_time,
        attributes=envelope.message.attributes,
        subscription=envelope.subscription,
        delivery_attempt=envelope.delivery_attempt,
    )
    context = {"subscriber": cap(name), "message_id": message.message_id}
    handler = registered(name)
    if handler is None:
        logger.error("No subscriber %r; Pub/Sub will deliver again", cap(name), extra=context)
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such subscriber")
    try:
        event = handler.model.model_validate_json(data)
    except ValidationError as error:
        logger.error(
            "Discarded message %s for %r: invalid data: %s",
            message.message_id,
            name,
            error.errors(include_url=False, include_input=False),
            extra=context,
        )
        return MessageOutcome(status="discarded")
    # The publisher's trace, if it sent one: the run's span continues it (with
    # tracing on), and so do the log lines (either way).
    traceparent = message.attributes.get(TRACEPARENT_ATTRIBUTE, "")
    published_in = parse_traceparent(traceparent)
    parent = (
        TraceContextTextMapPropagator().extract({"traceparent": traceparent})
        if published_in
        else None
    )
    trace = current_trace.set(published_in) if published_in else None
    try:
        with _tracer.start_as_current_span(
            f"process message {name}",
            context=parent,
            kind=otel_trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "gcp_pubsub",
                "messaging.message.id": message.message_id,
            },
        ):
            await handler(event, message)
    except Exception:
        logger.exception(
            "Subscriber %r failed on delivery %s; Pub/Sub will deliver again",
            name,
            message.delivery_attempt or "?",
            extra=context,
        )
        raise HTTPException(
            status.HTTP_500_INTERNAL_SERVER_ERROR, "subscriber failed; Pub/Sub will retry"
        ) from None
    finally:
        if trace is not None:
            current_trace.reset(trace)
    return MessageOutcome(status="done")
