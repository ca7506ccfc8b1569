"""Cold start, import time, throughput and memory of the rendered service
against the alternatives people pick, side by side in one run: `make bench`.

Contenders (bench/contenders/):
- rendered: the template's default render (every feature on), through its own
  `serve()`, with 5 declared secrets;
- bare FastAPI: the same two routes on a bare FastAPI app, in the fastest
  configuration uvicorn offers (uvloop, httptools, no access log): the floor
  for a FastAPI service;
- raw ASGI: the same two routes as a plain ASGI callable, no framework, served
  the same way: the physical floor;
- naive: FastAPI the way the libraries' documentation suggests: settings with
  pydantic-settings' built-in Secret Manager source (same 5 secrets), a
  module-level CloudTasksClient;
- flask: Google's Cloud Run Python sample setup (gunicorn, 1 worker, 8 threads).

Secret Manager and Cloud Tasks are the rendered project's local servers, with
every Secret Manager call delayed by --latency (30 ms by default). Writes
docs/benchmarks.md, docs/benchmarks-cold-start.png and bench/results/service.json.
"""

import argparse
import json
import os
import platform
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from common import (
    BENCH,
    TEMPLATE,
    Summary,
    free_port,
    machine,
    marked_sections,
    render,
    requirements_env,
    sync_project,
    uv,
    wait_for,
)
from loadgen import import_profile, rss_bytes, site_packages_bytes, wrk

PROJECT = "bench-project"
NO_WARM_UP = "rendered, TASKS_WARM_UP=false"
NO_SECRETS = "rendered, use_secret_manager=no"
FASTAPI_FLOOR = "bare FastAPI"
RAW_FLOOR = "raw ASGI"
# The floors' server: uvicorn at its fastest, one process, no access log.
FAST_UVICORN = ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
SECRETS = 5
IDLE_SECONDS = 2.0
CONTENDERS = BENCH / "contenders"
ORDER = json.dumps(
    {"customer_id": 42, "lines": [{"sku": "A-1", "quantity": 2}, {"sku": "B-7", "quantity": 1}]}
).encode()


@dataclass
class Contender:
    name: str
    command: list[str]
    cwd: Path
    env: dict[str, str]
    python: Path
    import_module: str | None = None
    enqueue: tuple[str, Callable[[int], Mapping[str, object]]] | None = None  # path, body
    results: dict[str, object] = field(default_factory=dict)


