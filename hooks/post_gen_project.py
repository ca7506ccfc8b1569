"""Post-generation hook: finish the rendered service.

Kept as small functions so the template's tests can import and exercise them;
cookiecutter runs this file with the rendered project as working directory.
"""

import re
import sys
from pathlib import Path

_PACKAGE_BLOCK_SPLIT = re.compile(r"\n\n(?=\[\[package\]\]\n)")
_NAME = re.compile(r'^name = "([^"]+)"', re.MULTILINE)


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


def main(project: Path) -> int:
    lock = project / "uv.lock"
    lock.write_text(sort_lock_packages(lock.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path.cwd()))
