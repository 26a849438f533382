"""A reconnect storm with shared catalogs: agents publish their document at their first connect, not at
every reconnect; a broker that lost its retained state gets it again because a controller that lacks
it asks an agent naming it (edge.presence, edge.controller.fleet). Counts the document bytes the
agents publish at each step: the figure docs/scaling.md gives."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from _brokers import require_embedded, require_mosquitto
from two_types import Double, Negate

from edge.broker import EmbeddedBroker, MosquittoBroker, RunningBroker, free_port
from edge.bus import Bus
from edge.controller import Fleet
from edge.frames import encode_value
from edge.host import Host
from edge.presence import Presence
from edge.settings import load_settings
from edge.topics import Topics

TIMEOUT = 30.0
AGENTS = 12


async def _cold_listing(url: str, topics: Topics) -> tuple[dict[str, list[str]], int]:
    """Each agent's types as a cold controller lists them at synced(), and the requests it sent."""
    async with Bus(url) as bus, Fleet(bus, topics) as cold:
        await cold.synced(TIMEOUT)
        return {a.id: sorted(t["name"] for t in a.types) for a in cold.agents.values()}, cold.catalog_requests


def _broker(kind: str, port: int, data_dir: Path) -> RunningBroker:
    """A broker that loses its retained messages when it stops: Mosquitto without persistence, rumqttd."""
    if kind == "embedded":
        require_embedded()
        return EmbeddedBroker(port=port, data_dir=data_dir)
    require_mosquitto()
    return MosquittoBroker(port=port, data_dir=data_dir, persistence=False)


@pytest.mark.parametrize("kind", ["mosquitto", "embedded"])
async def test_a_reconnect_storm_sends_no_document_and_a_lost_one_is_asked_for(tmp_path, kind):
    port = free_port()
    broker = _broker(kind, port, tmp_path / "broker")
    await broker.__aenter__()
    url = broker.url.geturl()  # the embedded broker's carries its MQTT 5 port, kept across the restart
    topics = Topics(f"cr{uuid.uuid4().hex[:8]}")
    names = [f"a{i:02d}" for i in range(AGENTS)]

    def host(name: str) -> Host:
        settings = load_settings(broker=url, namespace=topics.namespace, agent_id=name,
                                 data_dir=tmp_path / name, shared_catalog=True)
        return Host(settings, types=[Double, Negate], persist=False)

    def sent(hosts: list[Host]) -> int:
        return sum(h.presence.documents_sent for h in hosts)

    hosts = [host(name) for name in names]
    expected = {name: ["double", "negate"] for name in names}
    try:
        for h in hosts:
            await h.__aenter__()
        try:
            size = len(hosts[0].presence.shared()[1])
            async with Bus(url) as bus, Fleet(bus, topics) as fleet:
                await fleet.wait_for(lambda f: all(n in f.agents and f.agents[n].types for n in names), TIMEOUT)
                assert sent(hosts) == AGENTS  # the first connect: one document each (what every connect cost)
                first = sent(hosts) * size

                # the broker restarts and loses its retained state: every agent reconnects, none sends its document
                epochs = {n: fleet.agents[n].epoch for n in names}
                await broker.__aexit__(None, None, None)
                broker = _broker(kind, port, tmp_path / "broker")
                await broker.__aenter__()
                await fleet.wait_for(lambda f: all(f.agents[n].online and f.agents[n].epoch > epochs[n]
                                                   for n in names), TIMEOUT)
                assert sent(hosts) == AGENTS  # 0 bytes of documents at the reconnect
                assert all(fleet.agents[n].types for n in names)  # the running fleet kept its verified copy

                # a cold controller lacks the document: it asks one agent, which sends it once for all
                listed, asked = await _cold_listing(url, topics)
                assert listed == expected and asked == 1
                assert sent(hosts) == AGENTS + 1
                again, asked = await _cold_listing(url, topics)  # the broker holds it again: nobody is asked
                assert again == expected and asked == 0 and sent(hosts) == AGENTS + 1

                # garbage under its hash (an agent may publish there): a cold controller refuses it and asks the
                # first online agent naming it (a00 has gone) for the true one
                await hosts[0].__aexit__(None, None, None)
                stopped = hosts.pop(0)
                await fleet.wait_for(lambda f: not f.agents["a00"].online, TIMEOUT)
                await bus.publish(topics.catalog_document(fleet.agents["a01"].catalog or ""), b"garbage", qos=1,
                                  retain=True)
                listed, asked = await _cold_listing(url, topics)
                assert listed == expected and asked == 1
                assert sent(hosts) + stopped.presence.documents_sent == AGENTS + 2
                print(f"\n{kind}: document bytes published by {AGENTS} agents: first connect {first:,}; reconnect "
                      f"after the broker lost its state 0, then {size:,} on one controller's request "
                      f"(before: {AGENTS} x {size:,} = {AGENTS * size:,} at every reconnect)")
        finally:
            for h in reversed(hosts):
                await h.__aexit__(None, None, None)
    finally:
        await broker.__aexit__(None, None, None)


class _Recorder:
    """A bus that records what is published."""

    url = "mqtt://recorder"

    def __init__(self) -> None:
        self.sent: list[tuple[str, bool]] = []

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        self.sent.append((topic, retain))

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        self.sent.append((topic, retain))


async def test_an_agent_sends_its_document_once_and_again_only_when_asked_for_its_own():
    topics = Topics("cr")
    types = [{"name": "double", "available": True}]
    presence = Presence(topics=topics, agent_id="a", state_dir=None, catalog=lambda: types, shared_catalog=True)
    digest = presence.shared()[0]
    bus = _Recorder()
    await presence.announce(bus)  # type: ignore[arg-type]
    assert bus.sent == [(topics.agent_state("a"), True), (topics.catalog_document(digest), True),
                        (topics.agent_catalog("a"), True)]
    bus.sent.clear()
    await presence.announce(bus)  # type: ignore[arg-type]  # a reconnect: no document
    assert bus.sent == [(topics.agent_state("a"), True), (topics.agent_catalog("a"), True)]
    bus.sent.clear()
    assert not presence.answer(bus, encode_value({"v": 2, "catalog": "0" * 32}))  # type: ignore[arg-type]
    assert not presence.answer(bus, b"\xff\x00")  # type: ignore[arg-type]  # garbage: ignored
    assert bus.sent == []
    assert presence.answer(bus, encode_value({"v": 2, "catalog": digest}))  # type: ignore[arg-type]
    assert bus.sent == [(topics.catalog_document(digest), True)]
    assert not presence.answer(bus, encode_value({"v": 2, "catalog": digest}))  # type: ignore[arg-type]  # too soon
    types.append({"name": "negate", "available": True})  # its types change: the next connect sends the new one
    bus.sent.clear()
    await presence.announce(bus)  # type: ignore[arg-type]
    assert (topics.catalog_document(presence.shared()[0]), True) in bus.sent
    assert presence.documents_sent == 3
