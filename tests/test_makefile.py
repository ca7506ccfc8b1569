"""The rendered Makefile finds uv on PATH or as python3's module, and draws no
warning from the virtual environment that holds uv."""

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Answers, Render, tool_env, uv_bin_dir

# Where make, git and sh live, and no uv.
SYSTEM_PATH = ["/usr/bin", "/bin"]


def run_make(project: Render, path: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """make in the project, with this PATH, from the activated virtual
    environment that holds uv (the tests' own)."""
    env = {**tool_env(project.env_dir), "PATH": os.pathsep.join(path), "VIRTUAL_ENV": sys.prefix}
    return subprocess.run(
        ["make", *args], cwd=project.path, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture
def python3_with_uv(tmp_path: Path) -> str:
    """A directory whose python3 is the tests' Python, which holds uv as a module."""
    directory = tmp_path / "python-with-uv"
    directory.mkdir()
    python3 = directory / "python3"
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python3.chmod(0o755)
    return str(directory)


@pytest.mark.parametrize(
    ("uv_lives", "command"),
    [
        ("on PATH", "uv sync --locked"),
        ("as python3's module", "python3 -m uv sync --locked"),
    ],
)
def test_make_finds_uv_without_a_warning(
    render: Callable[[Answers], Render], python3_with_uv: str, uv_lives: str, command: str
) -> None:
    project = render({})
    path = [uv_bin_dir() if uv_lives == "on PATH" else python3_with_uv, *SYSTEM_PATH]
    assert uv_lives == "on PATH" or shutil.which("uv", path=os.pathsep.join(path)) is None

    result = run_make(project, path, "install")

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == command
    assert "VIRTUAL_ENV" not in result.stderr, result.stderr


def test_without_uv_make_says_so(render: Callable[[Answers], Render]) -> None:
    project = render({})
    python3 = shutil.which("python3", path=os.pathsep.join(SYSTEM_PATH))
    if python3 is None or subprocess.run([python3, "-c", "import uv"], check=False).returncode == 0:
        pytest.skip("needs a python3 without uv in /usr/bin or /bin")

    result = run_make(project, SYSTEM_PATH, "install")

    assert result.returncode != 0
    assert "No module named uv" in result.stderr


def test_every_uv_command_goes_through_one_variable(render: Callable[[Answers], Render]) -> None:
    project = render({})

    result = run_make(
        project, [uv_bin_dir(), *SYSTEM_PATH], "-n", "install", "dev", "test", "lint", "fmt",
        "lock", "UV=chosen-uv",
    )  # fmt: skip

    commands = result.stdout.splitlines()
    assert len(commands) == 9, commands
    assert all(command.startswith("chosen-uv ") for command in commands), commands
