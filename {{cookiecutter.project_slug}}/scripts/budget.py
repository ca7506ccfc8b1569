"""Hold the service's image to the budgets in `budgets.toml`: `make budget`.

    python scripts/budget.py IMAGE [--engine docker] [--runs 5] [--attempts 3]

Three measurements of a built image, each against its budget:

- `image_added_mb`: megabytes the image adds to its base (the `FROM` of the
  Dockerfile's last stage), unpacked, as the container engine reports them;
- `import_ratio`: importing the app module, as a multiple of importing FastAPI
  and uvicorn alone;
- `cold_start_ratio`: from starting the service as the image's `CMD` does to
  its first 200 on /healthz, as a multiple of the same for a bare FastAPI app
  that uvicorn serves in its fastest configuration.

The times are measured inside the image (its Python, its bytecode, no
network), in runs that alternate with the floor they are divided by, and each
side's fastest run counts: other work on the machine only ever adds time, so
the fastest run is the closest to the image's own cost. A ratio to a floor
measured alongside holds on a laptop and on a busy CI runner alike, where a
number of milliseconds would not. A time over its budget is measured again
(`--attempts`), the runs of every measurement counting together: a burst of
other work passes, a heavy change does not.
"""

import argparse
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = "{{ cookiecutter.package_name }}"

# Runs inside the image with its Python: standard library only. Prints the
# samples as JSON: {"import": [[floor, service], ...], "cold_start": [...]}.
PROBE = r"""
import json, os, socket, subprocess, sys, time, urllib.request

package, runs = sys.argv[1], int(sys.argv[2])
FLOOR_APP = '''
import os, uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), access_log=False,
            log_level="warning")
'''
IMPORT = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"


def import_seconds(modules):
    code = IMPORT.format(modules)
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def first_200_seconds(command):
    port = free_port()
    env = {**os.environ, "PORT": str(port)}
    started = time.perf_counter()
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        while time.perf_counter() - started < 60:
            if server.poll() is not None:
                sys.exit(f"{command} exited with {server.returncode}: {server.stderr.read()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.005)
        sys.exit(f"{command} did not answer 200 on /healthz within 60 s")
    finally:
        server.terminate()
        server.communicate()


floor_import, service_import = "fastapi, uvicorn", f"{package}.main"
floor_start = [sys.executable, "-c", FLOOR_APP]
service_start = [sys.executable, "-m", package]
# Once untimed: the first run of each reads its files from disk.
import_seconds(floor_import), import_seconds(service_import)
first_200_seconds(floor_start), first_200_seconds(service_start)
samples = {"import": [], "cold_start": []}
for _ in range(runs):
    samples["import"].append([import_seconds(floor_import), import_seconds(service_import)])
    samples["cold_start"].append([first_200_seconds(floor_start),
                                  first_200_seconds(service_start)])
print(json.dumps(samples))
"""


@dataclass(frozen=True)
class Verdict:
    name: str
    measured: float
    budget: float
    detail: str

    @property
    def over(self) -> bool:
        return self.measured > self.budget


def engine_output(engine: str, *args: str) -> str:
    # The engine and the image are the caller's own (the Makefile's), not input.
    result = subprocess.run([engine, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        sys.exit(f"`{engine} {' '.join(args)}` failed:\n{result.stderr}")
    return result.stdout


def image_bytes(engine: str, image: str) -> int:
    (inspected,) = json.loads(engine_output(engine, "image", "inspect", image))
    return int(inspected["Size"])


def runtime_base(dockerfile: Path) -> str:
    """The image the Dockerfile's last stage starts from."""
    froms: list[str] = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.MULTILINE)
    return froms[-1]


def measure_times(engine: str, image: str, runs: int) -> dict[str, list[list[float]]]:
    output = engine_output(
        engine, "run", "--rm", "--network", "none", "--read-only",
        "--env", "ENVIRONMENT=local", "--env", "LOG_FORMAT=json",
        image, "python", "-c", PROBE, PACKAGE, str(runs),
    )  # fmt: skip
    samples: dict[str, list[list[float]]] = json.loads(output.strip().splitlines()[-1])
    return samples


@dataclass(frozen=True)
class Ratio:
    """The service's fastest run over the floor's, from alternating runs."""

    service: float
    floor: float

    @classmethod
    def of(cls, pairs: list[list[float]]) -> "Ratio":
        return cls(min(pair[1] for pair in pairs), min(pair[0] for pair in pairs))

    @property
    def value(self) -> float:
        return self.service / self.floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("image", help="the built image to measure")
    parser.add_argument("--engine", default="docker", help="docker or podman (default: docker)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each time (default: 5)")
    parser.add_argument(
        "--attempts",
        type=int,
        default=3,
        help="measurements of the times before one over its budget fails (default: 3)",
    )
    parser.add_argument("--budgets", type=Path, default=PROJECT / "budgets.toml")
    args = parser.parse_args()
    budgets = tomllib.loads(args.budgets.read_text())

    base = runtime_base(PROJECT / "Dockerfile")
    added = (image_bytes(args.engine, args.image) - image_bytes(args.engine, base)) / 1e6
    limits = {"import": budgets["import_ratio"], "cold_start": budgets["cold_start_ratio"]}
    # Every run of every measurement counts: each side's fastest run overall.
    samples = measure_times(args.engine, args.image, args.runs)
    attempts = 1
    while attempts < args.attempts and any(
        Ratio.of(samples[name]).value > limit for name, limit in limits.items()
    ):
        for name, pairs in measure_times(args.engine, args.image, args.runs).items():
            samples[name].extend(pairs)
        attempts += 1
    imports, start = Ratio.of(samples["import"]), Ratio.of(samples["cold_start"])
    verdicts = [
        Verdict("image_added_mb", added, budgets["image_added_mb"], f"MB over {base}"),
        Verdict(
            "import_ratio",
            imports.value,
            budgets["import_ratio"],
            f"x FastAPI + uvicorn ({imports.service * 1000:.0f} ms / "
            f"{imports.floor * 1000:.0f} ms)",
        ),
        Verdict(
            "cold_start_ratio",
            start.value,
            budgets["cold_start_ratio"],
            f"x bare FastAPI ({start.service * 1000:.0f} ms / {start.floor * 1000:.0f} ms "
            "to the first 200)",
        ),
    ]
    measured = f"{attempts} measurements" if attempts > 1 else "one measurement"
    print(f"{args.image}, fastest of {args.runs} runs each, {measured}:")
    for verdict in verdicts:
        status = "OVER BUDGET" if verdict.over else "ok"
        print(
            f"  {verdict.name:<17} {verdict.measured:7.2f} {verdict.detail}; "
            f"budget {verdict.budget:g}: {status}"
        )
    if over := [verdict.name for verdict in verdicts if verdict.over]:
        sys.exit(
            f"Over budget: {', '.join(over)}. Make it lean again, or raise the budget on "
            "purpose in budgets.toml (see its first lines)."
        )


if __name__ == "__main__":
    main()
