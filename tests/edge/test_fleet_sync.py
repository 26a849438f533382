"""Fleet.synced against brokers that bound what one SUBSCRIBE brings back.

rumqttd (the embedded broker) sends at most 100 retained messages for a QoS 1 subscription and
drops the rest: before the fleet fetched what it knew to be missing, a fresh controller saw
~150 of 200 agents, most of them with only their state or only their catalog, and 100 of the
statuses of a larger deployment. These fleets are bigger than that bound.
"""

from __future__ import annotations

import uuid

import pytest
from _retained import publish_retained

from edge.bus import Bus
from edge.controller import Controller
from edge.frames import encode_value
from edge.graph import encode_spec, parse_spec
from edge.settings import load_settings
from edge.topics import Topics

N = 150  # over rumqttd's 100 retained messages per subscription
TIMEOUT = 10.0


def agent(i: int) -> str:
    return f"a{i:03d}"


def state(*, ts: int = 1) -> bytes:
    return encode_value({"online": True, "epoch": 1, "ts": ts, "version": "0.1.0", "host": {}})


def catalog(name: str) -> bytes:
    return encode_value({"agent": name, "epoch": 1, "types": [{"name": "counter", "available": True}]})


async def published(bus: Bus, topics: Topics, messages: list[tuple[str, bytes]]) -> None:
    """Publish retained; the broker has them all on return."""
    marker = topics.agent_state("zz-marker").replace("state", "marker")
    await publish_retained(bus, messages, marker=marker, timeout=TIMEOUT)


async def clear(bus: Bus, messages: list[tuple[str, bytes]]) -> None:
    for topic, _ in messages:
        await bus.publish(topic, b"", qos=1, retain=True)


def complete(fleet, ids) -> bool:
    return all(a in fleet.agents and fleet.agents[a].online and fleet.agents[a].types for a in ids)


async def test_synced_brings_every_agent_and_status_a_spec_names(broker, tmp_path):
    ns = f"s{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    spec = parse_spec({"id": "big", "tasks": [{"id": f"t{i:03d}", "type": "counter", "agent": agent(i)}
                                              for i in range(N)]})
    messages = [(topics.agent_state(agent(i)), state()) for i in range(N)]
    messages += [(topics.agent_catalog(agent(i)), catalog(agent(i))) for i in range(N)]
    messages.append((topics.deployment("big"), encode_spec(spec)))
    messages += [(topics.task_status("big", f"t{i:03d}"), encode_value({"state": "running", "agent": agent(i)}))
                 for i in range(N)]
    async with Bus(broker.url.geturl()) as bus:
        await published(bus, topics, messages)
        try:
            settings = load_settings(broker=broker.url.geturl(), namespace=ns, data_dir=tmp_path / "ctl")
            async with Controller(settings) as controller:
                fleet = controller.fleet  # synced has returned: everything is there now, no waiting
                assert complete(fleet, [agent(i) for i in range(N)]), sum(bool(a.types) for a in fleet.agents.values())
                assert len(fleet.tasks_of("big")) == N
                assert fleet.missing() == []
        finally:
            await clear(bus, messages)


async def test_an_agent_the_subscription_left_out_is_completed_when_it_reports(broker, tmp_path):
    ns = f"s{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    ids = [agent(i) for i in range(N)]
    messages = [(topics.agent_state(a), state()) for a in ids] + [(topics.agent_catalog(a), catalog(a)) for a in ids]
    async with Bus(broker.url.geturl()) as bus:
        await published(bus, topics, messages)
        try:
            settings = load_settings(broker=broker.url.geturl(), namespace=ns, data_dir=tmp_path / "ctl")
            async with Controller(settings) as controller:
                fleet = controller.fleet
                # whatever the broker brought, nothing is left half-known
                half = [a.id for a in fleet.agents.values() if not (a.types and a.epoch == 1)]
                assert half == [], f"{len(half)} of {len(fleet.agents)} agents half-known"
                # live agents publish their state every few seconds: then the catalog is fetched too
                for a in ids:
                    await bus.publish(topics.agent_state(a), state(ts=2), qos=1, retain=True)
                await fleet.wait_for(lambda f: complete(f, ids), TIMEOUT)
        finally:
            await clear(bus, messages)


@pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)
async def test_a_fleet_with_nothing_missing_fetches_nothing(broker, tmp_path):
    ns = f"s{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    messages = [(topics.agent_state("one"), state()), (topics.agent_catalog("one"), catalog("one"))]
    async with Bus(broker.url.geturl()) as bus:
        await published(bus, topics, messages)
        try:
            settings = load_settings(broker=broker.url.geturl(), namespace=ns, data_dir=tmp_path / "ctl")
            async with Controller(settings) as controller:
                assert complete(controller.fleet, ["one"]) and controller.fleet.probes == 0
        finally:
            await clear(bus, messages)


async def test_a_broker_that_bounds_its_queue_per_client_still_brings_every_retained_message(tmp_path):
    """Mosquitto keeps at most ``max_queued_messages`` QoS 1 messages for a client beyond those in flight and
    drops the rest, retained ones included: at 2,000 agents a cold controller subscribed at QoS 1 had 1,002
    listed when synced() returned. The fleet subscribes at QoS 0, which the broker writes without that bound:
    everything comes with the subscriptions, nothing has to be fetched one by one."""
    from edge.broker import MosquittoBroker, free_port

    ns = f"q{uuid.uuid4().hex[:10]}"
    topics = Topics(ns)
    ids = [agent(i) for i in range(N)]
    messages = [(topics.agent_state(a), state()) for a in ids] + [(topics.agent_catalog(a), catalog(a)) for a in ids]
    config = "max_queued_messages 10\nmax_inflight_messages 1\n"
    async with MosquittoBroker(port=free_port(), data_dir=tmp_path / "broker", persistence=False,
                               extra_config=config) as broker, Bus(broker.url.geturl()) as bus:
        await published(bus, topics, messages)
        settings = load_settings(broker=broker.url.geturl(), namespace=ns, data_dir=tmp_path / "ctl")
        async with Controller(settings) as controller:
            assert complete(controller.fleet, ids)
            assert controller.fleet.probes == 0
