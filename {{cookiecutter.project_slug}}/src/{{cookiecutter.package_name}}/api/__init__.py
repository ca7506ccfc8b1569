"""HTTP routes, one router per module; `ROUTERS` is every router the app serves.

A new module's router goes in `ROUTERS`: `create_app()` includes them in this order.
"""

from fastapi import APIRouter

{% if cookiecutter.use_cloud_tasks %}
from . import health, signups
{% else %}
from . import health
{% endif %}

ROUTERS: list[APIRouter] = [
    health.router,
{% if cookiecutter.use_cloud_tasks %}
    signups.router,
{% endif %}
]
