"""Bad input on every door of a running system: it is refused or counted, and nothing else stops."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import Agent
from edge.bus import Bus
from edge.controller import Controller
from edge.errors import FrameError
from edge.frames import decode_frame, encode_frame, encode_value
from edge.graph import parse_spec
from edge.settings import load_settings
from edge.topics import Topics

SAMPLES = str(Path(__file__).parents[1] / "agent" / "sample_tasks.py")
TIMEOUT = 15.0

not_frames = st.one_of(
    st.binary(max_size=64),
    st.builds(cbor2.dumps, st.one_of(st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=3))),
    st.builds(lambda v: cbor2.dumps({"ts": "yesterday", "seq": 0, "value": v}), st.integers()),
    st.builds(lambda v: cbor2.dumps({"seq": 0, "value": v}), st.integers()),
)


def is_frame(payload: bytes) -> bool:
    try:
        decode_frame(payload)
    except FrameError:
        return False
    return True


async def test_garbage_on_inputs_is_counted_and_the_task_goes_on(broker, tmp_path):
    ns = f"b{uuid.uuid4().hex[:8]}"
    agent_settings = load_settings(broker=broker.url.geturl(), namespace=ns, agent_id="a1", data_dir=tmp_path / "a1",
                                   max_payload=262144)  # the catalog of every built-in type is ~80 KB
    async with Agent(agent_settings, task_sources=[SAMPLES]) as agent, \
            Controller(load_settings(broker=broker.url.geturl(), namespace=ns, data_dir=tmp_path / "c")) as ctl, \
            Bus(broker.url) as bus:
        await ctl.fleet.wait_for(lambda f: "a1" in f.agents and f.agents["a1"].types, TIMEOUT)
        await ctl.deploy(parse_spec({"id": "d", "tasks": [{"id": "s", "type": "scale", "agent": "a1"}],
                                     "edges": [{"from": "topic:bad/in", "to": "s.in"},
                                               {"from": "s.out", "to": "topic:bad/out"}]}))
        await ctl.fleet.wait_for(lambda f: [s.state for s in f.tasks_of("d")] == ["running"], TIMEOUT)
        sent_bad = 0

        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(not_frames, min_size=1, max_size=5), st.integers(-1000, 1000))
        def round_trip(garbage: list[bytes], good: int) -> None:
            nonlocal sent_bad
            garbage = [g for g in garbage if not is_frame(g)]
            sent_bad += len(garbage)
            asyncio.run_coroutine_threadsafe(_feed(bus, garbage, good), loop).result(TIMEOUT)

        async def _feed(bus: Bus, garbage: list[bytes], good: int) -> None:
            async with bus.subscribe("bad/out") as out:
                for payload in garbage:
                    await bus.publish("bad/in", payload)
                await bus.publish("bad/in", encode_frame(good))
                async with asyncio.timeout(TIMEOUT):
                    assert decode_frame((await out.get()).payload).value == 2 * good

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(round_trip)
        # oversize frames are dropped by the agent's bus (max_payload 256 KiB), counted, never decoded
        await bus.publish("bad/in", encode_frame(b"x" * 300_000))
        assert await _feed_ok(bus)
        instance = agent.instances[("d", "s")]
        assert instance.state == "running" and instance.restarts == 0
        assert instance.task is not None and instance.task.in_metrics["in"].errors == sent_bad
        assert agent.bus.stats.oversize == 1
        await ctl.remove("d")


async def _feed_ok(bus: Bus) -> bool:
    async with bus.subscribe("bad/out") as out:
        await bus.publish("bad/in", encode_frame(21))
        async with asyncio.timeout(TIMEOUT):
            return decode_frame((await out.get()).payload).value == 42


async def test_huge_catalog_and_garbage_states_do_not_stop_the_fleet(broker, tmp_path):
    ns = f"h{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    types = [{"name": f"type_{i}", "inputs": {"in": {"content": "number"}}, "outputs": {"out": {}},
              "config_schema": {"type": "object", "properties": {f"f{j}": {"type": "number"} for j in range(5)}}}
             for i in range(5000)]
    async with Controller(load_settings(broker=broker.url.geturl(), namespace=ns, data_dir=tmp_path)) as ctl:
        await ctl.bus.publish(topics.agent_state("huge"), encode_value({"online": True, "epoch": 1}), qos=1,
                              retain=True)
        await ctl.bus.publish(topics.agent_catalog("huge"), encode_value({"agent": "huge", "types": types}), qos=1,
                              retain=True)
        await ctl.bus.publish(topics.agent_catalog("weird"), encode_value({"types": [1, "x", None, {"name": 5}]}),
                              qos=1, retain=True)
        await ctl.fleet.wait_for(lambda f: "huge" in f.agents and len(f.agents["huge"].types) == 5000, TIMEOUT)
        await ctl.fleet.wait_for(lambda f: "weird" in f.agents, TIMEOUT)
        merged = ctl.fleet.types()
        assert len(merged) == 5000 and merged["type_42"]["agents"] == ["huge"]
        plan, problems = ctl.plan(parse_spec({"id": "x", "tasks": [{"id": "t", "type": "type_7"}]}))
        assert problems == [] and plan.tasks[0].agent == "huge"
        for topic in (topics.agent_state("huge"), topics.agent_catalog("huge"), topics.agent_catalog("weird")):
            await ctl.bus.publish(topic, b"", qos=1, retain=True)
