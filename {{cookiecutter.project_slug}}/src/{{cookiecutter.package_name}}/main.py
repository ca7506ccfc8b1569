"""The application: `create_app()` builds it, the lifespan owns its clients.

Everything that holds a connection (Google Cloud clients, HTTP pools) is created
once per process in `lifespan` and closed there when Cloud Run stops the
instance, so no request pays for a client and no connection is leaked.
"""

{% if cookiecutter.use_secret_manager %}
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
{% if cookiecutter.use_cloud_tasks %}
from .api import health, signups
{% else %}
from .api import health
{% endif %}
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
from .tasks.client import task_queue
{% endif %}


{% if cookiecutter.use_secret_manager %}
def create_app(
    settings: Settings | None = None, *, secrets: PendingSecrets[Secrets] | None = None
) -> FastAPI:
    """Build the app. Nothing here does I/O: that waits for the lifespan.

    `settings` default to the environment's (as for `uvicorn --factory`);
    `secrets` is a read of the secrets already under way (the entry point
    starts one before it imports this module), else the lifespan starts one.
    """
    settings = settings or Settings()
{% else %}
def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Nothing here does I/O: that waits for the lifespan.

    `settings` default to the environment's (as for `uvicorn --factory`).
    """
    settings = settings or Settings()
{% endif %}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as clients:
{% if cookiecutter.use_secret_manager %}
            # All declared secrets in one concurrent round trip; fails startup loudly.
            pending = secrets or PendingSecrets(Secrets, settings.secret_source)
            app.state.secrets = await asyncio.to_thread(pending.result)
{% endif %}
{% if cookiecutter.use_cloud_tasks %}
            # The queue's client is created in the background, off the startup path.
            await clients.enter_async_context(task_queue(settings))
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

    app = FastAPI(
        title="{{ cookiecutter.project_name }}",
        description="{{ cookiecutter.description }}",
        version="0.1.0",
        lifespan=lifespan,
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
    # starts, and an oversized request is logged like any other.
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(CloudRunForwarding, hops=settings.forwarded_hops)
    app.include_router(health.router)
{% if cookiecutter.use_cloud_tasks %}
    app.include_router(signups.router)
    app.include_router(push.router)
{% endif %}
{% if cookiecutter.use_pubsub %}
    app.include_router(pubsub_push.router)
{% endif %}
    return app
