"""Build and run the rendered service's image without a Docker engine.

buildah builds, podman runs (runc, cgroupfs, overlay storage, or vfs where
overlay cannot stack), all configured through files in a directory this
module owns, never /etc. No registry is
reachable, so the images the Dockerfile starts from are made locally under
the exact names it uses:

- `python:<version>-slim`: a `debootstrap --variant=minbase` of Debian with
  that Python, its interpreter linked where the official image has it, and
  the host's CA bundle (the build's package downloads go through the host's
  network), and apt's Valid-Until check off (the mirror here may serve
  Release files past that date). The tarball is cached between runs.
- `ghcr.io/astral-sh/uv:<version>`: the `uv` binary of the same version from
  its PyPI wheel, at `/uv` as in Astral's image.

Used by the container tests and by `bench/bench_container.py`.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Which Debian release packages each Python (and which debootstrap script knows
# it). No Debian release packages 3.12: that image can only be checked statically.
SUITES: Mapping[str, tuple[str, str]] = {
    "3.15": ("forky", "sid"),
    "3.14": ("forky", "sid"),
    "3.13": ("forky", "sid"),
    "3.11": ("bookworm", "bookworm"),
}
MIRROR = "http://deb.debian.org/debian"
STANDIN_RECIPE_VERSION = "2"  # bump when the recipe below changes


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "cloud-run-fastapi-template"
    path.mkdir(parents=True, exist_ok=True)
    return path


def missing_tools() -> list[str]:
    """What this machine lacks to build and run images (empty: all there)."""
    missing = [
        tool for tool in ("buildah", "podman", "runc", "debootstrap") if not shutil.which(tool)
    ]
    if os.geteuid() != 0:
        missing.append("root (debootstrap and chroot builds need it)")
    return missing


def dockerfile_images(dockerfile: Path) -> dict[str, str]:
    """`FROM` images of a Dockerfile: {stage name or image: image}."""
    images = {}
    for match in re.finditer(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile.read_text(), re.M):
        images[match.group(2) or match.group(1)] = match.group(1)
    return images


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def storage_driver(root: Path) -> str:
    """`overlay` where the kernel has it and `root` is not on an overlay itself
    (as inside another container, where it cannot stack), else `vfs`.

    vfs works everywhere but copies the whole file tree for every layer and
    every container: a build takes several times as long."""
    if "\toverlay\n" not in Path("/proc/filesystems").read_text():
        return "vfs"
    target, fstype = str(root.resolve()), ""
    best = -1
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mountpoint, kind, *_ = line.split()
        inside = target == mountpoint or target.startswith(mountpoint.rstrip("/") + "/")
        if inside and len(mountpoint) > best:
            best, fstype = len(mountpoint), kind
    return "vfs" if fstype in {"overlay", "fuse.fuse-overlayfs"} else "overlay"


class Containers:
    """buildah and podman with their own storage and configuration under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        conf = root / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        self.driver = storage_driver(root)
        (conf / "storage.conf").write_text(
            f'[storage]\ndriver = "{self.driver}"\nrunroot = "{root}/run"\n'
            f'graphroot = "{root}/storage"\n'
        )
        (conf / "containers.conf").write_text(
            "[containers]\n"
            'default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\nruntime = "runc"\nevents_logger = "file"\n'
        )
        (conf / "registries.conf").write_text(
            'unqualified-search-registries = ["docker.io"]\nshort-name-mode = "permissive"\n'
        )
        self.env = {
            **os.environ,
            "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf"),
            "CONTAINERS_CONF": str(conf / "containers.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(conf / "registries.conf"),
        }

    def run(
        self, *args: str, check: bool = True, timeout: float = 900, stdin: bytes | None = None
    ) -> Result:
        result = subprocess.run(
            args, env=self.env, capture_output=True, input=stdin, timeout=timeout, check=False
        )
        out = Result(result.returncode, result.stdout.decode(), result.stderr.decode())
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{out.stderr}")
        return out

    def has_image(self, name: str) -> bool:
        return self.run("podman", "image", "exists", name, check=False).returncode == 0

    def import_tar(self, tarball: Path, name: str, changes: Sequence[str]) -> None:
        change_args = [arg for change in changes for arg in ("--change", change)]
        self.run("podman", "import", *change_args, str(tarball), name)

    def build(self, context: Path, tag: str) -> str:
        """Build with layer caching; returns buildah's output (to see what was cached)."""
        try:
            result = self.run(
                "buildah", "bud", "--isolation", "chroot", "--network", "host", "--pull=never",
                "--layers", "-t", tag, str(context),
            )  # fmt: skip
        finally:
            self.remove_working_containers()
        return result.stdout + result.stderr

    def remove_working_containers(self) -> None:
        """buildah keeps the working container of a `COPY --from` stage, with
        its file system mounted: a mount under a temporary directory that
        nothing could delete."""
        self.run("buildah", "rm", "--all", check=False)

    def close(self) -> None:
        """Remove every container, so that no mount outlives the session."""
        self.run("podman", "rm", "--all", "--force", check=False)
        self.remove_working_containers()

    def image_size(self, name: str) -> int:
        return int(self.run("podman", "image", "inspect", "--format", "{{.Size}}", name).stdout)

    def layers(self, name: str) -> list[tuple[int, str]]:
        """(size in bytes, instruction) of each layer, newest first."""
        out = self.run("podman", "history", "--no-trunc", "--format", "json", name).stdout
        return [(int(layer["size"]), str(layer["CreatedBy"])) for layer in json.loads(out)]


