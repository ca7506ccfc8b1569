"""Every supported combination of answers (the table in combinations.py)
renders a project that passes its own linters, its strict type check and its
own test suite."""

import json
import re

from .conftest import Render, rendered_files
from .hooks import post_gen


def test_nothing_is_left_unrendered(project: Render) -> None:
    """By the post-generation hook's own check, over every file on disk."""
    assert post_gen.check_no_template_left(project.path, rendered_files(project.path)) == []


def test_rendered_project_passes_its_linters(project: Render) -> None:
    project.run("make", "lint")


def test_rendered_project_passes_its_tests(project: Render) -> None:
    result = project.run("make", "test")
    assert " passed" in result.stdout


LIST_SETTINGS = """
import json
from pydantic_settings import BaseSettings
from {package} import settings

models = [
    value for value in vars(settings).values()
    if isinstance(value, type) and issubclass(value, BaseSettings)
    and value.__module__ == settings.__name__
]
print(json.dumps(sorted(name.upper() for model in models for name in model.model_fields)))
"""


def test_every_setting_is_in_the_readme_table(project: Render) -> None:
    """The rendered README documents each setting the template ships (a
    check of the template's, not the project's: the owner's own settings
    need no row to pass the project's tests)."""
    script = LIST_SETTINGS.format(package=project.context["package_name"])
    fields = set(json.loads(project.run("uv", "run", "--locked", "python", "-c", script).stdout))
    documented = set()
    for line in (project.path / "README.md").read_text().splitlines():
        if line.startswith("| `"):
            documented.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    assert fields
    assert fields - documented == set()
