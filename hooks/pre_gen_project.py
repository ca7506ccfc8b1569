"""Pre-generation hook: refuse answers that would render a broken service.

Every answer is checked by a small function that returns the problem in one
sentence (naming the answer, showing the value, saying what is allowed), or
None. All problems are reported together, and the hook exits non-zero before
cookiecutter writes a file; cookiecutter then removes the project directory it
created (a directory that existed before, with `--overwrite-if-exists`, is
left as it was).
"""

import json
import keyword
import re
import sys
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# Regions where Cloud Run services can run
# (https://cloud.google.com/run/docs/locations). Keep this the only list.
CLOUD_RUN_REGIONS = frozenset(
    {
        "africa-south1",
        "asia-east1",
        "asia-east2",
        "asia-northeast1",
        "asia-northeast2",
        "asia-northeast3",
        "asia-south1",
        "asia-south2",
        "asia-southeast1",
        "asia-southeast2",
        "australia-southeast1",
        "australia-southeast2",
        "europe-central2",
        "europe-north1",
        "europe-north2",
        "europe-southwest1",
        "europe-west1",
        "europe-west2",
        "europe-west3",
        "europe-west4",
        "europe-west6",
        "europe-west8",
        "europe-west9",
        "europe-west10",
        "europe-west12",
        "me-central1",
        "me-central2",
        "me-west1",
        "northamerica-northeast1",
        "northamerica-northeast2",
        "northamerica-south1",
        "southamerica-east1",
        "southamerica-west1",
        "us-central1",
        "us-east1",
        "us-east4",
        "us-east5",
        "us-south1",
        "us-west1",
        "us-west2",
        "us-west3",
        "us-west4",
    }
)

# The top-level modules that each package in the rendered uv.lock installs (every
# combination of switches), read from its locked wheel by `make relock`
# (scripts/relock.py); tests/test_relock.py checks that it names exactly the
# lock's packages. A package of the service with one of these names would shadow it.
LOCKED_MODULES: Mapping[str, tuple[str, ...]] = {
    "annotated-doc==0.0.7": ("annotated_doc",),
    "annotated-types==0.8.0": ("annotated_types",),
    "anyio==4.16.0": ("anyio",),
    "ast-serialize==0.13.1": ("ast_serialize",),
    "certifi==2026.10.19.post1": ("certifi",),
    "cffi==2.1.1": ("_cffi_backend", "cffi"),
    "charset-normalizer==3.5.3": ("charset_normalizer",),
    "click==8.5.1": ("click",),
    "colorama==0.4.6": ("colorama",),
    "cryptography==50.0.2": ("cryptography",),
    "fastapi==0.165.0": ("fastapi",),
    "google-api-core==2.44.0": ("google",),
    "google-auth==2.63.0": ("google",),
    "google-cloud-secret-manager==2.32.0": ("google",),
    "google-cloud-tasks==2.26.0": ("google",),
    "google-crc32c==1.9.0": ("google_crc32c",),
    "googleapis-common-protos==1.76.0": ("google",),
    "grpc-google-iam-v1==0.14.6": ("google",),
    "grpcio==1.85.3": ("grpc",),
    "grpcio-status==1.85.3": ("grpc_status",),
    "h11==0.16.0": ("h11",),
    "httpcore==1.0.9": ("httpcore",),
    "httptools==0.9.0": ("httptools",),
    "httpx==0.28.1": ("httpx",),
    "hypothesis==6.170.17": (
        "_hypothesis_ftz_detector",
        "_hypothesis_globals",
        "_hypothesis_pytestplugin",
        "hypothesis",
    ),
    "idna==3.20": ("idna",),
    "iniconfig==2.3.1": ("iniconfig",),
    "librt==0.17.0": ("librt",),
    "mypy==2.4.1": ("mypy", "mypyc"),
    "mypy-extensions==1.2.0": ("mypy_extensions",),
    "opentelemetry-api==1.45.2": ("opentelemetry",),
    "opentelemetry-exporter-http-transport==0.66b2": ("opentelemetry",),
    "opentelemetry-exporter-otlp-common==0.66b2": ("opentelemetry",),
    "opentelemetry-exporter-otlp-proto-common==1.45.2": ("opentelemetry",),
    "opentelemetry-exporter-otlp-proto-http==1.45.2": ("opentelemetry",),
    "opentelemetry-proto==1.45.2": ("opentelemetry",),
    "opentelemetry-sdk==1.45.2": ("opentelemetry",),
    "opentelemetry-semantic-conventions==0.66b2": ("opentelemetry",),
    "orjson==3.13.0": ("orjson",),
    "packaging==26.4": ("packaging",),
    "pathspec==1.1.1": ("pathspec",),
    "pluggy==1.7.0": ("pluggy",),
    "proto-plus==1.29.0": ("proto",),
    "protobuf==7.36.2": ("google",),
    "pyasn1==0.6.5": ("pyasn1",),
    "pyasn1-modules==0.4.2": ("pyasn1_modules",),
    "pycparser==3.12": ("pycparser",),
    "pydantic==2.14.4": ("pydantic",),
    "pydantic-core==2.50.5": ("pydantic_core",),
    "pydantic-settings==2.16.3": ("pydantic_settings",),
    "pygments==2.21.0": ("pygments",),
    "pytest==9.2.0": ("_pytest", "py", "pytest"),
    "python-dotenv==1.2.4": ("dotenv",),
    "requests==2.34.2": ("requests",),
    "ruff==0.17.6": ("ruff",),
    "sortedcontainers==2.4.0": ("sortedcontainers",),
    "starlette==1.10.0": ("starlette",),
    "types-grpcio==1.85.0.20261028": (),
    "typing-extensions==4.16.0": ("typing_extensions",),
    "typing-inspection==0.4.5": ("typing_inspection",),
    "urllib3==2.8.0": ("urllib3",),
    "uvicorn==0.54.0": ("uvicorn",),
    "uvloop==0.23.0": ("uvloop",),
}
# Modules that no locked package installs but the render's layout and tools
# import by name: Python's own `test` package (sys.stdlib_module_names leaves it
# out), the modules site imports at every start, the render's top-level
# directories and `dev` (which `python scripts/dev.py` finds first), the
# render's own development package in dev/ (its lock names it without a wheel
# to read), and uv.
TOOLCHAIN_MODULES = frozenset(
    {
        "test", "sitecustomize", "usercustomize",
        "conftest", "dev", "scripts", "src", "tests", "local_google",
        "uv", "uv_build",
    }
)  # fmt: skip

