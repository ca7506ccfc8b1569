"""The floor: a bare FastAPI app with one route, run by plain uvicorn."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
