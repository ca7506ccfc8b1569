"""Image size and container start time: the rendered multi-stage image
against a single-stage pip baseline (bench/baseline/Dockerfile), same base.

    python bench/bench_container.py [--runs 7]

Needs buildah, podman, runc and debootstrap, as the container tests do (see
tests/containers.py: the base images are local stand-ins, so absolute sizes
differ from Docker Hub's; the difference between the two images does not).
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import TEMPLATE, Summary, free_port, machine, render

sys.path.insert(0, str(TEMPLATE))
from tests.containers import Containers, missing_tools, prepare_base_images


def time_to_healthy(containers: Containers, image: str) -> float:
    port = free_port()
    name = f"bench-{port}"
    # Created first, untimed: with the vfs storage driver podman copies the whole
    # image per container, which says nothing about the image's start.
    containers.run(
        "podman", "create", "--name", name, "--runtime", "runc", "--network", "host",
        "-e", f"PORT={port}", image,
    )  # fmt: skip
    started = time.monotonic()
    containers.run("podman", "start", name)
    try:
        with httpx.Client(timeout=1) as client:
            while time.monotonic() - started < 60:
                try:
                    if client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    time.sleep(0.01)
        raise TimeoutError(f"{image} did not answer within 60 s")
    finally:
        containers.run("podman", "rm", "-f", name, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if missing := missing_tools():
        raise SystemExit(f"cannot build images here: missing {', '.join(missing)}")
    with tempfile.TemporaryDirectory() as tmp:
        containers = Containers(Path(tmp) / "containers")
        project = render(Path(tmp), python_version="3.14")
        prepare_base_images(containers, project / "Dockerfile")
        baseline = Path(tmp) / "baseline"
        shutil.copytree(project, baseline)
        shutil.copy(TEMPLATE / "bench" / "baseline" / "Dockerfile", baseline / "Dockerfile")
        (baseline / ".dockerignore").unlink()
        requirements = subprocess.run(
            [sys.executable, "-m", "uv", "export", "--quiet", "--locked", "--no-dev",
             "--no-emit-project", "--format", "requirements-txt"],
            cwd=project, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        (baseline / "requirements.txt").write_text(requirements)
        images = {
            "rendered (multi-stage, uv)": "bench/rendered",
            "baseline (one stage, pip)": "bench/baseline",
        }
        containers.build(project, images["rendered (multi-stage, uv)"])
        containers.build(baseline, images["baseline (one stage, pip)"])
        sizes = {name: containers.image_size(tag) for name, tag in images.items()}
        samples: dict[str, list[float]] = {name: [] for name in images}
        for _ in range(args.runs):
            for name, tag in images.items():
                samples[name].append(time_to_healthy(containers, tag))
        base = containers.image_size("docker.io/library/python:3.14-slim")
    print(f"{args.runs} starts each, alternating; {machine()}; stand-in base {base / 1e6:.0f} MB")
    for name in images:
        start = Summary.of(samples[name])
        print(
            f"  {name:<28} image {sizes[name] / 1e6:5.0f} MB "
            f"(+{(sizes[name] - base) / 1e6:.0f} MB over the base), "
            f"podman start to first /healthz 200: {start.ms()}"
        )
    rendered, baseline_name = images
    print(
        f"image size, rendered / baseline: {sizes[rendered] / sizes[baseline_name]:.2f}x; "
        f"added over the base: {(sizes[rendered] - base) / (sizes[baseline_name] - base):.2f}x"
    )
    print(
        f"start time, rendered / baseline: "
        f"{Summary.of(samples[rendered]).median / Summary.of(samples[baseline_name]).median:.2f}x"
    )


if __name__ == "__main__":
    main()
