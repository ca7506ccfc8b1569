"""A switched-off feature leaves nothing behind: no file, dependency, import,
setting, route or word of documentation."""

import json
import re
from collections.abc import Callable

import pytest

from .conftest import TEMPLATE, Answers, Render, rendered_files

# Strings that only a feature's own code, dependencies and docs contain.
FEATURE_TRACES: dict[str, tuple[str, ...]] = {
    "use_secret_manager": (
        "secretmanager",
        "secret_manager",
        "Secret Manager",
        "SecretManager",
        "crc32c",
    ),
    "use_cloud_tasks": ("cloud_tasks", "tasks_v2", "Cloud Tasks", "CloudTasks", "/_tasks"),
    "use_terraform": ("terraform", ".tfvars", "hashicorp"),
    "use_tracing": (
        "opentelemetry-sdk",
        "opentelemetry.sdk",
        "otlp",
        "TRACES_ENDPOINT",
        "TRACE_SAMPLE_RATE",
        "cloudtrace",
        "telemetry.googleapis.com",
        "tracing.py",
        "TracingMiddleware",
    ),
}
# Features the default render leaves out: their "on" check renders them on.
OFF_BY_DEFAULT = {
    switch
    for switch, default in json.loads((TEMPLATE / "cookiecutter.json").read_text()).items()
    if default is False
}


@pytest.mark.parametrize("switch", sorted(FEATURE_TRACES))
def test_switched_off_feature_leaves_no_trace(
    switch: str, render: Callable[[Answers], Render]
) -> None:
    project = render({switch: False} if switch not in OFF_BY_DEFAULT else {})
    pattern = re.compile("|".join(re.escape(t) for t in FEATURE_TRACES[switch]), re.IGNORECASE)
    for path in rendered_files(project.path):
        relative = path.relative_to(project.path)
        assert not pattern.search(str(relative)), relative
        match = pattern.search(path.read_text(errors="replace"))
        assert match is None, f"{match and match.group()!r} left in {relative}"


@pytest.mark.parametrize("switch", sorted(FEATURE_TRACES))
def test_switched_on_feature_is_there(switch: str, render: Callable[[Answers], Render]) -> None:
    """The trace list is not vacuous: a render with the feature on has it."""
    project = render({switch: True} if switch in OFF_BY_DEFAULT else {})
    pattern = re.compile("|".join(re.escape(t) for t in FEATURE_TRACES[switch]), re.IGNORECASE)
    assert any(pattern.search(p.read_text(errors="replace")) for p in rendered_files(project.path))
