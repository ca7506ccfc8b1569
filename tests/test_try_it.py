"""The README's "Try it": its first command, verbatim, on a Python that has
nothing but pip, renders the service and serves it, and does so again over its
own render; it installs only cookiecutter and uv."""

import json
import re
import subprocess
from pathlib import Path

from .conftest import TEMPLATE, free_port, record_figure
from .try_it import (
    copy_working_tree,
    fresh_python,
    readme_commands,
    run_until_healthy,
    users_environment,
)


def pinned(requirements: Path) -> dict[str, str]:
    return {
        name.lower(): version
        for name, version in re.findall(
            r"^([A-Za-z0-9._-]+)==(\S+)", requirements.read_text(), re.M
        )
    }


def test_the_first_command_serves_the_service_and_serves_it_again(tmp_path: Path) -> None:
    first, _ = readme_commands()
    clone = copy_working_tree(tmp_path / "clone")
    python_bin = fresh_python(tmp_path / "python")
    port = free_port()
    env = users_environment(python_bin, tmp_path / "home", PORT=str(port))

    runs = [run_until_healthy(first, clone, env, f"http://127.0.0.1:{port}") for _ in range(2)]

    assert "Rendered My Service" in runs[0].output
    assert "Rendered My Service" in runs[1].output, "the second render over the first"
    record_figure(
        "Try it, first run (new Python, this machine's caches)", f"{runs[0].seconds:.1f} s"
    )
    record_figure("Try it, run again over its render", f"{runs[1].seconds:.1f} s")
    listed = subprocess.run(
        [str(python_bin / "python3"), "-m", "pip", "list", "--format=json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    installed = {package["name"].lower() for package in json.loads(listed)}
    assert installed - {"pip", "setuptools"} == set(pinned(TEMPLATE / "requirements-try.txt"))


def test_the_first_command_installs_only_cookiecutter_uv_and_their_needs() -> None:
    first, second = readme_commands()
    assert "-r requirements-try.txt" in first
    assert "-r requirements-test.txt" in second
    try_pins = pinned(TEMPLATE / "requirements-try.txt")
    assert {"cookiecutter", "uv"} <= set(try_pins)
    assert not {"pytest", "cruft", "mypy", "ruff", "zizmor"} & set(try_pins)
    test_pins = pinned(TEMPLATE / "requirements-test.txt")
    assert try_pins.items() <= test_pins.items(), "the test suite runs what Try it runs"
