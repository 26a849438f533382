"""Built-ins deployed by spec to a real runtime: the wiring an agent gives them is what they expect.

The panel's side of the dashboard contract (panel topic in, retained view out), a named stream
between two deployments, a bridge to a plain topic, and bad input showing in the agent's metrics.
"""

from __future__ import annotations

import asyncio
import uuid

from edge.bus import Bus
from edge.desired import Removal, encode_record
from edge.frames import decode_frame, decode_value, encode_frame
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.topics import Topics
from tasks.builtin import TYPES

TIMEOUT = 10.0


async def _status(bus: Bus, topics: Topics, dep: str, task: str, predicate) -> dict:
    async with bus.subscribe(topics.task_status(dep, task)) as sub, asyncio.timeout(TIMEOUT):
        while True:
            message = await sub.get()
            status = decode_value(message.payload) if message.payload else None
            if status is not None and predicate(status):
                return status


async def _view(bus: Bus, topic: str, predicate) -> dict:
    async with bus.subscribe(topic) as sub, asyncio.timeout(TIMEOUT):
        while True:
            message = await sub.get()
            if message.payload and predicate(view := decode_frame(message.payload).value):
                return view


async def test_a_dashboard_graph_deployed_to_a_runtime(broker, tmp_path):
    ns = f"t{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    out_topic = f"test/deployed/{ns}/heater"
    settings = load_settings(broker=str(broker.url), namespace=ns, agent_id="pi", data_dir=tmp_path)
    producer = {"id": "producer", "tasks": [
        {"id": "target", "type": "slider", "agent": "pi", "config": {"min_value": 0, "max_value": 30, "default": 20,
                                                                      "repeat_ms": 0}},
        {"id": "share", "type": "named_output", "agent": "pi", "config": {"name": "target"}}],
        "edges": [{"from": "target.out", "to": "share.in"}]}
    consumer = {"id": "consumer", "tasks": [
        {"id": "target", "type": "named_input", "agent": "pi", "config": {"name": "target"}},
        {"id": "heat", "type": "calculator", "agent": "pi", "config": {"formula": "a < 21 ? 1 : 0"}},
        {"id": "relay", "type": "mqtt_out", "agent": "pi",
         "config": {"topic": out_topic, "format": "text", "on_value": "ON", "off_value": "OFF"}}],
        "edges": [{"from": "target.out", "to": "heat.a"}, {"from": "heat.out", "to": "relay.in"}]}
    async with Bus(str(broker.url)) as bus, \
            Host(settings, types=TYPES, persist=False, status_interval=0.1) as host, \
            bus.subscribe(out_topic) as relay:
        for spec in (consumer, producer):
            await bus.publish(topics.deployment(spec["id"]), encode_spec(parse_spec(spec)), qos=1, retain=True)
        for dep, task in [("producer", "target"), ("producer", "share"), ("consumer", "target"),
                          ("consumer", "heat"), ("consumer", "relay")]:
            await _status(bus, topics, dep, task, lambda s: s["state"] == "running")
        view_topic = topics.stream("producer", "target", "view")
        assert (await _view(bus, view_topic, lambda v: True))["value"] == 20  # retained: there at once
        panel_topic = topics.stream("producer", "target", "set")
        async with asyncio.timeout(TIMEOUT):
            # the consumer's named_input may subscribe after the slider's first value: set it until it flows
            while True:
                await bus.publish(panel_topic, encode_frame(18))
                try:
                    async with asyncio.timeout(0.3):
                        if (await relay.get()).payload == b"ON":
                            break
                except TimeoutError:
                    continue
        await bus.publish(panel_topic, encode_frame(25.5))
        async with asyncio.timeout(TIMEOUT):
            while (await relay.get()).payload != b"OFF":
                pass
        assert (await _view(bus, view_topic, lambda v: v["value"] == 25.5))["kind"] == "slider"
        async with bus.subscribe(topics.agent_metrics("pi")) as batches, asyncio.timeout(TIMEOUT):
            await bus.publish(topics.agent_metrics_request("pi"), b"")  # metrics go to a reader who asks
            await bus.publish(panel_topic, encode_frame("warm"))  # bad input: counted, in the agent's metrics batch
            while not any(entry["task"] == "target" and entry["deployment"] == "producer"
                          and entry["metrics"].get("inputs", {}).get("set", {}).get("errors") == 1
                          for entry in decode_value((await batches.get()).payload)["tasks"]):
                pass
        assert host.instances[("producer", "target")].state == "running"
        for dep in ("producer", "consumer"):  # removal is explicit (edge.desired), never an empty topic
            await bus.publish(topics.deployment(dep), encode_record(Removal(dep, 1000)), qos=1, retain=True)
        async with asyncio.timeout(TIMEOUT):
            while host.instances:
                await asyncio.sleep(0.02)
    async with Bus(str(broker.url)) as bus, bus.subscribe(view_topic) as views:
        probe = f"{topics.root}/probe"
        async with bus.subscribe(probe) as sub:  # a round trip: any retained view would have come by now
            await bus.publish(probe, b"x", qos=1)
            await sub.get()
        assert views.queued == 0, "the view was cleared when the task stopped"
