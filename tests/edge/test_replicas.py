"""``replicas: N``: N instances of a stateless task on different agents, each frame to one of them
(MQTT 5 shared subscriptions), one output stream; on Mosquitto and the embedded broker."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest

from agent import Agent
from edge.bus import Bus
from edge.controller import Controller
from edge.errors import SpecError
from edge.frames import decode_frame, encode_frame
from edge.graph import parse_spec
from edge.settings import load_settings

TASKS = str(Path(__file__).with_name("replica_tasks.py"))
TIMEOUT = 15.0
FRAMES = 60


@pytest.fixture
def ns() -> str:
    return f"r{uuid.uuid4().hex[:10]}"


def settings(broker, tmp_path, ns, name):
    return load_settings(broker=broker.url.geturl(), namespace=ns, agent_id=name, data_dir=tmp_path / name)


def spec(ns: str, replicas: int, *, type_: str = "stamp", **extra) -> dict:
    return {"id": "rep", "tasks": [{"id": "w", "type": type_, "replicas": replicas, **extra},
                                   {"id": "tally", "type": "tally"}],
            "edges": [{"from": f"topic:{ns}/jobs", "to": "w.in"}, {"from": "w.out", "to": "tally.in"}]}


async def edge_cli(env: dict[str, str], *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "edge", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def fleet_ready(controller, agents):
    await controller.fleet.wait_for(lambda f: all(a in f.agents and f.agents[a].online and f.agents[a].types
                                                  for a in agents), TIMEOUT)


def running(fleet, keys) -> bool:
    return all((s := fleet.statuses.get(("rep", key))) is not None and s.state == "running" for key in keys)


async def test_each_frame_goes_to_one_replica_and_out_on_one_stream(broker, tmp_path, ns):
    async with Agent(settings(broker, tmp_path, ns, "a1"), task_sources=[TASKS]) as a1, \
            Agent(settings(broker, tmp_path, ns, "a2"), task_sources=[TASKS]) as a2, \
            Controller(settings(broker, tmp_path, ns, "ctl")) as controller, \
            Bus(broker.url.geturl()) as bus:
        await fleet_ready(controller, ["a1", "a2"])
        result = await controller.deploy(parse_spec(spec(ns, 3)))
        placed = result.spec.task("w")
        # one replica per agent first; the third goes to the less loaded agent (a tie: by id)
        assert placed.agents == ("a1", "a2", "a1")
        assert result.spec.task("tally").agent == "a2"
        await controller.fleet.wait_for(lambda f: running(f, ["w.0", "w.1", "w.2", "tally"]), TIMEOUT)
        assert [controller.fleet.statuses[("rep", k)].agent for k in ("w.0", "w.1", "w.2")] == ["a1", "a2", "a1"]
        assert controller.fleet.load() == {"a1": 2, "a2": 2}
        stream = controller.topics.stream("rep", "w", "out")
        tallies = controller.topics.stream("rep", "tally", "out")
        async with bus.subscribe(stream, qos=1) as out, bus.subscribe(tallies, qos=1) as counts:
            for i in range(FRAMES):
                await bus.publish(f"{ns}/jobs", encode_frame(i, seq=i), qos=1)
            got: list[int] = []
            by: dict[str, int] = {}
            async with asyncio.timeout(TIMEOUT):
                while len(got) < FRAMES:
                    value = decode_frame((await out.get()).payload).value
                    got.append(value["n"])
                    by[value["by"]] = by.get(value["by"], 0) + 1
                last = 0
                while last < FRAMES:  # the consumer of the one stream takes every frame of all replicas
                    last = decode_frame((await counts.get()).payload).value
        assert sorted(got) == list(range(FRAMES))  # each frame processed exactly once
        assert set(by) == {"rep/w.0", "rep/w.1", "rep/w.2"}, by  # by every replica, two of them on one agent
        taken = [i.task.in_metrics["in"].frames for host in (a1, a2) for k, i in host.instances.items()
                 if k[1].startswith("w.") and i.task is not None]
        assert sum(taken) == FRAMES and len(taken) == 3
        tally = controller.fleet.statuses[("rep", "tally")]
        assert tally.error is None
        # edge ls: a row per replica, each with its agent; the deployment counts its instances
        env = {**os.environ, "EDGE_BROKER": broker.url.geturl(), "EDGE_NAMESPACE": ns,
               "EDGE_DATA_DIR": str(tmp_path / "cli")}
        tasks_out = await edge_cli(env, "ls", "tasks")
        rows = {line.split()[0]: line.split()[1:4] for line in tasks_out.splitlines()[1:]}
        assert {k: v for k, v in rows.items() if k.startswith("rep/w")} == {
            "rep/w.0": ["stamp", "a1", "running"], "rep/w.1": ["stamp", "a2", "running"],
            "rep/w.2": ["stamp", "a1", "running"]}
        deployments_out = await edge_cli(env, "ls", "deployments")
        assert deployments_out.splitlines()[1].split()[:4] == ["rep", "1", "4", "4/4"]
        # removing the deployment removes every replica and its status
        assert await controller.remove("rep")
        await controller.fleet.wait_for(lambda f: not f.tasks_of("rep"), TIMEOUT)
        async with asyncio.timeout(TIMEOUT):
            while a1.instances or a2.instances:
                await asyncio.sleep(0.02)


async def test_fewer_replicas_stop_the_rest_and_one_agent_takes_them_all(broker, tmp_path, ns):
    async with Agent(settings(broker, tmp_path, ns, "a1"), task_sources=[TASKS]) as a1, \
            Controller(settings(broker, tmp_path, ns, "ctl")) as controller, \
            Bus(broker.url.geturl()) as bus:
        await fleet_ready(controller, ["a1"])
        first = await controller.deploy(parse_spec(spec(ns, 3)))
        assert first.spec.task("w").agents == ("a1", "a1", "a1")
        await controller.fleet.wait_for(lambda f: running(f, ["w.0", "w.1", "w.2"]), TIMEOUT)
        await controller.deploy(parse_spec(spec(ns, 2)))
        await controller.fleet.wait_for(lambda f: ("rep", "w.2") not in f.statuses and running(f, ["w.0", "w.1"]),
                                        TIMEOUT)
        assert sorted(k for k in a1.instances if k[1].startswith("w")) == [("rep", "w.0"), ("rep", "w.1")]
        async with bus.subscribe(controller.topics.stream("rep", "w", "out"), qos=1) as out:
            for i in range(FRAMES):
                await bus.publish(f"{ns}/jobs", encode_frame(i, seq=i), qos=1)
            got: list[int] = []
            async with asyncio.timeout(TIMEOUT):
                while len(got) < FRAMES:
                    got.append(decode_frame((await out.get()).payload).value["n"])
        assert sorted(got) == list(range(FRAMES))
        await controller.remove("rep")


async def test_replicas_of_a_type_with_state_are_refused(broker, tmp_path, ns):
    async with Agent(settings(broker, tmp_path, ns, "a1"), task_sources=[TASKS]), \
            Controller(settings(broker, tmp_path, ns, "ctl")) as controller:
        await fleet_ready(controller, ["a1"])
        bad = spec(ns, 1)
        bad["tasks"][1]["replicas"] = 2
        with pytest.raises(SpecError) as info:
            await controller.deploy(parse_spec(bad))
        assert info.value.errors == ["task 'tally': type 'tally' is not stateless, so it cannot have 2 replicas "
                                     "(docs/deployments.md#replicas)"]
        assert controller.fleet.types()["stamp"]["stateless"] is True
        assert "stateless" not in controller.fleet.types()["tally"]
