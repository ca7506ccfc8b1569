"""Regenerate the rendered service's `uv.lock` template: `make relock`.

Each combination of the switches that change dependencies renders a different
`pyproject.toml`, and each needs a lock file that `uv sync --locked` accepts.
This script renders every such combination, lets `uv lock` resolve it, and
merges the results into one Jinja template: a package that appears in every
lock is written plainly, a package that only some combinations need is wrapped
in `{% if ... %}` on those switches. The root package (the service itself) is
named by `{{ cookiecutter.project_slug }}`; the post-generation hook moves it
to its sorted place, so a render's lock is byte for byte what `uv lock` writes.

It also writes `LOCKED_MODULES` in the pre-generation hook: the top-level
modules that each locked package installs, read from the file list of its
smallest locked wheel (hash checked), so that a package name which would shadow
one of them is refused before anything is rendered, on the user's machine and
offline.

Needs network access to the package index; run it after changing any
dependency in `{{cookiecutter.project_slug}}/pyproject.toml`. Each render starts
from the current lock, so only what the change needs moves; `--upgrade`
resolves everything afresh to the newest versions the constraints allow.
"""

import argparse
import hashlib
import importlib.util
import io
import itertools
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType

import httpx
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
LOCK = TEMPLATE / "{{cookiecutter.project_slug}}" / "uv.lock"
HOOK = TEMPLATE / "hooks" / "pre_gen_project.py"
# The switches that change the rendered dependencies, in the order conditions name them.
DEPENDENCY_SWITCHES: tuple[str, ...] = ("use_secret_manager", "use_cloud_tasks", "use_tracing")
RENDER_SLUG = "relock-probe"
SLUG_PLACEHOLDER = "{{ cookiecutter.project_slug }}"

Combo = tuple[bool, ...]


