"""Request-scoped access to what the app built once, for `Depends(...)`."""

from typing import Annotated, cast

from fastapi import Depends, Request

{% if cookiecutter.use_secret_manager %}
from .settings import Secrets, Settings
{% else %}
from .settings import Settings
{% endif %}


def get_settings(request: Request) -> Settings:
    return cast("Settings", request.app.state.settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
{% if cookiecutter.use_secret_manager %}


def get_secrets(request: Request) -> Secrets:
    return cast("Secrets", request.app.state.secrets)


SecretsDep = Annotated[Secrets, Depends(get_secrets)]
{% endif %}
