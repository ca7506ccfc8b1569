"""Post-generation hook: finish the rendered service.

Kept as small functions so the template's tests can import and exercise them;
cookiecutter runs this file with the rendered project as working directory.
"""

import json
import os
import re
import shutil
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import yaml

# What each optional feature owns, as paths relative to the project root
# (`{package}` stands for the package name). A path is kept when at least one
# of its switches is on, and it lies in no removed path; otherwise it is
# removed: features switch by whole files.
FEATURE_MANIFEST: Mapping[str, frozenset[str]] = {
    "dev/local_google/grpc_server.py": frozenset({"use_secret_manager", "use_cloud_tasks"}),
    "src/{package}/secrets.py": frozenset({"use_secret_manager"}),
    "src/{package}/secret_manager.py": frozenset({"use_secret_manager"}),
    "src/{package}/secrets_prefetch.py": frozenset({"use_secret_manager"}),
    "dev/local_google/secret_manager.py": frozenset({"use_secret_manager"}),
    "tests/secrets": frozenset({"use_secret_manager"}),
    "src/{package}/tasks": frozenset({"use_cloud_tasks"}),
    "src/{package}/api/signups.py": frozenset({"use_cloud_tasks"}),
    "dev/local_google/cloud_tasks.py": frozenset({"use_cloud_tasks"}),
    "tests/tasks": frozenset({"use_cloud_tasks"}),
    "deploy/terraform": frozenset({"use_terraform"}),
    "deploy/terraform/modules/service/secrets.tf": frozenset({"use_secret_manager"}),
    "deploy/terraform/secrets.auto.tfvars": frozenset({"use_secret_manager"}),
    "tests/secrets/test_terraform.py": frozenset({"use_terraform"}),
    "deploy/terraform/modules/service/tasks.tf": frozenset({"use_cloud_tasks"}),
    "src/{package}/tracing.py": frozenset({"use_tracing"}),
    "dev/local_google/cloud_trace.py": frozenset({"use_tracing"}),
    "tests/test_tracing.py": frozenset({"use_tracing"}),
    "tests/tasks/test_tracing.py": frozenset({"use_tracing"}),
    "deploy/terraform/modules/service/tracing.tf": frozenset({"use_tracing"}),
}

_PACKAGE_BLOCK_SPLIT = re.compile(r"\n\n(?=\[\[package\]\]\n)")
_NAME = re.compile(r'^name = "([^"]+)"', re.MULTILINE)


def wanted(path: str, context: Mapping[str, Any]) -> bool:
    """Whether a manifest path belongs in this render."""
    own = any(context.get(switch) is True for switch in FEATURE_MANIFEST[path])
    parents = [p for p in FEATURE_MANIFEST if p != path and path.startswith(p + "/")]
    return own and all(wanted(parent, context) for parent in parents)


def paths_to_remove(context: Mapping[str, Any]) -> list[str]:
    """The manifest paths this render does not want."""
    package = str(context["package_name"])
    return sorted(
        path.format(package=package) for path in FEATURE_MANIFEST if not wanted(path, context)
    )


def remove_disabled_features(project: Path, context: Mapping[str, Any]) -> None:
    for relative in paths_to_remove(context):
        target = project / relative
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def lock_blocks(lock_text: str) -> list[str]:
    """A `uv.lock` as its header, then one block per `[[package]]`."""
    return _PACKAGE_BLOCK_SPLIT.split(lock_text.rstrip("\n"))


def sort_lock_packages(lock_text: str) -> str:
    """Put the service's own package where `uv lock` would: sorted by name.

    The template keeps it first because its name is only known at render time.
    """
    header, *blocks = lock_blocks(lock_text)

    def name(block: str) -> str:
        match = _NAME.search(block)
        return match.group(1) if match else ""

    # sorted() is stable, so several versions of one package keep uv's order.
    return "\n\n".join([header, *sorted(blocks, key=name)]) + "\n"


class RenderError(Exception):
    """The rendered project is broken; the message names the file."""


_TEXT_SUFFIXES = frozenset(
    {".py", ".toml", ".lock", ".md", ".yaml", ".yml", ".json", ".cfg", ".txt", ".tf", ".ini"}
)
_TEXT_NAMES = frozenset({"Makefile", "Dockerfile", ".dockerignore", ".gitignore", ".env.example"})
# Spelled in halves: cookiecutter renders this file and must not see a tag here.
_MARKERS = ("{" + "{", "{" + "%", "cookiecutter.")
TEMPLATE_DIRECTORY = "{" + "{cookiecutter.project_slug}" + "}"


