"""Desired-state deployments end to end: specs on the broker, agents reconciling, frames flowing."""

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
from edge.desired import Removal, decode_record, encode_record
from edge.frames import decode_frame, decode_value, encode_frame
from edge.graph import DeploymentSpec, encode_spec, parse_spec
from edge.settings import load_settings
from edge.topics import Topics

SAMPLES = str(Path(__file__).with_name("sample_tasks.py"))
TIMEOUT = 10.0


class World:
    """A namespace of our own on a broker, a watcher bus, and helpers to publish and observe."""

    def __init__(self, url, tmp_path: Path) -> None:
        self.url = url
        self.ns = f"t{uuid.uuid4().hex[:10]}"
        self.topics = Topics(self.ns)
        self.tmp_path = tmp_path
        self.bus = Bus(url)

    def settings(self, agent_id: str = "a1", **kw):
        return load_settings(broker=str(self.url), namespace=self.ns, agent_id=agent_id,
                             data_dir=self.tmp_path / agent_id, **kw)

    def agent(self, agent_id: str = "a1") -> Agent:
        return Agent(self.settings(agent_id), task_sources=[SAMPLES])

    async def deploy(self, spec: dict) -> None:
        await self.bus.publish(self.topics.deployment(spec["id"]), encode_spec(parse_spec(spec)), qos=1, retain=True)

    async def remove(self, dep: str, version: int = 1000) -> None:
        """A removal record (edge.desired), as the controller publishes: every version up to ``version`` goes."""
        await self.bus.publish(self.topics.deployment(dep), encode_record(Removal(dep, version, 1)), qos=1,
                               retain=True)

    async def status(self, dep: str, task: str, predicate, timeout: float = TIMEOUT) -> dict | None:
        """Wait for the task's retained status to satisfy ``predicate`` (None: cleared)."""
        async with self.bus.subscribe(self.topics.task_status(dep, task)) as sub, asyncio.timeout(timeout):
            while True:
                msg = await sub.get()
                status = decode_value(msg.payload) if msg.payload else None
                if predicate(status):
                    return status

    async def values(self, topic: str, send: list[tuple[str, object]], count: int) -> list:
        """Publish frames and collect ``count`` values arriving on ``topic``."""
        async with self.bus.subscribe(topic) as sub:
            for t, v in send:
                await self.bus.publish(t, encode_frame(v))
            async with asyncio.timeout(TIMEOUT):
                return [decode_frame((await sub.get()).payload).value for _ in range(count)]


@pytest.fixture
async def world(broker, tmp_path):
    w = World(broker.url, tmp_path)
    async with w.bus:
        yield w


def running(status):
    return status is not None and status["state"] == "running"


def scale_spec(dep="demo", factor=2.0, version=1, extra_tasks=(), agent="a1"):
    return {"id": dep, "version": version,
            "tasks": [{"id": "scale", "type": "scale", "agent": agent, "config": {"factor": factor}}, *extra_tasks],
            "edges": [{"from": f"topic:in/{dep}", "to": "scale.in"}, {"from": "scale.out", "to": f"topic:out/{dep}"}]}


async def test_spec_runs_and_frames_flow(world):
    async with world.agent() as agent:
        await world.deploy(scale_spec())
        status = await world.status("demo", "scale", running)
        assert status["agent"] == "a1" and status["type"] == "scale" and status["version"] == 1
        got = await world.values("out/demo", [("in/demo", 1), ("in/demo", 2.5)], 2)
        assert got == [2.0, 5.0]
        stream = world.topics.stream("demo", "scale", "out")  # the output's own stream topic too
        assert await world.values(stream, [("in/demo", 4)], 1) == [8.0]
        catalog = next(t for t in agent.catalog() if t["name"] == "scale")
        assert catalog["inputs"] == {"in": {"content": "number"}}
        assert catalog["config_default"] == {"factor": 2.0}


async def test_redeploy_restarts_only_what_changed(world):
    counter = {"id": "count", "type": "counter", "agent": "a1", "config": {"interval_ms": 20}}
    async with world.agent():
        await world.deploy(scale_spec(extra_tasks=[counter]))
        await world.status("demo", "scale", running)
        await world.status("demo", "count", running)
        async with world.bus.subscribe(world.topics.task_status("demo", "count")) as count_statuses:
            await world.deploy(scale_spec(factor=10, version=2, extra_tasks=[counter]))
            status = await world.status("demo", "scale", lambda s: running(s) and s["version"] == 2)
            assert await world.values("out/demo", [("in/demo", 3)], 1) == [30.0]
            states = [decode_value(m.payload)["state"] for m in _drain(count_statuses)]
        assert "starting" not in states and "stopped" not in states  # the counter was left alone
        assert status["restarts"] == 0


