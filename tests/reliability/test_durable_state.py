"""Desired state survives the broker losing its state (issue 22, part 2).

A kill -9 of Mosquitto one second after a deploy loses nothing (it saves on every change); the
embedded broker (retained messages in memory only) restarted under an agent running 150
deployments gets them all back from the agent, on the same MQTT 5 port; an agent restarted with
150 deployments on the embedded broker reads them all (rumqttd sends at most 100 retained
messages per QoS 1 subscription); `edge ls deployments` lists all of them each time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from agent import Agent
from edge.broker import MosquittoBroker, free_port
from edge.bus import Bus
from edge.desired import decode_record
from edge.graph import DeploymentSpec, encode_spec, parse_spec
from edge.settings import load_settings
from edge.topics import Topics
from tests.conftest import require_embedded

SAMPLES = str(Path(__file__).parent.parent / "agent" / "sample_tasks.py")
TIMEOUT = 30.0
COUNT = 150


def tiny(dep: str) -> DeploymentSpec:
    """A deployment of one idle task (a scale waiting for input): cheap, 150 of them run anywhere."""
    return parse_spec({"id": dep, "tasks": [{"id": "s", "type": "scale", "agent": "a1"}],
                       "edges": [{"from": "topic:in/x", "to": "s.in"}]})


async def on_broker(url: str, topics: Topics, deps: list[str]) -> dict[str, object]:
    """What a fresh client finds retained on each deployment's topic (fetched one by one: no cap)."""
    found: dict[str, object] = {}
    async with Bus(url, client_id=f"look-{uuid.uuid4().hex[:8]}") as bus:
        for dep in deps:
            topic = topics.deployment(dep)
            async with bus.subscribe(topic, qos=1) as sub:
                try:
                    async with asyncio.timeout(0.5):
                        found[dep] = decode_record(dep, (await sub.get()).payload)
                except TimeoutError:
                    found[dep] = None
    return found


def ls_deployments(url: str, ns: str, tmp_path: Path) -> set[str]:
    out = subprocess.run([sys.executable, "-m", "edge", "ls", "deployments"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "EDGE_BROKER": url, "EDGE_NAMESPACE": ns,
                                          "EDGE_DATA_DIR": str(tmp_path / "cli")})
    assert out.returncode == 0, out.stderr
    return {line.split()[0] for line in out.stdout.splitlines()[1:] if line.strip()}


