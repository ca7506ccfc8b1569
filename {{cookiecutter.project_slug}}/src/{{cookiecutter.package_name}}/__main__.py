"""`python -m {{ cookiecutter.package_name }}`: what the container runs."""

import sys
{% if cookiecutter.use_secret_manager %}

# Only the standard library so far: the prefetch child forks before the rest loads.
from .secrets_prefetch import SecretPrefetch
{% endif %}


def main() -> None:
{% if cookiecutter.use_secret_manager %}
    # The child imports the Secret Manager library on another CPU while this
    # process imports pydantic and the app (see secrets_prefetch.py).
    prefetch = SecretPrefetch.start()
{% endif %}
    from .logs import configure_logging, startup_failure
    from .settings import InvalidSettings, settings_from_environment

    try:
        settings = settings_from_environment()
    except InvalidSettings as error:
        startup_failure(f"Cannot start: {error}")
        sys.exit(1)
    configure_logging(settings)
{% if cookiecutter.use_secret_manager %}
    from .secrets import PendingSecrets, SecretsError
    from .settings import Secrets

    # Tell the child which secrets to read as soon as the settings are known.
    secrets = PendingSecrets(Secrets, settings.secret_source, prefetch)
{% endif %}
    from .main import create_app
    from .server import serve

{% if cookiecutter.use_secret_manager %}
    app = create_app(settings, secrets=secrets)
    try:
        # Before the server starts, so that a missing secret is one clear line,
        # not a traceback from inside the lifespan (which reuses the result).
        secrets.result()
    except SecretsError as error:
        startup_failure(f"Cannot start: {error}")
        sys.exit(1)
    serve(app, settings)
{% else %}
    serve(create_app(settings), settings)
{% endif %}


if __name__ == "__main__":
    main()
