"""Enqueue throughput: one reused async client, concurrent, against a client
per call, same run.

    python bench/bench_tasks.py [--tasks 1000] [--runs 5] [--latency 0.0]

`--latency` adds that many seconds to every CreateTask call, as the network
to the real Cloud Tasks would.

Renders the default service, installs it, and enqueues on the local Cloud Tasks
server (the rendered project's own) through the official client library.
"""

import argparse

from common import Summary, machine, probe_default_render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    samples = probe_default_render("tasks_probe.py", args.tasks, args.runs, args.latency)
    print(
        f"{args.tasks} tasks per run, {args.latency * 1000:.0f} ms added per call, "
        f"{args.runs} runs, alternating; {machine()}"
    )
    rates = {name: Summary.of([args.tasks / s for s in values]) for name, values in samples.items()}
    for name, rate in rates.items():
        print(f"  {name:<32} {rate.median:7.0f} tasks/s ({rate.low:.0f}-{rate.high:.0f})")
    ours = rates["ours: one client, concurrent"].median
    print(f"ours / naive: {ours / rates['naive: a client per call'].median:.1f}x")


if __name__ == "__main__":
    main()
