"""Load and process measurements: wrk runs, resident memory, import time."""

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p50: float
    p99: float
    requests: int
    errors: int
    non_2xx: int


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> LoadResult:
    """Read the figures out of `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _seconds(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _seconds(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors = sum(int(n) for n in match.groups())
    non_2xx = 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        non_2xx = int(match.group(1))
    return LoadResult(rps, p50, p99, requests, errors, non_2xx)


def wrk(
    url: str,
    *,
    connections: int = 32,
    seconds: int = 10,
    threads: int = 1,
    body: bytes | None = None,
) -> LoadResult:
    """Load `url` with wrk (GET, or POST of a JSON `body`).

    One wrk thread by default: on a 2-core machine the server (one process)
    keeps a core of its own, so a fast server is not measured against a load
    generator starved of CPU."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: install it (apt-get install wrk)")
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    with tempfile.TemporaryDirectory() as tmp:
        if body is not None:
            script = Path(tmp) / "post.lua"
            escaped = body.decode().replace("\\", "\\\\").replace('"', '\\"')
            script.write_text(
                'wrk.method = "POST"\n'
                f'wrk.body = "{escaped}"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            args += ["-s", str(script)]
        output = subprocess.run(
            [*args, url], capture_output=True, text=True, check=True, timeout=seconds + 60
        ).stdout
    return parse_wrk(output)


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (gunicorn's workers, for instance)."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(status.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its descendants."""
    total = 0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        if match := re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE):
            total += int(match.group(1)) * 1024
    return total


@dataclass(frozen=True)
class ImportEntry:
    package: str
    cumulative: float


def import_profile(python: Path, module: str, cwd: Path, env: dict[str, str]) -> list[ImportEntry]:
    """Top-level imports of `module` with their cumulative time (`-X importtime`)."""
    result = subprocess.run(
        [str(python), "-X", "importtime", "-c", f"import {module}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    entries = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)", line)
        # Level 0 is the measured module; level 1 are the imports it triggers.
        if match and len(match.group(3)) // 2 <= 1:
            entries.append(ImportEntry(match.group(4), int(match.group(2)) / 1e6))
    return sorted(entries, key=lambda e: e.cumulative, reverse=True)


def site_packages_bytes(python: Path) -> int:
    """Size of an environment's site-packages, without pip and setuptools."""
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    total = 0
    for path in Path(site).iterdir():
        if re.match(r"(pip|setuptools|_distutils_hack|distutils-precedence)", path.name):
            continue
        files: Sequence[Path] = [path] if path.is_file() else list(path.rglob("*"))
        total += sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())
    return total
