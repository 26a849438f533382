"""The controller library against real brokers and real agents: fleet model, placement, history."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from pathlib import Path

import pytest

from agent import Agent
from edge.controller import Controller
from edge.errors import ConfigError, SpecError
from edge.frames import encode_value
from edge.graph import parse_spec
from edge.settings import load_settings

SAMPLES = str(Path(__file__).parents[1] / "agent" / "sample_tasks.py")
TIMEOUT = 10.0


@pytest.fixture
def ns():
    return f"c{uuid.uuid4().hex[:10]}"


def settings(broker, tmp_path, ns, name):
    return load_settings(broker=broker.url.geturl(), namespace=ns, agent_id=name, data_dir=tmp_path / name)


def spec(n_tasks: int, dep: str = "demo", **task_fields) -> dict:
    return {"id": dep, "tasks": [{"id": f"t{i}", "type": "counter", **task_fields} for i in range(n_tasks)]}


async def fleet_ready(controller, agents):
    await controller.fleet.wait_for(lambda f: all(a in f.agents and f.agents[a].online and f.agents[a].types
                                                  for a in agents), TIMEOUT)


async def test_placement_spreads_and_sticks(broker, tmp_path, ns):
    async with Agent(settings(broker, tmp_path, ns, "a1"), task_sources=[SAMPLES]), \
            Agent(settings(broker, tmp_path, ns, "a2"), task_sources=[SAMPLES]), \
            Controller(settings(broker, tmp_path, ns, "ctl")) as controller:
        await fleet_ready(controller, ["a1", "a2"])
        first = await controller.deploy(parse_spec(spec(4)))
        assert [t.agent for t in first.spec.tasks] == ["a1", "a2", "a1", "a2"]  # fewest tasks, ties by id
        await controller.fleet.wait_for(
            lambda f: sum(1 for s in f.tasks_of("demo") if s.state == "running") == 4, TIMEOUT)
        # an update keeps tasks where they run; a new task goes to the least loaded agent
        second = await controller.deploy(parse_spec({**spec(5), "tasks": list(reversed(spec(5)["tasks"]))}))
        agents = {t.id: t.agent for t in second.spec.tasks}
        assert agents == {"t0": "a1", "t1": "a2", "t2": "a1", "t3": "a2", "t4": agents["t4"]}
        assert second.spec.version == 2 and second.previous_version == 1
        status = controller.fleet.statuses[("demo", "t0")]
        assert status.agent == "a1" and status.type == "counter"
        assert controller.fleet.load() == {"a1": 3, "a2": 2} or controller.fleet.load() == {"a1": 2, "a2": 3}


async def test_deploy_refuses_what_cannot_run(broker, tmp_path, ns):
    async with Agent(settings(broker, tmp_path, ns, "a1"), task_sources=[SAMPLES]), \
            Controller(settings(broker, tmp_path, ns, "ctl")) as controller:
        await fleet_ready(controller, ["a1"])
        bad = {"id": "bad", "tasks": [{"id": "x", "type": "nope"}, {"id": "c", "type": "counter", "agent": "a1"},
                                       {"id": "s", "type": "scale"}],
               "edges": [{"from": "c.out", "to": "s.missing"}]}
        with pytest.raises(SpecError) as info:
            await controller.deploy(parse_spec(bad))
        assert info.value.errors == [
            "task 'x': unknown task type 'nope'",
            "s.missing: task type 'scale' has no input 'missing' (it has: in)",
            "task 'x': no online agent offers type 'nope'",
        ]
        assert "bad" not in controller.fleet.deployments
        # a pin to an agent that is not there (yet) is desired state, not an error
        result = await controller.deploy(parse_spec(spec(1, agent="pi-later")), dry_run=True)
        assert result.spec.tasks[0].agent == "pi-later" and not result.published


async def test_history_rollback_and_remove(broker, tmp_path, ns):
    async with Agent(settings(broker, tmp_path, ns, "a1"), task_sources=[SAMPLES]), \
            Controller(settings(broker, tmp_path, ns, "ctl")) as controller:
        await fleet_ready(controller, ["a1"])
        await controller.deploy(parse_spec(spec(1, config={"interval_ms": 100})))
        await controller.deploy(parse_spec(spec(1, config={"interval_ms": 200})))
        assert controller.history.versions("demo") == [1, 2]
        rolled = await controller.rollback("demo")
        assert rolled.spec.version == 3 and rolled.spec.tasks[0].config == {"interval_ms": 100}
        await controller.fleet.wait_for(lambda f: f.deployments["demo"].version == 3, TIMEOUT)
        with pytest.raises(ConfigError, match="no version 9"):
            await controller.rollback("demo", 9)
        assert await controller.remove("demo")
        await controller.fleet.wait_for(lambda f: "demo" not in f.deployments and not f.tasks_of("demo"), TIMEOUT)
        again = await controller.rollback("demo", 2)  # a removed deployment comes back, as the next version
        assert again.spec.version == 4
        await controller.remove("demo")


async def test_fleet_tracks_statuses_and_survives_garbage(broker, tmp_path, ns):
    async with Controller(settings(broker, tmp_path, ns, "ctl")) as controller:
        topics = controller.topics
        for topic in (topics.agent_state("junk"), topics.deployment("junk"), topics.task_status("junk", "t")):
            await controller.bus.publish(topic, b"\x9f not cbor", qos=1, retain=True)
        await controller.bus.publish(topics.agent_state("ok"), encode_value(
            {"online": True, "epoch": 3, "ts": 1, "metrics": {"cpu_percent": 1.5, "rss_mb": 40.0}}), qos=1,
            retain=True)
        await controller.fleet.wait_for(lambda f: "ok" in f.agents, TIMEOUT)
        async with asyncio.timeout(TIMEOUT):
            while controller.fleet.errors < 3:
                await asyncio.sleep(0.02)
        agent = controller.fleet.agents["ok"]
        assert agent.online and list(agent.history) == [(1, 1.5, 40.0)]
        await controller.bus.publish(topics.agent_state("ok"), encode_value({"online": False, "epoch": 2}), qos=1,
                                     retain=True)  # an older epoch: ignored
        await controller.bus.publish(topics.agent_state("ok"), encode_value({"online": False, "epoch": 3}), qos=1,
                                     retain=True)
        await controller.fleet.wait_for(lambda f: not f.agents["ok"].online, TIMEOUT)
        for topic in (topics.agent_state("junk"), topics.deployment("junk"), topics.task_status("junk", "t"),
                      topics.agent_state("ok")):
            await controller.bus.publish(topic, b"", qos=1, retain=True)


async def test_port_topic(broker, tmp_path, ns):
    async with Controller(settings(broker, tmp_path, ns, "ctl")) as controller:
        assert controller.port_topic("demo/add.out") == f"edge/v1/{ns}/streams/demo/add/out"
        with pytest.raises(ConfigError):
            controller.port_topic("demo-add-out")


async def test_each_version_is_stamped_with_when_and_from_where(broker, tmp_path, ns):
    async with Agent(settings(broker, tmp_path, ns, "a1"), task_sources=[SAMPLES]), \
            Controller(settings(broker, tmp_path, ns, "ctl"), via="cli") as controller, \
            Controller(settings(broker, tmp_path, ns, "other")) as other:
        await fleet_ready(controller, ["a1"])
        before = time.time_ns() // 1_000_000
        first = (await controller.deploy(parse_spec(spec(1, config={"interval_ms": 100})))).spec
        assert first.deployed is not None
        assert (first.deployed.via, first.deployed.host, first.deployed.replaced) == ("cli", socket.gethostname(),
                                                                                       None)
        assert before <= first.deployed.at <= time.time_ns() // 1_000_000
        # the stamp travels with the spec: every reader sees it, agents run the version regardless
        await other.fleet.wait_for(lambda f: "demo" in f.deployments, TIMEOUT)
        assert other.fleet.deployments["demo"].deployed == first.deployed
        second = (await other.deploy(parse_spec(spec(1, config={"interval_ms": 200})))).spec
        assert second.deployed is not None and (second.deployed.via, second.deployed.replaced) == ("api", 1)
        # a controller that did not deploy the version it replaces saves it first, stamp and all
        assert other.history.versions("demo") == [1, 2]
        assert other.history.get("demo", 1).deployed == first.deployed
        await controller.fleet.wait_for(lambda f: f.deployments["demo"].version == 2, TIMEOUT)
        rolled = (await controller.rollback("demo", 1)).spec
        assert rolled.deployed is not None and (rolled.deployed.rollback_of, rolled.deployed.replaced) == (1, 2)
        await controller.fleet.wait_for(lambda f: any(s.version == 3 and s.state == "running"
                                                      for s in f.tasks_of("demo")), TIMEOUT)
        await controller.remove("demo")
