"""The supported combinations of answers: every row is rendered, linted,
type-checked and tested in CI. A new switch adds rows here."""

from typing import Any

from .hooks import pre_gen

# What each supported render answers differently from the defaults.
SUPPORTED_COMBINATIONS: list[dict[str, Any]] = [
    {},
    {"use_secret_manager": False},
    {"use_cloud_tasks": False, "use_tracing": True},
    {"use_secret_manager": False, "use_cloud_tasks": False},
    {"use_terraform": False},
    {"use_secret_manager": False, "use_cloud_tasks": False, "use_terraform": False},
    {"python_version": "3.11"},
    {
        "project_name": "Billing API",
        "package_name": "billing",
        "gcp_region": "us-central1",
        "public_access": True,
        "use_tracing": True,
    },
]

IDS = [
    ",".join(f"{k}={v}" for k, v in answers.items()) or "defaults"
    for answers in SUPPORTED_COMBINATIONS
]

# The pre-generation hook's list, which cookiecutter.json's choices must match.
PYTHON_VERSIONS = list(pre_gen.PYTHON_VERSIONS)
