"""The supported combinations of answers: every row is rendered, linted,
type-checked and tested in CI. A new switch adds rows here."""

from typing import Any

from .hooks import pre_gen

# The row with every feature on and the other answers away from their defaults.
# The opt-in features need Cloud Tasks and Terraform, and none changes what the
# others render, so they share this row rather than each adding one: every
# other row has them off.
EVERY_FEATURE: dict[str, Any] = {
    "project_name": "Billing API",
    "package_name": "billing",
    "gcp_region": "us-central1",
    "public_access": True,
    "use_tracing": True,
    "use_scheduler": True,
    "use_pubsub": True,
}

# What each supported render answers differently from the defaults.
SUPPORTED_COMBINATIONS: list[dict[str, Any]] = [
    {},
    {"use_secret_manager": False},
    {"use_cloud_tasks": False, "use_tracing": True},
    {"use_secret_manager": False, "use_cloud_tasks": False},
    {"use_terraform": False},
    {"use_secret_manager": False, "use_cloud_tasks": False, "use_terraform": False},
    {"python_version": "3.11"},
    EVERY_FEATURE,
]

IDS = [
    ",".join(f"{k}={v}" for k, v in answers.items()) or "defaults"
    for answers in SUPPORTED_COMBINATIONS
]

# The pre-generation hook's list, which cookiecutter.json's choices must match.
PYTHON_VERSIONS = list(pre_gen.PYTHON_VERSIONS)
