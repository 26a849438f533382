"""Liveness survives epoch resets and spoofed offline states (docs/protocol.md, "Liveness").

An agent whose epoch file was deleted or corrupted started again at epoch 1, and a running
controller, having seen a higher epoch, ignored its births as stale: it showed the agent
offline forever. A spoofed retained ``{"online": false, "epoch": 2**62}`` did the same. Each
agent process now publishes a random boot id with its epoch: another boot id is another life,
whatever its epoch, and an offline state counts only for the boot id it names.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.bus import Bus
from edge.controller.fleet import Fleet
from edge.frames import encode_value
from edge.host import Host
from edge.settings import load_settings
from edge.topics import Topics

TIMEOUT = 15.0


def host(url: str, ns: str, data: Path, **kwargs: float) -> Host:
    return Host(load_settings(broker=url, namespace=ns, agent_id="a1", data_dir=data), types=[], **kwargs)


async def round_trip(bus: Bus, fleet: Fleet, topics: Topics, name: str) -> None:
    """A state of another agent, published after what came before: once the fleet has it, it has those."""
    await bus.publish(topics.agent_state(name), encode_value({"online": True, "epoch": 1}), qos=1)
    await fleet.wait_for(lambda f: name in f.agents, TIMEOUT)


@contextlib.asynccontextmanager
async def watching(broker: object, topics: Topics, *retained: str) -> AsyncIterator[tuple[Bus, Fleet]]:
    """A bus and a synced fleet on ``topics``; at the end, a1's retained state and catalog (and the
    ``retained`` topics) are cleared, whatever the test left."""
    async with Bus(broker.url) as bus, Fleet(bus, topics) as fleet:  # type: ignore[attr-defined]
        await fleet.synced(TIMEOUT)
        try:
            yield bus, fleet
        finally:
            for topic in (*retained, topics.agent_state("a1"), topics.agent_catalog("a1")):
                await bus.publish(topic, b"", qos=1, retain=True)


def online(fleet: Fleet) -> bool:
    return "a1" in fleet.agents and fleet.agents["a1"].online


@pytest.mark.parametrize("damage", ["deleted", "corrupted"])
async def test_an_agent_whose_epoch_file_was_lost_shows_online_to_a_running_controller(broker, tmp_path, damage):
    ns = f"l{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    url = broker.url.geturl()
    async with watching(broker, topics) as (_bus, fleet):
        for expected in (1, 2, 3):  # three lives: the controller has seen epoch 3
            async with host(url, ns, tmp_path) as agent:
                await asyncio.wait_for(agent.started.wait(), TIMEOUT)
                assert agent.epoch == expected
                await fleet.wait_for(lambda f, e=expected: online(f) and f.agents["a1"].epoch == e, TIMEOUT)
            await fleet.wait_for(lambda f: not online(f), TIMEOUT)  # its clean offline
        epoch_file = tmp_path / "agents" / "a1" / "epoch"
        if damage == "deleted":
            epoch_file.unlink()
        else:
            epoch_file.write_bytes(b"\x00\xffnot a number")
        async with host(url, ns, tmp_path) as agent:
            await asyncio.wait_for(agent.started.wait(), TIMEOUT)
            assert agent.epoch == 1  # restarted from scratch
            await fleet.wait_for(online, TIMEOUT)  # before: offline forever
            assert fleet.agents["a1"].epoch == 1
        await fleet.wait_for(lambda f: not online(f), TIMEOUT)  # and its offline still counts


async def test_a_spoofed_offline_with_a_huge_epoch_does_not_hide_a_live_agent(broker, tmp_path):
    """A running controller never shows it offline; one started after the spoof, until the agent's next
    state (``state_interval``): the spoof is the retained message then, and it is all that controller knows."""
    ns = f"l{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    url = broker.url.geturl()
    spoof = encode_value({"online": False, "epoch": 2**62, "boot": "spoofed", "ts": 1})
    async with watching(broker, topics) as (bus, fleet), \
            host(url, ns, tmp_path, state_interval=0.5, status_interval=0.25):
        await fleet.wait_for(online, TIMEOUT)
        seen: list[bool] = []
        fleet.on_change(lambda kind, key: seen.append(online(fleet)) if key == "a1" else None)
        await bus.publish(topics.agent_state("a1"), spoof, qos=1, retain=True)
        await round_trip(bus, fleet, topics, "marker1")
        assert online(fleet) and all(seen), seen  # not even for a moment
        # its next state comes after the spoof: still online, epoch its own
        count = len(seen)
        await fleet.wait_for(lambda f: len(seen) > count + 1, TIMEOUT)
        assert online(fleet) and fleet.agents["a1"].epoch < 2**62 and all(seen)

        # a controller starting now finds the spoof retained, at most until the agent's next state
        await bus.publish(topics.agent_state("a1"), spoof, qos=1, retain=True)
        async with Bus(broker.url) as bus2, Fleet(bus2, topics) as fresh:
            await fresh.synced(TIMEOUT)
            await fresh.wait_for(online, TIMEOUT)


async def test_the_will_of_an_earlier_life_does_not_hide_the_new_one(broker, tmp_path):
    """A will that arrives after the next life's birth (the broker noticed the old connection late)."""
    ns = f"l{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    url = broker.url.geturl()
    async with watching(broker, topics) as (bus, fleet), host(url, ns, tmp_path) as agent:
        await fleet.wait_for(online, TIMEOUT)
        # an earlier life's will: its own boot id, a lower epoch, delivered late
        late_will = encode_value({"online": False, "epoch": agent.epoch + 5, "boot": "earlier-life"})
        await bus.publish(topics.agent_state("a1"), late_will, qos=1)
        await round_trip(bus, fleet, topics, "marker2")
        assert online(fleet)
        # its own offline state (same boot id) counts
        own = encode_value({**agent.presence.state(online=False)})
        await bus.publish(topics.agent_state("a1"), own, qos=1)
        await fleet.wait_for(lambda f: not online(f), TIMEOUT)


@pytest.mark.expect_errors("ignored an invalid spec")
async def test_the_agents_error_count_is_in_its_state_and_health_file(broker, tmp_path):
    """An invalid spec the agent refused is counted where an operator looks: the fleet and health.json."""
    from edge.documents import HealthFile

    ns = f"l{uuid.uuid4().hex[:8]}"
    topics = Topics(ns)
    url = broker.url.geturl()
    async with watching(broker, topics, topics.deployment("bad")) as (bus, fleet), \
            host(url, ns, tmp_path, state_interval=0.3, status_interval=0.1) as agent:
        await fleet.wait_for(online, TIMEOUT)
        assert fleet.agents["a1"].errors == 0
        await bus.publish(topics.deployment("bad"), encode_value({"id": "bad", "tasks": "abc"}), qos=1,
                          retain=True)
        await fleet.wait_for(lambda f: f.agents["a1"].errors == 1, TIMEOUT)
        assert agent.errors == 1 and "bad" in fleet.rejected
        health = tmp_path / "agents" / "a1" / "health.json"
        async with asyncio.timeout(TIMEOUT):  # read as edge health reads it: through its model
            while HealthFile.model_validate_json(health.read_bytes()).errors != 1:
                await asyncio.sleep(0.05)  # written every status_interval: polled, bounded
        assert HealthFile.model_validate_json(health.read_bytes()).boot == agent.presence.boot