PLACEHOLDER_PROJECT_ID = "your-gcp-project"  # documented: fill in later
PYTHON_VERSIONS = ("3.14", "3.13", "3.12", "3.11")
SWITCHES = (
    "use_secret_manager",
    "use_cloud_tasks",
    "use_tracing",
    "use_terraform",
    "public_access",
)
# Free text lands in TOML strings, Python docstrings and JSON: keep it plain.
# (Written so that cookiecutter, which renders this file, sees no template tag in it.)
_UNSAFE_TEXT = re.compile(r'["\\`]|\{[%#{]')
# Unicode categories of characters that break a line or hide in it: control
# characters (Cc: U+0000-U+001F, U+007F-U+009F, such as U+0085 NEXT LINE), format
# characters (Cf: U+202E RIGHT-TO-LEFT OVERRIDE, zero-width spaces) and the line
# and paragraph separators (Zl: U+2028, Zp: U+2029), which Python and JavaScript
# read as line ends. https://www.unicode.org/reports/tr44/#General_Category_Values
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})

Problem = str | None


def check_project_slug(value: Any) -> Problem:
    slug = r"[a-z][a-z0-9]*(-[a-z0-9]+)*"
    if isinstance(value, str) and re.fullmatch(slug, value) and len(value) <= 63:
        return None
    return (
        f"project_slug {value!r} is not allowed: use 1 to 63 lowercase letters, digits and "
        "single hyphens, starting with a letter and not ending with a hyphen (e.g. my-service)"
    )


def locked_packages_installing(module: str) -> list[str]:
    """The names of the locked packages that install a top-level module."""
    return sorted(
        package.partition("==")[0]
        for package, modules in LOCKED_MODULES.items()
        if module in modules
    )


def check_package_name(value: Any) -> Problem:
    allowed = (
        "use a lowercase Python identifier that is not a keyword, a standard-library module "
        "or a module the service depends on (e.g. my_service)"
    )
    if not isinstance(value, str) or not value.isidentifier() or not value.isascii():
        return f"package_name {value!r} is not a Python identifier: {allowed}"
    if value != value.lower():
        return f"package_name {value!r} is not lowercase: {allowed}"
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        return f"package_name {value!r} is a Python keyword: {allowed}"
    if value in sys.stdlib_module_names:
        return f"package_name {value!r} shadows the standard-library module {value!r}: {allowed}"
    if owners := locked_packages_installing(value):
        return (
            f"package_name {value!r} shadows the module {value!r} of {', '.join(owners)}, "
            f"which the service installs: {allowed}"
        )
    if value in TOOLCHAIN_MODULES:
        return f"package_name {value!r} shadows the module {value!r} of the toolchain: {allowed}"
    if value.startswith("_"):
        return f"package_name {value!r} starts with an underscore: {allowed}"
    return None


def check_service_name(value: Any) -> Problem:
    # https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services
    # Cloud Run allows 49 characters; each environment appends "-<environment>" (up to 8).
    if isinstance(value, str) and re.fullmatch(r"[a-z]([a-z0-9-]{0,39}[a-z0-9])?", value):
        return None
    return (
        f"service_name {value!r} is not a valid Cloud Run service name: use up to 41 lowercase "
        "letters, digits and hyphens (Cloud Run allows 49; environments add '-staging'), "
        "starting with a letter and not ending with a hyphen"
    )


