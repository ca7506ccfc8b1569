"""The README's "Try it" commands, run as a user runs them on a machine with
only Python and pip. Used by tests/test_try_it.py and bench/bench_try_it.py."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

TEMPLATE = Path(__file__).resolve().parent.parent
# Where sh, git and make live on a plain machine (no uv among them).
SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
# Settings of the tests' own process that a user's shell would not have.
NOT_A_USERS = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "ENVIRONMENT", "PORT")


def readme_commands(readme: Path = TEMPLATE / "README.md") -> list[str]:
    """The commands of the README's "Try it" steps: the shell blocks of its
    numbered list, in order."""
    section = readme.read_text().split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"^   ```sh\n(.*?)^   ```", section, re.M | re.S)]


def copy_working_tree(into: Path) -> Path:
    """The template as a clone of it would hold it with the working tree's
    changes committed: tracked and new files, nothing that git ignores."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=TEMPLATE, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = TEMPLATE / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def fresh_python(directory: Path) -> Path:
    """A Python with nothing but pip: a new virtual environment. Returns the
    directory to put first on PATH, where `python3` is that Python."""
    venv.create(directory, with_pip=True, symlinks=sys.platform != "win32")
    return directory / "bin"


def users_environment(python_bin: Path, home: Path, **extra: str) -> dict[str, str]:
    """A user's shell: `python3` is the fresh Python, cookiecutter keeps its
    replay files in `home`."""
    config = home / "cookiecutter-config.yaml"
    home.mkdir(parents=True, exist_ok=True)
    config.write_text(f"replay_dir: {home / 'replay'}\ncookiecutters_dir: {home / 'templates'}\n")
    env = {key: value for key, value in os.environ.items() if key not in NOT_A_USERS}
    env["PATH"] = os.pathsep.join([str(python_bin), *SYSTEM_PATH])
    env["COOKIECUTTER_CONFIG"] = str(config)
    return {**env, **extra}


@dataclass(frozen=True)
class Run:
    seconds: float  # from the command's start to the first 200 from /healthz
    output: str


def run_until_healthy(
    command: str, cwd: Path, env: Mapping[str, str], url: str, timeout: float = 900
) -> Run:
    """Run a command that ends by serving the service, wait for `/healthz`,
    then stop it as Ctrl-C does (SIGINT to its process group)."""
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(
            ["sh", "-c", command], cwd=cwd, env=dict(env), stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            seconds = _wait_for_health(process, url, started, timeout)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        output.seek(0)
        text = output.read()
    if seconds is None:
        raise AssertionError(f"`{command}` did not serve {url}/healthz:\n{text}")
    return Run(seconds, text)


def _wait_for_health(
    process: subprocess.Popen[bytes], url: str, started: float, timeout: float
) -> float | None:
    with httpx.Client(timeout=1) as client:
        while time.monotonic() - started < timeout and process.poll() is None:
            try:
                if client.get(f"{url}/healthz").status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    return None
