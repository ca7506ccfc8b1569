"""Terraform creates the secrets the service declares, in every environment."""

import re
from pathlib import Path

from {{ cookiecutter.package_name }}.secrets import declared_secrets
from {{ cookiecutter.package_name }}.settings import Secrets

LIST = Path(__file__).resolve().parents[2] / "deploy" / "terraform" / "secrets.auto.tfvars"


def test_terraform_lists_every_declared_secret() -> None:
    match = re.search(r"^secrets\s*=\s*(\[[^\]]*\])", LIST.read_text(), re.MULTILINE)
    assert match, f"{LIST.name} has no `secrets = [...]` line"
    listed = re.findall(r'"([^"]*)"', match.group(1))
    declared = sorted(secret.name for secret in declared_secrets(Secrets).values())
    assert sorted(listed) == declared, f"settings.py declares {declared}: list them in {LIST.name}"
