"""Runs inside a rendered project's environment (see bench_secrets.py).

Loads 10 secrets from the local Secret Manager with injected latency, in four
ways, alternating them run by run, and prints the samples as JSON.
"""

import asyncio
import json
import sys
import time
from typing import Annotated, Any

import grpc
from google.cloud import secretmanager_v1 as sm
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcAsyncIOTransport,
    SecretManagerServiceGrpcTransport,
)
from local_google.secret_manager import LocalSecretManager
from pydantic import SecretStr, create_model
from pydantic_settings import (
    BaseSettings,
    GoogleSecretManagerSettingsSource,
    PydanticBaseSettingsSource,
)

PACKAGE = sys.argv[1]
SECRETS, LATENCY, RUNS = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
PROJECT = "bench-project"
names = [f"s{i}" for i in range(SECRETS)]

secrets_module = __import__(f"{PACKAGE}.secrets", fromlist=["x"])
settings_module = __import__(f"{PACKAGE}.settings", fromlist=["x"])
SecretManager = secrets_module.SecretManager

Ours: Any = create_model(  # the rendered service's way: declared fields
    "Ours",
    __base__=secrets_module.SecretSettings,
    **{n: (Annotated[SecretStr, SecretManager(n)], ...) for n in names},
)


def builtin_model(address: str) -> type[BaseSettings]:
    """pydantic-settings' own source, as its documentation sets it up."""

    class Builtin(BaseSettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            client = sm.SecretManagerServiceClient(
                transport=SecretManagerServiceGrpcTransport(channel=grpc.insecure_channel(address))
            )
            source = GoogleSecretManagerSettingsSource(
                settings_cls, project_id=PROJECT, secret_client=client
            )
            return (init_settings, env_settings, source)

    return create_model(  # type: ignore[no-any-return]
        "BuiltinSecrets", __base__=Builtin, **dict.fromkeys(names, (SecretStr, ...))
    )


async def gather_async(address: str) -> None:
    """The alternative to ours: the async client and asyncio.gather."""
    transport = SecretManagerServiceGrpcAsyncIOTransport(channel=grpc.aio.insecure_channel(address))
    client = sm.SecretManagerServiceAsyncClient(transport=transport)
    await asyncio.gather(
        *(
            client.access_secret_version(name=f"projects/{PROJECT}/secrets/dev-{n}/versions/latest")
            for n in names
        )
    )
    await transport.close()


def one_round_trip(address: str) -> None:
    """The floor: a fresh client reading one secret."""
    with sm.SecretManagerServiceClient(
        transport=SecretManagerServiceGrpcTransport(channel=grpc.insecure_channel(address))
    ) as client:
        client.access_secret_version(name=f"projects/{PROJECT}/secrets/dev-s0/versions/latest")


def main() -> None:
    with LocalSecretManager() as server:
        for n in names:
            server.put(f"projects/{PROJECT}/secrets/dev-{n}", f"value-{n}")
            server.put(f"projects/{PROJECT}/secrets/{n}", f"value-{n}")
        server.faults.delay(LATENCY)
        settings = settings_module.Settings(
            environment="dev",
            gcp_project=PROJECT,
            secret_manager_emulator_host=server.address,
            _env_file=None,
        )
        Builtin = builtin_model(server.address)
        contenders = {
            "one round trip": lambda: one_round_trip(server.address),
            "ours (sync client, thread pool)": lambda: secrets_module.load_secrets(
                Ours, settings.secret_source
            ),
            "async client + gather": lambda: asyncio.run(gather_async(server.address)),
            "pydantic-settings built-in source": lambda: Builtin(),
        }
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(RUNS):
            for name, load in contenders.items():
                started = time.perf_counter()
                load()
                samples[name].append(time.perf_counter() - started)
    print(json.dumps(samples))


if __name__ == "__main__":
    main()
