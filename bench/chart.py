"""Draw the cold-start chart: `python chart.py results.json out.png`.

Runs in its own small environment (matplotlib), so the template's test tools
stay lean.
"""

import json
import sys
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt


def main(results_path: str, out_path: str) -> None:
    results = json.loads(Path(results_path).read_text())
    rows = results["cold_start"]
    names = [row["contender"] for row in rows]
    medians = [row["median"] * 1000 for row in rows]
    lows = [m - row["low"] * 1000 for m, row in zip(medians, rows, strict=True)]
    highs = [row["high"] * 1000 - m for m, row in zip(medians, rows, strict=True)]
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.6 * len(rows)))
    ax.barh(names, medians, xerr=[lows, highs], color="#4285f4", capsize=4)
    for y, value in enumerate(medians):
        ax.text(value, y, f"  {value:.0f} ms", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("process start to first 200 on /healthz (ms): median, min-max")
    ax.set_title(f"Cold start, {rows[0]['runs']} runs each, one session")
    ax.set_xlim(0, max(m + h for m, h in zip(medians, highs, strict=True)) * 1.25)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
