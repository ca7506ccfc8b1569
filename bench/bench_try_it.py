"""How long the README's "Try it" takes, from a fresh clone: its first command
on a new Python with empty pip and uv caches (everything comes from the package
index), then the same command again over its own render.

    python bench/bench_try_it.py

Clones the repository's committed HEAD; needs git and the package index.
The time runs from the command's start to the first 200 from `/healthz`.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import TEMPLATE, free_port, machine

sys.path.insert(0, str(TEMPLATE))
from tests.try_it import fresh_python, readme_commands, run_until_healthy, users_environment


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(TEMPLATE), str(clone)], check=True)
        python_bin = fresh_python(Path(tmp) / "python")
        port = free_port()
        env = users_environment(
            python_bin,
            Path(tmp) / "home",
            PORT=str(port),
            # A new machine: no pip configuration, no cached downloads.
            PIP_CONFIG_FILE=os.devnull,
            PIP_NO_CACHE_DIR="1",
            UV_CACHE_DIR=str(Path(tmp) / "uv-cache"),
        )
        env.pop("PIP_FIND_LINKS", None)
        first = readme_commands(clone / "README.md")[0]
        print(f"Try it, from a fresh clone ({machine()}):")
        for label in ("first run, empty caches", "again, over its render"):
            run = run_until_healthy(first, clone, env, f"http://127.0.0.1:{port}")
            print(f"  {label}: {run.seconds:.1f} s to the first 200 from /healthz")
        packages = subprocess.run(
            [python_bin / "python3", "-m", "pip", "freeze", "--all"],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()  # fmt: skip
        size = sum(f.stat().st_size for f in (Path(tmp) / "python").rglob("*") if f.is_file())
        print(f"  it installed {len(packages)} packages, pip included: {size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
