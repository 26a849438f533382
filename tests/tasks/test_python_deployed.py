"""The ``python`` task deployed by spec to a real agent, fed by a plain MQTT client, as a user would."""

from __future__ import annotations

import asyncio
import json
import uuid

from _paho import Probe

from edge.bus import Bus
from edge.frames import decode_value
from edge.graph import encode_spec, parse_spec
from edge.host import Host
from edge.settings import load_settings
from edge.topics import Topics
from tasks.builtin import TYPES

TIMEOUT = 10.0
SCALE = '''
def process(value, port, state, config):
    state["n"] = state.get("n", 0) + 1
    level = round(100 * value / config["full"], 1)
    return {"level": {"level": level, "n": state["n"]}, "alarm": level > config["high"]}
'''


def spec(prefix: str) -> dict:
    return {"id": "scaled", "tasks": [
        {"id": "raw", "type": "mqtt_in", "agent": "pi", "config": {"topic": f"{prefix}/raw"}},
        {"id": "scale", "type": "python", "agent": "pi",
         "config": {"code": SCALE, "outputs": ["level", "alarm"], "params": {"full": 4095, "high": 90}}},
        {"id": "level", "type": "mqtt_out", "agent": "pi", "config": {"topic": f"{prefix}/level"}},
        {"id": "alarm", "type": "mqtt_out", "agent": "pi", "config": {"topic": f"{prefix}/alarm"}}],
        "edges": [{"from": "raw.out", "to": "scale.in"}, {"from": "scale.level", "to": "level.in"},
                  {"from": "scale.alarm", "to": "alarm.in"}]}


async def _status(bus: Bus, topics: Topics, task: str, states: set[str]) -> dict:
    async with bus.subscribe(topics.task_status("scaled", task)) as sub, asyncio.timeout(TIMEOUT):
        while True:
            message = await sub.get()
            if message.payload and (status := decode_value(message.payload))["state"] in states:
                return status


async def test_code_in_a_spec_runs_on_an_agent_that_allows_it(broker, tmp_path):
    ns = f"t{uuid.uuid4().hex[:10]}"
    topics, prefix = Topics(ns), f"test/python/{ns}"
    settings = load_settings(broker=str(broker.url), namespace=ns, agent_id="pi", data_dir=tmp_path, allow_code=True)
    async with Bus(str(broker.url)) as bus, Host(settings, types=TYPES, persist=False, status_interval=0.1) as host:
        await bus.publish(topics.deployment("scaled"), encode_spec(parse_spec(spec(prefix))), qos=1, retain=True)
        for task in ("raw", "scale", "level", "alarm"):
            await _status(bus, topics, task, {"running"})
        with Probe(broker.url) as device:
            await asyncio.to_thread(device.subscribe, f"{prefix}/level", f"{prefix}/alarm")
            for raw in (2048, 4000, "not a number"):
                await asyncio.to_thread(device.publish, f"{prefix}/raw", json.dumps(raw).encode())
            got: dict[str, list] = {"level": [], "alarm": []}
            async with asyncio.timeout(TIMEOUT):
                while len(got["level"]) < 2 or len(got["alarm"]) < 2:
                    message = await asyncio.to_thread(device.get)
                    got[message.topic.rsplit("/", 1)[1]].append(json.loads(message.payload))
        assert got == {"level": [{"level": 50.0, "n": 1}, {"level": 97.7, "n": 2}], "alarm": [False, True]}
        # the text made process() raise (str / int): that frame's input error; the task runs on
        instance = host.instances[("scaled", "scale")]
        async with asyncio.timeout(TIMEOUT):
            while instance.metrics()["inputs"]["in"]["errors"] < 1:
                await asyncio.sleep(0.02)
        assert instance.state == "running"


async def test_an_agent_that_does_not_allow_code_lists_the_type_unavailable_and_never_runs_it(broker, tmp_path):
    ns = f"t{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    settings = load_settings(broker=str(broker.url), namespace=ns, agent_id="pi", data_dir=tmp_path)
    async with Bus(str(broker.url)) as bus, Host(settings, types=TYPES, persist=False, status_interval=0.1) as host:
        entry = next(e for e in host.catalog() if e["name"] == "python")
        assert entry["available"] is False and "EDGE_ALLOW_CODE" in entry["reason"]
        await bus.publish(topics.deployment("scaled"), encode_spec(parse_spec(spec("test/python/off"))), qos=1,
                          retain=True)
        status = await _status(bus, topics, "scale", {"invalid", "failed", "running"})
        assert status["state"] == "invalid" and "EDGE_ALLOW_CODE" in status["error"], status
        assert host.instances[("scaled", "scale")].task is None  # never started
