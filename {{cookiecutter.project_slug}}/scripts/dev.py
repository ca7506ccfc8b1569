"""Run the service locally: `make dev`.

Starts uvicorn with auto-reload on http://127.0.0.1:8080 (or `$PORT`), with
`ENVIRONMENT=local` unless `.env` or the shell says otherwise. No Google Cloud
account is needed.
{% if cookiecutter.use_cloud_tasks %}

Deferred tasks really run: a local Cloud Tasks server (dev/local_google, as in the tests)
starts alongside and delivers each task back to this service's push endpoint,
with a signed OIDC token, exactly as Cloud Tasks would.
{% endif %}
"""

import os
import sys
from pathlib import Path
from types import FrameType

import uvicorn
from dotenv import dotenv_values
{% if cookiecutter.use_cloud_tasks %}
from local_google.cloud_tasks import LocalCloudTasks, environment
{% endif %}
from uvicorn.supervisors.statreload import StatReload

from {{ cookiecutter.package_name }}.logs import build_log_config
from {{ cookiecutter.package_name }}.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    # Local unless the shell or .env say otherwise (the service itself requires
    # ENVIRONMENT to be set, so that an image never runs as local by accident).
    os.environ.setdefault("ENVIRONMENT", dotenv_values(".env").get("ENVIRONMENT") or "local")
    settings = Settings()
    url = f"http://{settings.host}:{settings.port}"
{% if cookiecutter.use_cloud_tasks %}
    queue = (
        f"projects/{settings.gcp_project}/locations/{settings.queue_location}"
        f"/queues/{settings.tasks_queue}"
    )
    cloud_tasks = LocalCloudTasks()
    cloud_tasks.add_queue(queue)
    cloud_tasks.start()
    # The reloading server process inherits these.
    os.environ.update(environment(cloud_tasks))
    os.environ.setdefault("SERVICE_URL", url)
    print(f"Local Cloud Tasks on {cloud_tasks.address}, queue {queue}", file=sys.stderr)
{% endif %}
    print(
        f"Serving on {url} (health: /healthz, API docs: /docs); Ctrl-C stops.",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        "{{ cookiecutter.package_name }}.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        reload=True,
        reload_dirs=[str(PROJECT_ROOT / "src")],
        log_config=build_log_config(settings),
        access_log=False,
        proxy_headers=False,  # the app reads Google's forwarding headers itself
    )
    server = uvicorn.Server(config)
    Reloader(config, target=server.run, sockets=[config.bind_socket()]).run()


class Reloader(StatReload):
    """uvicorn's reloader (what `uvicorn.run(reload=True)` runs), minus a hang.

    Its signal handler sets a `threading.Event`; a second signal that arrives
    while the first handler holds the event's lock blocks the process for good.
    A stop sent to the whole process group (an IDE's stop button, `kill --
    -<pgid>`) brings SIGTERM twice: directly, and forwarded by `uv run` and by
    `make`. Here every signal after the first is a no-op.
    """

    stopping = False

    def signal_handler(self, sig: int, frame: FrameType | None) -> None:
        if self.stopping:
            return
        self.stopping = True
        super().signal_handler(sig, frame)


if __name__ == "__main__":
    main()