def check_gcp_project_id(value: Any) -> Problem:
    # https://cloud.google.com/resource-manager/docs/creating-managing-projects
    if isinstance(value, str) and re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", value):
        if not any(word in value for word in ("google", "null", "undefined", "ssl")):
            return None
        return (
            f"gcp_project_id {value!r} contains a word Google does not allow in project IDs "
            "('google', 'null', 'undefined', 'ssl')"
        )
    return (
        f"gcp_project_id {value!r} is not a Google Cloud project ID: use 6 to 30 lowercase "
        "letters, digits and hyphens, starting with a letter and not ending with a hyphen, "
        f"or keep {PLACEHOLDER_PROJECT_ID!r} to fill it in later"
    )


def check_gcp_region(value: Any) -> Problem:
    if value in CLOUD_RUN_REGIONS:
        return None
    close = sorted(r for r in CLOUD_RUN_REGIONS if str(value)[:6] and r.startswith(str(value)[:6]))
    hint = f" (did you mean one of {', '.join(close)}?)" if close else ""
    return (
        f"gcp_region {value!r} is not a region where Cloud Run runs{hint}; see "
        "https://cloud.google.com/run/docs/locations (default: europe-west3, Frankfurt)"
    )


def check_python_version(value: Any) -> Problem:
    if value in PYTHON_VERSIONS:
        return None
    return f"python_version {value!r} is not supported: choose one of {', '.join(PYTHON_VERSIONS)}"


def _instances(value: Any) -> int | None:
    text = str(value).strip()
    return int(text) if text.isdigit() else None


def check_instances(min_value: Any, max_value: Any) -> Problem:
    low, high = _instances(min_value), _instances(max_value)
    if low is None:
        return f"min_instances {min_value!r} is not a whole number of 0 or more"
    # No upper bound here: Cloud Run ties it to the project's regional quota.
    if high is None or high < 1:
        return f"max_instances {max_value!r} is not a whole number of 1 or more"
    if low > high:
        return f"min_instances {low} is greater than max_instances {high}: min must be <= max"
    return None


def check_switch(name: str, value: Any) -> Problem:
    if isinstance(value, bool):
        return None
    return f"{name} {value!r} is not yes or no (true or false)"


def check_text(name: str, value: Any, max_length: int = 200) -> Problem:
    if not isinstance(value, str) or not value.strip():
        return f"{name} {value!r} is empty: write a short line of text"
    if len(value) > max_length:
        return f"{name} is {len(value)} characters long: keep it to {max_length}"
    if match := _UNSAFE_TEXT.search(value):
        return (
            f"{name} {value!r} contains {match.group()!r}: plain text only, without quotes, "
            "backslashes, backticks, template markers or control characters"
        )
    if character := invisible_character(value):
        # Control characters have no Unicode name: then the code point says it all.
        described = f"U+{ord(character):04X} {unicodedata.name(character, '')}".rstrip()
        return (
            f"{name} {value!r} contains {described} (Unicode category "
            f"{unicodedata.category(character)}): plain text only, without control, format or "
            "line-separator characters"
        )
    return None


def invisible_character(value: str) -> str | None:
    """The first character of a category in INVISIBLE_CATEGORIES, if any."""
    return next((c for c in value if unicodedata.category(c) in INVISIBLE_CATEGORIES), None)


CHECKS: tuple[Callable[[Mapping[str, Any]], Problem], ...] = (
    lambda c: check_text("project_name", c.get("project_name"), max_length=80),
    lambda c: check_project_slug(c.get("project_slug")),
    lambda c: check_package_name(c.get("package_name")),
    lambda c: check_text("description", c.get("description")),
    lambda c: check_text("author", c.get("author"), max_length=120),
    lambda c: check_gcp_project_id(c.get("gcp_project_id")),
    lambda c: check_gcp_region(c.get("gcp_region")),
    lambda c: check_service_name(c.get("service_name")),
    lambda c: check_python_version(c.get("python_version")),
    *(lambda c, s=switch: check_switch(s, c.get(s)) for switch in SWITCHES),
    lambda c: check_instances(c.get("min_instances"), c.get("max_instances")),
)


def problems(context: Mapping[str, Any]) -> list[str]:
    """Every problem with the answers, in question order."""
    return [problem for check in CHECKS if (problem := check(context)) is not None]


def main(context: Mapping[str, Any]) -> int:
    found = problems(context)
    if not found:
        return 0
    print("Cannot render the service; please fix these answers:", file=sys.stderr)
    for problem in found:
        print(f"  - {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    # cookiecutter renders this file, answers included, into a temporary file
    # that it does not delete: remove it first. The answers arrive as JSON.
    Path(__file__).unlink(missing_ok=True)
    sys.exit(main(json.loads(r"""{{ cookiecutter | jsonify }}""")))
