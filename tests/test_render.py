"""Every supported combination of answers renders a project that passes its
own linters, its strict type check and its own test suite."""

from collections.abc import Callable
from typing import Any

import pytest

from .conftest import Answers, Render, rendered_files

# The answers each supported render differs in from the defaults. A new switch
# adds rows here; CI renders every row.
SUPPORTED_COMBINATIONS: list[dict[str, Any]] = [
    {},
    {"use_secret_manager": False},
    {"use_cloud_tasks": False},
    {"use_secret_manager": False, "use_cloud_tasks": False},
    {"python_version": "3.11"},
    {"project_name": "Billing API", "package_name": "billing", "gcp_region": "us-central1"},
]

IDS = [
    ",".join(f"{k}={v}" for k, v in answers.items()) or "defaults"
    for answers in SUPPORTED_COMBINATIONS
]


@pytest.fixture(params=SUPPORTED_COMBINATIONS, ids=IDS)
def project(request: pytest.FixtureRequest, render: Callable[[Answers], Render]) -> Render:
    answers: dict[str, Any] = request.param
    return render(answers)


def test_nothing_is_left_unrendered(project: Render) -> None:
    for path in rendered_files(project.path):
        relative = path.relative_to(project.path)
        assert "{{" not in str(relative), relative
        assert "{%" not in str(relative), relative
        text = path.read_text(errors="replace")
        for marker in ("{{", "{%", "cookiecutter."):
            assert marker not in text, f"{marker!r} left in {relative}"


def test_rendered_project_passes_its_linters(project: Render) -> None:
    project.run("make", "lint")


def test_rendered_project_passes_its_tests(project: Render) -> None:
    result = project.run("make", "test")
    assert " passed" in result.stdout
