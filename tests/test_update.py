"""A service rendered from the previous release is updated to the current
template with cruft, as its owner would: untouched, and after adding a route
and a setting of their own. The previous release is the latest one in
CHANGELOG.md, found by its tag or, without the tag, by the commit recorded there."""

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import TEMPLATE, Render, dependency_key, record_figure
from .try_it import copy_working_tree

GIT = ["git", "-c", "user.name=Service Owner", "-c", "user.email=owner@example.com"]
CRUFT = [sys.executable, "-m", "cruft"]


@dataclass(frozen=True)
class Release:
    version: str
    commit: str

    @property
    def tag(self) -> str:
        return f"v{self.version}"


class ReleaseNotFound(Exception):
    """The release is not in this clone's history."""


def latest_release(changelog: str) -> Release:
    """The newest released entry of a Keep a Changelog file, with its commit."""
    match = re.search(r"^## \[(\d+\.\d+\.\d+)\][^\n]*\n(.*?)(?=^## |\Z)", changelog, re.M | re.S)
    assert match, "CHANGELOG.md has no released version (## [x.y.z] - date)"
    commit = re.search(r"\bcommit `([0-9a-f]{7,40})`", match.group(2))
    assert commit, f"CHANGELOG.md does not record the commit of {match.group(1)}"
    return Release(match.group(1), commit.group(1))


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def resolve(repo: Path, release: Release) -> str:
    """The full commit of a release: its tag's, else the one CHANGELOG.md records."""
    for ref in (f"refs/tags/{release.tag}", release.commit):
        found = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            cwd=repo, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if found.returncode == 0:
            return found.stdout.strip()
    raise ReleaseNotFound(
        f"The previous release {release.tag} (commit {release.commit}, as CHANGELOG.md records "
        f"it) is not in the history of {repo}, so there is nothing to update from. Fetch it "
        f"with `git fetch origin tag {release.tag}` (a shallow clone also needs "
        "`git fetch --unshallow`), or clone the repository without --depth."
    )


def conflicts(project: Path) -> list[str]:
    """Files cruft could not update cleanly: unmerged after its three-way apply,
    or with a .rej file where it fell back to a plain one."""
    unmerged = {line.split("\t", 1)[1] for line in git(project, "ls-files", "-u").splitlines()}
    rejected = {str(path.relative_to(project)) for path in project.rglob("*.rej")}
    return sorted(unmerged | rejected)


def tree(project: Path) -> dict[str, bytes]:
    """A project's files but its git and cruft state."""
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file() and ".git" not in path.parts and path.name != ".cruft.json"
    }


