"""Secret loading: ours against pydantic-settings' built-in source, same run.

    python bench/bench_secrets.py [--secrets 10] [--latency 0.05] [--runs 15]

Renders the default service, installs it, and loads the secrets from the local
Secret Manager (the rendered project's own fake) with the latency injected into
every call. Prints medians and the ratios the Secret Manager issue targets:
ours within 1.5x of one round trip, and at least 5x faster than the built-in.
"""

import argparse

from common import Summary, machine, probe_default_render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--secrets", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    samples = probe_default_render("secrets_probe.py", args.secrets, args.latency, args.runs)
    results = {name: Summary.of(values) for name, values in samples.items()}
    print(
        f"{args.secrets} secrets, {args.latency * 1000:.0f} ms per call, "
        f"{args.runs} runs, alternating; {machine()}"
    )
    for name, summary in results.items():
        print(f"  {name:<36} {summary.ms()}")
    floor = results["one round trip"].median
    ours = results["ours (sync client, thread pool)"].median
    print(f"ours / one round trip:        {ours / floor:.2f}x (target <= 1.5x)")
    builtin = results["pydantic-settings built-in source"].median
    print(f"built-in / ours:              {builtin / ours:.1f}x (target >= 5x)")
    print(f"async+gather / ours:          {results['async client + gather'].median / ours:.2f}x")


if __name__ == "__main__":
    main()
