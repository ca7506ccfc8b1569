"""`python -m {{ cookiecutter.package_name }}`: what the container runs."""

from typing import TYPE_CHECKING, cast

{% if cookiecutter.use_secret_manager %}
# Only the standard library so far: the prefetch child forks before the rest loads.
from .secrets_fetch import SecretPrefetch

{% endif %}
if TYPE_CHECKING:
    from .settings import Settings


def main() -> None:
{% if cookiecutter.use_secret_manager %}
    # The child imports the Secret Manager library on another CPU while this
    # process imports pydantic and the app (see secrets_fetch.py).
    prefetch = SecretPrefetch.start()
    from . import secrets, settings

    secrets.prefetch_secrets(prefetch, settings.Secrets, settings.Settings())
{% endif %}
    from .main import app
    from .server import serve

    serve(app, cast("Settings", app.state.settings))


if __name__ == "__main__":
    main()
