"""Probes for Cloud Run.

`/healthz` is the liveness probe: it does no I/O, so it only fails when the
process cannot serve at all. `/readyz` says whether startup has finished.
Cloud Run's probes reach the container directly; for routes that users call
from outside, avoid paths ending in `z`, which Google's front end reserves
(https://cloud.google.com/run/docs/known-issues#ah).
"""

from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "starting"]


@router.get("/healthz")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Health}},
)
async def readyz(request: Request, response: Response) -> Health:
    if not request.app.state.ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="starting")
    return Health(status="ok")