def _download_wheel(requirement: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "python3", "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--platform", "manylinux_2_17_x86_64", "--python-version", "3.11",
            "-d", str(into), requirement,
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    name = requirement.split("==")[0].replace("-", "_")
    return next(into.glob(f"{name}-{requirement.split('==')[1]}-*.whl"))


def standin_uv(containers: Containers, image: str) -> None:
    """`ghcr.io/astral-sh/uv:<version>` from the same version's PyPI wheel."""
    if containers.has_image(image):
        return
    version = image.rsplit(":", 1)[1]
    wheel = _download_wheel(f"uv=={version}", cache_dir() / "wheels")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        with zipfile.ZipFile(wheel) as archive:
            for binary in ("uv", "uvx"):
                target = root / binary
                target.write_bytes(archive.read(f"uv-{version}.data/scripts/{binary}"))
                target.chmod(0o755)
        tarball = Path(tmp) / "uv.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(tarball), "uv", "uvx"], check=True)
        containers.import_tar(tarball, image, ['CMD ["/uv"]'])


def standin_python_tarball(version: str) -> Path:
    """A cached root filesystem tarball standing in for `python:<version>-slim`."""
    if version not in SUITES:
        raise LookupError(f"no Debian release packages Python {version}")
    suite, script = SUITES[version]
    ca_bundle = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    key = hashlib.sha256(
        f"{STANDIN_RECIPE_VERSION}|{version}|{suite}".encode() + ca_bundle
    ).hexdigest()[:16]
    tarball = cache_dir() / f"python-{version}-slim-{suite}-{key}.tar"
    if tarball.exists():
        return tarball
    python = f"python{version}"
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs"
        packages = f"{python},{python}-venv,ca-certificates"
        script_path = f"/usr/share/debootstrap/scripts/{script}"
        command = ["debootstrap", "--variant=minbase", f"--include={packages}", suite]
        subprocess.run(
            [*command, str(rootfs), MIRROR, script_path],
            check=True,
            capture_output=True,
        )
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftovers).glob("*"):
                if path.is_file():
                    path.unlink()
        # The build's downloads go through this machine's network and its CAs.
        (rootfs / "etc/ssl/certs/ca-certificates.crt").write_bytes(ca_bundle)
        # The mirror this machine reaches may serve Release files past their
        # Valid-Until date; the real image's apt-get (the build stage installs
        # binutils) reads a fresh mirror, so here only the date check is off.
        (rootfs / "etc/apt/apt.conf.d/99standin-valid-until").write_text(
            'Acquire::Check-Valid-Until "false";\n'
        )
        # The official image's interpreter lives in /usr/local/bin.
        for name in ("python", "python3", python):
            link = rootfs / "usr/local/bin" / name
            link.unlink(missing_ok=True)
            link.symlink_to(f"/usr/bin/{python}")
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.rename(tarball)
    return tarball


def standin_python(containers: Containers, image: str) -> None:
    """Import the stand-in for `python:<version>-slim` under that name."""
    if containers.has_image(image):
        return
    version = image.rsplit(":", 1)[1].removesuffix("-slim")
    containers.import_tar(
        standin_python_tarball(version),
        image,
        [
            "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            'CMD ["python3"]',
        ],
    )


def prepare_base_images(containers: Containers, dockerfile: Path) -> None:
    """Make every image the Dockerfile starts from available locally."""
    for image in set(dockerfile_images(dockerfile).values()):
        if image.startswith("ghcr.io/astral-sh/uv:"):
            standin_uv(containers, image)
        elif image.startswith("python:"):
            standin_python(containers, f"docker.io/library/{image}")
