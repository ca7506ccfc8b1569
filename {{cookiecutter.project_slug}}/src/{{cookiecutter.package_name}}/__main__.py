"""`python -m {{ cookiecutter.package_name }}`: what the container runs."""

from typing import cast

from .main import app
from .server import serve
from .settings import Settings


def main() -> None:
    serve(app, cast("Settings", app.state.settings))


if __name__ == "__main__":
    main()
