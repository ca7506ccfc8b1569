"""`make budget` in the default render, with its image built by buildah and
measured with podman (as tests/containers.py runs them): the image keeps to
the budgets its `budgets.toml` sets, and a change that adds a heavy dependency
(pandas, imported by the app) fails it, over its size and import budgets."""

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .conftest import Answers, Render, record_figure, tool_env
from .containers import Containers

# What `make budget` runs in place of `docker build` where there is no Docker
# engine: the build the container tests run.
BUILDAH = "buildah bud --isolation chroot --network host --pull=never --layers"
BUDGETS = {"image_added_mb", "import_ratio", "cold_start_ratio"}
HEAVY_DEPENDENCY = "pandas==2.3.3"


def make_budget(
    project: Path, containers: Containers, env_dir: Path, tag: str
) -> subprocess.CompletedProcess[str]:
    engine = {key: value for key, value in containers.env.items() if key.startswith("CONTAINERS_")}
    return subprocess.run(
        ["make", "budget", "CONTAINER=podman", f"IMAGE_BUILD={BUILDAH}", f"BUDGET_IMAGE={tag}"],
        cwd=project, env={**tool_env(env_dir), **engine},
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def verdicts(output: str) -> dict[str, str]:
    """{budget: "ok" or "OVER BUDGET"} from the script's report."""
    return dict(re.findall(r"^  (\w+) .*: (ok|OVER BUDGET)$", output, re.MULTILINE))


def test_the_default_image_keeps_to_its_budgets(
    containers: Containers, image: str, image_context: Path, render: Callable[[Answers], Render]
) -> None:
    result = make_budget(image_context, containers, render({}).env_dir, image)

    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result.stdout) == dict.fromkeys(BUDGETS, "ok"), result.stdout
    for line in result.stdout.splitlines()[-4:]:
        record_figure("budget, default render", line.strip())


def test_a_heavy_dependency_is_over_every_budget(
    containers: Containers,
    image: str,
    image_context: Path,
    render: Callable[[Answers], Render],
    tmp_path: Path,
) -> None:
    project = tmp_path / "service"
    shutil.copytree(image_context, project)
    render({}).run("uv", "add", "--no-sync", "--project", str(project), HEAVY_DEPENDENCY)
    main = next(project.glob("src/*/main.py"))
    main.write_text(main.read_text() + "\nimport pandas  # noqa: E402, F401\n")

    result = make_budget(project, containers, render({}).env_dir, "localhost/heavy:test")

    # The size and the import are far over (pandas and numpy, imported by the
    # app): those verdicts hold on any machine. The cold start, a smaller
    # share of a larger figure, is recorded below.
    assert result.returncode != 0, result.stdout
    found = verdicts(result.stdout)
    assert found.keys() == BUDGETS, result.stdout
    assert found["image_added_mb"] == "OVER BUDGET", result.stdout
    assert found["import_ratio"] == "OVER BUDGET", result.stdout
    assert "raise the budget on purpose in budgets.toml" in result.stderr
    for line in result.stdout.splitlines()[-4:]:
        record_figure(f"budget, with {HEAVY_DEPENDENCY}", line.strip())
    containers.run("podman", "rmi", "--force", "localhost/heavy:test", check=False)