def rendered_files(project: Path, context: Mapping[str, Any]) -> list[Path]:
    """The files this render wrote (and the manifest kept), and nothing else.

    Rendering over an existing project (`--overwrite-if-exists`, as "Try it"
    does when run again) leaves its virtual environment, caches, `.git` and the
    user's own files in place: none of them is the template's to check. The
    command line and API of cookiecutter name the template in the answers
    (`_repo_dir`), so the render's files are the template's, with their names
    rendered. cruft renders without that name, but into a new temporary
    directory: there every file is the render's, as long as version control,
    virtual environments and caches are left out.
    """
    repo = context.get("_repo_dir")
    if not repo or not (Path(str(repo)) / TEMPLATE_DIRECTORY).is_dir():
        return sorted(own_files(project))
    template = Path(str(repo)) / TEMPLATE_DIRECTORY
    names = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701
    files = []
    for source in sorted(template.rglob("*")):
        if source.is_file():
            relative = names.from_string(str(source.relative_to(template)))
            files.append(project / relative.render(cookiecutter=context))
    return [path for path in files if path.is_file()]


def own_files(project: Path) -> Iterator[Path]:
    """Every file under the project but version control, virtual environments
    and caches (`__pycache__` and the directories tagged as caches, as ruff,
    mypy and pytest tag theirs: https://bford.info/cachedir/)."""
    for root, directories, files in os.walk(project):
        here = Path(root)
        directories[:] = [
            name
            for name in directories
            if name not in {".git", "__pycache__"}
            and not (here / name / "pyvenv.cfg").exists()
            and not (here / name / "CACHEDIR.TAG").exists()
        ]
        yield from (here / name for name in files)


def text_files(files: Sequence[Path]) -> Iterator[Path]:
    for path in files:
        if path.suffix in _TEXT_SUFFIXES or path.name in _TEXT_NAMES:
            yield path


def check_no_template_left(project: Path, files: Sequence[Path]) -> list[str]:
    errors = []
    for path in files:
        relative = path.relative_to(project)
        if any(marker in str(relative) for marker in _MARKERS[:2]):
            errors.append(f"{relative}: unrendered template tag in the file name")
    for path in text_files(files):
        # A dollar before the braces is a GitHub Actions expression, not a template tag.
        text = path.read_text(errors="replace").replace("$" + "{" + "{", "$(")
        for marker in _MARKERS:
            if marker in text:
                line = text[: text.index(marker)].count("\n") + 1
                errors.append(f"{path.relative_to(project)}:{line}: {marker!r} survived rendering")
                break
    return errors


def check_files_parse(project: Path, files: Sequence[Path]) -> list[str]:
    """Python compiles; TOML, YAML and JSON parse."""
    errors = []
    for path in text_files(files):
        relative = path.relative_to(project)
        text = path.read_text(errors="replace")
        try:
            if path.suffix == ".py":
                compile(text, str(relative), "exec", dont_inherit=True)
            elif path.suffix in {".toml", ".lock"}:
                tomllib.loads(text)
            elif path.suffix in {".yaml", ".yml"}:
                list(yaml.safe_load_all(text))
            elif path.suffix == ".json":
                json.loads(text)
        except (SyntaxError, ValueError, yaml.YAMLError) as error:
            errors.append(f"{relative}: does not parse: {str(error).splitlines()[0]}")
    return errors


def _normalized_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


Requirement = tuple[str, frozenset[str], tuple[str, ...], str]


def _requirement(text: str) -> Requirement:
    """`name[extras]specifier; marker` as uv records it in its lock file."""
    spec, _, marker = text.partition(";")
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*(.*)", spec)
    if not match:
        raise ValueError(f"cannot read requirement {text!r}")
    name, extras, specifier = match.groups()
    return (
        _normalized_name(name),
        frozenset(e.strip() for e in (extras or "").split(",") if e.strip()),
        tuple(sorted(p.replace(" ", "") for p in specifier.split(",") if p.strip())),
        marker.strip().replace('"', "'"),
    )


