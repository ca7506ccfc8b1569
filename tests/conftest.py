"""Render the template and run the rendered projects' own tools.

Rendering is cheap; installing dependencies is not. Every render with the same
locked dependencies shares one virtual environment for the whole session
(`uv sync` only swaps the editable install of the project itself), and uv's
cache makes each further environment a matter of seconds.

The suite runs on every core (pytest-xdist, `-n auto` in pyproject.toml).
Each worker keeps its own renders and environments, so that no two commands
swap the editable project of one environment under each other; what workers
can share (isolated tools, the figures) lives in a directory of the whole run.
The container and budget tests share one image store and run on one worker
(`pytest_xdist_make_scheduler` below).
"""

import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_cookies.plugin import Cookies
from uv import find_uv_bin
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

from .combinations import IDS, SUPPORTED_COMBINATIONS
from .containers import Containers, missing_tools, prepare_base_images
from .hooks import post_gen

TEMPLATE = Path(__file__).resolve().parent.parent

# Figures measured along the way (build times, image sizes), printed at the
# end: each worker appends them to one file, which the main process prints.
FIGURES = "TEMPLATE_TESTS_FIGURES"


def pytest_configure(config: pytest.Config) -> None:
    if FIGURES not in os.environ:  # the main process; workers inherit it
        directory = Path(tempfile.mkdtemp(prefix="template-test-figures-"))
        os.environ[FIGURES] = str(directory / "figures.jsonl")


