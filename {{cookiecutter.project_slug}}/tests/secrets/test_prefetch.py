"""`python -m` reads the secrets in a forked child while it imports the app.

Forking needs a process with one thread, and this one runs the local Secret
Manager's gRPC threads: each case runs a small program in a fresh interpreter,
the way the container's entry point runs.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from local_google.secret_manager import LocalSecretManager

from {{ cookiecutter.package_name }}.secrets_prefetch import DEPLOYED, SecretPrefetch
from {{ cookiecutter.package_name }}.settings import Environment

from .conftest import PROJECT, secret_path

# The program under test: the entry point's steps (fork, settings, ask the
# child, build the app's secrets as the lifespan does), reporting what the
# startup process holds afterwards.
PROGRAM = """
import json, logging, os, sys
from {{ cookiecutter.package_name }} import secrets_prefetch

parent = os.getpid()
SETUP
prefetch = secrets_prefetch.SecretPrefetch.start()
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from typing import Annotated
from pydantic import SecretStr
from {{ cookiecutter.package_name }}.secrets import PendingSecrets, SecretManager, SecretSettings, SecretsError
from {{ cookiecutter.package_name }}.settings import Settings

class ApiKey(SecretSettings):
    api_key: Annotated[SecretStr, SecretManager("api-key")] = SecretStr("local-only-api-key")

settings = Settings()
pending = PendingSecrets(ApiKey, settings.secret_source, prefetch)
result = dict(forked=prefetch is not None, asked=pending._prefetch is not None)
try:
    loaded = pending.result()
except SecretsError as error:
    result["error"] = str(error)
else:
    result["api_key"] = loaded.api_key.get_secret_value()
result["library_loaded"] = sorted(
    m for m in ("grpc", "google.cloud.secretmanager_v1") if m in sys.modules
)
print(json.dumps(result))
"""


def run(
    secret_manager: LocalSecretManager, setup: str = "", environment: str = "dev"
) -> tuple[dict[str, object], str]:
    program = PROGRAM.replace("SETUP", textwrap.dedent(setup))
    env = {
        **os.environ,
        "ENVIRONMENT": environment,
        "GCP_PROJECT": PROJECT,
        "SECRET_MANAGER_EMULATOR_HOST": secret_manager.address,
        "SECRETS_DEADLINE_SECONDS": "2",
    }
    env.pop("API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result, done.stderr


def test_the_child_reads_and_the_parent_never_loads_the_library(
    secret_manager: LocalSecretManager,
) -> None:
    secret_manager.put(secret_path("dev", "api-key"), "from-the-child")

    result, logs = run(secret_manager)

    assert result == {
        "forked": True,
        "asked": True,
        "api_key": "from-the-child",
        "library_loaded": [],
    }
    assert "Read 1 secrets from Secret Manager" in logs
    assert "while the app loaded" in logs
    assert len(secret_manager.log.requests("AccessSecretVersion")) == 1


def test_the_childs_failure_is_the_same_clear_error(secret_manager: LocalSecretManager) -> None:
    result, _ = run(secret_manager)

    error = str(result["error"])
    assert f"projects/{PROJECT}/secrets/dev-api-key/versions/latest: not found" in error
    assert "gcloud secrets create dev-api-key" in error
    assert result["library_loaded"] == []


def test_a_child_that_dies_leaves_the_parent_to_read(secret_manager: LocalSecretManager) -> None:
    secret_manager.put(secret_path("dev", "api-key"), "read-by-the-parent")
    dies_in_the_child = """
        real_fetch = secrets_prefetch.fetch_secrets
        def fetch(*args, **kwargs):
            if os.getpid() != parent:
                os._exit(3)
            return real_fetch(*args, **kwargs)
        secrets_prefetch.fetch_secrets = fetch
    """

    result, logs = run(secret_manager, setup=dies_in_the_child)

    assert result["api_key"] == "read-by-the-parent"
    assert result["asked"] is True
    assert "the prefetch gave none" in logs
    assert "while the app loaded" not in logs


def test_local_forks_nothing(secret_manager: LocalSecretManager) -> None:
    result, _ = run(secret_manager, environment="local")

    assert result == {
        "forked": False,
        "asked": False,
        "api_key": "local-only-api-key",
        "library_loaded": [],
    }
    assert secret_manager.log.requests("AccessSecretVersion") == []


def test_no_fork_once_threads_run(
    secret_manager: LocalSecretManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This process runs the local Secret Manager's threads: a fork would copy
    # only this one, so there must be none.
    monkeypatch.setenv("ENVIRONMENT", "dev")

    assert SecretPrefetch.start() is None


def test_an_environment_variable_leaves_nothing_to_prefetch(
    secret_manager: LocalSecretManager,
) -> None:
    result, _ = run(secret_manager, setup="os.environ['API_KEY'] = 'from-the-environment'")

    assert result["forked"] is True
    assert result["asked"] is False
    assert result["api_key"] == "from-the-environment"
    assert secret_manager.log.requests("AccessSecretVersion") == []


def test_the_prefetch_knows_every_deployed_environment() -> None:
    # secrets_prefetch.py cannot import settings.py (pydantic) before it forks.
    assert {*DEPLOYED} == {e.value for e in Environment if e is not Environment.LOCAL}
