"""The agent's presence on the broker: birth, catalog, will, epochs, clean shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import pytest

from agent import Agent
from edge.bus import Bus
from edge.controller import Fleet
from edge.frames import decode_value
from edge.settings import load_settings
from edge.topics import Topics


def settings_for(broker, tmp_path, agent_id="pi-1", namespace=None):
    return load_settings(broker=str(broker.url), agent_id=agent_id, data_dir=tmp_path,
                         namespace=namespace or f"ns{uuid.uuid4().hex[:8]}")


async def retained(url, topic, timeout=5.0):
    async with Bus(url) as bus, bus.subscribe(topic) as sub:
        async with asyncio.timeout(timeout):
            return decode_value((await sub.get()).payload)


async def test_birth_catalog_and_clean_shutdown(broker, tmp_path):
    settings = settings_for(broker, tmp_path)
    topics = Topics(settings.namespace)
    async with Agent(settings) as agent:
        await asyncio.wait_for(agent.started.wait(), 5)
        state = await retained(broker.url, topics.agent_state("pi-1"))
        assert state["online"] is True and state["epoch"] == 1
        assert state["version"] and state["host"]["pid"] == os.getpid()
        assert state["metrics"]["rss_mb"] > 10 and state["metrics"]["cpu_percent"] >= 0
        catalog = await retained(broker.url, topics.agent_catalog("pi-1"))
        assert catalog["agent"] == "pi-1" and isinstance(catalog["types"], list)
    state = await retained(broker.url, topics.agent_state("pi-1"))
    assert state["online"] is False and state["epoch"] == 1


async def test_epoch_increases_across_restarts(broker, tmp_path):
    settings = settings_for(broker, tmp_path)
    epochs = []
    for _ in range(3):
        async with Agent(settings) as agent:
            await asyncio.wait_for(agent.started.wait(), 5)
            epochs.append(agent.epoch)
    assert epochs == [1, 2, 3]


AGENT_CMD = [sys.executable, "-m", "edge", "agent"]


async def test_killed_agent_goes_offline_by_its_will_and_comes_back(broker, tmp_path):
    settings = settings_for(broker, tmp_path, agent_id="edge-7")
    env = {**os.environ, "EDGE_BROKER": str(broker.url), "EDGE_AGENT_ID": "edge-7",
           "EDGE_NAMESPACE": settings.namespace, "EDGE_DATA_DIR": str(tmp_path)}
    async with Bus(broker.url) as bus, Fleet(bus, Topics(settings.namespace)) as fleet:
        proc = subprocess.Popen(AGENT_CMD, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await fleet.wait_for(lambda f: "edge-7" in f.agents and f.agents["edge-7"].online, timeout=15)
            first_epoch = fleet.agents["edge-7"].epoch
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            await fleet.wait_for(lambda f: not f.agents["edge-7"].online, timeout=5)
            assert loop.time() - killed_at < 2.0  # the will, not the keep-alive
            assert fleet.agents["edge-7"].epoch == first_epoch
        finally:
            proc.kill()
            proc.wait(5)
        proc = subprocess.Popen(AGENT_CMD, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await fleet.wait_for(lambda f: f.agents["edge-7"].online, timeout=15)
            assert fleet.agents["edge-7"].epoch == first_epoch + 1
            proc.send_signal(signal.SIGTERM)  # a clean stop says offline itself
            assert proc.wait(10) == 0
            await fleet.wait_for(lambda f: not f.agents["edge-7"].online, timeout=5)
        finally:
            proc.kill()
            proc.wait(5)


async def test_agent_starts_before_the_broker_and_announces_when_it_comes(tmp_path):
    from edge.broker import MosquittoBroker, free_port

    port = free_port()
    settings = load_settings(broker=f"mqtt://127.0.0.1:{port}", agent_id="late", data_dir=tmp_path / "a")
    async with Agent(settings) as agent:
        assert not agent.bus.is_connected
        async with MosquittoBroker(port=port, data_dir=tmp_path / "b") as broker:
            await asyncio.wait_for(agent.started.wait(), 15)
            state = await retained(broker.url, Topics("default").agent_state("late"))
            assert state["online"] is True


@pytest.mark.expect_errors("could not load task types from .*broken.py")
async def test_task_types_from_edge_tasks_and_broken_sources(broker, tmp_path, monkeypatch):
    from pathlib import Path

    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_dependency_here\n")
    samples = Path(__file__).with_name("sample_tasks.py")
    monkeypatch.setenv("EDGE_TASKS", f"{samples}, {broken}")
    settings = load_settings(broker=broker.url.geturl(), agent_id="typed", data_dir=tmp_path)
    async with Agent(settings, task_sources=settings.task_sources) as agent:
        await asyncio.wait_for(agent.started.wait(), 5)
        catalog = await retained(broker.url, Topics(settings.namespace).agent_catalog("typed"))
    entries = {t["name"]: t for t in catalog["types"]}
    assert {"scale", "crasher", "counter"} <= set(entries)
    assert entries["broken"]["available"] is False
    assert "no_such_dependency_here" in entries["broken"]["reason"]


async def test_stopping_while_reconciling_does_not_hang(broker, tmp_path):
    """A shutdown that lands while the agent is stopping removed tasks still finishes."""
    from pathlib import Path

    from edge.desired import Removal, encode_record
    from edge.graph import encode_spec, parse_spec

    settings = load_settings(broker=broker.url.geturl(), agent_id="busy", data_dir=tmp_path,
                             namespace=f"ns{uuid.uuid4().hex[:8]}")
    topics = Topics(settings.namespace)
    samples = str(Path(__file__).with_name("sample_tasks.py"))
    spec = parse_spec({"id": "d", "tasks": [{"id": f"t{i}", "type": "ticker", "agent": "busy"} for i in range(20)]})
    for version in range(1, 4):  # each round a newer version than the last round's removal
        agent = Agent(settings, task_sources=[samples])
        async with asyncio.timeout(20):
            async with agent, Bus(broker.url) as bus:
                await bus.publish(topics.deployment("d"), encode_spec(spec.model_copy(update={"version": version})),
                                  qos=1, retain=True)
                while len([i for i in agent.instances.values() if i.state == "running"]) < 20:
                    await asyncio.sleep(0.01)
                await bus.publish(topics.deployment("d"), encode_record(Removal("d", version)), qos=1, retain=True)
                while len(agent.instances) == 20:  # the agent has begun stopping them: leave now
                    await asyncio.sleep(0.001)


async def test_agents_with_one_id_in_two_namespaces_keep_their_connections(broker, tmp_path):
    """Client ids hold the namespace: two `pi-1`s on one broker would otherwise take over each
    other's connection (and persistent session) in turn, forever."""
    first = settings_for(broker, tmp_path / "a")
    second = settings_for(broker, tmp_path / "b")
    connects = {first.namespace: 0, second.namespace: 0}

    def counting(namespace):
        async def hook(bus):
            connects[namespace] += 1
        return hook

    async with Agent(first) as a:
        a.bus.on_connect(counting(first.namespace))
        await asyncio.wait_for(a.started.wait(), 5)
        async with Agent(second) as b:
            b.bus.on_connect(counting(second.namespace))
            await asyncio.wait_for(b.started.wait(), 5)
            await b.bus.wait_connected(5)
            before = dict(connects)
            await asyncio.sleep(1.0)  # a takeover would have bounced them within milliseconds
            assert a.bus.is_connected and b.bus.is_connected
            assert connects == before  # no reconnection
            assert a.bus.client_id != b.bus.client_id == f"agent-pi-1.{second.namespace}"
