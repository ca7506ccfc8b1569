"""The FastAPI floor: a bare FastAPI app with the contenders' two routes, in
the fastest configuration uvicorn offers (uvloop, httptools, no access log)."""

from fastapi import FastAPI
from order import Order, Receipt, receipt

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/orders")
async def orders(order: Order) -> Receipt:
    return receipt(order)
