"""Post-generation hook: finish the rendered service.

Kept as small functions so the template's tests can import and exercise them;
cookiecutter runs this file with the rendered project as working directory.
"""

import json
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# What each optional feature owns, as paths relative to the project root
# (`{package}` stands for the package name). A path is kept when at least one
# of its switches is on and removed otherwise: features switch by whole files.
FEATURE_MANIFEST: Mapping[str, frozenset[str]] = {
    "tests/fakes": frozenset({"use_secret_manager", "use_cloud_tasks"}),
    "src/{package}/secrets.py": frozenset({"use_secret_manager"}),
    "tests/fakes/secret_manager.py": frozenset({"use_secret_manager"}),
    "tests/secrets": frozenset({"use_secret_manager"}),
    "src/{package}/tasks": frozenset({"use_cloud_tasks"}),
    "src/{package}/api/signups.py": frozenset({"use_cloud_tasks"}),
    "tests/fakes/cloud_tasks.py": frozenset({"use_cloud_tasks"}),
    "tests/tasks": frozenset({"use_cloud_tasks"}),
}

_PACKAGE_BLOCK_SPLIT = re.compile(r"\n\n(?=\[\[package\]\]\n)")
_NAME = re.compile(r'^name = "([^"]+)"', re.MULTILINE)


def paths_to_remove(context: Mapping[str, Any]) -> list[str]:
    """The manifest paths whose switches are all off in `context`."""
    package = str(context["package_name"])
    return sorted(
        path.format(package=package)
        for path, switches in FEATURE_MANIFEST.items()
        if not any(context.get(switch) is True for switch in switches)
    )


def remove_disabled_features(project: Path, context: Mapping[str, Any]) -> None:
    for relative in paths_to_remove(context):
        target = project / relative
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def sort_lock_packages(lock_text: str) -> str:
    """Put the service's own package where `uv lock` would: sorted by name.

    The template keeps it first because its name is only known at render time.
    """
    header, *blocks = _PACKAGE_BLOCK_SPLIT.split(lock_text.rstrip("\n"))

    def name(block: str) -> str:
        match = _NAME.search(block)
        return match.group(1) if match else ""

    # sorted() is stable, so several versions of one package keep uv's order.
    return "\n\n".join([header, *sorted(blocks, key=name)]) + "\n"


def main(project: Path, context: Mapping[str, Any]) -> int:
    remove_disabled_features(project, context)
    lock = project / "uv.lock"
    lock.write_text(sort_lock_packages(lock.read_text()))
    return 0


if __name__ == "__main__":
    # cookiecutter renders this file before running it: the answers arrive as JSON.
    sys.exit(main(Path.cwd(), json.loads(r"""{{ cookiecutter | jsonify }}""")))
