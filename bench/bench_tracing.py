"""Cold start with OpenTelemetry tracing on and off: `make bench-tracing`.

Two renders that differ only in `use_tracing`, each started as the container
starts it (`python -m <package>` in its runtime-only environment, `local`, no
Google account), alternating, `--runs` times each. For each start: seconds from
exec to the first 200 on /healthz and, with tracing on, to the service's
"Tracing to" line (the SDK loads in a thread after the server is up, so the
first response should not wait for it). Spans go to a closed port with a
sample rate of 0: exporting is not what is measured. Writes
docs/benchmarks-tracing.md.
"""

import argparse
import os
import signal
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from common import TEMPLATE, Summary, free_port, machine, render, uv, wait_for

OUT = TEMPLATE / "docs" / "benchmarks-tracing.md"
READY = b"Tracing to"


def runtime(tmp: Path, tracing: bool) -> Path:
    """A render with tracing on or off and its runtime-only environment."""
    project = render(tmp / ("on" if tracing else "off"), project_name="My Service",
                     use_tracing=tracing)  # fmt: skip
    uv("sync", "--locked", "--no-dev", "--quiet", cwd=project)
    return project


def start(project: Path) -> tuple[float, float | None]:
    """Seconds from exec to the first /healthz 200, and to tracing being ready."""
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "local",
        "PORT": str(port),
        "TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces",
        "TRACE_SAMPLE_RATE": "0",
    }
    env.pop("VIRTUAL_ENV", None)
    ready: list[float] = []
    started = time.monotonic()
    process = subprocess.Popen(
        [str(project / ".venv" / "bin" / "python"), "-m", "my_service"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def watch() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if READY in line and not ready:
                ready.append(time.monotonic())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        healthy = wait_for(f"http://127.0.0.1:{port}/healthz", process) - started
        if (project / "src" / "my_service" / "tracing.py").exists():
            deadline = time.monotonic() + 30
            while not ready and time.monotonic() < deadline:
                time.sleep(0.005)
        return healthy, (ready[0] - started) if ready else None
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
        watcher.join(timeout=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        projects = {"off": runtime(Path(tmp), False), "on": runtime(Path(tmp), True)}
        for project in projects.values():  # warm the page cache
            start(project)
        healthy: dict[str, list[float]] = {"off": [], "on": []}
        traced: list[float] = []
        for _ in range(args.runs):
            for name, project in projects.items():
                first, ready = start(project)
                healthy[name].append(first)
                if name == "on":
                    assert ready is not None, "tracing never started"
                    traced.append(ready)
    off, on = Summary.of(healthy["off"]), Summary.of(healthy["on"])
    ratio = on.median / off.median
    lines = [
        "# Tracing and cold start (`make bench-tracing`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}: the default render with "
        f"`use_tracing` off and on, {args.runs} starts each, alternating; median (min-max).",
        "",
        "| Render | exec to first /healthz 200 | exec to tracing ready |",
        "| --- | --- | --- |",
        f"| tracing off | {off.ms()} | - |",
        f"| tracing on | {on.ms()} | {Summary.of(traced).ms()} |",
        "",
        f"- cold start, tracing on / off: **{ratio:.2f}x** (goal <= 1.15x: "
        f"{'met' if ratio <= 1.15 else '**missed**'})",
        "- With tracing off, the render holds no tracing code or dependency (the feature "
        "is switched by whole files); the OpenTelemetry API it uses is one FastAPI already "
        "imports.",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