def _locked_requirement(entry: Mapping[str, Any]) -> Requirement:
    specifier = str(entry.get("specifier", ""))
    return (
        _normalized_name(str(entry["name"])),
        frozenset(entry.get("extras", [])),
        tuple(sorted(p.replace(" ", "") for p in specifier.split(",") if p.strip())),
        str(entry.get("marker", "")).replace('"', "'"),
    )


def check_lock_matches_pyproject(project: Path) -> list[str]:
    """What `uv sync --locked` would check first, without the network: the lock
    records exactly the dependencies and groups that pyproject.toml declares."""
    try:
        pyproject = tomllib.loads((project / "pyproject.toml").read_text())
        lock = tomllib.loads((project / "uv.lock").read_text())
    except (OSError, ValueError) as error:
        return [f"pyproject.toml or uv.lock: cannot be read: {error}"]
    name = _normalized_name(pyproject["project"]["name"])
    roots = [p for p in lock.get("package", []) if p.get("name") == name]
    if len(roots) != 1:
        return [f"uv.lock: has no entry for the project {name!r}"]
    metadata = roots[0].get("metadata", {})
    declared = {_requirement(r) for r in pyproject["project"].get("dependencies", [])}
    locked = {_locked_requirement(r) for r in metadata.get("requires-dist", [])}
    errors = []
    if declared != locked:
        errors.append(
            "uv.lock: its dependencies differ from pyproject.toml's "
            f"(only in pyproject.toml: {sorted(d[0] for d in declared - locked)}, "
            f"only in uv.lock: {sorted(d[0] for d in locked - declared)})"
        )
    groups = pyproject.get("dependency-groups", {})
    locked_groups = metadata.get("requires-dev", {})
    for group in sorted(set(groups) | set(locked_groups)):
        wanted = {_requirement(r) for r in groups.get(group, [])}
        have = {_locked_requirement(r) for r in locked_groups.get(group, [])}
        if wanted != have:
            errors.append(f"uv.lock: dependency group {group!r} differs from pyproject.toml's")
    if lock.get("requires-python") != pyproject["project"].get("requires-python"):
        errors.append("uv.lock: requires-python differs from pyproject.toml's")
    return errors


def check_feature_files(project: Path, context: Mapping[str, Any]) -> list[str]:
    """Every path an enabled feature owns is there."""
    package = str(context["package_name"])
    return [
        f"{path.format(package=package)}: missing, but {' or '.join(sorted(switches))} is on"
        for path, switches in FEATURE_MANIFEST.items()
        if wanted(path, context) and not (project / path.format(package=package)).exists()
    ]


def validate(project: Path, context: Mapping[str, Any]) -> list[str]:
    files = rendered_files(project, context)
    return [
        *check_no_template_left(project, files),
        *check_files_parse(project, files),
        *check_lock_matches_pyproject(project),
        *check_feature_files(project, context),
    ]


def next_steps(project: Path, context: Mapping[str, Any]) -> str:
    return (
        f"\nRendered {context['project_name']} in {project}.\n"
        f"  cd {project.name}\n"
        "  make dev      # run it locally on http://127.0.0.1:8080 (no Google Cloud account)\n"
        "  make test     # its tests; make lint for ruff and mypy --strict\n"
        "  git init && git add -A && git commit -m 'Start from the template'\n"
        "Deploying: see the Deploy section of README.md.\n"
    )


def main(project: Path, context: Mapping[str, Any]) -> int:
    remove_disabled_features(project, context)
    lock = project / "uv.lock"
    lock.write_text(sort_lock_packages(lock.read_text()))
    if errors := validate(project, context):
        print("The rendered project is broken (a template bug, please report it):", file=sys.stderr)
        for error in errors:
            print(f"  - {error}", file=sys.stderr)
        return 1
    if announces_next_steps(context):
        print(next_steps(project, context))
    return 0


def announces_next_steps(context: Mapping[str, Any]) -> bool:
    """Whether the user is watching a new project appear.

    cookiecutter's command line and API name the output directory in the answers
    (`_output_dir`). cruft renders without it, and does so behind every
    `cruft diff` and `cruft update` as well, where next steps would only clutter
    the diff it prints.
    """
    return bool(context.get("_output_dir"))


if __name__ == "__main__":
    # cookiecutter renders this file, answers included, into a temporary file
    # that it does not delete: remove it first. The answers arrive as JSON.
    Path(__file__).unlink(missing_ok=True)
    sys.exit(main(Path.cwd(), json.loads(r"""{{ cookiecutter | jsonify }}""")))
