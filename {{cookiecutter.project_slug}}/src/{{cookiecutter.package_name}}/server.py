"""Run the app under uvicorn the way Cloud Run needs it.

- One process per instance: Cloud Run scales instances, not workers.
- `PORT` from the environment; `HOST` is 0.0.0.0 in the container image.
- Proxy headers trusted: only Google's front end can reach the container.
- On SIGTERM uvicorn stops accepting connections, lets in-flight requests
  finish for `graceful_shutdown_seconds`, then runs the lifespan shutdown
  (https://cloud.google.com/run/docs/container-contract#instance-shutdown).
"""

import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

from .logs import build_log_config
from .settings import Settings


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    """uvicorn handles SIGTERM itself, then replays it to the previous handler
    once shutdown is complete. Installed as that previous handler, this makes a
    finished graceful shutdown exit with status 0 instead of dying by signal."""


def serve(app: FastAPI, settings: Settings) -> None:
    signal.signal(signal.SIGTERM, _after_graceful_shutdown)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=build_log_config(settings),
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips="*",
        server_header=False,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
    )