async def all_running(agent: Agent, deps: list[str]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not all(agent.instances.get((d, "s")) is not None
                      and agent.instances[(d, "s")].state == "running" for d in deps):
            await asyncio.sleep(0.05)


async def test_mosquitto_killed_one_second_after_a_deploy_keeps_it(tmp_path):
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    topics = Topics(f"k{uuid.uuid4().hex[:8]}")
    async with MosquittoBroker(port=port, data_dir=tmp_path / "broker") as broker:
        async with Bus(url, client_id="deployer") as bus:
            await bus.publish(topics.deployment("demo"), encode_spec(tiny("demo")), qos=1, retain=True)
            await asyncio.sleep(1.0)  # the scenario: a kill 1 s after the deploy (no agent holds it)
        assert broker._proc is not None
        os.kill(broker._proc.pid, signal.SIGKILL)
        async with asyncio.timeout(TIMEOUT):  # the supervisor starts it again on the same data dir
            while broker.restarts < 1 or not broker.running:
                await asyncio.sleep(0.05)
        async with asyncio.timeout(TIMEOUT):
            while True:
                try:
                    found = await on_broker(url, topics, ["demo"])
                    break
                except Exception:  # the restarted broker may not accept connections yet
                    await asyncio.sleep(0.1)
        assert found["demo"] == tiny("demo")
        # and it still runs: a fresh agent finds it, `edge ls deployments` lists it
        settings = load_settings(broker=url, namespace=topics.namespace, agent_id="a1", data_dir=tmp_path / "a1")
        async with Agent(settings, task_sources=[SAMPLES]) as agent:
            await all_running(agent, ["demo"])
        assert await asyncio.to_thread(ls_deployments, url, topics.namespace, tmp_path) == {"demo"}


async def test_embedded_broker_restart_under_an_agent_with_150_deployments(tmp_path):
    require_embedded()
    from edge.broker import EmbeddedBroker

    port = free_port()
    ns = f"e{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    deps = [f"d{i:03d}" for i in range(COUNT)]
    broker_dir = tmp_path / "broker"
    broker = EmbeddedBroker(port=port, data_dir=broker_dir)
    await broker.__aenter__()
    url = broker.url.geturl()  # with the ?v5=PORT hint: the agent speaks MQTT 5 on that port
    v5_port = broker.v5_port
    settings = load_settings(broker=url, namespace=ns, agent_id="a1", data_dir=tmp_path / "a1", transport="mqtt5")
    try:
        async with Agent(settings, task_sources=[SAMPLES]) as agent:
            async with Bus(url, client_id="deployer") as bus:
                for dep in deps:
                    await bus.publish(topics.deployment(dep), encode_spec(tiny(dep)), qos=1, retain=True)
            await all_running(agent, deps)
            epoch = agent.epoch

            await broker.__aexit__(None, None, None)  # rumqttd forgets every retained message
            broker = EmbeddedBroker(port=port, data_dir=broker_dir)
            await broker.__aenter__()
            assert broker.v5_port == v5_port  # the hint the agent was given still holds

            async with asyncio.timeout(TIMEOUT):  # it reconnects and publishes its copies again
                while agent.epoch == epoch or agent.republished < COUNT:
                    await asyncio.sleep(0.05)
            await all_running(agent, deps)
            found = await on_broker(str(broker.url), topics, deps)
            assert [d for d in deps if found[d] != tiny(d)] == []
            assert await asyncio.to_thread(ls_deployments, url, ns, tmp_path) == set(deps)
    finally:
        await broker.__aexit__(None, None, None)


async def test_agent_restart_with_150_deployments_on_the_embedded_broker(tmp_path, embedded_broker):
    ns = f"a{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    url = embedded_broker.url.geturl()
    deps = [f"d{i:03d}" for i in range(COUNT)]
    settings = load_settings(broker=url, namespace=ns, agent_id="a1", data_dir=tmp_path / "a1")
    async with Bus(url, client_id=f"deployer-{ns}") as bus:
        for dep in deps:
            await bus.publish(topics.deployment(dep), encode_spec(tiny(dep)), qos=1, retain=True)
    for _ in range(2):  # a fresh agent reads them all; restarted, it still runs them all
        async with Agent(settings, task_sources=[SAMPLES]) as agent:
            await all_running(agent, deps)
            assert set(agent.specs) == set(deps) and agent.republished == 0
    found = await on_broker(url, topics, deps)
    assert [d for d in deps if found[d] != tiny(d)] == []
    assert await asyncio.to_thread(ls_deployments, url, ns, tmp_path) == set(deps)


@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
async def test_a_removed_deployment_is_not_listed(tmp_path, kind, request):
    running = request.getfixturevalue(f"{kind}_broker")
    ns = f"r{uuid.uuid4().hex[:8]}"
    url = running.url.geturl()
    from edge.controller import Controller

    async with Controller(load_settings(broker=url, namespace=ns, data_dir=tmp_path / "ctl")) as ctl:
        await ctl.bus.publish(ctl.topics.deployment("gone"), encode_spec(tiny("gone")), qos=1, retain=True)
        await ctl.fleet.wait_for(lambda f: "gone" in f.deployments, TIMEOUT)
        assert await ctl.remove("gone")
    assert await asyncio.to_thread(ls_deployments, url, ns, tmp_path) == set()
    async with Controller(load_settings(broker=url, namespace=ns, data_dir=tmp_path / "ctl2")) as ctl:
        assert "gone" not in ctl.fleet.deployments and ctl.fleet.removed["gone"].version == 1
