"""Agent footprint: time from ``edge agent`` start to its birth on the broker, RSS idle, RSS with 10 tasks.

    python bench/footprint.py [--rounds 3] [--json out.json] [--baseline DIR] [--settle 3]

Two agents per round: ``edge agent`` as installed (with every extra installed here) and the same
with PyAV hidden, as the core install runs it. Prints the machine first (as the other benchmarks
do), then one line per figure of the installed agent with its target and whether the median met
it, then a ``#`` line for the core install. With ``--baseline DIR`` (a checkout of another
version, e.g. ``git archive <commit> | tar -x -C DIR``) a third agent per round runs that
version's code, interleaved with the others so that the machine's load is the same for both, and
a ``#`` line gives this version's figures as ratios to it (birth time on a shared machine varies
from run to run; the ratio within one run does not). JSON: ``{"rounds": [...], "summary":
{"birth_s", "rss_idle_mb", "rss_10_tasks_mb"}, "targets": {...}, "met": {...}, "core": {"rounds":
[...], "summary": {...}}}``, and ``"baseline": {"dir", "rounds", "summary", "ratios"}`` with one.

Each round starts a fresh Mosquitto on a free loopback port and a fresh ``edge agent`` process;
RSS is read from /proc. Targets (benchmarks issue): under 60 MB idle, birth within 1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SAMPLES = HERE.parent / "tests" / "agent" / "sample_tasks.py"  # the task types soak.py uses too
sys.path.insert(0, str(HERE.parent))
TARGETS = {"birth_s": 1.5, "rss_idle_mb": 60.0}  # the benchmarks issue's targets
SETTLE = 3.0  # s after birth (and after the 10 tasks run) before RSS is read: imports and first allocations done


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# the agent as ``edge agent`` runs it, and the same with PyAV hidden: what the core install costs
# (the media entry point then fails to load and its types are listed as unavailable)
COMMANDS = {
    "installed": ["-m", "edge", "agent"],
    "core": ["-c", "import sys; sys.modules['av'] = None; sys.argv[0] = 'edge'; from edge.cli import main; main()",
             "agent"],
}


async def one_round(tmp: Path, variant: str = "installed", root: Path | None = None,
                    settle: float = SETTLE) -> dict[str, Any]:
    """One agent's figures; ``root``: run the code of that directory instead of this checkout's; ``settle``:
    seconds the agent is left alone before each RSS reading."""
    from edge.broker import MosquittoBroker, free_port
    from edge.controller import Controller
    from edge.graph import parse_spec
    from edge.settings import load_settings

    port = free_port()
    ns = f"fp{uuid.uuid4().hex[:6]}"
    async with MosquittoBroker(port=port, data_dir=tmp / "broker", persistence=False):
        settings = load_settings(broker=f"mqtt://127.0.0.1:{port}", namespace=ns, agent_id="ctl",
                                 data_dir=tmp / "ctl")
        async with Controller(settings) as controller:
            env = {**os.environ, "EDGE_BROKER": f"mqtt://127.0.0.1:{port}", "EDGE_NAMESPACE": ns,
                   "EDGE_AGENT_ID": "fp", "EDGE_DATA_DIR": str(tmp / "agent"), "EDGE_LOG_LEVEL": "WARNING"}
            if root is not None:  # python -m puts the working directory first on the path: run from there
                env["PYTHONPATH"] = str(root)
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(sys.executable, *COMMANDS[variant], "--tasks", str(SAMPLES),
                                                        env=env, stdout=asyncio.subprocess.DEVNULL,
                                                        cwd=root or Path.cwd())
            try:
                await controller.fleet.wait_for(lambda f: "fp" in f.agents and f.agents["fp"].online
                                                 and f.agents["fp"].offers("counter"), 30)
                birth = time.perf_counter() - started
                await asyncio.sleep(settle)
                idle = rss_mb(proc.pid)
                spec = parse_spec({"id": "ten", "tasks": [{"id": f"c{i}", "type": "counter", "agent": "fp"}
                                                          for i in range(10)]})
                await controller.deploy(spec)
                await controller.fleet.wait_for(
                    lambda f: sum(s.state == "running" for s in f.tasks_of("ten")) == 10, 30)
                await asyncio.sleep(settle)
                busy = rss_mb(proc.pid)
            finally:
                proc.terminate()
                await proc.wait()
    return {"birth_s": birth, "rss_idle_mb": idle, "rss_10_tasks_mb": busy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--baseline", type=Path, help="a checkout of another version to compare with, same run")
    parser.add_argument("--settle", type=float, default=SETTLE, help="seconds before each RSS reading")
    args = parser.parse_args()
    print(machine(), flush=True)
    rounds: list[dict[str, Any]] = []
    core_rounds: list[dict[str, Any]] = []
    base_rounds: list[dict[str, Any]] = []
    agents = [("installed", None, rounds), ("core", None, core_rounds)]
    if args.baseline:
        agents.insert(1, ("installed", args.baseline.resolve(), base_rounds))
    for i in range(args.rounds):
        for variant, root, into in agents:
            with tempfile.TemporaryDirectory() as tmp:
                result = asyncio.run(one_round(Path(tmp), variant, root, args.settle))
            into.append(result)
            print(f"round {i + 1} ({'baseline' if root else variant}): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in result.items()), file=sys.stderr)
    summary = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    core = {key: statistics.median(r[key] for r in core_rounds) for key in core_rounds[0]}
    met = {key: summary[key] <= target for key, target in TARGETS.items()}
    print(f"agent birth after start   {summary['birth_s']:.2f} s   (target {TARGETS['birth_s']} s: "
          f"{'met' if met['birth_s'] else 'missed'})")
    print(f"agent RSS idle            {summary['rss_idle_mb']:.1f} MB  (target {TARGETS['rss_idle_mb']:.0f} MB: "
          f"{'met' if met['rss_idle_mb'] else 'missed'})")
    print(f"agent RSS with 10 tasks   {summary['rss_10_tasks_mb']:.1f} MB  "
          f"({summary['rss_10_tasks_mb'] - summary['rss_idle_mb']:+.1f} MB over idle)")
    core_met = core["rss_idle_mb"] <= TARGETS["rss_idle_mb"] and core["birth_s"] <= TARGETS["birth_s"]
    print(f"# without PyAV (the core install): birth {core['birth_s']:.2f} s, RSS idle {core['rss_idle_mb']:.1f} MB, "
          f"with 10 tasks {core['rss_10_tasks_mb']:.1f} MB: targets {'met' if core_met else 'missed'}")
    report: dict[str, Any] = {"rounds": rounds, "summary": summary, "targets": TARGETS, "met": met,
                              "core": {"rounds": core_rounds, "summary": core}}
    if base_rounds:
        base = {key: statistics.median(r[key] for r in base_rounds) for key in base_rounds[0]}
        ratios = {key: summary[key] / base[key] for key in base}
        print(f"# baseline {args.baseline}: birth {base['birth_s']:.2f} s, RSS idle {base['rss_idle_mb']:.1f} MB, "
              f"with 10 tasks {base['rss_10_tasks_mb']:.1f} MB; this version / baseline: birth "
              f"{ratios['birth_s']:.2f}, RSS idle {ratios['rss_idle_mb']:.2f}")
        report["baseline"] = {"dir": str(args.baseline), "rounds": base_rounds, "summary": base, "ratios": ratios}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def machine() -> str:
    """The machine line of bench/bus.py, and whether PyAV (the media extra) is installed: it costs ~20 MB."""
    from importlib.util import find_spec

    from bus import machine as bus_machine

    return f"{bus_machine()}; media extra (PyAV) {'installed' if find_spec('av') else 'not installed'}"


if __name__ == "__main__":
    main()
