"""Write what Terraform deploys from the code's declarations: `make triggers`.

Terraform cannot import Python, so what the app declares for it is written
to JSON files under `deploy/` that Terraform reads:

{% if cookiecutter.use_scheduler %}
- `schedules.json`: one Cloud Scheduler job per `@scheduled` declaration.
{% endif %}
{% if cookiecutter.use_pubsub %}
- `subscriptions.json`: one Pub/Sub push subscription per `@subscriber`.
{% endif %}

The files are committed: a change shows in review next to the code that made
it, and the tests fail (`--check`) while a file is out of step with the code.
"""

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import {{ cookiecutter.package_name }}.main  # noqa: F401  (imports every module that declares them)
{% if cookiecutter.use_pubsub %}
from {{ cookiecutter.package_name }}.pubsub import subscribers
{% endif %}
{% if cookiecutter.use_scheduler %}
from {{ cookiecutter.package_name }}.tasks import schedules
{% endif %}

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
MANIFESTS: Mapping[str, Callable[[], Mapping[str, Any]]] = {
{% if cookiecutter.use_scheduler %}
    "schedules.json": schedules.manifest,
{% endif %}
{% if cookiecutter.use_pubsub %}
    "subscriptions.json": subscribers.manifest,
{% endif %}
}


def rendered(manifest: Callable[[], Mapping[str, Any]]) -> str:
    return json.dumps(manifest(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is out of step"
    )
    args = parser.parse_args()
    stale = []
    for name, manifest in MANIFESTS.items():
        path = DEPLOY / name
        try:
            text = rendered(manifest)
        except ValueError as error:
            print(f"Cannot write deploy/{name}: {error}", file=sys.stderr)
            return 2
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(name)
        else:
            path.write_text(text)
            print(f"Wrote deploy/{name}", file=sys.stderr)
    if stale:
        print(
            f"Out of step with the code: {', '.join(f'deploy/{n}' for n in stale)}. "
            "Run `make triggers` and commit the result.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
