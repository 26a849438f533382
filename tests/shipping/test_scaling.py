"""Two sites, each with its own Mosquitto, bridged: one graph spans both (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from agent import Agent
from edge.broker import MosquittoBroker, free_port
from edge.bus import Bus
from edge.controller import Controller
from edge.frames import decode_frame
from edge.graph import parse_spec
from edge.settings import load_settings

SAMPLES = str(Path(__file__).parents[1] / "agent" / "sample_tasks.py")


def bridge_config(name: str, remote_port: int) -> str:
    return (f"connection {name}\n"
            f"address 127.0.0.1:{remote_port}\n"
            "topic edge/v1/# both 1\n"
            "cleansession true\n"
            "restart_timeout 1 2\n")


async def test_a_graph_spans_two_bridged_brokers(tmp_path):
    port_a, port_b = free_port(), free_port()
    ns = f"s{uuid.uuid4().hex[:8]}"

    def settings(port: int, name: str):
        return load_settings(broker=f"mqtt://127.0.0.1:{port}", namespace=ns, agent_id=name, data_dir=tmp_path / name)

    async with MosquittoBroker(port=port_a, data_dir=tmp_path / "a"), \
            MosquittoBroker(port=port_b, data_dir=tmp_path / "b", extra_config=bridge_config("to-a", port_a)), \
            Agent(settings(port_a, "site-a"), task_sources=[SAMPLES]), \
            Agent(settings(port_b, "site-b"), task_sources=[SAMPLES]), \
            Controller(settings(port_a, "hq")) as controller:
        # the controller at site A sees the agent of site B through the bridge
        await controller.fleet.wait_for(lambda f: {"site-a", "site-b"} <= {a.id for a in f.online}
                                        and all(a.types for a in f.online), 20)
        spec = parse_spec({"id": "span", "tasks": [
            {"id": "count", "type": "counter", "agent": "site-a", "config": {"interval_ms": 20}},
            {"id": "triple", "type": "scale", "agent": "site-b", "config": {"factor": 3}}],
            "edges": [{"from": "count.out", "to": "triple.in"}]})
        await controller.deploy(spec)
        await controller.fleet.wait_for(
            lambda f: [s.state for s in f.tasks_of("span")] == ["running", "running"], 20)
        # frames counted at site A, tripled at site B, read back at site A
        async with Bus(f"mqtt://127.0.0.1:{port_a}") as bus, \
                bus.subscribe(controller.port_topic("span/triple.out")) as out, asyncio.timeout(20):
            values = [decode_frame((await out.get()).payload).value for _ in range(3)]
        assert all(v % 3 == 0 for v in values) and values == sorted(values)
        await controller.remove("span")