def _drain(sub):
    out = []
    while sub.queued:
        out.append(sub.get_nowait())
    return out


async def test_invalid_config_and_unknown_type_do_not_stop_the_others(world):
    tasks = [{"id": "bad", "type": "scale", "agent": "a1", "config": {"factor": -1}},
             {"id": "alien", "type": "no_such_type", "agent": "a1"}]
    async with world.agent():
        await world.deploy(scale_spec(extra_tasks=tasks))
        bad = await world.status("demo", "bad", lambda s: s and s["state"] == "invalid")
        assert "factor" in bad["error"] and "greater than 0" in bad["error"]
        alien = await world.status("demo", "alien", lambda s: s and s["state"] == "invalid")
        assert "unknown task type 'no_such_type'" in alien["error"] and "scale" in alien["error"]
        await world.status("demo", "scale", running)
        assert await world.values("out/demo", [("in/demo", 1)], 1) == [2.0]


@pytest.mark.expect_errors(r"\(crasher\) crashed")
async def test_crash_loop_backs_off_shows_failed_and_spares_neighbours(world):
    crasher = {"id": "crash", "type": "crasher", "agent": "a1"}
    spec = scale_spec(extra_tasks=[crasher])
    spec["edges"].append({"from": "topic:in/demo", "to": "crash.in"})
    async with world.agent():
        await world.deploy(spec)
        await world.status("demo", "crash", running)
        await world.status("demo", "scale", running)

        async def feed():
            for i in range(200):
                await world.bus.publish("in/demo", encode_frame(i))
                await asyncio.sleep(0.02)

        feeder = asyncio.ensure_future(feed())
        try:
            failed = await world.status("demo", "crash", lambda s: s and s["state"] == "failed", timeout=15)
        finally:
            feeder.cancel()
        assert "RuntimeError: cannot handle" in failed["error"] and failed["restarts"] >= 3
        async with world.bus.subscribe("out/demo") as out:  # the neighbour still works (frames of the
            await world.bus.publish("in/demo", encode_frame(0.5))  # feeder may still be in flight)
            async with asyncio.timeout(TIMEOUT):
                while decode_frame((await out.get()).payload).value != 1.0:
                    pass


async def test_removed_task_and_deleted_deployment_are_stopped_and_cleared(world):
    counter = {"id": "count", "type": "counter", "agent": "a1"}
    async with world.agent() as agent:
        await world.deploy(scale_spec(extra_tasks=[counter]))
        await world.status("demo", "count", running)
        await world.deploy(scale_spec(version=2))
        assert await world.status("demo", "count", lambda s: s is None) is None
        await world.remove("demo")
        await world.status("demo", "scale", lambda s: s is None)
        saved = agent.state_dir / "deployments" / "demo.cbor"
        async with asyncio.timeout(TIMEOUT):  # what it keeps is the removal record, not the spec
            while agent.instances or not isinstance(decode_record("demo", saved.read_bytes()), Removal):
                await asyncio.sleep(0.02)


async def test_a_removal_while_the_agent_was_away_stops_it_when_it_returns(world):
    async with world.agent() as agent:
        await world.deploy(scale_spec(version=3))
        await world.status("demo", "scale", running)
    await world.remove("demo", version=3)  # the agent is offline: it finds the record when it returns
    async with world.agent() as agent:
        async with asyncio.timeout(TIMEOUT):
            while agent.instances or "demo" in agent.specs:
                await asyncio.sleep(0.02)
        assert agent.removed["demo"].version == 3 and agent.republished == 0


async def test_an_older_spec_on_the_broker_is_replaced_by_the_agents_newer_copy(world):
    async with world.agent() as agent:
        await world.deploy(scale_spec(version=5, factor=3.0))
        await world.status("demo", "scale", lambda s: running(s) and s["version"] == 5)
        await world.deploy(scale_spec(version=4))  # e.g. a broker restored from an old save
        async with world.bus.subscribe(world.topics.deployment("demo")) as specs, asyncio.timeout(TIMEOUT):
            while (spec := decode_record("demo", (await specs.get()).payload)) is None or spec.version != 5:
                pass
        assert isinstance(spec, DeploymentSpec) and agent.republished >= 1
        assert agent.instances[("demo", "scale")].assignment.version == 5


async def test_tasks_pinned_elsewhere_are_not_run_here(world):
    async with world.agent("a1") as a1, world.agent("a2") as a2:
        await world.deploy(scale_spec(agent="a2"))
        await world.status("demo", "scale", lambda s: running(s) and s["agent"] == "a2")
        assert not a1.instances and list(a2.instances) == [("demo", "scale")]


