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
    from .settings import InvalidSettings, settings_from_environment

    try:
        settings = settings_from_environment()
    except InvalidSettings as error:
        sys.exit(f"Cannot start: {error}")
{% if cookiecutter.use_secret_manager %}
    from .secrets import PendingSecrets
    from .settings import Secrets

    # Tell the child which secrets to read as soon as the settings are known.
    secrets = PendingSecrets(Secrets, settings.secret_source, prefetch)
{% endif %}
    from .main import create_app
    from .server import serve

{% if cookiecutter.use_secret_manager %}
    serve(create_app(settings, secrets=secrets), settings)
{% else %}
    serve(create_app(settings), settings)
{% endif %}


if __name__ == "__main__":
    main()
