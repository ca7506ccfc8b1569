"""`make dev`'s runner (scripts/dev.py) stops however it is told to."""

import importlib.util
import signal
import threading
from types import ModuleType

import uvicorn

from .serving import PROJECT_ROOT


def dev_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dev_script", PROJECT_ROOT / "scripts" / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_second_stop_signal_never_waits_on_the_first() -> None:
    config = uvicorn.Config("{{ cookiecutter.package_name }}.main:create_app", reload=True)
    reloader = dev_script().Reloader(config, target=lambda sockets: None, sockets=[])
    reloader.signal_handler(signal.SIGTERM, None)
    assert reloader.should_exit.is_set()

    # The second SIGTERM of a process-group stop lands while the first handler
    # is inside Event.set(), holding the event's lock (held here to stand in):
    # uvicorn's own handler would wait for that lock forever.
    second = threading.Thread(
        target=reloader.signal_handler, args=(signal.SIGTERM, None), daemon=True
    )
    with vars(reloader.should_exit)["_cond"]:
        second.start()
        second.join(timeout=2)
        assert not second.is_alive(), "the second signal waited for the first"
