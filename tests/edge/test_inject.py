"""Injecting a frame into an input of a running task (``Controller.inject``), through a real agent.

The frame goes on the task's inject topic, which the agent's instance reads beside the input's
source: an unwired input is fed, a wired one is fed without its producer's stream order counting
a gap, and what cannot be injected is refused in one line.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from agent import Agent
from edge import fn_task
from edge.bus import Bus
from edge.controller import Controller
from edge.errors import ConfigError
from edge.frames import decode_frame, decode_value, encode_frame
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.topics import TopicKind, Topics

TIMEOUT = 10.0


def test_inject_topics_are_built_and_parsed_in_one_place():
    topics = Topics("ns")
    assert topics.inject("pi", "d", "t", "a") == "edge/v1/ns/agents/pi/inject/d/t/a"
    assert topics.agent_injects("pi") == "edge/v1/ns/agents/pi/inject/+/+/+"
    parsed = topics.parse("edge/v1/ns/agents/pi/inject/d/t/a")
    assert (parsed.kind, parsed.agent_id, parsed.deployment_id, parsed.task_id, parsed.port) == (
        TopicKind.INJECT, "pi", "d", "t", "a")


async def _next_value(sub) -> object:
    async with asyncio.timeout(TIMEOUT):
        return decode_frame((await sub.get()).payload).value


async def test_a_frame_injected_into_an_input_comes_out_of_the_task(broker, tmp_path):
    ns = f"i{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)

    def settings(name: str):
        return load_settings(broker=broker.url.geturl(), namespace=ns, agent_id=name, data_dir=tmp_path / name)

    spec = parse_spec({"id": "inj", "tasks": [
        {"id": "src", "type": "calculator", "config": {"formula": "a + 1"}},
        {"id": "dbl", "type": "calculator", "config": {"formula": "a * 2"}}],
        "edges": [{"from": "src.out", "to": "dbl.a"}]})
    async with Agent(settings("pi")), Controller(settings("ctl")) as controller, \
            Bus(broker.url.geturl()) as probe, \
            probe.subscribe(topics.stream("inj", "src", "out")) as src_out, \
            probe.subscribe(topics.stream("inj", "dbl", "out")) as dbl_out:
        await controller.fleet.wait_for(lambda f: "pi" in f.agents and f.agents["pi"].offers("calculator"), TIMEOUT)
        with pytest.raises(ConfigError, match="inj is not deployed"):
            await controller.inject("inj", "src", "a", 1)
        await controller.deploy(spec)
        await controller.fleet.wait_for(
            lambda f: all(s.state == "running" for s in f.tasks_of("inj")) and len(f.tasks_of("inj")) == 2,
            TIMEOUT)
        # an unwired input: the frame is the only thing that feeds it, and flows on through the wire
        topic = await controller.inject("inj", "src", "a", 4)
        assert topic == topics.inject("pi", "inj", "src", "a")
        assert await _next_value(src_out) == 5
        assert await _next_value(dbl_out) == 10
        # a wired input: fed beside its source; the producer's stream order sees no gap for it
        await controller.inject("inj", "dbl", "a", 7)
        assert await _next_value(dbl_out) == 14
        await controller.inject("inj", "src", "a", 0)
        assert await _next_value(dbl_out) == 2
        # text into a number input is that input's error, counted; the task keeps running
        await controller.inject("inj", "dbl", "a", "seven")
        await controller.fleet.wait_for(
            lambda f: f.statuses[("inj", "dbl")].metrics.get("inputs", {}).get("a", {}).get("errors") == 1, TIMEOUT)
        metrics = controller.fleet.statuses[("inj", "dbl")].metrics["inputs"]["a"]
        assert metrics.get("gaps", 0) == 0 and metrics.get("duplicates", 0) == 0
        assert controller.fleet.statuses[("inj", "dbl")].state == "running"
        # what cannot be injected: one line each
        with pytest.raises(ConfigError, match="has no input 'b'"):
            await controller.inject("inj", "dbl", "b", 1)
        with pytest.raises(ConfigError, match="has no task 'nope'"):
            await controller.inject("inj", "nope", "a", 1)
        with pytest.raises(ConfigError, match="cannot send that value as a frame"):
            await controller.inject("inj", "dbl", "a", object())


@fn_task()
def plus_one(x: float) -> float:
    """Add one."""
    return x + 1


async def test_a_function_task_with_no_wired_input_is_fed_by_inject(broker, tmp_path):
    ns = f"i{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    settings = load_settings(broker=broker.url.geturl(), namespace=ns, agent_id="pi", data_dir=tmp_path)
    spec = parse_spec({"id": "fn", "tasks": [{"id": "p", "type": "plus_one", "agent": "pi"}]})
    async with Host(settings, types=[plus_one.task_type], persist=False, status_interval=0.1), \
            Bus(broker.url.geturl()) as bus, bus.subscribe(topics.task_status("fn", "p")) as statuses, \
            bus.subscribe(topics.stream("fn", "p", "out")) as out:
        await bus.publish(topics.deployment("fn"), encode_spec(spec), qos=1, retain=True)
        async with asyncio.timeout(TIMEOUT):
            while decode_value((await statuses.get()).payload)["state"] != "running":
                pass
        await bus.publish(topics.inject("pi", "fn", "p", "x"), encode_frame(41), qos=1)
        assert await _next_value(out) == 42
        await bus.publish(topics.inject("pi", "fn", "p", "nope"), encode_frame(1), qos=1)  # no such input: dropped
        await bus.publish(topics.inject("pi", "fn", "p", "x"), encode_frame(1.5), qos=1)
        assert await _next_value(out) == 2.5