@contextmanager
def running(contender: Contender, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, **contender.env, "PORT": str(port)}
    env.pop("VIRTUAL_ENV", None)
    process = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in contender.command],
        cwd=contender.cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def cold_start(contender: Contender) -> tuple[float, float | None]:
    """Seconds from exec to the first 200 on /healthz, and to the first 2xx enqueue."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with running(contender, port) as process:
        healthy = wait_for(f"{url}/healthz", process) - started
        if contender.enqueue is None:
            return healthy, None
        path, body = contender.enqueue
        with httpx.Client(timeout=10) as client:
            while time.monotonic() - started < 30:
                response = client.post(f"{url}{path}", json=body(time.monotonic_ns()))
                if response.is_success:
                    return healthy, time.monotonic() - started
                time.sleep(0.005)
        raise TimeoutError(f"{contender.name}: no successful enqueue within 30 s")


def idle_enqueue(contender: Contender) -> float:
    """Seconds the first enqueue request takes once the instance has sat idle after start.

    This is the request an instance kept by min-instances, or started by a request
    that did not defer, serves first: what the Cloud Tasks client warm-up is for.
    The connection is opened beforehand, so the figure is the server's.
    """
    assert contender.enqueue is not None
    path, body = contender.enqueue
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(contender, port) as process, httpx.Client(timeout=10) as client:
        wait_for(f"{url}/healthz", process)
        time.sleep(IDLE_SECONDS)
        client.get(f"{url}/healthz").raise_for_status()
        started = time.monotonic()
        response = client.post(f"{url}{path}", json=body(time.monotonic_ns()))
        elapsed = time.monotonic() - started
        response.raise_for_status()
        return elapsed


def load(contender: Contender, seconds: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running(contender, port) as process:
        wait_for(f"{url}/healthz", process)
        # Long enough for what startup leaves to the background (the Cloud
        # Tasks client's warm-up) to be in memory too.
        time.sleep(IDLE_SECONDS)
        rss_start = rss_bytes(process.pid)
        wrk(f"{url}/healthz", seconds=2)  # warm up
        health = wrk(f"{url}/healthz", seconds=seconds)
        orders = wrk(f"{url}/orders", seconds=seconds, body=ORDER)
        rss_after = rss_bytes(process.pid)
    for route, result in (("/healthz", health), ("/orders", orders)):
        if result.errors or result.non_2xx:
            raise SystemExit(f"{contender.name} {route}: {result}: not a figure to compare")
    return {"healthz": asdict(health), "orders": asdict(orders), "rss_start": rss_start,
            "rss_after_load": rss_after}  # fmt: skip


def median_load(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per route, the run with the median req/s; memory from the first run."""
    result = dict(runs[0])
    for route in ("healthz", "orders"):
        ranked = sorted(runs, key=lambda run: float(run[route]["requests_per_second"]))
        result[route] = ranked[len(ranked) // 2][route]
    return result


@contextmanager
def local_google(project: Path, python: Path, latency: float) -> Iterator[dict[str, str]]:
    """The rendered project's local Secret Manager and Cloud Tasks, as processes."""
    secrets = [f"projects/{PROJECT}/secrets/dev-api-key=bench"]
    secrets += [f"projects/{PROJECT}/secrets/dev-secret-{i}=bench" for i in range(2, SECRETS + 1)]
    secrets += [f"projects/{PROJECT}/secrets/secret_{i}=bench" for i in range(1, SECRETS + 1)]
    queues = [
        f"projects/{PROJECT}/locations/europe-west3/queues/default",
        f"projects/{PROJECT}/locations/europe-west3/queues/my-service-dev",
    ]
    commands = [
        [str(python), "-m", "local_google", "--latency", str(latency),
         *(arg for s in secrets for arg in ("--secret", s))],
        [str(python), "-m", "local_google",
         *(arg for q in queues for arg in ("--queue", q))],
    ]  # fmt: skip
    processes = [
        subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, text=True)
        for command in commands
    ]
    try:
        addresses: dict[str, str] = {}
        for process in processes:
            assert process.stdout is not None
            addresses.update(json.loads(process.stdout.readline()))
        yield addresses
    finally:
        for process in processes:
            process.terminate()
            process.wait()


def build(tmp: Path) -> dict[str, Path]:
    """Every environment: the render's (dev and runtime-only) and each contender's."""
    project = render(tmp, project_name="My Service")
    dev_python = sync_project(project)
    runtime = project / ".venv-runtime"
    uv("sync", "--locked", "--no-dev", "--quiet", cwd=project,
       env={"UV_PROJECT_ENVIRONMENT": str(runtime)})  # fmt: skip
    # The same service without Secret Manager: what the template costs a cold
    # start before any secret is read (the floors read none).
    (tmp / "no-secret-manager").mkdir()
    unsecret = render(tmp / "no-secret-manager", project_name="My Service",
                      use_secret_manager=False)  # fmt: skip
    sync_project(unsecret, dev=False)
    return {
        "project": project,
        "dev_python": dev_python,
        "rendered_python": runtime / "bin" / "python",
        "unsecret_project": unsecret,
        "unsecret_python": unsecret / ".venv" / "bin" / "python",
        **{
            f"{name}_python": requirements_env(CONTENDERS / name / "requirements.txt", tmp / name)
            for name in ("bare", "raw_asgi", "naive", "flask_sample")
        },
    }


