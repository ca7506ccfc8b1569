"""The application: `create_app()` builds it, the lifespan owns its clients.

Everything that holds a connection (Google Cloud clients, HTTP pools) is created
once per process in `lifespan` and closed there when Cloud Run stops the
instance, so no request pays for a client and no connection is leaked.
"""

{% if cookiecutter.use_secret_manager or cookiecutter.use_cloud_tasks %}
import asyncio
{% endif %}
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

{% if cookiecutter.use_pubsub and cookiecutter.use_scheduler %}
from . import events, reports  # noqa: F401  (their handlers register on import)
{% elif cookiecutter.use_pubsub %}
from . import events  # noqa: F401  (its subscriber registers on import)
{% elif cookiecutter.use_scheduler %}
from . import reports  # noqa: F401  (its scheduled task registers on import)
{% endif %}
from .access_log import RequestLogMiddleware
from .api import ROUTERS
from .api.health import LivenessProbe
from .forwarded import CloudRunForwarding
{% if cookiecutter.use_pubsub %}
from .pubsub import push as pubsub_push
{% endif %}
from .request_limits import RequestSizeLimit, validation_error
{% if cookiecutter.use_secret_manager %}
from .secrets import PendingSecrets
from .settings import Secrets, Settings
{% else %}
from .settings import Settings
{% endif %}
{% if cookiecutter.use_cloud_tasks %}
from .tasks import push
from .tasks.auth import CertificateCache, OidcVerifier
from .tasks.client import Queue, task_queue
{% endif %}
{% if cookiecutter.use_tracing %}
from .tracing import Tracing, TracingMiddleware, tracing
{% endif %}


def create_app(
    settings: Settings | None = None,
{% if cookiecutter.use_secret_manager or cookiecutter.use_cloud_tasks %}
    *,
{% endif %}
{% if cookiecutter.use_secret_manager %}
    secrets: PendingSecrets[Secrets] | None = None,
{% endif %}
{% if cookiecutter.use_cloud_tasks %}
    queue: Queue | None = None,
{% endif %}
) -> FastAPI:
    """Build the app. Nothing here does I/O: that waits for the lifespan.

    `settings` default to the environment's (as for `uvicorn --factory`).
{% if cookiecutter.use_secret_manager %}
    `secrets` is a read of the secrets already under way (the entry point
    starts one before it imports this module), else the lifespan starts one.
{% endif %}
{% if cookiecutter.use_cloud_tasks %}
    `queue` receives what `.defer()` sends, instead of Cloud Tasks (tests).
{% endif %}
    """
    settings = settings or Settings()
{% if cookiecutter.use_tracing %}
    trace_state = Tracing(settings)
{% endif %}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as clients:
{% if cookiecutter.use_tracing %}
            # First in, so last out: what the other clients do at shutdown is traced.
            await clients.enter_async_context(tracing(trace_state))
{% endif %}
{% if cookiecutter.use_secret_manager %}
            # All declared secrets in one concurrent round trip; fails startup loudly.
            pending = secrets or PendingSecrets(Secrets, settings.secret_source)
            app.state.secrets = await asyncio.to_thread(pending.result)
{% endif %}
{% if cookiecutter.use_cloud_tasks %}
            # The queue's client is created in the background once the server
            # listens (it sets `listening`, server.py), off the startup path.
            app.state.listening = listening = asyncio.Event()
            await clients.enter_async_context(task_queue(settings, queue, listening=listening))
            app.state.task_verifier = OidcVerifier(
                audience=settings.oidc_audience,
                invoker_email=settings.invoker_email,
                certificates=CertificateCache(settings.tasks_oidc_certs_url),
                behind_cloud_run_iam=settings.behind_cloud_run_iam,
            )
{% endif %}
            # Long-lived clients enter `clients` here; it closes them in reverse
            # order after the last in-flight request has finished.
            app.state.clients = clients
            app.state.ready = True
            yield
            app.state.ready = False

    docs = settings.serves_api_docs
    app = FastAPI(
        title="{{ cookiecutter.project_name }}",
        description="{{ cookiecutter.description }}",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        # FastAPI's native OpenTelemetry hooks cost a provider lookup on every
        # request even with nothing configured. Logs already carry Cloud Trace's
        # trace ID (logs.py); to export spans too, configure an OpenTelemetry SDK
        # and pass its providers here instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        exception_handlers={RequestValidationError: validation_error},
    )
    app.state.settings = settings
    app.state.ready = False
    # Outermost last: the client's address is known before the access log
    # starts, an oversized request is logged like any other, and Cloud Run's
    # liveness probe is logged but answered before the rest (api/health.py).
{% if cookiecutter.use_tracing %}
    app.add_middleware(TracingMiddleware, state=trace_state)
{% endif %}
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(LivenessProbe)
    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(CloudRunForwarding, hops=settings.forwarded_hops)
    for router in ROUTERS:
        app.include_router(router)
{% if cookiecutter.use_cloud_tasks %}
    # After the routers: their modules have registered their tasks by now.
    app.include_router(push.task_router())
{% endif %}
{% if cookiecutter.use_pubsub %}
    app.include_router(pubsub_push.router)
{% endif %}
    return app
