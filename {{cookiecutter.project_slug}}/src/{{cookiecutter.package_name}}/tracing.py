"""Traces in Cloud Trace, with OpenTelemetry: a span for every request, enqueue and task run.

- **Where**: Cloud Trace's Telemetry API, OTLP over HTTP
  (`https://telemetry.googleapis.com/v1/traces`), which Google recommends over
  its own trace exporters (https://cloud.google.com/trace/docs/migrate-to-otlp-endpoints),
  with the runtime account's credentials (`roles/cloudtrace.agent`). The
  OTLP/HTTP exporter needs no gRPC and no Google client of its own.
- **Which**: Cloud Run's front end decides whether a request is sampled and
  says so in `traceparent`; spans follow that decision (`ParentBased`). A
  request that arrives without one is sampled at `TRACE_SAMPLE_RATE`.
- **Nothing lost with CPU only during requests**: Cloud Run may throttle an
  instance's CPU once a response is sent (`cpu_idle`,
  https://cloud.google.com/run/docs/configuring/billing-settings), so a
  background exporter could sit on spans until the next request. A sampled
  request's spans are therefore exported before its last byte goes out (its
  own span ends first), and the lifespan shuts the provider down on SIGTERM,
  when Cloud Run gives the instance CPU for its last 10 seconds
  (https://cloud.google.com/run/docs/container-contract#instance-shutdown).
- **Cold start**: the SDK (about 120 ms of imports) loads in a thread once the
  server is up, so it costs no time before the first response; requests
  before it is ready are not traced.

Code elsewhere uses only the OpenTelemetry API (FastAPI already imports it):
`tasks/client.py` and `tasks/push.py` open spans that are no-ops without this
module, and `logs.py` writes the active span's IDs into every log line.
"""

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry import trace as otel_trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger(__name__)
_FLUSH_MILLIS = 3000
_TRACE_SCOPE = "https://www.googleapis.com/auth/trace.append"


class Tracing:
    """The process's tracer provider: started and stopped by the lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.provider: TracerProvider | None = None
        self.tracer: otel_trace.Tracer | None = None

    def start(self) -> None:
        """Build the provider and make it the global one. Blocking: imports."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        settings = self.settings
        resource = Resource.create(
            {
                "service.name": os.environ.get("K_SERVICE", "{{ cookiecutter.service_name }}"),
                "service.version": os.environ.get("K_REVISION", "local"),
                "gcp.project_id": settings.gcp_project,
            }
        )
        provider = TracerProvider(
            resource=resource,
            sampler=ParentBased(root=TraceIdRatioBased(settings.trace_sample_rate)),
        )
        exporter = OTLPSpanExporter(
            endpoint=settings.traces_endpoint, session=_session(settings.traces_endpoint)
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
        otel_trace.set_tracer_provider(provider)
        self.provider = provider
        self.tracer = provider.get_tracer("{{ cookiecutter.package_name }}")
        logger.info("Tracing to %s", settings.traces_endpoint)

    def flush(self) -> None:
        if self.provider is not None:
            self.provider.force_flush(_FLUSH_MILLIS)

    def stop(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()  # exports what is left


def _session(endpoint: str) -> Any:
    """Google's endpoint takes the instance's credentials; any other (a local
    receiver in tests) none."""
    import requests

    if not (urlsplit(endpoint).hostname or "").endswith(".googleapis.com"):
        return requests.Session()
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=[_TRACE_SCOPE])
    return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]


def _start(state: Tracing) -> None:
    """Start tracing, or say why the service runs without it: a service that
    cannot trace still serves."""
    from google.auth.exceptions import DefaultCredentialsError

    try:
        state.start()
    except DefaultCredentialsError as error:  # e.g. `local` with no gcloud login
        endpoint = state.settings.traces_endpoint
        logger.warning("Tracing is off: no Google credentials for %s (%s)", endpoint, error)
    except Exception:
        logger.exception("Tracing is off: it failed to start")


@asynccontextmanager
async def tracing(state: Tracing) -> AsyncIterator[None]:
    """For the lifespan: start tracing in the background; stop it, exporting
    what is left, when the app shuts down."""
    started = asyncio.create_task(asyncio.to_thread(_start, state))
    try:
        yield
    finally:
        await asyncio.gather(started, return_exceptions=True)
        await asyncio.to_thread(state.stop)


class TracingMiddleware:
    """A server span for each request, parented by the caller's `traceparent`,
    ended and (when sampled) exported before the response's last byte."""

    def __init__(self, app: ASGIApp, state: Tracing) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = self.state.tracer
        if scope["type"] != "http" or tracer is None:
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope.get("method", "")
        span = tracer.start_span(
            f"{method} {scope.get('path', '')}",
            context=propagate.extract(carrier),
            kind=otel_trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        )
        token = otel_context.attach(otel_trace.set_span_in_context(span))

        async def traced_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                span.set_attribute("http.response.status_code", message["status"])
                if message["status"] >= 500:
                    span.set_status(otel_trace.StatusCode.ERROR)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                await self._finish(span, scope)
            await send(message)

        try:
            await self.app(scope, receive, traced_send)
        except Exception as error:
            span.record_exception(error)
            span.set_status(otel_trace.StatusCode.ERROR)
            raise
        finally:
            if span.is_recording():
                await self._finish(span, scope)
            otel_context.detach(token)

    async def _finish(self, span: otel_trace.Span, scope: Mapping[str, Any]) -> None:
        if not span.is_recording():
            return
        route = scope.get("route")
        if template := getattr(route, "path", None):
            span.update_name(f"{scope.get('method', '')} {template}")
            span.set_attribute("http.route", template)
        span.end()
        if span.get_span_context().trace_flags.sampled:
            await asyncio.to_thread(self.state.flush)
