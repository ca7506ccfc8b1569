"""The generation hooks: bad answers are refused with a clear message and
nothing is written; a broken render is caught, naming the file."""

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.main import cookiecutter

from .conftest import TEMPLATE, Answers, Render, record_figure
from .hooks import post_gen, pre_gen


def run_cookiecutter(output: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The cookiecutter command line, as a user runs it (with a private config,
    so replay files stay out of the home directory)."""
    config = output.parent / "cookiecutter-config.yaml"
    config.write_text(f"replay_dir: {output.parent / 'replay'}\n")
    command = [sys.executable, "-m", "cookiecutter", "--no-input", "--config-file", str(config)]
    return subprocess.run(
        [*command, str(TEMPLATE), "-o", str(output), *args],
        capture_output=True,
        text=True,
        check=False,
    )


# (answers, a part of the message that must explain the refusal)
BAD_ANSWERS: list[tuple[dict[str, str], str]] = [
    ({"project_slug": "My_Service"}, "project_slug 'My_Service' is not allowed"),
    ({"project_slug": "service-"}, "not ending with a hyphen"),
    ({"project_slug": "a--b"}, "single hyphens"),
    ({"package_name": "2fast"}, "package_name '2fast' is not a Python identifier"),
    ({"package_name": "MyService"}, "package_name 'MyService' is not lowercase"),
    ({"package_name": "class"}, "package_name 'class' is a Python keyword"),
    ({"package_name": "logging"}, "shadows the standard-library module 'logging'"),
    ({"package_name": "test"}, "shadows the module 'test' of the toolchain"),
    ({"package_name": "fastapi"}, "shadows the module 'fastapi' of fastapi, which the service"),
    ({"package_name": "google"}, "shadows the module 'google' of google-api-core, google-auth,"),
    ({"package_name": "orjson"}, "shadows the module 'orjson' of orjson, which the service"),
    ({"package_name": "google_crc32c"}, "shadows the module 'google_crc32c' of google-crc32c"),
    ({"package_name": "click"}, "shadows the module 'click' of click, which the service"),
    ({"package_name": "dotenv"}, "shadows the module 'dotenv' of python-dotenv, which"),
    ({"package_name": "sitecustomize"}, "shadows the module 'sitecustomize' of the toolchain"),
    ({"package_name": "tests"}, "shadows the module 'tests' of the toolchain"),
    ({"service_name": "Billing"}, "service_name 'Billing' is not a valid Cloud Run service name"),
    ({"service_name": "9lives"}, "starting with a letter"),
    ({"service_name": "s" * 42}, "up to 41 lowercase letters"),
    ({"gcp_project_id": "short"}, "gcp_project_id 'short' is not a Google Cloud project ID"),
    ({"gcp_project_id": "Upper-Case-Project"}, "6 to 30 lowercase letters"),
    ({"gcp_project_id": "trailing-hyphen-"}, "not ending with a hyphen"),
    ({"gcp_region": "europe-west7"}, "gcp_region 'europe-west7' is not a region where Cloud Run"),
    ({"gcp_region": "mars-north1"}, "https://cloud.google.com/run/docs/locations"),
    ({"min_instances": "-1"}, "min_instances '-1' is not a whole number of 0 or more"),
    ({"min_instances": "two"}, "min_instances 'two' is not a whole number"),
    ({"max_instances": "0"}, "max_instances '0' is not a whole number of 1 or more"),
    ({"gcp_project_id": "my-google-project"}, "contains a word Google does not allow"),
    ({"package_name": "dev"}, "shadows the module 'dev' of the toolchain"),
    ({"package_name": "local_google"}, "shadows the module 'local_google' of the toolchain"),
    ({"max_instances": "1.5"}, "max_instances '1.5' is not a whole number"),
    ({"min_instances": "5", "max_instances": "2"}, "min_instances 5 is greater than max"),
    ({"description": 'It says "hi"'}, "description 'It says \"hi\"' contains '\"'"),
    # cookiecutter renders answers itself; this one renders to a literal "{{ x".
    ({"description": "{{ '{{' }} x"}, "contains '{{': plain text only"),
    ({"author": "Back\\slash"}, "author 'Back\\\\slash' contains '\\\\'"),
    ({"description": "Pay \u202etxt.exe"}, "contains U+202E RIGHT-TO-LEFT OVERRIDE (Unicode"),
    ({"project_name": "Two\u2028lines"}, "project_name 'Two\\u2028lines' contains U+2028"),
    ({"author": "Next\x85line"}, "author 'Next\\x85line' contains U+0085 (Unicode category Cc)"),
    ({"project_name": "x" * 81}, "project_name is 81 characters long"),
]


@pytest.mark.parametrize(
    ("answers", "message"), BAD_ANSWERS, ids=[str(answers) for answers, _ in BAD_ANSWERS]
)
def test_bad_answer_is_refused_and_nothing_is_written(
    answers: dict[str, str], message: str, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    output.mkdir()

    result = run_cookiecutter(output, *(f"{k}={v}" for k, v in answers.items()))

    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Cannot render the service" in result.stderr
    assert list(output.iterdir()) == []


def test_no_copy_of_the_answers_is_left_in_the_temporary_directory(tmp_path: Path) -> None:
    """cookiecutter runs each hook from a rendered copy it does not delete."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    output = tmp_path / "out"
    output.mkdir()
    config = tmp_path / "cookiecutter-config.yaml"
    config.write_text(f"replay_dir: {tmp_path / 'replay'}\n")
    for answers in ([], ["gcp_region=nowhere-1"]):
        subprocess.run(
            [sys.executable, "-m", "cookiecutter", "--no-input", "-f", "--config-file",
             str(config), str(TEMPLATE), "-o", str(output), *answers],
            capture_output=True, check=False, env={**os.environ, "TMPDIR": str(temporary)},
        )  # fmt: skip
    assert (output / "my-service" / "pyproject.toml").exists()
    assert list(temporary.iterdir()) == []


def test_no_input_answers_are_rendered_by_cookiecutter_before_the_hook(tmp_path: Path) -> None:
    """As the README warns: an answer on the command line is a Jinja template,
    and the hook only sees what it rendered to."""
    result = run_cookiecutter(tmp_path, "description={{ 6 * 7 }}")

    assert result.returncode == 0, result.stderr
    pyproject = tomllib.loads((tmp_path / "my-service" / "pyproject.toml").read_text())
    assert pyproject["project"]["description"] == "42"


def test_a_template_marker_typed_at_a_prompt_is_refused(tmp_path: Path) -> None:
    questions = [q for q in json.loads((TEMPLATE / "cookiecutter.json").read_text()) if q[0] != "_"]
    answers = ["" for _ in questions]  # Enter: the default
    answers[questions.index("description")] = "{{ 6 * 7 }}"
    config = tmp_path / "cookiecutter-config.yaml"
    config.write_text(f"replay_dir: {tmp_path / 'replay'}\n")
    output = tmp_path / "out"
    output.mkdir()

    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--config-file", str(config), str(TEMPLATE),
         "-o", str(output)],
        input="\n".join(answers) + "\n", capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert result.returncode != 0
    assert "description '{{ 6 * 7 }}' contains '{{': plain text only" in result.stderr
    assert list(output.iterdir()) == []


