"""A message's run continues the trace its publisher sent, in Cloud Trace and
in the logs."""

import json

from local_google.cloud_trace import LocalCloudTrace, ReceivedSpan
from local_google.pubsub import PubSubEmulator

from ..tasks.conftest import wait_until
from .conftest import deployed, serving
from .test_delivery import logged

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PUBLISHER_SPAN = "00f067aa0ba902b7"


def runs(cloud_trace: LocalCloudTrace) -> list[ReceivedSpan]:
    return [span for span in cloud_trace.spans if span.name == "process message record-order"]


def test_the_subscriber_runs_in_the_publishers_trace(emulator: PubSubEmulator) -> None:
    with (
        LocalCloudTrace() as cloud_trace,
        serving(
            public=False, TRACES_ENDPOINT=cloud_trace.endpoint, TRACE_SAMPLE_RATE="0"
        ) as service,
        deployed(emulator, service) as deployment,
    ):
        wait_until(lambda: any("Tracing to" in line for line in deployment.service.lines))
        deployment.pubsub.publish(
            deployment.topics["record-order"],
            json.dumps({"order_id": "A-3", "total_cents": 1}).encode(),
            googclient_traceparent=f"00-{TRACE}-{PUBLISHER_SPAN}-01",
        )

        wait_until(lambda: logged(deployment.service, "Recorded an order"))
        # A sampled push's spans are exported before its response ends.
        wait_until(lambda: runs(cloud_trace))
        (run,) = runs(cloud_trace)
        assert (run.trace_id, run.parent_span_id) == (TRACE, PUBLISHER_SPAN)
        (entry,) = logged(deployment.service, "Recorded an order")
        assert entry["logging.googleapis.com/trace"] == f"projects/test-project/traces/{TRACE}"
        assert entry["logging.googleapis.com/spanId"] == run.span_id, "logged in the run's span"
