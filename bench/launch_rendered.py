"""Start the rendered service for the benchmark, inside its runtime environment.

    python launch_rendered.py <package> <secrets>

The service runs through its own `serve()` (the container's entry point), with
two additions that the contenders share: the JSON endpoint `/orders` of
contenders/order.py, and, when Secret Manager is on, as many declared secrets
as the naive contender loads (`BENCH_SECRETS`), so that both pay for the same
secrets at startup. Like the service's `python -m` entry point, it starts the
secrets prefetch before it imports the app.
"""

import importlib
import sys

package, secrets = sys.argv[1], int(sys.argv[2])
try:  # What the service's own `python -m` does first, before pydantic loads.
    prefetch = importlib.import_module(f"{package}.secrets_prefetch").SecretPrefetch.start()
except ModuleNotFoundError:  # Secret Manager switched off
    prefetch = None

from typing import Annotated  # noqa: E402

from order import Order, Receipt, receipt  # noqa: E402
from pydantic import SecretStr, create_model  # noqa: E402

settings_module = importlib.import_module(f"{package}.settings")
settings = settings_module.Settings()
model = getattr(settings_module, "Secrets", None)

pending = None
if model is not None:
    secrets_module = importlib.import_module(f"{package}.secrets")
    if secrets > 1:
        extra = {
            f"secret_{i}": (Annotated[SecretStr, secrets_module.SecretManager(f"secret-{i}")], ...)
            for i in range(2, secrets + 1)
        }
        model = create_model("BenchSecrets", __base__=model, **extra)
    # As the entry point does: the child learns what to read before the app loads.
    pending = secrets_module.PendingSecrets(model, settings.secret_source, prefetch)

main = importlib.import_module(f"{package}.main")
server = importlib.import_module(f"{package}.server")
app = main.create_app(settings) if pending is None else main.create_app(settings, secrets=pending)


@app.post("/orders")
async def orders(order: Order) -> Receipt:
    return receipt(order)


server.serve(app, settings)
