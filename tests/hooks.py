"""The template's hooks as modules, for the tests (as cookiecutter-django tests
its hooks): each fact the hooks hold (supported Python versions, how a lock
splits into packages, what counts as a leftover tag) is read from them, never
written again in a test."""

import importlib.util
from pathlib import Path
from types import ModuleType

TEMPLATE = Path(__file__).resolve().parent.parent


def load_hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, TEMPLATE / "hooks" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")
