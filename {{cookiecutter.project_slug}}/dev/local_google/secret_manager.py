"""A local Secret Manager: `google.cloud.secretmanager.v1.SecretManagerService`.

Google ships no Secret Manager emulator, so this serves the calls the service
and its tests make (AccessSecretVersion; CreateSecret, AddSecretVersion and
ListSecrets to seed and inspect it) with the client library's own types.
Point the service at it with `SECRET_MANAGER_EMULATOR_HOST=<address>`.
Like the real service, it stores a CRC32C checksum with every version and
returns it with the payload; `corrupt_next()` damages payloads on the way out.

Standalone: `python -m local_google --secret projects/p/secrets/dev-api-key=value`.
"""

import threading

import google_crc32c
import grpc
from google.cloud import secretmanager_v1 as sm

from .grpc_server import LocalGrpcServer, RpcError

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"


class LocalSecretManager(LocalGrpcServer):
    """Secrets by resource name (`projects/<p>/secrets/<id>`), versions from 1."""

    def __init__(self, *, port: int = 0) -> None:
        self._versions: dict[str, list[bytes]] = {}
        self._corrupt: dict[str, int] = {}
        self._lock = threading.Lock()
        super().__init__(
            SERVICE,
            {
                "AccessSecretVersion": (
                    self._access,
                    sm.AccessSecretVersionRequest,
                    sm.AccessSecretVersionResponse,
                ),
                "CreateSecret": (self._create, sm.CreateSecretRequest, sm.Secret),
                "AddSecretVersion": (self._add, sm.AddSecretVersionRequest, sm.SecretVersion),
                "ListSecrets": (self._list, sm.ListSecretsRequest, sm.ListSecretsResponse),
            },
            port=port,
        )

    def put(self, secret: str, value: str | bytes) -> str:
        """Seed a new version of `projects/<p>/secrets/<id>`; returns its version name."""
        data = value.encode() if isinstance(value, str) else value
        with self._lock:
            versions = self._versions.setdefault(secret, [])
            versions.append(data)
            return f"{secret}/versions/{len(versions)}"

    def corrupt_next(self, secret: str, times: int = 1) -> None:
        """Flip a bit in the next `times` payloads of `secret` sent, keeping their checksum."""
        with self._lock:
            self._corrupt[secret] = times

    def _access(self, request: sm.AccessSecretVersionRequest) -> sm.AccessSecretVersionResponse:
        secret, _, version = request.name.partition("/versions/")
        with self._lock:
            versions = self._versions.get(secret)
            if not versions:
                raise RpcError(grpc.StatusCode.NOT_FOUND, f"Secret [{secret}] not found.")
            number = len(versions) if version == "latest" else int(version or 0)
            if not 1 <= number <= len(versions):
                raise RpcError(
                    grpc.StatusCode.NOT_FOUND, f"Secret Version [{request.name}] not found."
                )
            data = versions[number - 1]
            checksum = google_crc32c.value(data)
            if self._corrupt.get(secret, 0) > 0:
                self._corrupt[secret] -= 1
                data = bytes([data[0] ^ 1]) + data[1:] if data else b"\x00"
        return sm.AccessSecretVersionResponse(
            name=f"{secret}/versions/{number}",
            payload=sm.SecretPayload(data=data, data_crc32c=checksum),
        )

    def _create(self, request: sm.CreateSecretRequest) -> sm.Secret:
        name = f"{request.parent}/secrets/{request.secret_id}"
        with self._lock:
            if name in self._versions:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
            self._versions[name] = []
        return sm.Secret(name=name)

    def _add(self, request: sm.AddSecretVersionRequest) -> sm.SecretVersion:
        with self._lock:
            if request.parent not in self._versions:
                raise RpcError(grpc.StatusCode.NOT_FOUND, f"Secret [{request.parent}] not found.")
        return sm.SecretVersion(name=self.put(request.parent, request.payload.data))

    def _list(self, request: sm.ListSecretsRequest) -> sm.ListSecretsResponse:
        prefix = f"{request.parent}/secrets/"
        with self._lock:
            names = sorted(name for name in self._versions if name.startswith(prefix))
        return sm.ListSecretsResponse(secrets=[sm.Secret(name=name) for name in names])