def test_a_choice_outside_the_list_is_refused(tmp_path: Path) -> None:
    result = run_cookiecutter(tmp_path, "python_version=3.9")
    assert result.returncode != 0
    assert list(tmp_path.iterdir()) == []


def test_every_problem_is_reported_at_once() -> None:
    context = {**default_context(), "package_name": "json", "gcp_region": "nowhere"}
    found = pre_gen.problems(context)
    assert len(found) == 2
    assert found[0].startswith("package_name 'json'")
    assert found[1].startswith("gcp_region 'nowhere'")


def test_switches_must_be_booleans() -> None:
    problems = pre_gen.problems({**default_context(), "use_cloud_tasks": "maybe"})
    assert problems == ["use_cloud_tasks 'maybe' is not yes or no (true or false)"]


def default_context() -> dict[str, Any]:
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    context = generate_context(context_file=str(TEMPLATE / "cookiecutter.json"))
    return dict(prompt_for_config(context, no_input=True))


def test_the_defaults_and_the_placeholder_project_are_accepted() -> None:
    context = default_context()
    assert context["gcp_project_id"] == pre_gen.PLACEHOLDER_PROJECT_ID
    assert pre_gen.problems(context) == []


# (a character, its Unicode category): each breaks a line or hides in it.
INVISIBLE_CHARACTERS = [
    ("\x00", "Cc"),
    ("\t", "Cc"),
    ("\x1b", "Cc"),
    ("\x7f", "Cc"),
    ("\x85", "Cc"),
    ("\u200b", "Cf"),
    ("\u202e", "Cf"),
    ("\u2066", "Cf"),
    ("\ufeff", "Cf"),
    ("\u2028", "Zl"),
    ("\u2029", "Zp"),
]


