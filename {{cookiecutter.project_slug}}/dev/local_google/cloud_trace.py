"""A local stand-in for Cloud Trace's Telemetry API: `POST /v1/traces`.

Cloud Trace takes OpenTelemetry's own protocol, OTLP, at
https://telemetry.googleapis.com/v1/traces: an `ExportTraceServiceRequest` in
protobuf (or JSON), answered with an `ExportTraceServiceResponse`
(https://cloud.google.com/stackdriver/docs/reference/telemetry/v1.traces.post).
This receiver takes the protobuf form, keeps every span it is sent, and
answers the same way; it decodes with the OTLP protobuf types the exporter
itself uses. Point `TRACES_ENDPOINT` at `endpoint`. Set `failing_with` to an
HTTP status (503, say) to have it refuse every export with it, as in an
outage, and back to None to end the outage.
"""

import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any, Self

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from .lifecycle import LocalServer, QuietHandler, serve_in_background, wait_for_count


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    received_at: float


class LocalCloudTrace(LocalServer):
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.failing_with: int | None = None
        self._lock = threading.Condition()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if (
                    self.path != "/v1/traces"
                    or self.headers.get("content-type") != "application/x-protobuf"
                ):
                    self.send_error(415 if self.path == "/v1/traces" else 404)
                    return
                if receiver.failing_with is not None:
                    self.send_error(receiver.failing_with)
                    return
                receiver._receive(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def endpoint(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/v1/traces"

    def _receive(self, request: ExportTraceServiceRequest) -> None:
        now = time.time()
        with self._lock:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            ReceivedSpan(
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                kind=span.kind,
                                attributes=_attributes(span.attributes),
                                resource=resource,
                                received_at=now,
                            )
                        )
            self._lock.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Block until at least `count` spans arrived; all of them."""
        return wait_for_count(self._lock, self.spans, count, timeout, "spans received")

    def start(self) -> Self:
        serve_in_background(self._server)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _attributes(attributes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attribute in attributes:
        value = attribute.value
        field = value.WhichOneof("value")
        values[attribute.key] = getattr(value, field) if field else None
    return values
