"""`python -m local_google`: run local stand-ins for Google as one process.

Starts what its options ask for, all sharing one token issuer, prints the
settings that point the service at them as one line of JSON, and serves until
SIGTERM or Ctrl-C:

{% if cookiecutter.use_secret_manager %}
- `--secret projects/<p>/secrets/<id>=<value>`: Secret Manager, with that secret.
{% endif %}
{% if cookiecutter.use_cloud_tasks %}
- `--queue projects/<p>/locations/<l>/queues/<q>`: Cloud Tasks, with that queue.
{% endif %}
- `--cloud-run http://127.0.0.1:<port>`: Cloud Run's front end for the service
  listening there, private (`--invoker <email>` for each principal that holds
  `roles/run.invoker`) or `--public`. `SERVICE_URL` is then the front end's
  URL: callers{% if cookiecutter.use_cloud_tasks %} and tasks{% endif %} go through it.
"""

import argparse
import json
import signal
import threading
from contextlib import ExitStack
from types import FrameType

from .issuer import LocalIssuer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
{% if cookiecutter.use_secret_manager %}
    parser.add_argument(
        "--secret", action="append", default=[], help="projects/<p>/secrets/<id>=<value>"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each call")
{% endif %}
{% if cookiecutter.use_cloud_tasks %}
    parser.add_argument("--queue", action="append", default=[], help="full queue path")
{% endif %}
    parser.add_argument("--cloud-run", metavar="URL", help="the service the front end proxies")
    parser.add_argument("--invoker", action="append", default=[], help="holds run.invoker")
    parser.add_argument("--public", action="store_true", help="allUsers holds run.invoker")
    parser.add_argument("--request-timeout", type=float, default=300.0)
    args = parser.parse_args()

    settings: dict[str, str] = {}
    with ExitStack() as running:
        issuer = running.enter_context(LocalIssuer())
{% if cookiecutter.use_secret_manager %}
        if args.secret:
            from .secret_manager import LocalSecretManager

            secrets = running.enter_context(LocalSecretManager())
            for item in args.secret:
                name, _, value = item.partition("=")
                secrets.put(name, value)
            secrets.faults.delay(args.latency)
            settings["SECRET_MANAGER_EMULATOR_HOST"] = secrets.address
{% endif %}
{% if cookiecutter.use_cloud_tasks %}
        settings["TASKS_OIDC_CERTS_URL"] = issuer.certs_url
        if args.queue:
            from .cloud_tasks import LocalCloudTasks

            tasks = LocalCloudTasks(issuer=issuer)
            for queue in args.queue:
                tasks.add_queue(queue)
            running.enter_context(tasks)
            settings["CLOUD_TASKS_EMULATOR_HOST"] = tasks.address
{% endif %}
        if args.cloud_run:
            from .cloud_run import LocalCloudRun

            front_end = LocalCloudRun(
                args.cloud_run,
                issuer=issuer,
                invokers=args.invoker,
                public=args.public,
                request_timeout=args.request_timeout,
            )
            running.enter_context(front_end)
            settings["SERVICE_URL"] = front_end.url
        print(json.dumps(settings), flush=True)
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        while not stop.wait(0.2):
            pass


if __name__ == "__main__":
    main()
