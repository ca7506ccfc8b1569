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
from datetime import UTC, datetime
from pathlib import Path

import httpx
from common import TEMPLATE, Summary, free_port, machine, render, write_section

sys.path.insert(0, str(TEMPLATE))
from tests.containers import Containers, missing_tools, prepare_base_images


def time_to_healthy(containers: Containers, image: str) -> float:
    port = free_port()
    name = f"bench-{port}"
    # Created first, untimed: with the vfs storage driver podman copies the whole
    # image per container, which says nothing about the image's start.
    containers.run(
        "podman", "create", "--name", name, "--runtime", "runc", "--network", "host",
        "-e", f"PORT={port}", "-e", "ENVIRONMENT=local", image,
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
    into.mkdir(parents=True, exist_ok=True)
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


def report(figures: Figures, runs: int) -> str:
    """The Markdown section of docs/benchmarks.md."""
    base, base_pull = figures.base_unpacked, figures.base_compressed
    rendered, baseline = figures.images
    unpacked, compressed = figures.unpacked, figures.compressed
    median = {name: Summary.of(samples).median for name, samples in figures.starts.items()}
    added = unpacked[rendered] - base
    lines = [
        "## Container image (`make bench-container`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}: the default render "
        "(Python 3.14, both Google clients) against a one-stage pip image of the same "
        f"locked dependencies on the same base; {runs} starts each, alternating. The base "
        "is the test suite's Debian stand-in for `python:3.14-slim` "
        f"({base / 1e6:.0f} MB unpacked, {base_pull / 1e6:.0f} MB to pull), so whole-image "
        "sizes differ from Docker Hub's; what each image adds to it does not.",
        "",
        "| Image | unpacked | added over the base | to pull (gzip) | added to pull "
        "| podman start to first /healthz 200 |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {name} | {unpacked[name] / 1e6:.1f} MB | +{(unpacked[name] - base) / 1e6:.1f} MB "
            f"| {compressed[name] / 1e6:.1f} MB | +{(compressed[name] - base_pull) / 1e6:.1f} MB "
            f"| {Summary.of(figures.starts[name]).ms()} |"
            for name in figures.images
        ),
        "",
        f"- added over the base, rendered: **{added / 1e6:.1f} MB** unpacked (goal <= 60 MB: "
        f"{'met' if added <= 60e6 else '**missed**'}), "
        f"{(compressed[rendered] - base_pull) / 1e6:.1f} MB to pull",
        f"- added over the base, rendered / baseline: {added / (unpacked[baseline] - base):.2f}x "
        f"unpacked, {(compressed[rendered] - base_pull) / (compressed[baseline] - base_pull):.2f}x"
        " to pull",
        f"- start time, rendered / baseline: {median[rendered] / median[baseline]:.2f}x",
    ]
    return "\n".join(lines) + "\n"


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
    section = report(figures, args.runs)
    print(section)
    write_section(TEMPLATE / "docs" / "benchmarks.md", "bench-container", section)


if __name__ == "__main__":
    main()