def record_figure(name: str, value: str) -> None:
    with Path(os.environ[FIGURES]).open("a") as figures:
        figures.write(json.dumps([name, value]) + "\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    path = Path(os.environ[FIGURES])
    if path.exists():
        terminalreporter.section("figures")
        for line in path.read_text().splitlines():
            name, value = json.loads(line)
            terminalreporter.write_line(f"{name}: {value}")
        shutil.rmtree(path.parent, ignore_errors=True)


# Test modules that share the session's image (built once, in one image
# store): all their tests go to one worker, as one unit of work.
IMAGE_MODULES = frozenset({"tests/test_container.py", "tests/test_budget.py"})


class ImageTestsTogether(LoadScopeScheduling):  # type: ignore[misc]  # xdist has no types
    """`--dist load`, but for the tests of IMAGE_MODULES, which go together.

    (xdist's own `loadgroup` would do this with marks, but under pytest 9 the
    group it appends to node IDs never reaches its scheduler.)"""

    def _split_scope(self, nodeid: str) -> str:
        return "image" if nodeid.split("::", 1)[0] in IMAGE_MODULES else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> LoadScopeScheduling:
    return ImageTestsTogether(config, log)


def run_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that every worker of this run shares (the session's own
    when the suite runs in one process)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock` (created if need be), across workers."""
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


Answers = Mapping[str, Any]


@dataclass(frozen=True)
class Render:
    """A rendered project and the answers it was rendered with."""

    path: Path
    context: Mapping[str, Any]
    env_dir: Path

    def run(
        self, *args: str, timeout: float = 600, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the project, with its shared environment, and
        fail the test with its output if it fails."""
        result = subprocess.run(
            args,
            cwd=self.path,
            env={**tool_env(self.env_dir), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(
                f"`{' '.join(args)}` failed in {self.path.name} ({dict(self.context)}) "
                f"with {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    @contextmanager
    def local_google(self, *args: str) -> Iterator[dict[str, str]]:
        """Run the project's local stand-ins for Google (`python -m local_google`
        with `args`) as a process; yields the settings that point the service at them."""
        process = subprocess.Popen(
            [str(self.env_dir / "bin" / "python"), "-m", "local_google", *args],
            cwd=self.path,
            env=tool_env(self.env_dir),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            settings: dict[str, str] = json.loads(process.stdout.readline())
            yield settings
        finally:
            process.terminate()
            process.wait()
            if process.stdout:
                process.stdout.close()


def uv_bin_dir() -> str:
    return str(Path(find_uv_bin()).parent)


def tool_env(env_dir: Path) -> dict[str, str]:
    """The environment rendered projects' commands run in: their own shared
    virtual environment, uv on PATH, nothing of the template's own venv."""
    # PYTHONDONTWRITEBYTECODE goes too: with it every process the renders'
    # tests start compiles gRPC, the Google clients and FastAPI from source
    # again, which doubles the CPU time of a render's test suite.
    unset = {"VIRTUAL_ENV", "PYTHONPATH", "ENVIRONMENT", "GCP_PROJECT", "PORT",
             "PYTHONDONTWRITEBYTECODE"}  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env["PATH"] = os.pathsep.join([uv_bin_dir(), env.get("PATH", "")])
    env["UV_PROJECT_ENVIRONMENT"] = str(env_dir)
    env["MYPY_CACHE_DIR"] = str(env_dir.with_name(env_dir.name + "-mypy"))
    env["UV_NO_PROGRESS"] = "1"
    return env


def dependency_key(project: Path) -> str:
    """Renders whose locks differ only in the project's own name share an environment."""
    blocks = post_gen.lock_blocks((project / "uv.lock").read_text())
    third_party = [b for b in blocks if 'source = { editable = "." }' not in b]
    return hashlib.sha256("\n\n".join(third_party).encode()).hexdigest()[:16]


@pytest.fixture(params=SUPPORTED_COMBINATIONS, ids=IDS)
def project(request: pytest.FixtureRequest, render: Callable[[Answers], Render]) -> Render:
    """Each supported combination of answers, rendered (once per session)."""
    answers: dict[str, Any] = request.param
    return render(answers)


@pytest.fixture(scope="session")
def render(
    cookies_session: Cookies, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[Answers], Render]:
    """Render the template with some answers, once per distinct set of answers."""
    renders: dict[tuple[tuple[str, str], ...], Render] = {}
    env_root = tmp_path_factory.mktemp("venvs")

    def _render(answers: Answers) -> Render:
        key = tuple(sorted((k, repr(v)) for k, v in answers.items()))
        if key not in renders:
            result = cookies_session.bake(extra_context=dict(answers))
            assert result.exception is None, result.exception
            assert result.exit_code == 0
            path = Path(str(result.project_path))
            renders[key] = Render(path, result.context or {}, env_root / dependency_key(path))
        return renders[key]

    return _render


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_healthy(url: str, timeout: float = 30.0) -> None:
    """Poll `<url>/healthz` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url}/healthz did not answer 200 within {timeout} s")


def rendered_files(project: Path) -> Sequence[Path]:
    return sorted(p for p in project.rglob("*") if p.is_file())


def isolated_tool(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tool installed in its own environment from tests/requirements-<name>.txt
    (hash-pinned), when its dependencies would clash with the tests' own.

    Installed once per run, for every worker, and byte-compiled as it is
    installed: checkov imports thousands of modules at each start."""
    root = run_directory(tmp_path_factory) / f"tool-{name}"
    venv = root / "venv"
    with exclusive(root.with_suffix(".lock")):
        if not (root / "installed").exists():
            uv = str(Path(uv_bin_dir()) / "uv")
            shutil.rmtree(root, ignore_errors=True)
            subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(venv)], check=True)
            subprocess.run(
                [uv, "pip", "install", "--quiet", "--compile-bytecode",
                 "--python", str(venv / "bin" / "python"), "--require-hashes",
                 "-r", str(TEMPLATE / "tests" / f"requirements-{name}.txt")],
                check=True,
            )  # fmt: skip
            (root / "installed").touch()
    return venv / "bin" / name


@pytest.fixture(scope="session")
def checkov(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return isolated_tool("checkov", tmp_path_factory)


# The default render's image, built once per session for the container and
# budget tests (tests/containers.py says how, without a Docker engine).
IMAGE_TAG = "localhost/rendered-service:test"


@pytest.fixture(scope="session")
def containers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containers]:
    if missing := missing_tools():
        reason = f"cannot build images here: missing {', '.join(missing)}"
        if os.environ.get("REQUIRE_CONTAINER_TESTS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    containers = Containers(tmp_path_factory.mktemp("containers"))
    yield containers
    containers.close()


@pytest.fixture(scope="session")
def image_context(
    render: Callable[[Answers], Render], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the default render, with what must never reach the image
    planted where a careless build context would take it."""
    copy = tmp_path_factory.mktemp("image-context") / "service"
    shutil.copytree(render({}).path, copy, ignore=shutil.ignore_patterns(".venv"))
    (copy / ".env").write_text("API_KEY=do-not-ship\n")
    (copy / ".git").mkdir(exist_ok=True)
    (copy / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return copy


@pytest.fixture(scope="session")
def image(containers: Containers, image_context: Path) -> str:
    started = time.monotonic()
    prepare_base_images(containers, image_context / "Dockerfile")
    record_figure("container: base images ready", f"{time.monotonic() - started:.0f} s")
    started = time.monotonic()
    containers.build(image_context, IMAGE_TAG)
    record_figure("container: image build", f"{time.monotonic() - started:.0f} s")
    return IMAGE_TAG
