"""What every benchmark in this folder shares: rendering the template, building
virtual environments with uv, starting servers, and summarising samples.

Benchmarks report ratios against a baseline measured in the same run, never
absolute targets: the machines they run on are shared and noisy.
"""

import json
import os
import platform
import re
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cookiecutter.main import cookiecutter
from uv import find_uv_bin

TEMPLATE = Path(__file__).resolve().parent.parent
BENCH = TEMPLATE / "bench"


def uv(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> None:
    """Run uv quietly; its output only matters when it fails."""
    result = subprocess.run(
        [find_uv_bin(), *args],
        cwd=cwd,
        env={**os.environ, **(env or {}), "UV_NO_PROGRESS": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"uv {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def render(workdir: Path, **answers: Any) -> Path:
    """Render the template with `answers` (defaults otherwise) into `workdir`."""
    return Path(
        cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(workdir), extra_context=answers)
    )


def sync_project(project: Path, *, dev: bool = True) -> Path:
    """Install a rendered project's locked dependencies; returns its Python."""
    uv("sync", "--locked", "--quiet", *([] if dev else ["--no-dev"]), cwd=project)
    return project / ".venv" / "bin" / "python"


def requirements_env(requirements: Path, venv: Path) -> Path:
    """A virtual environment with hash-pinned requirements; returns its Python."""
    uv("venv", "--quiet", "--python", "3.11", str(venv))
    python = venv / "bin" / "python"
    uv(
        "pip",
        "install",
        "--quiet",
        "--python",
        str(python),
        "--require-hashes",
        "-r",
        str(requirements),
    )
    return python


def run_probe(python: Path, script: str, *args: str, project: Path) -> str:
    """Run a script of this folder with a rendered project's Python (its
    environment holds the local Google servers), from the project's root;
    returns its stdout."""
    result = subprocess.run(
        [str(python), str(BENCH / script), *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{script} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def probe_default_render(script: str, *args: object) -> dict[str, list[float]]:
    """Render the defaults into a temporary directory, install them, run a probe
    script of this folder there and return the samples it prints as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        project = render(Path(tmp))
        python = sync_project(project)
        output = run_probe(python, script, "my_service", *map(str, args), project=project)
    samples: dict[str, list[float]] = json.loads(output.strip().splitlines()[-1])
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> float:
    """Poll `url` until it answers 200; returns the monotonic time it did."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode} before answering")
            try:
                if client.get(url).status_code == 200:
                    return time.monotonic()
            except httpx.TransportError:
                time.sleep(0.002)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


@dataclass(frozen=True)
class Summary:
    """Median, min and max of repeated samples."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Summary":
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    def ms(self) -> str:
        return f"{self.median * 1000:.0f} ms ({self.low * 1000:.0f}-{self.high * 1000:.0f})"


def machine() -> str:
    """A one-line description of where the figures were measured."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    # How busy the machine was: on a shared machine other jobs take cores from
    # the contenders, which the ratios (same run, alternating) absorb and the
    # absolute figures do not.
    load = os.getloadavg()[2]
    return (
        f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, "
        f"15-minute load average {load:.1f} at the end (this benchmark included)"
    )


def marked_sections(text: str) -> dict[str, str]:
    """The sections of a Markdown page that a benchmark wrote between
    `<!-- begin NAME -->` and `<!-- end NAME -->` markers, by name."""
    return {
        match.group(1): match.group(0)
        for match in re.finditer(
            r"<!-- begin (\S+) -->\n.*?<!-- end \1 -->\n", text, flags=re.DOTALL
        )
    }


def write_section(page: Path, name: str, body: str) -> None:
    """Put `body` into `page` as the section `name`, replacing the previous one
    or appending it: each benchmark owns its section of docs/benchmarks.md."""
    section = f"<!-- begin {name} -->\n{body.rstrip()}\n<!-- end {name} -->\n"
    text = page.read_text() if page.exists() else ""
    old = marked_sections(text).get(name)
    page.write_text(text.replace(old, section) if old else f"{text.rstrip()}\n\n{section}")
