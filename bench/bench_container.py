"""Image size and container start time: the rendered multi-stage image
against a single-stage pip baseline (bench/baseline/Dockerfile), same base.
Sizes are unpacked (what the engine stores) and compressed (what a pull
downloads: the gzip layers podman pushes), each also as added over the base.

    python bench/bench_container.py [--runs 7]

Needs buildah, podman, runc and debootstrap, as the container tests do (see
tests/containers.py: the base images are local stand-ins, so absolute sizes
differ from Docker Hub's; the difference between the two images does not).
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


def pull_bytes(containers: Containers, image: str, into: Path) -> int:
    """The compressed size of `image`: the gzip layers a registry would serve."""
    layout = into / image.replace("/", "_").replace(":", "_")
    containers.run("podman", "push", "--compress", "--format", "oci", image, f"oci:{layout}")
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":", 1)[1]
    manifest = json.loads((layout / "blobs" / "sha256" / digest).read_text())
    return sum(int(layer["size"]) for layer in manifest["layers"])


@dataclass
class Figures:
    images: dict[str, str]  # name: tag
    unpacked: dict[str, int]
    compressed: dict[str, int]
    starts: dict[str, list[float]]
    base_unpacked: int
    base_compressed: int


def measure(containers: Containers, tmp: Path, runs: int) -> Figures:
    """Build the rendered and the baseline image, then measure both."""
    project = render(tmp, python_version="3.14")
    prepare_base_images(containers, project / "Dockerfile")
    baseline = tmp / "baseline"
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
    starts: dict[str, list[float]] = {name: [] for name in images}
    for _ in range(runs):
        for name, tag in images.items():
            starts[name].append(time_to_healthy(containers, tag))
    base = "docker.io/library/python:3.14-slim"
    pushed = tmp / "pushed"
    return Figures(
        images,
        {name: containers.image_size(tag) for name, tag in images.items()},
        {name: pull_bytes(containers, tag, pushed) for name, tag in images.items()},
        starts,
        containers.image_size(base),
        pull_bytes(containers, base, pushed),
    )


def report(figures: Figures, runs: int) -> None:
    base, base_pull = figures.base_unpacked, figures.base_compressed
    print(
        f"{runs} starts each, alternating; {machine()}; stand-in base {base / 1e6:.0f} MB "
        f"unpacked, {base_pull / 1e6:.0f} MB to pull"
    )
    for name in figures.images:
        size, pull = figures.unpacked[name], figures.compressed[name]
        print(
            f"  {name:<28} image {size / 1e6:5.1f} MB unpacked "
            f"(+{(size - base) / 1e6:.1f} MB over the base), {pull / 1e6:5.1f} MB to pull "
            f"(+{(pull - base_pull) / 1e6:.1f} MB); podman start to first /healthz 200: "
            f"{Summary.of(figures.starts[name]).ms()}"
        )
    rendered, baseline = figures.images
    unpacked, compressed = figures.unpacked, figures.compressed
    print(
        f"image size, rendered / baseline: {unpacked[rendered] / unpacked[baseline]:.2f}x; "
        f"added over the base: "
        f"{(unpacked[rendered] - base) / (unpacked[baseline] - base):.2f}x unpacked, "
        f"{(compressed[rendered] - base_pull) / (compressed[baseline] - base_pull):.2f}x "
        "to pull"
    )
    median = {name: Summary.of(samples).median for name, samples in figures.starts.items()}
    print(f"start time, rendered / baseline: {median[rendered] / median[baseline]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if missing := missing_tools():
        raise SystemExit(f"cannot build images here: missing {', '.join(missing)}")
    with tempfile.TemporaryDirectory() as tmp:
        containers = Containers(Path(tmp) / "containers")
        try:
            figures = measure(containers, Path(tmp), args.runs)
        finally:
            containers.close()
    report(figures, args.runs)


if __name__ == "__main__":
    main()