@pytest.mark.parametrize(
    ("character", "category"),
    INVISIBLE_CHARACTERS,
    ids=[f"U+{ord(c):04X}" for c, _ in INVISIBLE_CHARACTERS],
)
@pytest.mark.parametrize("answer", ["project_name", "description", "author"])
def test_invisible_characters_are_refused_in_free_text(
    answer: str, character: str, category: str
) -> None:
    value = f"Billing{character}API"

    problems = pre_gen.problems({**default_context(), answer: value})

    # repr() shows the character escaped, so the message itself stays on one line.
    assert problems == [
        f"{answer} {value!r} contains U+{ord(character):04X}"
        f"{' ' + unicodedata.name(character) if category != 'Cc' else ''} "
        f"(Unicode category {category}): plain text only, without control, format or "
        "line-separator characters"
    ]


@pytest.mark.parametrize(
    "text", ["Café Zürich", "Платежи", "請求サービス", "Billing ✓", "A\u00a0B"]
)
def test_plain_text_in_any_script_is_accepted(text: str) -> None:
    assert pre_gen.check_text("description", text) is None


@pytest.mark.parametrize("region", sorted(["europe-west3", "us-central1", "asia-northeast1"]))
def test_common_regions_are_known(region: str) -> None:
    assert pre_gen.check_gcp_region(region) is None


def test_overwrite_with_a_bad_answer_keeps_what_the_user_had(tmp_path: Path) -> None:
    existing = tmp_path / "my-service"
    (existing / "src").mkdir(parents=True)
    (existing / "src" / "handwritten.py").write_text("KEEP = True\n")
    (existing / "README.md").write_text("my notes\n")
    before = {p: p.read_bytes() for p in existing.rglob("*") if p.is_file()}

    result = run_cookiecutter(tmp_path, "--overwrite-if-exists", "gcp_region=nowhere-1")

    assert result.returncode != 0
    assert "gcp_region 'nowhere-1'" in result.stderr
    after = {p: p.read_bytes() for p in existing.rglob("*") if p.is_file()}
    assert after == before


