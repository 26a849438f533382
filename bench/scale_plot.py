"""Time to list versus agent count, from ``bench/scale.py --json`` files (one per agent count).

    python bench/scale_plot.py out-1000.json out-2000.json ... --png docs/images/bench-scale-agents.png
                               [--before before-1000.json ...]

Each file gives one point per curve: a running controller's time to list every agent, the CPU
its process spent meanwhile, and a cold controller's time (a curve skips a count where it never
listed them all, or a file without the figure); ``--before`` files are
drawn as the figures before the fleet's catalog cache, for comparison, ``--cold`` files (of
``bench/scale_cold.py``) as a cold controller against retained messages alone, ``--light`` files (of
``bench/scale.py --light N``: light agents beside real ones, births paced) as the largest and the median
time from an agent's birth until the running controller listed it, and a cold controller's time, against
the fleet's size (real and light agents). The targets of issue 20 (5 s listed, 10 s cold, at 10,000 agents)
are drawn as lines.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def points(paths: list[Path], key: str, form: str | None = None) -> tuple[list[int], list[float]]:
    """One point per file; ``form``: the summary of that catalog form (``scale_cold.py --catalog both``)."""
    def value(d: dict[str, Any]) -> float:
        summary = d["summary"]
        if form is not None and form in summary:
            summary = summary[form]
        elif form not in (None, "inline"):  # a file of one form (before --catalog): inline catalogs
            return math.nan
        return float(summary.get(key, math.nan))

    runs = sorted((int(d["args"]["agents"]) + int(d["args"].get("light", 0)), value(d))
                  for d in (json.loads(p.read_text()) for p in paths))
    return [n for n, v in runs if math.isfinite(v)], [v for _, v in runs if math.isfinite(v)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--before", type=Path, nargs="*", default=[])
    parser.add_argument("--cold", type=Path, nargs="*", default=[], help="bench/scale_cold.py --json files")
    parser.add_argument("--light", type=Path, nargs="*", default=[], help="bench/scale.py --light N --json files")
    parser.add_argument("--png", type=Path, required=True)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=100)
    curves: list[tuple[list[Path], str, str | None, str, dict[str, Any]]] = [
        (args.runs, "listed_s", None, "real agents: running controller lists all", {"marker": "o"}),
        (args.runs, "cold_listed_s", None, "real agents: cold controller lists all", {"marker": "s"}),
        (args.runs, "listed_cpu_s", None, "real agents: the running controller's CPU meanwhile",
         {"marker": "^", "linestyle": "--"}),
        (args.before, "listed_s", None, "running controller, before", {"marker": "x", "linestyle": ":"}),
        (args.cold, "cold_listed_s", "inline", "cold controller, retained fleet only (scale_cold.py)",
         {"marker": "D"}),
        (args.cold, "cold_listed_s", "shared", "... with shared catalogs", {"marker": "d", "linestyle": "-."}),
        (args.light, "birth_lag_max_s", None, "light fleet: birth to listed, largest", {"marker": "P"}),
        (args.light, "birth_lag_median_s", None, "light fleet: birth to listed, median",
         {"marker": "p", "linestyle": ":"}),
        (args.light, "cold_listed_s", None, "light fleet: cold controller lists all", {"marker": "*"}),
    ]
    for paths, key, form, label, style in curves:
        if paths:
            xs, ys = points(paths, key, form)
            if not xs:
                continue
            ax.plot(xs, ys, label=label, **style)
            for x, y in zip(xs, ys, strict=True):
                ax.annotate(f"{y:.1f} s", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.axhline(5, color="tab:green", linewidth=0.8, linestyle="--", label="target: listed within 5 s (10,000)")
    ax.axhline(10, color="tab:red", linewidth=0.8, linestyle="--", label="target: cold within 10 s (10,000)")
    ax.set_xlabel("agents (real edge.host.Host, or light and 100 real: --light; shared catalog; one Mosquitto)")
    ax.set_ylabel("seconds")
    ax.set_yscale("log")
    ax.set_title("bench/scale.py: time to list the fleet (2 shared cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png)


if __name__ == "__main__":
    main()
