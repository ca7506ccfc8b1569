"""`python -m {{ cookiecutter.package_name }}`: what the container runs."""

{% if cookiecutter.use_secret_manager %}
from typing import cast

# Only the standard library so far: the prefetch child forks before the rest loads.
from .secrets_fetch import SecretPrefetch


def main() -> None:
    # The child imports the Secret Manager library on another CPU while this
    # process imports pydantic and the app (see secrets_fetch.py).
    prefetch = SecretPrefetch.start()
    from .secrets import prefetch_secrets
    from .settings import Secrets, Settings

    prefetch_secrets(prefetch, Secrets, Settings())
    from .main import app
    from .server import serve

    serve(app, cast("Settings", app.state.settings))
{% else %}
from typing import cast

from .main import app
from .server import serve
from .settings import Settings


def main() -> None:
    serve(app, cast("Settings", app.state.settings))
{% endif %}


if __name__ == "__main__":
    main()
