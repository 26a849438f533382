"""bench/light_agents.py: a light simulated agent shows the broker and a controller what a real agent does.

The point of a light agent is that the controller cannot tell it from an idle ``edge agent``: the
same subscriptions, will, retained state and catalog (naming the same shared document, whose bytes
are the same), and the heartbeat; these tests compare it with a real ``Host`` on a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import uuid
from pathlib import Path
from typing import Any

from agent.metrics import ProcessMetrics
from edge.bus import Bus, Message
from edge.controller import Controller
from edge.frames import decode_value
from edge.host import Host
from edge.protocol import AgentState
from edge.settings import load_settings
from edge.topics import Topics

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
from light_agents import Counts, LightAgent, SharedDocument, fleet_types

TIMEOUT = 10.0


class Retained:
    """Every message on a namespace, the last payload per topic."""

    def __init__(self) -> None:
        self.last: dict[str, bytes] = {}
        self.seen: list[Message] = []
        self.changed = asyncio.Event()

    def __call__(self, message: Message) -> None:
        self.last[message.topic] = message.payload
        self.seen.append(message)
        self.changed.set()

    async def until(self, predicate: Any) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def settings_for(broker: Any, ns: str, tmp_path: Path) -> Any:
    return load_settings(broker=broker.url.geturl(), namespace=ns, agent_id="a1", data_dir=tmp_path / ns,
                         log_level="WARNING", shared_catalog=True)


async def test_a_light_agent_subscribes_and_publishes_what_a_real_agent_does(mosquitto_broker, tmp_path):
    types, unavailable = fleet_types("sample")
    real_ns, light_ns = f"lr{uuid.uuid4().hex[:6]}", f"ll{uuid.uuid4().hex[:6]}"
    real_settings, light_settings = settings_for(mosquitto_broker, real_ns, tmp_path), \
        settings_for(mosquitto_broker, light_ns, tmp_path)
    host = Host(real_settings, types=types, unavailable=unavailable, metrics=ProcessMetrics(), persist=False)
    subscribed: list[tuple[str, int]] = []
    subscribe = host.bus.subscribe

    def spy(pattern: str, **kwargs: Any) -> Any:
        subscribed.append((pattern, kwargs.get("qos", 0)))
        return subscribe(pattern, **kwargs)

    host.bus.subscribe = spy  # type: ignore[method-assign]
    entries = Host(light_settings, types=types, unavailable=unavailable, persist=False).catalog()
    counts = Counts(agents=1)
    light = LightAgent(light_settings, agent_id="a1", entries=entries, metrics=ProcessMetrics(),
                       document=SharedDocument(entries, each=False), counts=counts)
    arrived = asyncio.Event()  # a message reached the light agent
    on_message = light._on_message
    light._on_message = lambda *message: (on_message(*message), arrived.set())[0]  # type: ignore[method-assign]
    real_root, light_root = Topics(real_ns).root, Topics(light_ns).root
    seen = Retained()
    async with Bus(mosquitto_broker.url.geturl()) as bus, bus.subscribe(f"{real_root}/#", callback=seen), \
            bus.subscribe(f"{light_root}/#", callback=seen), host, asyncio.TaskGroup() as group:
        group.create_task(light.run())
        names = ("state", "catalog", "sync")
        await seen.until(lambda: all(f"{root}/agents/a1/{name}" in seen.last for root in (real_root, light_root)
                                     for name in names) and counts.connects == 1)
        # the broker's fan-out is the real one: the same filters at the same QoS
        assert sorted((p.replace(real_root, light_root), q) for p, q in subscribed) == sorted(light._filters)
        real_state, light_state = (decode_value(seen.last[f"{root}/agents/a1/state"]) for root in (real_root,
                                                                                                      light_root))
        assert set(real_state) == set(light_state)
        assert set(real_state["metrics"]) == set(light_state["metrics"])
        AgentState.model_validate(light_state)
        assert light_state["online"] is True and light_state["boot"] == light.presence.boot
        assert light_state["epoch"] == light.presence.epoch == 1
        real_catalog, light_catalog = (decode_value(seen.last[f"{root}/agents/a1/catalog"]) for root in (real_root,
                                                                                                          light_root))
        assert set(real_catalog) == set(light_catalog) == {"v", "agent", "epoch", "boot", "catalog"}
        assert real_catalog["catalog"] == light_catalog["catalog"]  # the same types, the same document
        digest = light_catalog["catalog"]
        await seen.until(lambda: all(f"{root}/catalogs/{digest}" in seen.last for root in (real_root, light_root)))
        assert seen.last[f"{real_root}/catalogs/{digest}"] == seen.last[f"{light_root}/catalogs/{digest}"]

        # a controller lists it with the document's types, as it lists the real one
        async with Controller(light_settings, client_id=f"ctl-{light_ns}") as controller:
            await controller.fleet.wait_for(lambda f: bool((a := f.agents.get("a1")) and a.online and a.types),
                                            TIMEOUT)
            assert {t["name"] for t in controller.fleet.agents["a1"].types} == {t.type_name for t in types}

        # what every agent reads reaches it (a deployment spec); it counts, and runs nothing
        received = counts.received
        arrived.clear()
        await bus.publish(f"{light_root}/deployments/d1", b"\xa0", qos=1)
        async with asyncio.timeout(TIMEOUT):
            await arrived.wait()
        assert counts.received == received + 1

        # its connection dropped as a crash would: the broker publishes its will, the offline state of that
        # epoch and boot; it connects again with the next epoch
        light.conn.abort()
        state_topic = f"{light_root}/agents/a1/state"
        await seen.until(lambda: any(m.topic == state_topic and not decode_value(m.payload)["online"]
                                     for m in seen.seen))
        will = next(decode_value(m.payload) for m in seen.seen
                    if m.topic == state_topic and not decode_value(m.payload)["online"])
        assert (will["boot"], will["epoch"]) == (light.presence.boot, 1)
        await seen.until(lambda: counts.connects == 2 and decode_value(seen.last[state_topic])["epoch"] == 2)
        assert counts.losses == 1

        await light.leave()
    assert decode_value(seen.last[state_topic])["online"] is False  # its leaving state, before DISCONNECT


async def test_a_light_agent_heartbeats_on_the_hosts_schedule(mosquitto_broker, tmp_path):
    ns = f"lh{uuid.uuid4().hex[:6]}"
    settings = settings_for(mosquitto_broker, ns, tmp_path)
    counts = Counts(agents=1)
    light = LightAgent(settings, agent_id="a1", entries=[], metrics=None, document=None, counts=counts)
    light._status_interval, light._state_interval = 0.1, 0.25  # the Host's 2 s ticks and 5 s, scaled down
    seen = Retained()
    state_topic = f"{Topics(ns).root}/agents/a1/state"
    async with Bus(mosquitto_broker.url.geturl()) as bus, bus.subscribe(state_topic, callback=seen), \
            asyncio.TaskGroup() as group:
        group.create_task(light.run())
        await seen.until(lambda: counts.states >= 3 and len(seen.seen) >= 4)  # the birth, then heartbeats
        await light.leave()
    stamps = [decode_value(m.payload)["ts"] for m in seen.seen if decode_value(m.payload)["online"]]
    gaps = [b - a for a, b in itertools.pairwise(stamps[1:])]  # the birth is off the schedule
    # as Host._report_loop: on ticks of 0.1 s, the first tick 0.25 s after the last state: 0.3 s apart, less a
    # late wake-up of the one before; never on every tick
    assert gaps and all(gap >= 200 for gap in gaps), gaps