def _post_gen_hook() -> ModuleType:
    """The post-generation hook as a module: it owns how a lock is split and sorted."""
    spec = importlib.util.spec_from_file_location(
        "post_gen", TEMPLATE / "hooks" / "post_gen_project.py"
    )
    if spec is None or spec.loader is None:
        raise RuntimeError("cannot load hooks/post_gen_project.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    return hook


def split_blocks(lock_text: str) -> list[str]:
    """The header, then one block per `[[package]]`, without separators."""
    blocks: list[str] = _post_gen_hook().lock_blocks(lock_text)
    return blocks


def canonical(lock_text: str) -> str:
    """A rendered lock as `uv lock` writes it: without the blank lines the
    template's conditions leave, the service's own package in its sorted place
    (by the post-generation hook's own function).

    `uv lock` leaves an up-to-date lock file as it is, so it must start from this.
    """
    collapsed = re.sub(r"\n+(?=\[\[package\]\]\n)", "\n\n", lock_text.strip("\n"))
    sorted_lock: str = _post_gen_hook().sort_lock_packages(collapsed)
    return sorted_lock


def block_key(block: str) -> str:
    match = re.search(r'^name = "([^"]+)"', block, re.MULTILINE)
    return match.group(1) if match else ""


def condition(true_combos: set[Combo], names: Sequence[str]) -> str | None:
    """The shortest condition on the switches that holds exactly for `true_combos`.

    None when it holds for every combination (no condition needed).
    """
    all_combos = set(itertools.product((True, False), repeat=len(names)))
    if true_combos == all_combos:
        return None
    literals = [(i, value) for i in range(len(names)) for value in (True, False)]

    def text(i: int, value: bool) -> str:
        return f"cookiecutter.{names[i]}" if value else f"not cookiecutter.{names[i]}"

    def holds(combo: Combo, terms: Sequence[tuple[int, bool]], joiner: str) -> bool:
        checks = (combo[i] == value for i, value in terms)
        return all(checks) if joiner == "and" else any(checks)

    for size in range(1, len(names) + 1):
        for terms in itertools.combinations(literals, size):
            for joiner in ("and", "or"):
                if {c for c in all_combos if holds(c, terms, joiner)} == true_combos:
                    return f" {joiner} ".join(text(i, v) for i, v in terms)
    conjunctions = (
        "(" + " and ".join(text(i, v) for i, v in enumerate(combo)) + ")"
        for combo in sorted(true_combos, reverse=True)
    )
    return " or ".join(conjunctions)


def merge(locks: dict[Combo, str], names: Sequence[str]) -> str:
    """One Jinja template that renders to `locks[combo]` for every combo."""
    variants: dict[str, dict[str, set[Combo]]] = {}
    order: list[str] = []
    for combo, text in locks.items():
        for index, block in enumerate(split_blocks(text)):
            key = "\0header" if index == 0 else block_key(block)
            if key not in variants:
                variants[key] = {}
                order.append(key)
            variants[key].setdefault(block, set()).add(combo)
    header_key = order.pop(order.index("\0header"))
    # The service itself first: the post-generation hook moves it to its sorted place.
    order.sort(key=lambda k: (k != SLUG_PLACEHOLDER, k))
    out = []
    for header, combos in variants[header_key].items():
        cond = condition(combos, names)
        # The template renders with trim_blocks: a tag's own line vanishes.
        out.append(header if cond is None else f"{{% if {cond} %}}\n{header}\n{{% endif %}}\n")
    for key in order:
        for block, combos in variants[key].items():
            cond = condition(combos, names)
            if cond is None:
                out.append(f"\n\n{block}")
            else:
                out.append(f"\n{{% if {cond} %}}\n\n{block}\n{{% endif %}}")
    return "".join(out) + "\n"


@dataclass(frozen=True)
class Wheel:
    url: str
    hash: str
    size: int


_JINJA_LINE = re.compile(r"^\{%.*%\}$\n?", re.MULTILINE)
_PACKAGE_START = re.compile(r"^(?=\[\[package\]\]$)", re.MULTILINE)


def locked_packages(lock_text: str) -> dict[str, tuple[Wheel, ...]]:
    """Each third-party package of a lock, as `name==version`, with its wheels.

    Reads a plain lock or the lock template (its `{% ... %}` lines are dropped);
    the service itself (the editable package) is left out.
    """
    packages: dict[str, tuple[Wheel, ...]] = {}
    for block in _PACKAGE_START.split(_JINJA_LINE.sub("", lock_text))[1:]:
        package = tomllib.loads(block)["package"][0]
        if "editable" in package.get("source", {}):
            continue
        wheels = tuple(
            Wheel(str(w["url"]), str(w["hash"]), int(w["size"])) for w in package.get("wheels", [])
        )
        packages[f"{package['name']}=={package['version']}"] = wheels
    return packages


def wheel_modules(paths: Iterable[str]) -> tuple[str, ...]:
    """The top-level modules that a wheel with these files installs.

    A file in a directory installs the directory's name (a package, or a portion
    of a namespace package such as `google`); a file at the top installs a module
    if it is Python source or an extension (`orjson.cpython-312-...so`). Files
    under `<name>.data/purelib` or `platlib` install at the top too; metadata,
    scripts, `.pth` files, bytecode caches (in an installed package's RECORD)
    and names that are not identifiers import nothing.
    """
    modules = set()
    for path in paths:
        parts = PurePosixPath(path).parts
        if len(parts) > 2 and parts[0].endswith(".data") and parts[1] in {"purelib", "platlib"}:
            parts = parts[2:]
        if parts[0].endswith((".dist-info", ".data")) or parts[0] == "__pycache__":
            continue
        if len(parts) > 1:
            modules.add(parts[0])
        elif PurePosixPath(parts[0]).suffix in {".py", ".pyc", ".so", ".pyd"}:
            modules.add(parts[0].split(".", 1)[0])
    return tuple(sorted(m for m in modules if m.isidentifier()))


def wheel_files(wheel: Wheel) -> list[str]:
    """The file list of a locked wheel, downloaded and checked against its hash."""
    response = httpx.get(wheel.url, follow_redirects=True, timeout=120)
    response.raise_for_status()
    algorithm, _, expected = wheel.hash.partition(":")
    if hashlib.new(algorithm, response.content).hexdigest() != expected:
        raise RuntimeError(f"{wheel.url} does not match its locked hash {wheel.hash}")
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return archive.namelist()


def modules_of(packages: Mapping[str, tuple[Wheel, ...]]) -> dict[str, tuple[str, ...]]:
    """The modules of each package, from its smallest wheel: every wheel of a
    release installs the same modules, whatever its platform."""
    for package, wheels in packages.items():
        if not wheels:
            raise RuntimeError(f"{package} has no wheel in the lock: cannot read its modules")
    names = sorted(packages)
    smallest = [min(packages[name], key=lambda wheel: wheel.size) for name in names]
    with ThreadPoolExecutor(max_workers=8) as pool:
        files = pool.map(wheel_files, smallest)
        return {name: wheel_modules(paths) for name, paths in zip(names, files, strict=True)}


def locked_modules_source(modules: Mapping[str, tuple[str, ...]]) -> str:
    """`LOCKED_MODULES` as the pre-generation hook spells it (as ruff formats it)."""
    lines = ["LOCKED_MODULES: Mapping[str, tuple[str, ...]] = {"]
    for package in sorted(modules, key=lambda package: package.split("==")):
        names = modules[package]
        quoted = [f'"{name}"' for name in names]
        items = f"{quoted[0]}," if len(quoted) == 1 else ", ".join(quoted)
        one_line = f'    "{package}": ({items}),'
        if len(one_line) <= 100:
            lines.append(one_line)
        else:
            lines.append(f'    "{package}": (')
            lines.extend(f'        "{name}",' for name in names)
            lines.append("    ),")
    lines.append("}")
    return "\n".join(lines) + "\n"


_LOCKED_MODULES = re.compile(r"^LOCKED_MODULES: .*?^\}\n", re.MULTILINE | re.DOTALL)


def with_locked_modules(hook_text: str, modules: Mapping[str, tuple[str, ...]]) -> str:
    """The hook's text with its `LOCKED_MODULES` replaced."""
    if not _LOCKED_MODULES.search(hook_text):
        raise RuntimeError(f"{HOOK} has no LOCKED_MODULES to rewrite")
    return _LOCKED_MODULES.sub(lambda _: locked_modules_source(modules), hook_text, count=1)


def lock_for(combo: Combo, workdir: Path, *, upgrade: bool = False) -> str:
    context = dict(zip(DEPENDENCY_SWITCHES, combo, strict=True))
    project = Path(
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            accept_hooks=False,
            output_dir=str(workdir / "-".join(map(str, combo))),
            extra_context={"project_name": RENDER_SLUG, **context},
        )
    )
    lock = project / "uv.lock"
    if upgrade:
        lock.unlink()
    else:
        lock.write_text(canonical(lock.read_text()))
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "lock", "--quiet"], cwd=project, check=True)  # noqa: S603
    text = lock.read_text()
    return text.replace(f'name = "{RENDER_SLUG}"', f'name = "{SLUG_PLACEHOLDER}"')


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if uv.lock is out of date")
    parser.add_argument(
        "--upgrade", action="store_true", help="resolve every package afresh, not from uv.lock"
    )
    args = parser.parse_args(argv)
    combos = list(itertools.product((True, False), repeat=len(DEPENDENCY_SWITCHES)))
    with tempfile.TemporaryDirectory() as tmp:
        locks = {combo: lock_for(combo, Path(tmp), upgrade=args.upgrade) for combo in combos}
    merged = merge(locks, DEPENDENCY_SWITCHES)
    hook = with_locked_modules(HOOK.read_text(), modules_of(locked_packages(merged)))
    if args.check:
        stale = [path for path, text in ((LOCK, merged), (HOOK, hook)) if path.read_text() != text]
        for path in stale:
            print(f"{path} is out of date: run `make relock`", file=sys.stderr)
        return 1 if stale else 0
    LOCK.write_text(merged)
    HOOK.write_text(hook)
    print(f"wrote {LOCK.relative_to(TEMPLATE)} for {len(combos)} combinations")
    print(f"wrote LOCKED_MODULES in {HOOK.relative_to(TEMPLATE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
