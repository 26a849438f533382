"""Soak: an agent runs a small graph at a steady rate for minutes; its RSS and open file
descriptors must not grow beyond a stated bound.

    python bench/soak.py [--minutes 5] [--rate 200] [--png docs/images/soak.png] [--json out.json]

The graph: a QoS 1 ticker (``--rate`` frames/s) -> scale -> a sink on the broker, all on one
``edge agent`` process (the tasks of tests/agent/sample_tasks.py), against a Mosquitto started
here. The first minute is warm-up (allocator, caches); growth is measured from its end.
Prints one line per sample, then the verdict against the bounds (RSS growth <= 5 MB, fds +0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
SAMPLES = HERE.parent / "tests" / "agent" / "sample_tasks.py"
RSS_BOUND_MB = 5.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def soak(minutes: float, rate: float, warmup: float, interval: float) -> dict[str, Any]:
    from edge.broker import MosquittoBroker, free_port
    from edge.bus import Bus
    from edge.controller import Controller
    from edge.graph import parse_spec
    from edge.settings import load_settings

    samples: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"mqtt://127.0.0.1:{port}"
        ns = f"soak{uuid.uuid4().hex[:6]}"
        async with MosquittoBroker(port=port, data_dir=Path(tmp) / "broker", persistence=False):
            env = {**os.environ, "EDGE_BROKER": url, "EDGE_NAMESPACE": ns, "EDGE_AGENT_ID": "soak",
                   "EDGE_DATA_DIR": str(Path(tmp) / "agent"), "EDGE_LOG_LEVEL": "WARNING"}
            agent = await asyncio.create_subprocess_exec(sys.executable, "-m", "edge", "agent", "--tasks",
                                                         str(SAMPLES), env=env)
            try:
                settings = load_settings(broker=url, namespace=ns, data_dir=Path(tmp) / "ctl")
                received = 0

                def count(_message: object) -> None:
                    nonlocal received
                    received += 1

                async with Controller(settings) as ctl, Bus(url) as sink:
                    await sink.subscribe("soak/out", callback=count)
                    await ctl.fleet.wait_for(lambda f: "soak" in f.agents and f.agents["soak"].online
                                             and f.agents["soak"].offers("ticker"), 30)
                    await ctl.deploy(parse_spec({"id": "soak", "tasks": [
                        {"id": "tick", "type": "ticker", "agent": "soak", "config": {"interval_ms": 1000 / rate}},
                        {"id": "scale", "type": "scale", "agent": "soak"}],
                        "edges": [{"from": "tick.out", "to": "scale.in"},
                                  {"from": "scale.out", "to": "topic:soak/out"}]}))
                    start = time.monotonic()
                    end = start + minutes * 60
                    while time.monotonic() < end:
                        await asyncio.sleep(interval)
                        sample = {"t": time.monotonic() - start, "rss_mb": rss_mb(agent.pid), "fds": fds(agent.pid),
                                  "received": received}
                        samples.append(sample)
                        print(f"{sample['t']:7.0f} s  rss {sample['rss_mb']:6.1f} MB  fds {sample['fds']:3d}  "
                              f"frames {received}", file=sys.stderr, flush=True)
                    statuses = {s.task: s.state for s in ctl.fleet.tasks_of("soak")}
                    await ctl.remove("soak")
            finally:
                agent.terminate()
                await agent.wait()
    after = [s for s in samples if s["t"] >= warmup] or samples
    return {
        "minutes": minutes, "rate": rate, "samples": samples, "statuses": statuses,
        "rss_start_mb": after[0]["rss_mb"], "rss_end_mb": after[-1]["rss_mb"],
        "rss_max_mb": max(s["rss_mb"] for s in after), "rss_growth_mb": after[-1]["rss_mb"] - after[0]["rss_mb"],
        "fds_start": after[0]["fds"], "fds_end": after[-1]["fds"], "frames": samples[-1]["received"],
        "achieved_rate": samples[-1]["received"] / samples[-1]["t"],
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] / 60 for s in result["samples"]]
    rss = [s["rss_mb"] for s in result["samples"]]
    fd = [s["fds"] for s in result["samples"]]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 4), dpi=100)
    top.plot(t, rss, color="tab:blue")
    top.set_ylim(0, max(rss) * 1.3)
    top.set_ylabel("agent RSS (MB)")
    bottom.plot(t, fd, color="tab:orange")
    bottom.set_ylim(0, max(fd) * 1.5 + 1)
    bottom.set_ylabel("open fds")
    bottom.set_xlabel("minutes")
    top.set_title(f"soak: {result['achieved_rate']:.0f} frames/s for {result['minutes']:g} min, "
                  f"RSS {result['rss_growth_mb']:+.1f} MB, fds {result['fds_end'] - result['fds_start']:+d}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=200.0, help="frames per second through the graph")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before growth is measured")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--png", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(soak(args.minutes, args.rate, args.warmup, args.interval))
    ok_rss = result["rss_growth_mb"] <= RSS_BOUND_MB
    ok_fds = result["fds_end"] <= result["fds_start"]
    print(f"frames {result['frames']} at {result['achieved_rate']:.0f}/s; tasks {result['statuses']}")
    print(f"RSS {result['rss_start_mb']:.1f} -> {result['rss_end_mb']:.1f} MB (max {result['rss_max_mb']:.1f}), "
          f"growth {result['rss_growth_mb']:+.1f} MB, bound {RSS_BOUND_MB} MB: {'ok' if ok_rss else 'EXCEEDED'}")
    print(f"open fds {result['fds_start']} -> {result['fds_end']}: {'ok' if ok_fds else 'GREW'}")
    if args.png:
        plot(result, args.png)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    sys.exit(0 if ok_rss and ok_fds else 1)


if __name__ == "__main__":
    main()
