"""Agent footprint: time from ``edge agent`` start to its birth on the broker, RSS idle, RSS with 10 tasks.

    python bench/footprint.py [--rounds 3] [--json out.json]

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


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def one_round(tmp: Path) -> dict[str, Any]:
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
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "edge", "agent", "--tasks",
                                                        str(SAMPLES), env=env)
            try:
                await controller.fleet.wait_for(lambda f: "fp" in f.agents and f.agents["fp"].online
                                                 and f.agents["fp"].offers("counter"), 30)
                birth = time.perf_counter() - started
                await asyncio.sleep(3)
                idle = rss_mb(proc.pid)
                spec = parse_spec({"id": "ten", "tasks": [{"id": f"c{i}", "type": "counter", "agent": "fp"}
                                                          for i in range(10)]})
                await controller.deploy(spec)
                await controller.fleet.wait_for(
                    lambda f: sum(s.state == "running" for s in f.tasks_of("ten")) == 10, 30)
                await asyncio.sleep(3)
                busy = rss_mb(proc.pid)
            finally:
                proc.terminate()
                await proc.wait()
    return {"birth_s": birth, "rss_idle_mb": idle, "rss_10_tasks_mb": busy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(one_round(Path(tmp)))
        rounds.append(result)
        print(f"round {i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items()), file=sys.stderr)
    summary = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    print(f"agent birth after start   {summary['birth_s']:.2f} s   (target 1.5 s)")
    print(f"agent RSS idle            {summary['rss_idle_mb']:.1f} MB  (target 60 MB)")
    print(f"agent RSS with 10 tasks   {summary['rss_10_tasks_mb']:.1f} MB")
    if args.json:
        args.json.write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
