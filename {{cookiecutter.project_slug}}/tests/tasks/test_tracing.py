"""One trace from a request to the task it deferred, in Cloud Trace and in the logs."""

from collections.abc import Iterator

import httpx
import pytest
from local_google.cloud_tasks import LocalCloudTasks
from local_google.cloud_trace import LocalCloudTrace

from .conftest import Deployment, deployed, runs, wait_until

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def traced(cloud_tasks: LocalCloudTasks) -> Iterator[tuple[Deployment, LocalCloudTrace]]:
    with (
        LocalCloudTrace() as cloud_trace,
        deployed(
            cloud_tasks,
            public=False,
            TRACES_ENDPOINT=cloud_trace.endpoint,
            TRACE_SAMPLE_RATE="0",
        ) as deployment,
    ):
        wait_until(lambda: any("Tracing to" in line for line in deployment.service.lines))
        yield deployment, cloud_trace


def test_the_request_the_enqueue_and_the_task_run_are_one_trace(
    traced: tuple[Deployment, LocalCloudTrace],
) -> None:
    deployment, cloud_trace = traced
    token = deployment.issuer.token("caller@test-project.iam.gserviceaccount.com", deployment.url)
    response = httpx.post(
        f"{deployment.url}/test/defer",
        json={"task": "record", "payload": {"text": "traced", "count": 1}},
        headers={"Authorization": f"Bearer {token}", "traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    wait_until(lambda: runs(deployment.service, "record"))
    spans = {span.name: span for span in cloud_trace.wait_for(4)}

    request, enqueue = spans["POST /test/defer"], spans["enqueue record"]
    push, run = spans["POST /_tasks/record"], spans["run task record"]
    assert {span.trace_id for span in spans.values()} == {TRACE}
    # The front end logs a request once the service has answered it, after its spans.
    forwarded = deployment.front_end.log.forwarded
    wait_until(lambda: {"/test/defer", "/_tasks/record"} <= {f.path for f in forwarded})
    front_end = {f.path: f for f in forwarded}
    # The front end saw the caller's span, passed on a span of its own.
    assert front_end["/test/defer"].sent_headers["traceparent"].split("-")[2] == CALLER_SPAN
    assert request.parent_span_id == front_end["/test/defer"].headers["traceparent"].split("-")[2]
    assert enqueue.parent_span_id == request.span_id
    # Cloud Tasks sent the enqueue span as the push's parent, to the front end.
    assert front_end["/_tasks/record"].sent_headers["traceparent"].split("-")[2] == enqueue.span_id
    assert push.parent_span_id == front_end["/_tasks/record"].headers["traceparent"].split("-")[2]
    assert run.parent_span_id == push.span_id
    (ran,) = runs(deployment.service, "record")
    assert ran["logging.googleapis.com/trace"].endswith(TRACE)
    assert ran["logging.googleapis.com/spanId"] == run.span_id, "the handler logs in its span"
