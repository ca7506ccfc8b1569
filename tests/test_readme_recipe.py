"""The rendered README's "Add a route, a task and a secret", followed to the letter.

Each step of that section is a code block marked with the file it goes in
(`<!-- file: path -->` for a whole file, `<!-- append: path -->` for lines
added at its end). This test applies them to a copy of a render, counts the
files it touched, and runs the project's own `make lint` and `make test`: the
shipped tests must stand up to a user's first feature.
"""

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Answers, Render, record_figure

STEP = re.compile(
    r"<!-- (file|append): (\S+) -->\n(?:<!-- fmt: off -->\n)?```\w*\n(.*?)```", re.DOTALL
)


def steps(readme: str) -> list[tuple[str, str, str]]:
    """(how, path, text) of each marked block of the recipe section."""
    section = readme.split("## Add a route, a task and a secret", 1)[1].split("\n## ", 1)[0]
    return STEP.findall(section)


def git(project: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=project, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


@pytest.mark.parametrize(
    "answers",
    [{}, {"use_secret_manager": False, "use_cloud_tasks": False}],
    ids=["defaults", "no features"],
)
def test_the_readme_recipe_passes_the_projects_own_checks(
    answers: Answers, render: Callable[[Answers], Render], tmp_path: Path
) -> None:
    rendered = render(answers)
    copy = tmp_path / rendered.path.name
    shutil.copytree(rendered.path, copy, ignore=shutil.ignore_patterns(".venv", "*_cache"))
    project = Render(copy, rendered.context, rendered.env_dir)
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    git(copy, "commit", "-qm", "rendered")

    recipe = steps((copy / "README.md").read_text())
    assert recipe, "the README lost its recipe"
    for how, relative, text in recipe:
        path = copy / relative
        if how == "file":
            path.write_text(text)
        else:
            assert path.exists(), f"the README adds to {relative}, which is not there"
            path.write_text(path.read_text() + text)

    touched = git(copy, "status", "--porcelain").splitlines()
    name = "defaults" if not answers else "no features"
    record_figure(f"README recipe ({name}): files touched", str(len(touched)))
    expected = {"src/", "tests/test_invoices.py"}
    assert all(any(line[3:].startswith(e) for e in [*expected, "deploy/"]) for line in touched)
    assert len(touched) <= (5 if not answers else 3), touched
    project.run("make", "lint")
    result = project.run("make", "test")
    assert "test_invoices.py" in result.stdout
