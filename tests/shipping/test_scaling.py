"""Two sites, each with its own Mosquitto, bridged: one graph spans both (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import contextlib
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


async def test_a_fleet_split_across_two_bridged_brokers_is_one_fleet(tmp_path):
    """Agents on each of two bridged brokers, one controller: it lists all of them, a cold controller at either
    site has them all when synced() returns (retained messages cross the bridge and stay retained on both
    brokers), and one deployment runs on agents of both sites."""
    import importlib.util

    from edge.host import Host

    spec_module = importlib.util.spec_from_file_location("sample_tasks", SAMPLES)
    assert spec_module is not None and spec_module.loader is not None
    samples = importlib.util.module_from_spec(spec_module)
    spec_module.loader.exec_module(samples)
    port_a, port_b = free_port(), free_port()
    ns = f"f{uuid.uuid4().hex[:8]}"
    per_site = 15
    ids = {"a": [f"a{i:02d}" for i in range(per_site)], "b": [f"b{i:02d}" for i in range(per_site)]}

    def settings(port: int, name: str):
        return load_settings(broker=f"mqtt://127.0.0.1:{port}", namespace=ns, agent_id=name, data_dir=tmp_path / name)

    def unlisted(fleet) -> list[str]:
        """Each agent the fleet lacks, or has offline or without its catalog, and why."""
        return [f"{a}: " + ("unknown" if a not in fleet.agents else "offline" if not fleet.agents[a].online
                            else "no catalog") for site in ids.values() for a in site
                if a not in fleet.agents or not fleet.agents[a].online or not fleet.agents[a].types]

    def listed(fleet) -> bool:
        return all(a in fleet.agents and fleet.agents[a].online and fleet.agents[a].types
                   for site in ids.values() for a in site)

    hosts = [Host(settings(port_a if site == "a" else port_b, name), types=[samples.Counter, samples.Scale],
                  persist=False) for site, names in ids.items() for name in names]
    async with MosquittoBroker(port=port_a, data_dir=tmp_path / "a"), \
            MosquittoBroker(port=port_b, data_dir=tmp_path / "b", extra_config=bridge_config("to-a", port_a)), \
            contextlib.AsyncExitStack() as stack:
        for host in hosts:
            await stack.enter_async_context(host)
        controller = await stack.enter_async_context(Controller(settings(port_a, "hq")))
        await controller.fleet.wait_for(listed, 30)
        # site b's broker has site a's retained state once the bridge has carried it (a moment after hq saw it
        # on a, longer on a loaded machine): a live controller at b waits for that, then cold ones must find it all
        async with Controller(settings(port_b, "site-b")) as site_b:
            await site_b.fleet.wait_for(listed, 30)
        for port in (port_a, port_b):  # cold, at each site
            async with Controller(settings(port, f"cold{port}")) as cold:
                assert listed(cold.fleet), unlisted(cold.fleet)
        spec = parse_spec({"id": "split", "tasks": [
            {"id": f"t{i}", "type": "counter", "agent": name, "config": {"interval_ms": 1000}}
            for i, name in enumerate([*ids["a"][:3], *ids["b"][:3]])]})
        await controller.deploy(spec)
        await controller.fleet.wait_for(lambda f: [s.state for s in f.tasks_of("split")] == ["running"] * 6, 30)
        await controller.remove("split")
        await controller.fleet.wait_for(lambda f: not f.tasks_of("split"), 30)
