"""Regenerate the rendered service's `uv.lock` template: `make relock`.

Each combination of the switches that change dependencies renders a different
`pyproject.toml`, and each needs a lock file that `uv sync --locked` accepts.
This script renders every such combination, lets `uv lock` resolve it, and
merges the results into one Jinja template: a package that appears in every
lock is written plainly, a package that only some combinations need is wrapped
in `{% if ... %}` on those switches. The root package (the service itself) is
named by `{{ cookiecutter.project_slug }}`; the post-generation hook moves it
to its sorted place, so a render's lock is byte for byte what `uv lock` writes.

Needs network access to the package index; run it after changing any
dependency in `{{cookiecutter.project_slug}}/pyproject.toml`. Each render starts
from the current lock, so only what the change needs moves; `--upgrade`
resolves everything afresh to the newest versions the constraints allow.
"""

import argparse
import importlib.util
import itertools
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).resolve().parent.parent
LOCK = TEMPLATE / "{{cookiecutter.project_slug}}" / "uv.lock"
# The switches that change the rendered dependencies, in the order conditions name them.
DEPENDENCY_SWITCHES: tuple[str, ...] = ("use_secret_manager", "use_cloud_tasks")
RENDER_SLUG = "relock-probe"
SLUG_PLACEHOLDER = "{{ cookiecutter.project_slug }}"
_BLOCK_SPLIT = re.compile(r"\n\n(?=\[\[package\]\]\n)")

Combo = tuple[bool, ...]


def split_blocks(lock_text: str) -> list[str]:
    """The header, then one block per `[[package]]`, without separators."""
    return _BLOCK_SPLIT.split(lock_text.rstrip("\n"))


def canonical(lock_text: str) -> str:
    """A rendered lock as `uv lock` writes it: without the blank lines the
    template's conditions leave, the service's own package in its sorted place
    (by the post-generation hook's own function).

    `uv lock` leaves an up-to-date lock file as it is, so it must start from this.
    """
    spec = importlib.util.spec_from_file_location(
        "post_gen", TEMPLATE / "hooks" / "post_gen_project.py"
    )
    if spec is None or spec.loader is None:
        raise RuntimeError("cannot load hooks/post_gen_project.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    collapsed = re.sub(r"\n+(?=\[\[package\]\]\n)", "\n\n", lock_text.strip("\n"))
    sorted_lock: str = hook.sort_lock_packages(collapsed)
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
    if args.check:
        if LOCK.read_text() != merged:
            print(f"{LOCK} is out of date: run `make relock`", file=sys.stderr)
            return 1
        return 0
    LOCK.write_text(merged)
    print(f"wrote {LOCK.relative_to(TEMPLATE)} for {len(combos)} combinations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
