"""`make relock` keeps the pre-generation hook's list of locked modules in step
with the rendered lock: a package name that shadows a module the service
installs is refused before anything is rendered."""

import importlib.util
import json
from collections.abc import Callable
from types import ModuleType

import pytest

from .conftest import TEMPLATE, Answers, Render
from .hooks import pre_gen


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, TEMPLATE / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


relock = load_script("relock")


def test_the_hook_knows_the_modules_of_exactly_the_locked_packages() -> None:
    locked = set(relock.locked_packages(relock.LOCK.read_text()))
    known = set(pre_gen.LOCKED_MODULES)
    assert locked == known, (
        "hooks/pre_gen_project.py's LOCKED_MODULES is out of step with the rendered uv.lock "
        f"(only in the lock: {sorted(locked - known)}, only in the hook: "
        f"{sorted(known - locked)}): run `make relock`"
    )


def test_the_hook_holds_the_list_as_relock_writes_it() -> None:
    hook = relock.HOOK.read_text()
    assert relock.with_locked_modules(hook, pre_gen.LOCKED_MODULES) == hook


# (files of a wheel, the top-level modules it installs)
WHEELS: list[tuple[list[str], tuple[str, ...]]] = [
    (["orjson/__init__.py", "orjson/orjson.cpython-312-x86_64-linux-gnu.so"], ("orjson",)),
    (["typing_extensions.py", "typing_extensions-4.16.0.dist-info/RECORD"], ("typing_extensions",)),
    (["_cffi_backend.cpython-311-darwin.so", "cffi/api.py"], ("_cffi_backend", "cffi")),
    (["_speedups.abi3.so", "legacy.pyd", "compiled.pyc"], ("_speedups", "compiled", "legacy")),
    (["google/auth/__init__.py", "google/oauth2/id_token.py"], ("google",)),
    (
        ["pkg-1.0.data/purelib/hidden/__init__.py", "pkg-1.0.data/platlib/fast.so"],
        ("fast", "hidden"),
    ),
    (["pkg-1.0.data/scripts/tool", "pkg-1.0.data/headers/pkg.h"], ()),
    (["grpc-stubs/__init__.pyi", "distutils-precedence.pth", "README.md"], ()),
    (["81d243bd2c585b0f4821__mypyc.cpython-311-x86_64-linux-gnu.so"], ()),
    # RECORD of an installed package: scripts outside site-packages, bytecode caches.
    (["../../../bin/uvicorn", "__pycache__/six.cpython-311.pyc", "six.py"], ("six",)),
]


@pytest.mark.parametrize(("files", "modules"), WHEELS, ids=[files[0] for files, _ in WHEELS])
def test_the_modules_of_a_wheel_are_read_from_its_files(
    files: list[str], modules: tuple[str, ...]
) -> None:
    assert relock.wheel_modules(files) == modules


def test_every_module_a_render_installs_is_refused(
    render: Callable[[Answers], Render],
) -> None:
    """The list read from wheels against what uv really installs (this
    platform's share of the lock)."""
    project = render({})
    project.run("uv", "sync", "--locked", "--quiet")
    listing = project.run(
        str(project.env_dir / "bin" / "python"),
        "-c",
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: [str(f) for f in d.files or []] "
        "for d in m.distributions()}))",
    )
    installed: dict[str, list[str]] = json.loads(listing.stdout)
    installed.pop(project.path.name)
    assert len(installed) > 30, installed.keys()
    for distribution, files in sorted(installed.items()):
        for module in relock.wheel_modules(files):
            problem = pre_gen.check_package_name(module)
            assert problem is not None, f"{module!r} of {distribution} is not refused"


def test_a_package_without_a_wheel_stops_relock() -> None:
    with pytest.raises(RuntimeError, match=r"example==1\.0 has no wheel in the lock"):
        relock.modules_of({"example==1.0": ()})


def test_the_list_is_rewritten_in_place() -> None:
    hook = (
        'A = 1\nLOCKED_MODULES: Mapping[str, tuple[str, ...]] = {\n    "x==1": ("x",),\n}\nB = 2\n'
    )
    modules = {
        "zlib-ng==2.0": ("zlib_ng",),
        "a-very-long-name==1": tuple(f"m{i}" for i in range(20)),
    }

    rewritten = relock.with_locked_modules(hook, modules)

    assert rewritten.startswith("A = 1\nLOCKED_MODULES")
    assert rewritten.endswith("}\nB = 2\n")
    assert '    "zlib-ng==2.0": ("zlib_ng",),\n' in rewritten
    assert '    "a-very-long-name==1": (\n        "m0",\n' in rewritten, "one per line past 100"
    assert rewritten.index("a-very-long-name") < rewritten.index("zlib-ng")
