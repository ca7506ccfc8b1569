"""Start the rendered service for the benchmark, inside its runtime environment.

    python launch_rendered.py <package> <secrets>

The service runs through its own `serve()` (the container's entry point), with
two additions that the contenders share: the JSON endpoint `/orders` of
contenders/order.py, and, when Secret Manager is on, as many declared secrets
as the naive contender loads (`BENCH_SECRETS`), so that both pay for the same
secrets at startup.
"""

import importlib
import sys
from typing import Annotated

from order import Order, Receipt, receipt
from pydantic import SecretStr, create_model

package, secrets = sys.argv[1], int(sys.argv[2])
main = importlib.import_module(f"{package}.main")
settings_module = importlib.import_module(f"{package}.settings")
server = importlib.import_module(f"{package}.server")

if hasattr(settings_module, "Secrets") and secrets > 1:
    marker = importlib.import_module(f"{package}.secrets").SecretManager
    extra = {
        f"secret_{i}": (Annotated[SecretStr, marker(f"secret-{i}")], ...)
        for i in range(2, secrets + 1)
    }
    # The lifespan looks `Secrets` up when it runs: it loads these too.
    main.Secrets = create_model("BenchSecrets", __base__=settings_module.Secrets, **extra)  # type: ignore[attr-defined]

settings = settings_module.Settings()
app = main.create_app(settings)


@app.post("/orders")
async def orders(order: Order) -> Receipt:
    return receipt(order)


server.serve(app, settings)