def define(paths: Mapping[str, Path], google: Mapping[str, str]) -> list[Contender]:
    contenders_path = str(CONTENDERS)
    service_env = {
        "ENVIRONMENT": "dev",
        "GCP_PROJECT": PROJECT,
        "HOST": "127.0.0.1",
        **google,
        "PYTHONPATH": contenders_path,
    }
    rendered = Contender(
        "rendered",
        [str(paths["rendered_python"]), str(BENCH / "launch_rendered.py"), "my_service",
         str(SECRETS)],
        paths["project"],
        service_env,
        paths["rendered_python"],
        import_module="my_service.main",
        enqueue=("/signups", lambda n: {"email": f"bench-{n}@example.com", "name": "Bench"}),
    )  # fmt: skip
    # The same service with the Cloud Tasks client left for the first `.defer()`:
    # what its memory after start is without gRPC and protobuf.
    lazy = Contender(
        NO_WARM_UP,
        rendered.command,
        rendered.cwd,
        {**service_env, "TASKS_WARM_UP": "false"},
        rendered.python,
        enqueue=rendered.enqueue,
    )
    unsecret = Contender(
        NO_SECRETS,
        [str(paths["unsecret_python"]), *rendered.command[1:]],
        paths["unsecret_project"],
        service_env,
        paths["unsecret_python"],
        enqueue=rendered.enqueue,
    )
    bare = Contender(
        FASTAPI_FLOOR,
        [str(paths["bare_python"]), "-m", "uvicorn", "app:app", "--port", "{port}", *FAST_UVICORN],
        CONTENDERS / "bare",
        {"PYTHONPATH": contenders_path},
        paths["bare_python"],
        import_module="app",
    )
    raw = Contender(
        RAW_FLOOR,
        [str(paths["raw_asgi_python"]), "-m", "uvicorn", "app:app", "--port", "{port}",
         *FAST_UVICORN],
        CONTENDERS / "raw_asgi",
        {"PYTHONPATH": contenders_path},
        paths["raw_asgi_python"],
        import_module="app",
    )  # fmt: skip
    naive = Contender(
        "naive",
        [str(paths["naive_python"]), "-m", "uvicorn", "app:app", "--port", "{port}"],
        CONTENDERS / "naive",
        {**service_env, "SERVICE_URL": "http://127.0.0.1:1"},
        paths["naive_python"],
        import_module="app",
        enqueue=("/enqueue", lambda n: {"customer_id": n, "lines": [{"sku": "A", "quantity": 1}]}),
    )  # fmt: skip
    flask = Contender(
        "flask + gunicorn",
        [str(paths["flask_sample_python"]), "-m", "gunicorn", "--bind", "127.0.0.1:{port}",
         "--workers", "1", "--threads", "8", "--timeout", "0", "app:app"],
        CONTENDERS / "flask_sample",
        {"PYTHONPATH": contenders_path},
        paths["flask_sample_python"],
    )  # fmt: skip
    return [rendered, lazy, unsecret, bare, raw, naive, flask]


