"""Every setting is documented: the README's configuration table names each one."""

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from {{ cookiecutter.package_name }} import settings as settings_module

README = Path(__file__).resolve().parent.parent / "README.md"


def documented() -> set[str]:
    """The variable names in the first cell of the README's table rows."""
    names: set[str] = set()
    for line in README.read_text().splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


def test_every_setting_is_in_the_readme_table() -> None:
    models = [
        value
        for value in vars(settings_module).values()
        if isinstance(value, type)
        and issubclass(value, BaseSettings)
        and value.__module__ == settings_module.__name__
    ]
    fields = {name.upper() for model in models for name in model.model_fields}

    assert models
    assert fields - documented() == set()