@pytest.mark.expect_errors("ignored an invalid spec")
async def test_garbage_specs_are_counted_and_ignored(world):
    async with world.agent() as agent:
        await world.bus.publish(world.topics.deployment("junk"), b"\xff\x00 not cbor", qos=1, retain=True)
        await world.bus.publish(world.topics.deployment("wrongid"), encode_spec(parse_spec(scale_spec("other"))),
                                qos=1, retain=True)
        await world.deploy(scale_spec())
        await world.status("demo", "scale", running)
        assert agent.errors == 2
        for dep in ("junk", "wrongid"):
            await world.remove(dep)


async def test_resumes_saved_specs_before_the_broker_is_back(tmp_path):
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    w = World(url, tmp_path / "w")
    async with MosquittoBroker(port=port, data_dir=tmp_path / "b1", persistence=False), w.bus, w.agent():
        await w.deploy(scale_spec())
        await w.status("demo", "scale", running)
    # the broker is gone (and forgot everything); the agent restarts from its saved spec
    async with w.agent() as agent:
        async with asyncio.timeout(TIMEOUT):
            while not (agent.instances and agent.instances[("demo", "scale")].state == "running"):
                await asyncio.sleep(0.02)
        assert not agent.bus.is_connected
        async with MosquittoBroker(port=port, data_dir=tmp_path / "b2", persistence=False):
            w.bus = Bus(url)
            async with w.bus:
                await agent.bus.wait_connected(TIMEOUT)
                # the new broker has no spec: it lost it, so the agent keeps running it and publishes
                # its copy again (before removal had to be explicit, it stopped and deleted it)
                async with w.bus.subscribe(w.topics.deployment("demo")) as specs, asyncio.timeout(TIMEOUT):
                    while decode_record("demo", (await specs.get()).payload) != agent.specs["demo"]:
                        pass
                assert agent.instances[("demo", "scale")].state == "running" and agent.republished == 1


async def test_killed_agent_process_resumes_its_tasks(world, tmp_path):
    env = {**os.environ, "EDGE_BROKER": str(world.url), "EDGE_NAMESPACE": world.ns, "EDGE_AGENT_ID": "a1",
           "EDGE_DATA_DIR": str(tmp_path / "a1")}
    cmd = [sys.executable, "-m", "edge", "agent", "--tasks", SAMPLES]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await world.deploy(scale_spec())
        await world.status("demo", "scale", running, timeout=20)
        assert await world.values("out/demo", [("in/demo", 1)], 1) == [2.0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        state = await world.status("demo", "scale", lambda s: True)  # retained: still says running
        assert state["state"] == "running"
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        async with world.bus.subscribe(world.topics.agent_state("a1")) as states, asyncio.timeout(20):
            while not (s := decode_value((await states.get()).payload))["online"] or s["epoch"] < 2:
                pass
        await world.status("demo", "scale", running, timeout=20)
        assert await world.values("out/demo", [("in/demo", 5)], 1) == [10.0]
    finally:
        proc.kill()
        proc.wait(5)


async def test_fn_task_script_is_deployed_to_by_a_spec(world, tmp_path):
    script = str(Path(__file__).with_name("adder_script.py"))
    env = {**os.environ, "EDGE_NAMESPACE": world.ns, "EDGE_DATA_DIR": str(tmp_path / "fn")}
    proc = subprocess.Popen([sys.executable, script, "--broker", str(world.url), "--id", "adders"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        async with world.bus.subscribe(world.topics.agent_catalog("adders")) as catalogs, asyncio.timeout(20):
            catalog = decode_value((await catalogs.get()).payload)
        (adder,) = catalog["types"]
        assert adder["name"] == "adder" and set(adder["inputs"]) == {"a", "b"} and list(adder["outputs"]) == ["out"]
        spec = {"id": "sum", "tasks": [{"id": "add", "type": "adder", "agent": "adders"}],
                "edges": [{"from": "topic:in/a", "to": "add.a"}, {"from": "topic:in/b", "to": "add.b"},
                          {"from": "add.out", "to": "topic:out/sum"}]}
        await world.deploy(spec)
        await world.status("sum", "add", running)
        # MQTT keeps order per topic only (rumqttd may reorder across topics): feed one at a time
        await world.bus.publish("in/a", encode_frame(1))
        assert await world.values("out/sum", [("in/b", 2)], 1) == [3]
        assert await world.values("out/sum", [("in/a", 40)], 1) == [42]
        spec["tasks"][0]["config"] = {"synchronized": True}
        spec["version"] = 2
        await world.deploy(spec)
        await world.status("sum", "add", lambda s: running(s) and s["version"] == 2)
        await world.bus.publish("in/a", encode_frame(5))
        assert await world.values("out/sum", [("in/b", 6)], 1) == [11]
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert "Traceback" not in stderr
