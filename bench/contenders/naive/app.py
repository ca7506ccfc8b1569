"""The service people write by following the libraries' documentation.

Settings come from pydantic-settings' built-in Secret Manager source, built at
import; the Cloud Tasks client is a module-level `CloudTasksClient`. The only
change from the documented pattern is the emulator wiring (an insecure channel
to a local server), which any local setup needs.
"""

import json
import os

import grpc
from fastapi import FastAPI
from google.cloud import secretmanager, tasks_v2
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from order import Order, Receipt, receipt
from pydantic import SecretStr
from pydantic_settings import (
    BaseSettings,
    GoogleSecretManagerSettingsSource,
    PydanticBaseSettingsSource,
)

PROJECT = os.environ.get("GCP_PROJECT", "bench-project")


class Settings(BaseSettings):
    secret_1: SecretStr
    secret_2: SecretStr
    secret_3: SecretStr
    secret_4: SecretStr
    secret_5: SecretStr

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        client = secretmanager.SecretManagerServiceClient(
            transport=SecretManagerServiceGrpcTransport(
                channel=grpc.insecure_channel(os.environ["SECRET_MANAGER_EMULATOR_HOST"])
            )
        )
        return (
            init_settings,
            env_settings,
            GoogleSecretManagerSettingsSource(
                settings_cls, project_id=PROJECT, secret_client=client
            ),
        )


settings = Settings()
tasks_client = tasks_v2.CloudTasksClient(
    transport=CloudTasksGrpcTransport(
        channel=grpc.insecure_channel(os.environ["CLOUD_TASKS_EMULATOR_HOST"])
    )
)
QUEUE = tasks_client.queue_path(PROJECT, "europe-west3", "default")

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/orders")
async def orders(order: Order) -> Receipt:
    return receipt(order)


@app.post("/enqueue", status_code=202)
def enqueue(order: Order) -> dict[str, str]:
    task = tasks_v2.Task(
        http_request=tasks_v2.HttpRequest(
            http_method=tasks_v2.HttpMethod.POST,
            url=os.environ.get("SERVICE_URL", "http://127.0.0.1:8080") + "/tasks/process-order",
            headers={"Content-Type": "application/json"},
            body=json.dumps(order.model_dump()).encode(),
            oidc_token=tasks_v2.OidcToken(
                service_account_email=os.environ.get(
                    "INVOKER", f"tasks-invoker@{PROJECT}.iam.gserviceaccount.com"
                )
            ),
        )
    )
    created = tasks_client.create_task(parent=QUEUE, task=task)
    return {"task": created.name}