def report(results: dict[str, Any], out: Path) -> str:
    """The Markdown page, with ratios against the floor and the alternatives."""
    cold: dict[str, dict[str, float]] = results["cold_start"]
    enq: dict[str, dict[str, float]] = results["first_enqueue"]
    idle: dict[str, dict[str, float]] = results["idle_enqueue"]
    load_: dict[str, dict[str, Any]] = results["load"]
    sizes: dict[str, int] = results["site_packages"]
    imports: dict[str, list[list[Any]]] = results["imports"]

    def ms(s: Mapping[str, float]) -> str:
        return f"{s['median'] * 1000:.0f} ms ({s['low'] * 1000:.0f}-{s['high'] * 1000:.0f})"

    def rps(name: str, route: str) -> float:
        return float(load_[name][route]["requests_per_second"])

    def p(name: str, route: str, q: str) -> float:
        return float(load_[name][route][q]) * 1000

    r, b, a, n, f = "rendered", FASTAPI_FLOOR, RAW_FLOOR, "naive", "flask + gunicorn"

    def rss(name: str) -> int:
        return int(load_[name]["rss_start"])

    def met(ok: bool) -> str:
        return "met" if ok else "**missed**"

    cold_b = cold[r]["median"] / cold[b]["median"]
    rps_a = rps(r, "healthz") / rps(a, "healthz")
    lines = [
        "# Benchmarks",
        "",
        f"Measured {results['date']} with `{results['command']}` on {results['machine']}.",
        "Figures are medians (min-max) of the runs, contenders alternating within one",
        "session; ratios compare figures from the same run. The machine is shared and",
        "noisy, so read the ratios, not the absolute numbers.",
        "",
        f"Secret Manager calls are delayed {results['latency_ms']} ms each (a round trip to the",
        f"real service); the rendered and the naive service each read {SECRETS} secrets at start.",
        "",
        "Two floors run in the same session as the others: **bare FastAPI**, the same",
        "routes on a bare FastAPI app in uvicorn's fastest configuration (uvloop,",
        "httptools, no access log), and **raw ASGI**, the same routes as a plain ASGI",
        "callable served the same way, no framework. The rendered service writes its",
        "structured access log (one JSON line per request) in every figure.",
        "",
        "## Goals",
        "",
        "| Goal | This run | |",
        "| --- | --- | --- |",
        f"| cold start, rendered / bare FastAPI floor <= 1.1x | {cold_b:.2f}x "
        f"| {met(cold_b <= 1.1)} |",
        f"| /healthz req/s, rendered / raw ASGI floor >= 0.6x | {rps_a:.2f}x "
        f"| {met(rps_a >= 0.6)} |",
        "",
        "The rendered service answers `/healthz`, Cloud Run's startup and liveness probe, "
        "in a plain ASGI middleware inside its access log, before FastAPI's routing "
        "(api/health.py): the framework alone is "
        f"{rps(b, 'healthz') / rps(a, 'healthz'):.2f}x the raw ASGI floor's /healthz req/s "
        "(bare FastAPI / raw ASGI). Routes of the API pay for FastAPI: /orders does "
        f"{rps(r, 'orders') / rps(a, 'orders'):.2f}x the raw ASGI floor, "
        f"{rps(r, 'orders') / rps(b, 'orders'):.2f}x the FastAPI floor.",
        "",
        f"Its cold start includes reading {SECRETS} secrets from Secret Manager (the gRPC "
        "client's import, in a child process, and one concurrent round trip), which neither "
        "floor does. Without Secret Manager (`use_secret_manager=no`) the rendered service "
        f"starts in {cold[NO_SECRETS]['median'] / cold[b]['median']:.2f}x the FastAPI floor's "
        "time.",
        "",
        "## Cold start",
        "",
        "![Cold start per contender](benchmarks-cold-start.png)",
        "",
        "| Contender | exec to first /healthz 200 | exec to first enqueued task |",
        "| --- | --- | --- |",
        *(
            f"| {name} | {ms(cold[name])} | {ms(enq[name]) if name in enq else '-'} |"
            for name in cold
        ),
        "",
        f"- rendered / bare FastAPI floor: **{cold_b:.2f}x** (goal <= 1.1x); without "
        f"Secret Manager: {cold[NO_SECRETS]['median'] / cold[b]['median']:.2f}x; fastest runs "
        f"only: {cold[r]['low'] / cold[b]['low']:.2f}x and "
        f"{cold[NO_SECRETS]['low'] / cold[b]['low']:.2f}x",
        f"- rendered / raw ASGI floor: {cold[r]['median'] / cold[a]['median']:.2f}x; "
        f"bare FastAPI / raw ASGI: {cold[b]['median'] / cold[a]['median']:.2f}x",
        f"- rendered / naive: **{cold[r]['median'] / cold[n]['median']:.2f}x** (target <= 0.6x)",
        f"- first enqueue, rendered / naive: {enq[r]['median'] / enq[n]['median']:.2f}x",
        "",
        f"### First enqueue on an instance idle for {results['idle_seconds']:.0f} s after start",
        "",
        "The request an instance kept by min-instances, or started by a request that did",
        "not defer, serves first (connection already open): what `TASKS_WARM_UP` is for.",
        "",
        "| Contender | first enqueue request |",
        "| --- | --- |",
        *(f"| {name} | {ms(idle[name])} |" for name in idle),
        "",
        f"- `TASKS_WARM_UP=false` / rendered: "
        f"{idle[NO_WARM_UP]['median'] / idle[r]['median']:.1f}x",
        "",
        f"## Throughput and latency (1 process, 32 connections, {results['load_seconds']} s each)",
        "",
        "wrk runs on one thread, so on two cores the server keeps one core to itself.",
        f"Each contender is loaded {results.get('load_rounds', 1)} times, alternating with the "
        "others; each route's figures are those of its median run.",
        "",
        "| Contender | /healthz req/s | p50 | p99 | /orders req/s | p50 | p99 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {name} | {rps(name, 'healthz'):.0f} | {p(name, 'healthz', 'p50'):.1f} ms | "
            f"{p(name, 'healthz', 'p99'):.1f} ms | {rps(name, 'orders'):.0f} | "
            f"{p(name, 'orders', 'p50'):.1f} ms | {p(name, 'orders', 'p99'):.1f} ms |"
            for name in load_
        ),
        "",
        f"- /healthz req/s, rendered (one access log line per request) / raw ASGI floor: "
        f"**{rps_a:.2f}x** (goal >= 0.6x); / bare FastAPI floor: "
        f"**{rps(r, 'healthz') / rps(b, 'healthz'):.2f}x**",
        f"- /orders req/s, rendered / raw ASGI floor: {rps(r, 'orders') / rps(a, 'orders'):.2f}x; "
        f"/ bare FastAPI floor: {rps(r, 'orders') / rps(b, 'orders'):.2f}x",
        f"- /healthz req/s, bare FastAPI / raw ASGI: "
        f"{rps(b, 'healthz') / rps(a, 'healthz'):.2f}x: what the framework costs before any "
        "code of the service runs",
        f"- /healthz req/s, rendered (one access log line per request) / flask: "
        f"**{rps(r, 'healthz') / rps(f, 'healthz'):.1f}x** (target >= 3x)",
        f"- /healthz p99, rendered / flask: "
        f"**{p(r, 'healthz', 'p99') / p(f, 'healthz', 'p99'):.2f}x** (target <= 0.5x)",
        "",
        "## Memory and size",
        "",
        "| Contender | RSS after start | RSS after load | site-packages (no pip/setuptools) |",
        "| --- | --- | --- | --- |",
        *(
            f"| {name} | {int(load_[name]['rss_start']) / 2**20:.0f} MiB | "
            f"{int(load_[name]['rss_after_load']) / 2**20:.0f} MiB | {sizes[name] / 1e6:.0f} MB |"
            for name in load_
        ),
        "",
        f"- RSS after start, rendered / bare FastAPI floor: **{rss(r) / rss(b):.2f}x**; "
        f"/ raw ASGI floor: {rss(r) / rss(a):.2f}x",
        f"- runtime dependencies, rendered / naive: **{sizes[r] / sizes[n]:.2f}x** "
        "(target <= 0.8x)",
        f"- RSS after start, rendered with `TASKS_WARM_UP=false` / bare FastAPI floor: "
        f"{rss(NO_WARM_UP) / rss(b):.2f}x; the Cloud Tasks client's share: "
        f"{(rss(r) - rss(NO_WARM_UP)) / 2**20:.0f} MiB. By default "
        "the Cloud Tasks client (gRPC, protobuf) is created once the server listens, so that the "
        "first `.defer()` does not wait for it (see the idle-instance table above); the "
        "difference is that client.",
        "",
        "## Import time of the app module (`python -X importtime`)",
        "",
        *(
            line
            for name, entries in imports.items()
            for line in (
                f"**{name}**: {float(entries[0][1]) * 1000:.0f} ms in all; largest direct imports:",
                "",
                *(
                    f"- `{module}` {float(seconds) * 1000:.0f} ms"
                    for module, seconds in entries[1:9]
                ),
                "",
            )
        ),
    ]
    text = "\n".join(lines) + "\n"
    # What other benchmarks wrote into the page (bench_container.py's section) stays.
    kept = marked_sections(out.read_text()) if out.exists() else {}
    out.write_text("\n".join([text, *kept.values()]))
    return text


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=5, help="of each load run")
    parser.add_argument("--load-rounds", type=int, default=3, help="load runs per contender")
    parser.add_argument("--latency", type=float, default=0.03)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        paths = build(Path(tmp))
        with local_google(paths["project"], paths["dev_python"], args.latency) as google:
            contenders_ = define(paths, google)
            cold: dict[str, list[float]] = {c.name: [] for c in contenders_}
            enqueue: dict[str, list[float]] = {c.name: [] for c in contenders_ if c.enqueue}
            idle = {name: list[float]() for name in enqueue}
            for _ in range(args.runs):
                for contender in contenders_:
                    healthy, enqueued = cold_start(contender)
                    cold[contender.name].append(healthy)
                    if enqueued is not None:
                        enqueue[contender.name].append(enqueued)
                        idle[contender.name].append(idle_enqueue(contender))
            imports = {}
            for contender in contenders_:
                if contender.import_module:
                    env = {**os.environ, **contender.env}
                    entries = import_profile(
                        contender.python, contender.import_module, contender.cwd, env
                    )
                    imports[contender.name] = [[e.package, e.cumulative] for e in entries[:10]]
            # Load runs alternate between contenders too, and each figure is
            # the median run's: one noisy stretch of the machine cannot decide
            # a ratio on its own.
            rounds: dict[str, list[dict[str, Any]]] = {c.name: [] for c in contenders_}
            for _ in range(args.load_rounds):
                for contender in contenders_:
                    rounds[contender.name].append(load(contender, args.seconds))
            loads = {name: median_load(runs) for name, runs in rounds.items()}
        sizes = {c.name: site_packages_bytes(c.python) for c in contenders_}
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "command": "make bench",
        "machine": f"{machine()}, {platform.system()} {platform.release()}",
        "latency_ms": round(args.latency * 1000),
        "load_seconds": args.seconds,
        "load_rounds": args.load_rounds,
        "cold_start": {k: asdict(Summary.of(v)) for k, v in cold.items()},
        "first_enqueue": {k: asdict(Summary.of(v)) for k, v in enqueue.items()},
        "idle_seconds": IDLE_SECONDS,
        "idle_enqueue": {k: asdict(Summary.of(v)) for k, v in idle.items()},
        "load": loads,
        "site_packages": sizes,
        "imports": imports,
    }
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "service.json").write_text(json.dumps(results, indent=2) + "\n")
    docs = TEMPLATE / "docs"
    docs.mkdir(exist_ok=True)
    print(report(results, docs / "benchmarks.md"))
    chart_python = requirements_env(
        BENCH / "requirements-chart.txt", Path(tempfile.mkdtemp()) / "chart"
    )
    chart_input = out / "service.json"
    cold_rows = [{"contender": k, **v} for k, v in results["cold_start"].items()]
    chart_input.with_name("chart.json").write_text(json.dumps({"cold_start": cold_rows}))
    subprocess.run(
        [str(chart_python), str(BENCH / "chart.py"), str(chart_input.with_name("chart.json")),
         str(docs / "benchmarks-cold-start.png")],
        check=True,
    )  # fmt: skip


if __name__ == "__main__":
    main()
