"""Run the service locally: `make dev`.

Starts uvicorn with auto-reload on http://127.0.0.1:8080 (or `$PORT`), with
`ENVIRONMENT=local` unless `.env` or the shell says otherwise. No Google Cloud
account is needed.
"""

import sys
from pathlib import Path

import uvicorn

from {{ cookiecutter.package_name }}.logs import build_log_config
from {{ cookiecutter.package_name }}.settings import Settings


def main() -> None:
    settings = Settings()
    print(
        f"Serving on http://{settings.host}:{settings.port} "
        f"(health: /healthz, API docs: /docs); Ctrl-C stops.",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        "{{ cookiecutter.package_name }}.main:app",
        host=settings.host,
        port=settings.port,
        reload=True,
        reload_dirs=[str(Path(__file__).resolve().parent.parent / "src")],
        log_config=build_log_config(settings),
        access_log=False,
    )


if __name__ == "__main__":
    main()
