"""The rendered default project's image, really built and run.

See tests/containers.py for how this works without a Docker engine or a
registry. Skipped, with the reason, where the machine cannot build images; CI
sets REQUIRE_CONTAINER_TESTS=1 so that there a missing tool fails instead.
"""

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import (
    TEMPLATE,
    Answers,
    Render,
    free_port,
    record_figure,
    wait_until_healthy,
)
from .containers import Containers

DEPENDENCY_STEP = "RUN uv sync --locked --no-dev --no-install-project"


@pytest.fixture
def running(containers: Containers, image: str) -> Iterator[tuple[str, str]]:
    """The image running read-only, as Cloud Run would run it: (container, url)."""
    port = free_port()
    name = f"service-{port}"
    containers.run(
        "podman", "run", "-d", "--name", name, "--runtime", "runc", "--network", "host",
        "--read-only", "-e", f"PORT={port}", "-e", "ENVIRONMENT=local", image,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url)
        yield name, url
    finally:
        containers.run("podman", "rm", "-f", name, check=False)


def test_image_serves_as_an_unprivileged_user_on_a_read_only_root(
    containers: Containers, running: tuple[str, str]
) -> None:
    name, url = running
    response = httpx.get(f"{url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    top = containers.run("podman", "top", name, "user", "args").stdout.splitlines()
    (server,) = [line for line in top[1:] if "python" in line]
    assert server.split()[0] == "10001", top
    inspect = json.loads(containers.run("podman", "inspect", name).stdout)[0]
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True


def test_sigterm_stops_the_server_cleanly_within_ten_seconds(
    containers: Containers, running: tuple[str, str]
) -> None:
    name, _ = running
    started = time.monotonic()
    containers.run("podman", "stop", "--time", "10", name)
    elapsed = time.monotonic() - started
    code = containers.run("podman", "inspect", "--format", "{{.State.ExitCode}}", name)
    assert code.stdout.strip() == "0"
    assert elapsed < 10, "podman had to kill the server"
    logs = containers.run("podman", "logs", name)
    assert "Application shutdown complete" in logs.stdout + logs.stderr


def test_image_reads_its_secrets_while_the_app_loads(
    containers: Containers, image: str, render: Callable[[Answers], Render]
) -> None:
    """`dev` in the image: the entry point's forked child reads the secret from
    a local Secret Manager, as a non-root user on a read-only root."""
    project = render({})
    project.run("uv", "sync", "--locked", "--quiet")
    seeded = "projects/image-test/secrets/dev-api-key=from-secret-manager"
    with project.local_google("--secret", seeded) as google:
        port = free_port()
        name = f"service-{port}"
        containers.run(
            "podman", "run", "-d", "--name", name, "--runtime", "runc", "--network", "host",
            "--read-only", "-e", f"PORT={port}", "-e", "ENVIRONMENT=dev",
            "-e", "GCP_PROJECT=image-test",
            "-e", f"SECRET_MANAGER_EMULATOR_HOST={google['SECRET_MANAGER_EMULATOR_HOST']}",
            "-e", "TASKS_WARM_UP=false", image,
        )  # fmt: skip
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}")
            logs = containers.run("podman", "logs", name)
        finally:
            containers.run("podman", "rm", "-f", name, check=False)
    output = logs.stdout + logs.stderr
    assert "Read 1 secrets from Secret Manager in" in output, output
    assert "while the app loaded" in output
    assert "from-secret-manager" not in output


def test_the_image_refuses_to_start_without_environment(containers: Containers, image: str) -> None:
    """Fails closed: never `local`, with harmless defaults for secrets, by accident."""
    result = containers.run(
        "podman", "run", "--rm", "--runtime", "runc", "--network", "none", "--read-only",
        image, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Cannot start: Invalid settings: ENVIRONMENT: Field required" in result.stderr


INVOKER = "tasks-invoker@your-gcp-project.iam.gserviceaccount.com"
QUEUE = "projects/your-gcp-project/locations/europe-west3/queues/default"


@pytest.mark.parametrize("access", ["private", "public"])
def test_tasks_reach_the_image_through_cloud_runs_front_end(
    access: str, containers: Containers, image: str, render: Callable[[Answers], Render]
) -> None:
    """The local Cloud Tasks delivers through the local Cloud Run front end
    into the image, deployed as `make deploy` deploys it: the welcome email
    of a sign-up is sent exactly once; pushes nobody signed never reach it."""
    project = render({})
    project.run("uv", "sync", "--locked", "--quiet")
    port = free_port()
    front = ["--cloud-run", f"http://127.0.0.1:{port}"]
    front += ["--public"] if access == "public" else ["--invoker", INVOKER]
    with project.local_google("--queue", QUEUE, *front) as google:
        private = ["-e", "BEHIND_CLOUD_RUN_IAM=true"] if access == "private" else []
        name = f"service-{port}"
        containers.run(
            "podman", "run", "-d", "--name", name, "--runtime", "runc", "--network", "host",
            "--read-only", "-e", f"PORT={port}", "-e", "ENVIRONMENT=local",
            *(arg for key, value in google.items() for arg in ("-e", f"{key}={value}")),
            *private, image,
        )  # fmt: skip
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}")
            signup = httpx.post(
                f"http://127.0.0.1:{port}/signups",
                json={"email": "ada@example.com", "name": "Ada"},
                timeout=30,
            )
            assert signup.status_code == 202, signup.text
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                logs = containers.run("podman", "logs", name)
                if "Sent welcome email" in logs.stdout + logs.stderr:
                    break
                time.sleep(0.2)
            unsigned = httpx.post(f"{google['SERVICE_URL']}/_tasks/send-welcome-email", json={})
            forged = httpx.post(
                f"{google['SERVICE_URL']}/_tasks/send-welcome-email",
                json={"email": "x@example.com", "name": "X"},
                headers={"Authorization": "Bearer e30.e30.SIGNATURE_REMOVED_BY_GOOGLE"},
            )
            time.sleep(1.0)  # a second delivery would have arrived by now
            logs = containers.run("podman", "logs", name)
        finally:
            containers.run("podman", "rm", "-f", name, check=False)
    output = logs.stdout + logs.stderr
    assert output.count("Sent welcome email") == 1, output
    # Stopped by the front end when private, by the push endpoint when public.
    assert unsigned.status_code == (403 if access == "private" else 401)
    assert forged.status_code == 401


