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
- **A tracing outage is not a latency outage**: a response waits at most
  `_FLUSH_MILLIS` for that export, and once an export has failed or that wait
  ran out, responses stop waiting (`FlushBreaker`): their spans go out in the
  background and at shutdown, until an export succeeds again or, after
  `_COOL_DOWN_SECONDS`, one sampled request tries waiting again. One warning
  when exports start failing, one line when they work again. An export gives
  up after `_EXPORT_SECONDS`, retries included, so what is left at SIGTERM
  still goes (or is given up on) within those 10 seconds.
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
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry import trace as otel_trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)
# The longest a response waits for its spans' export.
_FLUSH_MILLIS = 3000
# The longest one export may take, retries included (the OTLP exporter's own
# default is 10 s). A healthy Telemetry API answers well within it; a dead one
# costs the SIGTERM shutdown at most this (plus an export already under way),
# inside the 10 s Cloud Run allows.
_EXPORT_SECONDS = 3.0
# How long responses stop waiting for the export after it failed. Long enough
# that an outage delays one sampled request a minute per instance, not every
# one; short enough that traces are again complete soon after it ends (and an
# export that succeeds in the background ends the pause at once).
_COOL_DOWN_SECONDS = 60.0
_TRACE_SCOPE = "https://www.googleapis.com/auth/trace.append"


class FlushBreaker:
    """Whether a sampled response should wait for its spans' export: not
    while exports fail. Told of every export's outcome, and of waits that ran
    out; thread-safe (the exports run in the SDK's threads)."""

    def __init__(
        self,
        cool_down: float = _COOL_DOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cool_down = cool_down
        self._clock = clock
        self._lock = threading.Lock()
        self._failing = False
        self._retry_at = 0.0

    def should_flush(self) -> bool:
        with self._lock:
            if not self._failing:
                return True
            now = self._clock()
            if now < self._retry_at:
                return False
            # This request tries; the others keep skipping until it is known
            # how that went.
            self._retry_at = now + self.cool_down
            return True

    def failed(self, why: str) -> None:
        with self._lock:
            self._retry_at = self._clock() + self.cool_down
            if self._failing:
                return
            self._failing = True
        logger.warning(
            "Trace export %s: responses stop waiting for it for %.0f s at a time; "
            "their spans are exported in the background",
            why,
            self.cool_down,
        )

    def succeeded(self) -> None:
        with self._lock:
            if not self._failing:
                return
            self._failing = False
        logger.info("Trace export works again: sampled responses wait for it again")


class Tracing:
    """The process's tracer provider: started and stopped by the lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.provider: TracerProvider | None = None
        self.tracer: otel_trace.Tracer | None = None
        self.breaker = FlushBreaker()

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
            endpoint=settings.traces_endpoint,
            session=_session(settings.traces_endpoint),
            timeout=_EXPORT_SECONDS,
        )
        provider.add_span_processor(BatchSpanProcessor(_reporting(exporter, self.breaker)))
        otel_trace.set_tracer_provider(provider)
        self.provider = provider
        self.tracer = provider.get_tracer("{{ cookiecutter.package_name }}")
        logger.info("Tracing to %s", settings.traces_endpoint)

    async def flush(self) -> None:
        """Export the ended spans, waiting at most `_FLUSH_MILLIS`, and not at
        all while exports fail."""
        provider = self.provider
        if provider is None or not self.breaker.should_flush():
            return
        # The batch processor's force_flush ignores its timeout: it returns
        # when the export does (and True even when that failed). So the wait
        # is bounded here; an export that outlasts it finishes in its thread.
        try:
            await asyncio.wait_for(
                asyncio.to_thread(provider.force_flush, _FLUSH_MILLIS), _FLUSH_MILLIS / 1000
            )
        except TimeoutError:
            self.breaker.failed(f"took over {_FLUSH_MILLIS} ms")

    def stop(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()  # exports what is left


def _reporting(exporter: "SpanExporter", breaker: FlushBreaker) -> "SpanExporter":
    """`exporter`, telling `breaker` how each export went."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Reporting(SpanExporter):
        def export(self, spans: Sequence["ReadableSpan"]) -> SpanExportResult:
            try:
                result = exporter.export(spans)
            except Exception:
                breaker.failed("raised an error")
                raise
            if result is SpanExportResult.SUCCESS:
                breaker.succeeded()
            else:
                breaker.failed("failed")
            return result

        def shutdown(self) -> None:
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return exporter.force_flush(timeout_millis)

    return Reporting()


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
    ended and (when sampled, and exports work) exported before the response's
    last byte."""

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
            await self.state.flush()
