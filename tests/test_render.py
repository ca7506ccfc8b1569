"""Every supported combination of answers (the table in combinations.py)
renders a project that passes its own linters, its strict type check and its
own test suite."""

from .conftest import Render, rendered_files


def test_nothing_is_left_unrendered(project: Render) -> None:
    for path in rendered_files(project.path):
        relative = path.relative_to(project.path)
        assert "{{" not in str(relative), relative
        assert "{%" not in str(relative), relative
        # `${{ ... }}` is GitHub Actions' expression syntax, not a template tag.
        text = path.read_text(errors="replace").replace("${{", "$(")
        for marker in ("{{", "{%", "cookiecutter."):
            assert marker not in text, f"{marker!r} left in {relative}"


def test_rendered_project_passes_its_linters(project: Render) -> None:
    project.run("make", "lint")


def test_rendered_project_passes_its_tests(project: Render) -> None:
    result = project.run("make", "test")
    assert " passed" in result.stdout