def test_nothing_private_or_test_only_is_in_the_image(containers: Containers, image: str) -> None:
    find = containers.run(
        "podman", "run", "--rm", "--runtime", "runc", "--network", "none", "--read-only",
        image, "sh", "-c",
        "find / -xdev \\( -name '.env*' -o -name '.git' -o -path '*/local_google*' "
        "-o -path '*/site-packages/tests*' -o -name uv.lock -o -name pyproject.toml \\) -print; "
        "ls /src 2>&1; command -v uv gcc cc || true",
    )  # fmt: skip
    lines = [line for line in find.stdout.splitlines() if line]
    assert lines == ["ls: cannot access '/src': No such file or directory"], lines


def test_no_bytecode_is_stale_at_startup(containers: Containers, image: str) -> None:
    """Every module the service imports at startup loads from its .pyc: none is
    compiled again in memory on each cold start."""
    result = containers.run(
        "podman", "run", "--rm", "--runtime", "runc", "--network", "none", "--read-only",
        image, "python", "-v", "-c", "import my_service.main",
        check=False,
    )  # fmt: skip
    assert "my_service/main" in result.stderr, "the import really ran"
    stale = [line for line in result.stderr.splitlines() if "bytecode is stale" in line]
    assert stale == [], stale[:5]


def test_tracebacks_through_dependencies_keep_their_source_lines(
    containers: Containers, image: str
) -> None:
    """The image's diet strips compiled libraries and drops what never loads,
    never the Python sources: a logged traceback still shows each line."""
    code = (
        "import traceback, pydantic\n"
        "try:\n"
        "    pydantic.TypeAdapter(int).validate_python('x')\n"
        "except pydantic.ValidationError:\n"
        "    print(traceback.format_exc())\n"
    )
    result = containers.run(
        "podman", "run", "--rm", "--runtime", "runc", "--network", "none", "--read-only",
        image, "python", "-c", code,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    frames = [i for i, line in enumerate(lines) if "site-packages/pydantic/" in line]
    assert frames, result.stdout
    for i in frames:
        source = lines[i + 1]
        assert source.startswith("    "), result.stdout
        assert source.strip(), result.stdout


def test_a_code_change_reuses_the_dependency_layer(
    containers: Containers, image: str, image_context: Path, tmp_path: Path
) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(image_context, changed)
    main = next(changed.glob("src/*/main.py"))
    main.write_text(main.read_text() + "\n# a code change\n")

    output = containers.build(changed, "localhost/rendered-service:changed")

    after_step = output.split(DEPENDENCY_STEP, 1)[1].splitlines()
    assert any("Using cache" in line for line in after_step[:3]), output


def test_image_size_is_recorded(containers: Containers, image: str) -> None:
    total = containers.image_size(image)
    layers = containers.layers(image)
    venv = [
        size for size, created_by in layers if "/opt/venv" in created_by and "COPY" in created_by
    ]
    assert venv, layers
    base = containers.image_size("docker.io/library/python:3.14-slim")
    figures = {"image_bytes": total, "dependency_layer_bytes": venv[0], "base_bytes": base}
    record_figure(
        "container: image size", f"{total / 1e6:.0f} MB (stand-in base {base / 1e6:.0f} MB)"
    )
    record_figure("container: virtualenv layer", f"{venv[0] / 1e6:.0f} MB")
    results = TEMPLATE / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "container-test.json").write_text(json.dumps(figures, indent=2) + "\n")
    assert 0 < venv[0] < total
