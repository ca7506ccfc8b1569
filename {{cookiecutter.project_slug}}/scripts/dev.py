"""Run the service locally: `make dev`.

Starts uvicorn with auto-reload on http://127.0.0.1:8080 (or `$PORT`), with
`ENVIRONMENT=local` unless `.env` or the shell says otherwise. No Google Cloud
account is needed.
{% if cookiecutter.use_cloud_tasks %}

Deferred tasks really run: a local Cloud Tasks server (dev/local_google, as in the tests)
starts alongside and delivers each task back to this service's push endpoint,
with a signed OIDC token, exactly as Cloud Tasks would.
{% endif %}
{% if cookiecutter.use_scheduler %}

Scheduled tasks run at their times: a local Cloud Scheduler runs the jobs of
deploy/schedules.json against the push endpoint; it prints how to run one now.
{% endif %}
{% if cookiecutter.use_pubsub %}

Pub/Sub messages arrive: Google's Pub/Sub emulator (Google Cloud CLI and
Java) gets the topics and push subscriptions of deploy/subscriptions.json,
and pushes each published message to the service with a signed OIDC token.
Without the emulator the service runs all the same, and says why.
{% endif %}
"""

import os
import sys
{% if cookiecutter.use_pubsub %}
from contextlib import ExitStack
{% endif %}
from pathlib import Path
from types import FrameType

import uvicorn
from dotenv import dotenv_values
{% if cookiecutter.use_scheduler %}
from local_google.cloud_scheduler import LocalCloudScheduler, jobs_from_schedules
{% endif %}
{% if cookiecutter.use_cloud_tasks %}
from local_google.cloud_tasks import LocalCloudTasks, environment
{% endif %}
{% if cookiecutter.use_pubsub %}
from local_google.pubsub import LocalPubSub, PubSubEmulator, unavailable
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
{% if cookiecutter.use_scheduler %}
    jobs = jobs_from_schedules(
        PROJECT_ROOT / "deploy" / "schedules.json",
        parent=f"projects/{settings.gcp_project}/locations/{settings.region}",
        service="{{ cookiecutter.service_name }}-local",
        service_url=os.environ["SERVICE_URL"],
        invoker=settings.invoker_email,
        audience=settings.tasks_audience or os.environ["SERVICE_URL"],
    )
    scheduler = LocalCloudScheduler(jobs, issuer=cloud_tasks.issuer).start()
    for job, due in scheduler.next_runs().items():
        print(
            f"Local Cloud Scheduler: {job} next at {due:%Y-%m-%d %H:%M} UTC; run it now:\n"
            f"  curl -X POST {scheduler.url}/v1/{job}:run",
            file=sys.stderr,
        )
{% endif %}
{% if cookiecutter.use_pubsub %}
    running = ExitStack()
    if (reason := unavailable()) is not None:
        print(f"No local Pub/Sub: {reason}", file=sys.stderr)
    else:
        emulator = running.enter_context(PubSubEmulator())
        pubsub = running.enter_context(
            LocalPubSub(emulator, project=settings.gcp_project, issuer=cloud_tasks.issuer)
        )
        topics = pubsub.deploy_subscriptions(
            PROJECT_ROOT / "deploy" / "subscriptions.json",
            prefix="{{ cookiecutter.service_name }}-local",
            service_url=os.environ["SERVICE_URL"],
            invoker=settings.invoker_email,
            audience=settings.tasks_audience or os.environ["SERVICE_URL"],
        )
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        message = """'{"messages": [{"data": "<base64 of the JSON>"}]}'"""
        for topic in sorted(set(topics.values())):
            publish = f"http://{emulator.host}/v1/{pubsub.topic_path(topic)}:publish"
            print(
                f"Pub/Sub emulator on {emulator.host}; publish to {topic}:\n"
                f"  curl -X POST {publish} -H 'Content-Type: application/json' -d {message}",
                file=sys.stderr,
            )
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
{% if cookiecutter.use_pubsub %}
    with running:  # stops the emulator's JVM with the server
        Reloader(config, target=server.run, sockets=[config.bind_socket()]).run()
{% else %}
    Reloader(config, target=server.run, sockets=[config.bind_socket()]).run()
{% endif %}


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
