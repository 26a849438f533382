"""A fast producer feeding a slow consumer: the agent's memory stays bounded, the consumer's
drops are counted and visible in its status, and the agent keeps answering."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from edge.controller import Controller
from edge.graph import parse_spec
from edge.settings import load_settings

SAMPLES = str(Path(__file__).parents[1] / "agent" / "sample_tasks.py")
TIMEOUT = 20.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_slow_consumer_fast_producer_memory_bounded(broker, tmp_path):
    ns = f"f{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "EDGE_BROKER": broker.url.geturl(), "EDGE_NAMESPACE": ns, "EDGE_AGENT_ID": "busy",
           "EDGE_DATA_DIR": str(tmp_path / "busy"), "EDGE_QUEUE_SIZE": "200", "EDGE_LOG_LEVEL": "WARNING"}
    agent = subprocess.Popen([sys.executable, "-m", "edge", "agent", "--tasks", SAMPLES], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        settings = load_settings(broker=broker.url.geturl(), namespace=ns, data_dir=tmp_path / "ctl")
        async with Controller(settings) as ctl:
            await ctl.fleet.wait_for(lambda f: "busy" in f.agents and f.agents["busy"].online
                                     and f.agents["busy"].offers("flood"), TIMEOUT)
            await ctl.deploy(parse_spec({"id": "flow", "tasks": [
                {"id": "flood", "type": "flood", "agent": "busy"}, {"id": "slow", "type": "sluggish", "agent": "busy"}],
                "edges": [{"from": "flood.out", "to": "slow.in"}]}))
            await ctl.fleet.wait_for(lambda f: [s.state for s in f.tasks_of("flow")] == ["running", "running"],
                                     TIMEOUT)
            await asyncio.sleep(2)  # warm up: queues fill, allocator settles
            start = rss_mb(agent.pid)
            samples = []
            for _ in range(8):
                await asyncio.sleep(0.5)
                samples.append(rss_mb(agent.pid))
            await ctl.fleet.wait_for(
                lambda f: f.statuses[("flow", "slow")].metrics.get("dropped", 0) > 1000, TIMEOUT)
            slow = ctl.fleet.statuses[("flow", "slow")]
            flood = ctl.fleet.statuses[("flow", "flood")]
            assert slow.state == "running" and flood.state == "running"
            assert flood.metrics["outputs"]["out"]["frames"] > 10 * slow.metrics["inputs"]["in"]["frames"]
            await ctl.remove("flow")
            await ctl.fleet.wait_for(lambda f: not f.tasks_of("flow"), TIMEOUT)  # it still obeys at once
    finally:
        agent.terminate()
        agent.wait(15)
    assert max(samples) - start < 25, f"RSS grew from {start:.0f} MB to {max(samples):.0f} MB"
