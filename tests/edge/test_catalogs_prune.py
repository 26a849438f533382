"""Shared catalog documents' lifecycle: ``edge catalogs`` lists them, ``prune`` clears the ones no agent
catalog names, only on a complete view, and publishes again one an agent names as it is cleared
(edge.controller.catalogs). On Mosquitto and on the embedded broker, with more agents than rumqttd's
100 retained messages per QoS 1 subscription."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from typing import Any

from _retained import publish_retained

from edge.bus import Bus, Message
from edge.controller import Fleet
from edge.controller.catalogs import documents, prune
from edge.frames import decode_value, encode_value
from edge.presence import catalog_hash
from edge.topics import Topics

TIMEOUT = 10.0
AGENTS = 150  # over rumqttd's 100 retained per QoS 1 subscription


def _document(name: str) -> tuple[str, bytes]:
    payload = encode_value({"v": 2, "types": [{"name": name, "description": "x" * 200, "available": True}]})
    return catalog_hash(payload), payload


def _state(online: bool) -> bytes:
    return encode_value({"v": 2, "online": online, "epoch": 1, "boot": "b", "ts": 1, "version": "0.1.0",
                         "host": {"name": "h"}})


def _names(agent: str, digest: str) -> bytes:
    return encode_value({"v": 2, "agent": agent, "epoch": 1, "boot": "b", "catalog": digest})


async def _retained_documents(url: Any, topics: Topics) -> dict[str, bytes]:
    """What the broker holds under catalogs/+, as a fresh subscriber sees it."""
    found: dict[str, bytes] = {}
    marker = f"{topics.root}/marker-{uuid.uuid4().hex[:8]}"
    async with Bus(url) as bus, bus.subscribe(topics.all_catalog_documents, qos=0) as docs, \
            bus.subscribe(marker, qos=0) as back:
        await bus.publish(marker, b"x", qos=0)  # comes back after the retained copies the subscription brought
        await asyncio.wait_for(back.get(), TIMEOUT)
        while docs.queued:
            message = await docs.get()
            if message.payload:
                found[message.topic.rsplit("/", 1)[-1]] = message.payload
    return found


async def test_prune_clears_only_the_documents_no_agent_names(broker):
    topics = Topics(f"cp{uuid.uuid4().hex[:8]}")
    live, live_doc = _document("gauge")
    stale, stale_doc = _document("old_gauge")
    garbage = catalog_hash(b"garbage")
    messages = [(topics.catalog_document(live), live_doc), (topics.catalog_document(stale), stale_doc),
                (topics.catalog_document(garbage), b"\xff\x00")]
    for i in range(AGENTS):
        messages += [(topics.agent_state(f"a{i:03d}"), _state(online=i % 2 == 0)),
                     (topics.agent_catalog(f"a{i:03d}"), _names(f"a{i:03d}", live))]
    async with Bus(broker.url) as bus:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker", timeout=TIMEOUT)
        try:
            async with Bus(broker.url) as other, Fleet(other, topics) as fleet:
                await fleet.synced(TIMEOUT)
                assert len(fleet.agents) == AGENTS
                listed = {d.hash: d for d in documents(fleet)}
                assert set(listed) == {live, stale, garbage}
                assert (listed[live].size, listed[live].agents, listed[live].online) == (len(live_doc), AGENTS,
                                                                                         AGENTS // 2)
                assert listed[live].state == "ok" and (listed[stale].agents, listed[garbage].agents) == (0, 0)
                assert listed[garbage].state == "refused" and listed[garbage].problem is not None
                assert listed[garbage].problem.startswith(f"shared catalog {garbage} refused: ")

                dry = await prune(fleet, dry_run=True)
                assert dry.blocked is None
                assert {d.hash: d.outcome for d in dry.documents} == {live: "kept", stale: "would clear",
                                                                      garbage: "would clear"}
                assert set(await _retained_documents(broker.url, topics)) == {live, stale, garbage}

                report = await prune(fleet)
                assert {d.hash: d.outcome for d in report.documents} == {live: "kept", stale: "cleared",
                                                                         garbage: "cleared"}
                lines = [d.line() for d in report.documents]
                assert f"cleared {stale} ({len(stale_doc):,} bytes): no retained agent catalog names it" in lines
                assert (f"kept {live} ({len(live_doc):,} bytes): named by {AGENTS} agents ({AGENTS // 2} online)"
                        in lines)
            assert await _retained_documents(broker.url, topics) == {live: live_doc}
            async with Bus(broker.url) as other, Fleet(other, topics) as cold:  # every agent still has its types
                await cold.synced(TIMEOUT)
                assert len(cold.agents) == AGENTS
                assert all(a.types and a.catalog_note is None for a in cold.agents.values())
        finally:
            for topic, _ in messages:
                await bus.publish(topic, b"", qos=1, retain=True)


async def test_a_document_named_as_it_is_cleared_is_published_again(mosquitto_broker):
    """An agent announcing itself publishes its document, then its catalog: a prune between the two would
    leave it naming nothing; the round trip after clearing brings the catalog, and the document goes back."""
    topics = Topics(f"cp{uuid.uuid4().hex[:8]}")
    digest, document = _document("late")
    messages = [(topics.catalog_document(digest), document)]
    async with Bus(mosquitto_broker.url) as bus:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker", timeout=TIMEOUT)
        try:
            async with Bus(mosquitto_broker.url) as other, Fleet(other, topics) as fleet:
                await fleet.synced(TIMEOUT)
                publish = other.publish

                async def publish_then_announce(topic: str, payload: bytes, **kwargs: Any) -> None:
                    await publish(topic, payload, **kwargs)
                    if topic == topics.catalog_document(digest) and not payload:  # the agent's catalog, just after
                        # at the broker before prune's round trip (a QoS 1 publish returns before its PUBACK)
                        await publish_retained(bus, [(topics.agent_state("late"), _state(True)),
                                                     (topics.agent_catalog("late"), _names("late", digest))],
                                               marker=f"{topics.root}/marker-late", timeout=TIMEOUT)

                other.publish = publish_then_announce  # type: ignore[method-assign]
                report = await prune(fleet)
                [pruned] = report.documents
                assert (pruned.outcome, pruned.why) == ("published again", "agent late named it as it was cleared")
            assert await _retained_documents(mosquitto_broker.url, topics) == {digest: document}
        finally:
            for topic in (topics.catalog_document(digest), topics.agent_state("late"), topics.agent_catalog("late")):
                await bus.publish(topic, b"", qos=1, retain=True)


async def test_an_online_agent_without_its_catalog_blocks_the_prune(mosquitto_broker):
    """Its catalog may be on its way, naming the document that looks unnamed: nothing is cleared."""
    topics = Topics(f"cp{uuid.uuid4().hex[:8]}")
    digest, document = _document("maybe")
    messages = [(topics.catalog_document(digest), document), (topics.agent_state("coming"), _state(True))]
    async with Bus(mosquitto_broker.url) as bus:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker", timeout=TIMEOUT)
        try:
            async with Bus(mosquitto_broker.url) as other, Fleet(other, topics) as fleet:
                await fleet.synced(TIMEOUT)
                report = await prune(fleet, wait=0.3)
                assert report.documents == () and report.blocked == (
                    "agent coming is online and its catalog has not come within 0.3 s: it may name one of the "
                    "documents")
            assert await _retained_documents(mosquitto_broker.url, topics) == {digest: document}
        finally:
            for topic, _ in messages:
                await bus.publish(topic, b"", qos=1, retain=True)


async def test_edge_catalogs_lists_and_prunes(mosquitto_broker, tmp_path):
    topics = Topics(f"cp{uuid.uuid4().hex[:8]}")
    live, live_doc = _document("gauge")
    stale, stale_doc = _document("old_gauge")
    messages = [(topics.catalog_document(live), live_doc), (topics.catalog_document(stale), stale_doc),
                (topics.agent_state("a"), _state(True)), (topics.agent_catalog("a"), _names("a", live))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(EDGE_BROKER=str(mosquitto_broker.url), EDGE_NAMESPACE=topics.namespace, EDGE_DATA_DIR=str(tmp_path))

    def edge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edge", *args], env=env, capture_output=True, text=True,
                              timeout=60, check=False)

    async with Bus(mosquitto_broker.url) as bus:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker", timeout=TIMEOUT)
        try:
            listed = await asyncio.to_thread(edge, "catalogs")
            assert listed.returncode == 0, listed.stderr
            header, *rows = listed.stdout.splitlines()
            assert header.split() == ["CATALOG", "BYTES", "AGENTS", "ONLINE", "STATE"]
            assert sorted(r.split() for r in rows) == sorted([[live, f"{len(live_doc):,}", "1", "1", "ok"],
                                                              [stale, f"{len(stale_doc):,}", "0", "0", "ok"]])
            as_json = await asyncio.to_thread(edge, "catalogs", "--json")
            assert as_json.returncode == 0, as_json.stderr
            assert json.loads(as_json.stdout) == {"namespace": topics.namespace, "catalogs": sorted([
                {"hash": live, "bytes": len(live_doc), "agents": 1, "online": 1, "state": "ok", "problem": None},
                {"hash": stale, "bytes": len(stale_doc), "agents": 0, "online": 0, "state": "ok", "problem": None},
            ], key=lambda row: str(row["hash"]))}
            dry = await asyncio.to_thread(edge, "catalogs", "prune", "--dry-run", "--json")
            assert dry.returncode == 0, dry.stderr
            assert json.loads(dry.stdout) == {"namespace": topics.namespace, "dry_run": True, "blocked": None,
                                              "catalogs": sorted([
                {"hash": stale, "bytes": len(stale_doc), "outcome": "would clear",
                 "why": "no retained agent catalog names it"},
                {"hash": live, "bytes": len(live_doc), "outcome": "kept", "why": "named by 1 agent (1 online)"},
            ], key=lambda row: str(row["hash"]))}
            wrong = await asyncio.to_thread(edge, "catalogs", "--dry-run")
            assert wrong.returncode == 1 and wrong.stderr.strip().splitlines() == [
                "edge: --dry-run goes with prune: edge catalogs prune --dry-run"]
            pruned = await asyncio.to_thread(edge, "catalogs", "prune")
            assert pruned.returncode == 0, pruned.stderr
            assert sorted(pruned.stdout.splitlines()) == sorted([
                f"cleared {stale} ({len(stale_doc):,} bytes): no retained agent catalog names it",
                f"kept {live} ({len(live_doc):,} bytes): named by 1 agent (1 online)"])
            assert await _retained_documents(mosquitto_broker.url, topics) == {live: live_doc}
        finally:
            for topic, _ in messages:
                await bus.publish(topic, b"", qos=1, retain=True)


def test_documents_lists_a_named_document_the_broker_lacks():
    class NoBus:
        is_connected = False

    topics = Topics("cp")
    fleet = Fleet(NoBus(), topics)  # type: ignore[arg-type]
    digest, _ = _document("never")
    fleet._on_message(Message(topics.agent_state("a"), _state(True)))
    fleet._on_message(Message(topics.agent_catalog("a"), _names("a", digest)))
    [info] = documents(fleet)
    assert (info.hash, info.size, info.agents, info.online, info.state) == (digest, None, 1, 1, "not retained")


async def test_a_missing_document_is_asked_of_its_agents_in_turn_a_bounded_number_of_times(mosquitto_broker,
                                                                                             monkeypatch):
    """Agents that never answer (older ones, say) are asked in turn, MAX_REQUESTS times in all, then no more
    until one of them publishes its catalog again (a reconnect)."""
    from edge.controller import fleet as fleet_module

    monkeypatch.setattr(fleet_module, "REQUEST_INTERVAL", 0.05)
    monkeypatch.setattr(fleet_module, "MAX_REQUESTS", 4)
    monkeypatch.setattr(fleet_module, "REQUEST_WAIT", 0.1)
    topics = Topics(f"cq{uuid.uuid4().hex[:8]}")
    digest, _ = _document("never_sent")
    messages = [(topics.agent_state(agent), _state(True)) for agent in ("a", "b")]
    messages += [(topics.agent_catalog(agent), _names(agent, digest)) for agent in ("a", "b")]
    asked: list[str] = []
    async with Bus(mosquitto_broker.url) as bus, \
            bus.subscribe(f"{topics.root}/agents/+/catalog/request", qos=1) as requests:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker", timeout=TIMEOUT)

        async def take(count: int) -> None:
            async with asyncio.timeout(TIMEOUT):
                while len(asked) < count:
                    message = await requests.get()
                    assert decode_value(message.payload)["catalog"] == digest
                    asked.append(message.topic.split("/")[-3])

        async def none_for(seconds: float) -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    message = await requests.get()
                    raise AssertionError(f"asked again: {message.topic}")

        try:
            async with Bus(mosquitto_broker.url) as controller_bus, Fleet(controller_bus, topics) as fleet:
                await fleet.synced(TIMEOUT)
                await take(4)
                assert asked == ["a", "b", "a", "b"] and fleet.catalog_requests == 4
                await none_for(0.5)  # 10 intervals: the cap holds
                assert fleet.agents["a"].catalog_pending == digest  # still listed as such, not forgotten
                # agent b publishes its catalog again (it reconnected): the asking starts over
                await bus.publish(topics.agent_catalog("b"), _names("b", digest), qos=1, retain=True)
                await take(5)
                assert fleet.catalog_requests == 5
        finally:
            for topic, _ in messages:
                await bus.publish(topic, b"", qos=1, retain=True)