def test_replay_renders_the_same_project(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"replay_dir: {tmp_path / 'replay'}\ncookiecutters_dir: {tmp_path / 'cc'}\n")
    first = Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            output_dir=str(tmp_path / "first"),
            config_file=str(config),
            extra_context={"project_name": "Replay Me", "use_cloud_tasks": False},
        )
    )
    again = Path(
        cookiecutter(
            str(TEMPLATE), replay=True, output_dir=str(tmp_path / "again"), config_file=str(config)
        )
    )
    assert again.name == first.name == "replay-me"
    first_files = {p.relative_to(first): p.read_bytes() for p in first.rglob("*") if p.is_file()}
    again_files = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert again_files == first_files
    assert not (again / "src" / "replay_me" / "tasks").exists()


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as it is on disk, committed to a git repository of its own
    (cruft records the commit it rendered)."""
    repo = tmp_path_factory.mktemp("template-repo") / "template"
    ignore = shutil.ignore_patterns(".git", ".venv", ".ci", "__pycache__", "*_cache", "results")
    shutil.copytree(TEMPLATE, repo, ignore=ignore)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "template"], cwd=repo, check=True)
    return repo


def test_cruft_create_and_check(template_repo: Path, tmp_path: Path) -> None:
    cruft = [sys.executable, "-m", "cruft"]
    create = subprocess.run(
        [*cruft, "create", str(template_repo), "--no-input", "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert create.returncode == 0, create.stdout + create.stderr
    project = tmp_path / "my-service"
    state = json.loads((project / ".cruft.json").read_text())
    assert state["template"] == str(template_repo)
    assert state["context"]["cookiecutter"]["package_name"] == "my_service"
    check = subprocess.run(
        [*cruft, "check"], cwd=project, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "up to date" in check.stdout


# Post-generation validation: each way a render can break is caught by name.


@pytest.fixture
def rendered_copy(render: Callable[[Answers], Render], tmp_path: Path) -> Path:
    copy = tmp_path / "service"
    shutil.copytree(render({}).path, copy, ignore=shutil.ignore_patterns(".venv", "*_cache"))
    return copy


def context_for(project: Path) -> dict[str, Any]:
    return {**default_context(), "package_name": "my_service"}


def test_a_good_render_validates(rendered_copy: Path) -> None:
    started = time.perf_counter()
    errors = post_gen.validate(rendered_copy, context_for(rendered_copy))
    record_figure("post-generation validation", f"{time.perf_counter() - started:.2f} s")
    assert errors == []


CORRUPTIONS: list[tuple[str, str, str | None, str]] = [
    # (file, what to append, or None to delete it, expected message)
    (
        "src/my_service/main.py",
        "\nx = '{{ cookiecutter.package_name }}'\n",
        None,
        "src/my_service/main.py:",
    ),
    ("README.md", "\n{% if oops %}\n", None, "README.md:"),
    ("src/my_service/logs.py", "\ndef broken(:\n", None, "src/my_service/logs.py: does not parse"),
    ("pyproject.toml", "\n[project\n", None, "pyproject.toml: does not parse"),
    ("deploy.yaml", "key: [unclosed\n", None, "deploy.yaml: does not parse"),
    ("settings.json", "{not json", None, "settings.json: does not parse"),
    ("src/my_service/secrets.py", "", "delete", "src/my_service/secrets.py: missing"),
    ("dev/local_google/cloud_tasks.py", "", "delete", "dev/local_google/cloud_tasks.py: missing"),
]


@pytest.mark.parametrize(
    ("relative", "addition", "action", "message"),
    CORRUPTIONS,
    ids=[f"{c[0]}:{'delete' if c[2] else 'corrupt'}" for c in CORRUPTIONS],
)
def test_a_broken_render_is_caught_naming_the_file(
    rendered_copy: Path, relative: str, addition: str, action: str | None, message: str
) -> None:
    target = rendered_copy / relative
    if action == "delete":
        target.unlink()
    else:
        with target.open("a") as file:
            file.write(addition)

    errors = post_gen.validate(rendered_copy, context_for(rendered_copy))

    assert any(message in error for error in errors), errors


def test_a_lock_out_of_step_with_pyproject_is_caught(rendered_copy: Path) -> None:
    pyproject = rendered_copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"fastapi>=', '"rich>=14", "fastapi>='))

    errors = post_gen.validate(rendered_copy, context_for(rendered_copy))

    assert errors == [
        "uv.lock: its dependencies differ from pyproject.toml's "
        "(only in pyproject.toml: ['rich'], only in uv.lock: [])"
    ]


def test_a_changed_dependency_group_is_caught(rendered_copy: Path) -> None:
    pyproject = rendered_copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"pytest>=9.2,<10"', '"pytest>=8"'))

    errors = post_gen.validate(rendered_copy, context_for(rendered_copy))

    assert errors == ["uv.lock: dependency group 'dev' differs from pyproject.toml's"]


def test_the_hook_fails_loudly_on_a_broken_render(
    rendered_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (rendered_copy / "pyproject.toml").write_text("[broken\n")

    assert post_gen.main(rendered_copy, context_for(rendered_copy)) == 1
    assert "pyproject.toml" in capsys.readouterr().err


def test_disabled_features_are_removed_from_one_manifest(tmp_path: Path) -> None:
    context = {
        "package_name": "svc",
        "use_secret_manager": False,
        "use_cloud_tasks": True,
        "use_tracing": True,
        "use_terraform": True,
    }
    removed = post_gen.paths_to_remove(context)
    assert "src/svc/secrets.py" in removed
    assert "tests/secrets" in removed
    assert "deploy/terraform/modules/service/secrets.tf" in removed
    assert "dev/local_google/grpc_server.py" not in removed, "Cloud Tasks needs the gRPC server"
    assert not any("tasks" in path for path in removed)
    without_terraform = post_gen.paths_to_remove({**context, "use_terraform": False})
    assert "deploy/terraform" in without_terraform
    assert "deploy/terraform/modules/service/tasks.tf" in without_terraform, "inside a removed path"


def test_only_the_files_the_template_rendered_are_checked(rendered_copy: Path) -> None:
    context = {**context_for(rendered_copy), "_repo_dir": str(TEMPLATE)}
    (rendered_copy / "src" / "my_service" / "greeting.py").write_text("GREETING = f'{{hi}}'\n")
    (rendered_copy / "notes.json").write_text("{not json")

    files = post_gen.rendered_files(rendered_copy, context)

    relative = {str(path.relative_to(rendered_copy)) for path in files}
    assert {"pyproject.toml", "uv.lock", "src/my_service/main.py", "Makefile"} <= relative
    assert "src/my_service/greeting.py" not in relative
    assert "notes.json" not in relative
    assert post_gen.validate(rendered_copy, context) == []


def test_a_broken_rendered_file_is_caught_among_the_users_own(rendered_copy: Path) -> None:
    context = {**context_for(rendered_copy), "_repo_dir": str(TEMPLATE)}
    (rendered_copy / "notes.json").write_text("{not json")
    with (rendered_copy / "src" / "my_service" / "main.py").open("a") as file:
        file.write("\nx = '{{ cookiecutter.package_name }}'\n")

    errors = post_gen.validate(rendered_copy, context)

    assert len(errors) == 1
    assert errors[0].startswith("src/my_service/main.py:")


def test_without_the_template_version_control_environments_and_caches_are_skipped(
    rendered_copy: Path,
) -> None:
    """cruft renders into a new directory, without naming the template."""
    broken = "x = '{{ cookiecutter.package_name }}'\n"
    for directory, marker in [
        (".git", None),
        (".venv", "pyvenv.cfg"),
        ("env-of-my-own", "pyvenv.cfg"),
        (".mypy_cache", "CACHEDIR.TAG"),
        ("src/my_service/__pycache__", None),
    ]:
        (rendered_copy / directory / "lib").mkdir(parents=True)
        (rendered_copy / directory / "lib" / "template.py").write_text(broken)
        if marker:
            (rendered_copy / directory / marker).write_text("")

    assert post_gen.validate(rendered_copy, context_for(rendered_copy)) == []
    (rendered_copy / "lib").mkdir()
    (rendered_copy / "lib" / "template.py").write_text(broken)
    assert post_gen.validate(rendered_copy, context_for(rendered_copy)) == [
        "lib/template.py:1: '{{' survived rendering"
    ]


def test_rendering_again_over_a_project_in_use_succeeds(tmp_path: Path) -> None:
    """The README's first command, run again: the second render finds a virtual
    environment, git, caches and the user's own code in place, and leaves them so."""
    assert run_cookiecutter(tmp_path).returncode == 0
    project = tmp_path / "my-service"
    env = {
        k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    }
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "sync", "--locked", "--quiet"], cwd=project, env=env, check=True)
    subprocess.run(
        [*uv, "run", "--locked", "ruff", "check", "--quiet", "."], cwd=project, env=env, check=True
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run(
        [*git, "commit", "-q", "--allow-empty", "-m", "{{ start }}"], cwd=project, check=True
    )
    own = project / "src" / "my_service" / "greeting.py"
    own.write_text("def greet(name: str) -> str:\n    return f'{{{name}}}'\n")
    assert any("{{" in p.read_text(errors="replace") for p in (project / ".venv").rglob("*.py"))
    venv_files = sorted((project / ".venv").rglob("*"))

    again = run_cookiecutter(tmp_path, "--overwrite-if-exists")

    assert again.returncode == 0, again.stderr
    assert "Rendered My Service" in again.stdout
    assert own.read_text() == "def greet(name: str) -> str:\n    return f'{{{name}}}'\n"
    assert sorted((project / ".venv").rglob("*")) == venv_files
    assert (project / ".ruff_cache" / "CACHEDIR.TAG").exists()


def test_next_steps_are_announced_to_cookiecutter_users_only() -> None:
    assert post_gen.announces_next_steps({**default_context(), "_output_dir": "/somewhere"})
    assert not post_gen.announces_next_steps(
        {**default_context(), "_template": "https://example.com/t.git", "_commit": "0" * 40}
    )


def test_next_steps_are_printed(rendered_copy: Path) -> None:
    steps = post_gen.next_steps(rendered_copy, context_for(rendered_copy))
    for step in ("cd service", "make dev", "make test", "Deploy"):
        assert step in steps


def test_the_choices_of_python_are_the_hooks() -> None:
    """cookiecutter.json offers exactly the versions the hook accepts (and the
    tests render: tests/combinations.py reads the hook's list)."""
    choices = json.loads((TEMPLATE / "cookiecutter.json").read_text())["python_version"]
    assert tuple(choices) == pre_gen.PYTHON_VERSIONS
