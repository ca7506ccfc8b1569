"""A switched-off feature leaves nothing behind: no file, dependency, import,
setting, route or word of documentation."""

import json
import re
from collections.abc import Callable

import pytest

from .conftest import TEMPLATE, Answers, Render, rendered_files
from .hooks import pre_gen

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
    "use_scheduler": ("scheduler", "@scheduled", "schedules.json", "cron"),
    "use_pubsub": ("pubsub", "Pub/Sub", "subscriber", "subscriptions.json", "/_pubsub"),
    # Not "opentelemetry-sdk": google-cloud-pubsub, a dev dependency with
    # use_pubsub, needs the SDK in the lock itself. Tracing's own dependencies
    # are the OTLP exporter's.
    "use_tracing": (
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
# The features the default render leaves out. The renders below turn them on,
# so that switching another feature off is seen to take their traces of it too.
OPT_IN = {
    switch: True
    for switch, default in json.loads((TEMPLATE / "cookiecutter.json").read_text()).items()
    if default is False and switch in FEATURE_TRACES
}


def everything_but(switch: str) -> Answers:
    """Every feature on but `switch`, and the features that need it."""
    answers = {**OPT_IN, switch: False}
    for feature, needs in pre_gen.NEEDS.items():
        if switch in needs:
            answers[feature] = False
    return answers


@pytest.mark.parametrize("switch", sorted(FEATURE_TRACES))
def test_switched_off_feature_leaves_no_trace(
    switch: str, render: Callable[[Answers], Render]
) -> None:
    project = render(everything_but(switch))
    pattern = re.compile("|".join(re.escape(t) for t in FEATURE_TRACES[switch]), re.IGNORECASE)
    for path in rendered_files(project.path):
        relative = path.relative_to(project.path)
        assert not pattern.search(str(relative)), relative
        match = pattern.search(path.read_text(errors="replace"))
        assert match is None, f"{match and match.group()!r} left in {relative}"


@pytest.mark.parametrize("switch", sorted(FEATURE_TRACES))
def test_switched_on_feature_is_there(switch: str, render: Callable[[Answers], Render]) -> None:
    """The trace list is not vacuous: a render with every feature has each."""
    project = render(OPT_IN)
    pattern = re.compile("|".join(re.escape(t) for t in FEATURE_TRACES[switch]), re.IGNORECASE)
    assert any(pattern.search(p.read_text(errors="replace")) for p in rendered_files(project.path))
