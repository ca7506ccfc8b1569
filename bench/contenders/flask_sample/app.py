"""Google's Cloud Run Python sample, as its Dockerfile runs it:
`gunicorn --bind :$PORT --workers 1 --threads 8 --timeout 0 app:app`,
with the same two routes as the other contenders."""

from flask import Flask, request
from order import Order, receipt
from pydantic import ValidationError

app = Flask(__name__)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/orders")
def orders() -> tuple[dict[str, object], int]:
    try:
        order = Order.model_validate(request.get_json())
    except ValidationError as error:
        return {"detail": error.errors(include_url=False)}, 422
    return receipt(order).model_dump(), 200