@dataclass(frozen=True)
class TemplateHistory:
    """A template repository with two commits: the previous release, then the
    current working tree (what the next release would hold)."""

    repo: Path
    previous: str
    current: str


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> TemplateHistory:
    release = latest_release((TEMPLATE / "CHANGELOG.md").read_text())
    try:
        previous = resolve(TEMPLATE, release)
    except ReleaseNotFound as error:
        pytest.fail(str(error))
    repo = tmp_path_factory.mktemp("template-history") / "template"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    archive = subprocess.run(
        ["git", "archive", previous], cwd=TEMPLATE, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive.stdout, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"Release {release.version}")
    git(repo, "rm", "-rq", ".")
    copy_working_tree(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", "Current template")
    return TemplateHistory(repo, git(repo, "rev-parse", "HEAD~1"), git(repo, "rev-parse", "HEAD"))


def create(history: TemplateHistory, commit: str, into: Path) -> Path:
    """`cruft create` at a commit, then the owner's first commit."""
    into.mkdir()
    created = subprocess.run(
        [*CRUFT, "create", str(history.repo), "--checkout", commit, "--no-input",
         "--output-dir", str(into)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    project = into / "my-service"
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Start from the template")
    return project


def test_the_changelog_records_the_commit_of_the_previous_release_tag() -> None:
    release = latest_release((TEMPLATE / "CHANGELOG.md").read_text())
    tagged = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"refs/tags/{release.tag}^{{commit}}"],
        cwd=TEMPLATE, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if tagged.returncode != 0:
        pytest.skip(f"this clone has no tag {release.tag}; the update test uses the commit")
    assert tagged.stdout.strip().startswith(release.commit)


def test_without_its_tag_the_release_is_found_by_its_commit(tmp_path: Path) -> None:
    release = latest_release((TEMPLATE / "CHANGELOG.md").read_text())
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--no-tags", str(TEMPLATE), str(clone)], check=True)
    assert git(clone, "tag", "--list") == ""

    assert resolve(clone, release).startswith(release.commit)


def test_without_the_history_the_failure_says_what_to_fetch(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    git(tmp_path, "commit", "-q", "--allow-empty", "-m", "shallow")
    release = Release("0.1.0", "219966a")

    with pytest.raises(ReleaseNotFound) as error:
        resolve(tmp_path, release)

    assert str(error.value).startswith(
        "The previous release v0.1.0 (commit 219966a, as CHANGELOG.md records it) is not in "
        "the history of"
    )
    assert "git fetch origin tag v0.1.0" in str(error.value)


def test_an_untouched_project_updates_to_a_fresh_render(
    history: TemplateHistory, tmp_path: Path
) -> None:
    project = create(history, history.previous, tmp_path / "old")
    fresh = create(history, history.current, tmp_path / "fresh")

    update = subprocess.run(
        [*CRUFT, "update", "-y"], cwd=project, capture_output=True, text=True, check=False
    )

    assert update.returncode == 0, update.stdout + update.stderr
    found = conflicts(project)
    record_figure("update from the previous release, untouched project", f"{len(found)} conflicts")
    assert found == []
    assert tree(project) == tree(fresh)
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == history.current


GREETINGS = '''"""Greetings: the first route of the service's own."""

from fastapi import APIRouter
from pydantic import BaseModel

from ..dependencies import SettingsDep

router = APIRouter(tags=["greetings"])


class Greeting(BaseModel):
    message: str


@router.get("/greetings/{name}")
async def greet(name: str, settings: SettingsDep) -> Greeting:
    return Greeting(message=f"{settings.greeting}, {name}!")
'''

GREETINGS_TEST = """import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_greets_by_name(client: httpx.AsyncClient) -> None:
    response = await client.get("/greetings/Ada")
    assert response.status_code == 200
    assert response.json() == {"message": "Hello, Ada!"}
"""

REGION_ROW = (
    "| `REGION` | `europe-west3` | the environment's region | deployment | Cloud Run region. |\n"
)
# (file, a line of the previous release's render, what the owner puts in its
# place): a route as the rendered README's "Add a route" says, and a setting,
# documented in the README's table as the render's own test asks.
OWNER_EDITS = [
    ("src/my_service/main.py", "from .api import health", "from .api import greetings, health"),
    (
        "src/my_service/main.py",
        "    app.include_router(health.router)\n",
        "    app.include_router(health.router)\n    app.include_router(greetings.router)\n",
    ),
    (
        "src/my_service/settings.py",
        '    region: str = "europe-west3"\n',
        '    region: str = "europe-west3"\n    greeting: str = "Hello"\n',
    ),
    (
        "README.md",
        REGION_ROW,
        REGION_ROW
        + "| `GREETING` | `Hello` | `Hello` | default | How `/greetings/{name}` greets. |\n",
    ),
]


def add_a_route_and_a_setting(project: Path) -> None:
    for relative, line, replacement in OWNER_EDITS:
        path = project / relative
        text = path.read_text()
        assert text.count(line) == 1, f"{relative} of the previous release lacks {line!r}"
        path.write_text(text.replace(line, replacement))
    (project / "src" / "my_service" / "api" / "greetings.py").write_text(GREETINGS)
    (project / "tests" / "test_greetings.py").write_text(GREETINGS_TEST)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "Greet callers by name")


def test_a_project_with_its_own_route_updates_interactively_and_passes_its_tests(
    history: TemplateHistory, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    project = create(history, history.previous, tmp_path / "old")
    add_a_route_and_a_setting(project)

    # As typed at cruft's prompt: a typo, "v" to view the changes, then "y".
    update = subprocess.run(
        [*CRUFT, "update"], cwd=project, input="x\nv\ny\n", capture_output=True, text=True,
        check=False,
    )  # fmt: skip

    assert update.returncode == 0, update.stdout + update.stderr
    assert "Error: 'x' is not one of 'y', 'n', 's', 'v'." in update.stdout + update.stderr
    assert "Project's cruft has been updated" in update.stdout
    found = conflicts(project)
    record_figure(
        "update from the previous release, project with a route", f"{len(found)} conflicts"
    )
    # 0.1.0 had routes included in main.py; since 0.2.0 they are listed in
    # api/__init__.py, so main.py, which the update rewires, is the one file
    # where the owner's edit meets the template's. Anywhere else is a bug.
    assert set(found) <= {"src/my_service/main.py"}, f"conflicts in {found}:\n{update.stderr}"
    if found:
        # Resolved as its owner would: the new main.py, and the route where
        # the new README says routes go.
        git(project, "checkout", "--theirs", "--", *found)
        routers = project / "src" / "my_service" / "api" / "__init__.py"
        text = routers.read_text()
        text = text.replace("from . import health,", "from . import greetings, health,")
        text = text.replace("    health.router,\n", "    health.router,\n    greetings.router,\n")
        routers.write_text(text)
        git(project, "add", "-A")
    assert "greetings" in (project / "src" / "my_service" / "api" / "__init__.py").read_text() or (
        "greetings.router" in (project / "src" / "my_service" / "main.py").read_text()
    )
    assert json.loads((project / ".cruft.json").read_text())["commit"] == history.current

    rendered = Render(project, {}, tmp_path_factory.mktemp("update-venv") / dependency_key(project))
    tests = rendered.run("make", "test")
    assert " passed" in tests.stdout
    rendered.run("make", "lint")


def test_cruft_diff_prints_the_diff_alone(history: TemplateHistory, tmp_path: Path) -> None:
    project = create(history, history.current, tmp_path / "current")
    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\nA note of the owner's.\n")

    diff = subprocess.run(
        [*CRUFT, "diff"], cwd=project, capture_output=True, text=True, check=False
    )

    assert diff.returncode == 0, diff.stderr
    assert diff.stderr == ""
    assert diff.stdout.startswith("diff --git upstream-template-old/README.md"), diff.stdout
    assert diff.stdout.rstrip("\n").endswith("-A note of the owner's.")
