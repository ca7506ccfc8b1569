"""`python -m {{ cookiecutter.package_name }}`: what the container runs."""
{% if cookiecutter.use_secret_manager %}

# Only the standard library so far: the prefetch child forks before the rest loads.
from .secrets_prefetch import SecretPrefetch
{% endif %}


def main() -> None:
{% if cookiecutter.use_secret_manager %}
    # The child imports the Secret Manager library on another CPU while this
    # process imports pydantic and the app (see secrets_prefetch.py).
    prefetch = SecretPrefetch.start()
    from .secrets import PendingSecrets
    from .settings import Secrets, Settings

    settings = Settings()
    # Tell the child which secrets to read as soon as the settings are known.
    secrets = PendingSecrets(Secrets, settings.secret_source, prefetch)
    from .main import create_app
    from .server import serve

    serve(create_app(settings, secrets=secrets), settings)
{% else %}
    from .main import create_app
    from .server import serve
    from .settings import Settings

    settings = Settings()
    serve(create_app(settings), settings)
{% endif %}


if __name__ == "__main__":
    main()
