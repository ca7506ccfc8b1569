"""The shape of the code: no import cycles, and every module where the README says.

Imports are read from the source (every `import`, at module level, in functions
and under `TYPE_CHECKING`), so a cycle hidden in a function-level import counts.
"""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import {{ cookiecutter.package_name }}

PACKAGE = Path({{ cookiecutter.package_name }}.__file__).parent
NAME = PACKAGE.name
README = Path(__file__).resolve().parent.parent / "README.md"


def modules() -> dict[str, Path]:
    """Dotted module name to file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported(module: str, path: Path, known: set[str]) -> Iterator[str]:
    """The package's own modules that `module` imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from package import module` imports the module; `from module import name`
            # the module that holds the name.
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            targets = [m for m in submodules if m in known] or [base]
            yield from (target for target in targets if target in known and target != module)


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imported(name, path, set(known))) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "visiting"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "visiting":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_itself_through_others() -> None:
    graph = import_graph()
    assert len(graph) > 5
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_check_sees_a_function_level_import() -> None:
    graph = import_graph()
    # A loop bridged by an import inside a function is a loop all the same.
    looped = {**graph, f"{NAME}.settings": {*graph[f"{NAME}.settings"], f"{NAME}.main"}}
    assert find_cycle(looped) is not None


def test_the_readme_says_where_every_module_is() -> None:
    listed = set(re.findall(r"^\| `(src/[^`]+)`", README.read_text(), re.MULTILINE))
    for name, path in modules().items():
        if name == NAME:
            continue  # the package's own __init__.py
        relative = path.relative_to(PACKAGE.parent.parent).as_posix()
        directory = relative.rsplit("/", 1)[0] + "/"
        assert relative in listed or directory in listed, f"{name} ({relative}) is not in README"
