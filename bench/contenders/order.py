"""The JSON body every contender's `/orders` endpoint validates (pydantic)."""

from pydantic import BaseModel, Field


class Line(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=1000)


class Order(BaseModel):
    customer_id: int
    lines: list[Line] = Field(min_length=1, max_length=100)
    note: str | None = None


class Receipt(BaseModel):
    customer_id: int
    items: int


def receipt(order: Order) -> Receipt:
    return Receipt(customer_id=order.customer_id, items=sum(line.quantity for line in order.lines))


SAMPLE_ORDER = {
    "customer_id": 42,
    "lines": [{"sku": "A-1", "quantity": 2}, {"sku": "B-7", "quantity": 1}],
    "note": "leave at the door",
}
