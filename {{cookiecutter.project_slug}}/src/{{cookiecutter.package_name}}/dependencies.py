"""Request-scoped access to what the app built once, for `Depends(...)`."""

from typing import Annotated, cast

from fastapi import Depends, Request

from .settings import Settings


def get_settings(request: Request) -> Settings:
    return cast("Settings", request.app.state.settings)


SettingsDep = Annotated[Settings, Depends(get_settings)]
