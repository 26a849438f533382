"""Shared catalogs (``EDGE_SHARED_CATALOG``): one retained copy of the task types per distinct catalog.

An agent publishes its types once under ``{root}/catalogs/{hash}`` and its own catalog names the
hash; the fleet verifies a document against its hash, gives its entries to every agent naming it,
fetches one it lacks, and says why an agent has no types when its document is refused or has not
come (docs/protocol.md, "Shared catalogs"). Agents of the old form (types inline) list as before.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from typing import Any

from _retained import publish_retained
from two_types import Double, Negate

from edge.bus import Bus, Message
from edge.controller import Fleet
from edge.frames import decode_value, encode_value
from edge.host import Host
from edge.presence import catalog_hash
from edge.protocol import MAX_CATALOG_BYTES
from edge.settings import load_settings
from edge.topics import Topics

TIMEOUT = 10.0
TYPES = [{"name": f"type{i:02d}", "description": "x" * 100, "available": True} for i in range(20)]


class _NoBus:
    """Drives ``Fleet._on_message`` directly: nothing is sent."""

    is_connected = False


def _document(types: list[dict[str, Any]]) -> tuple[str, bytes]:
    payload = encode_value({"v": 2, "types": types})
    return catalog_hash(payload), payload


def _state() -> bytes:
    return encode_value({"online": True, "epoch": 1, "boot": "b", "ts": 1, "version": "0.1.0", "host": {"name": "h"}})


def _names(catalog: str) -> bytes:
    return encode_value({"v": 2, "agent": "a", "epoch": 1, "boot": "b", "catalog": catalog})


def _fleet_with_agent(catalog: str) -> tuple[Fleet, Topics]:
    topics = Topics("sc")
    fleet = Fleet(_NoBus(), topics)  # type: ignore[arg-type]
    fleet._on_message(Message(topics.agent_state("a"), _state()))
    fleet._on_message(Message(topics.agent_catalog("a"), _names(catalog)))
    return fleet, topics


async def test_agents_with_the_same_types_share_one_retained_document(broker, tmp_path):
    """Two agents of the new form, one of the old: one document on catalogs/+, every agent listed with
    its types by a running fleet and by a cold one."""
    topics = Topics(f"sc{uuid.uuid4().hex[:8]}")

    def host(name: str, shared: bool) -> Host:
        settings = load_settings(broker=broker.url.geturl(), namespace=topics.namespace, agent_id=name,
                                 data_dir=tmp_path / name, shared_catalog=shared)
        return Host(settings, types=[Double, Negate], persist=False)

    async with Bus(broker.url) as bus, bus.subscribe(topics.all_catalog_documents, qos=1) as documents, \
            bus.subscribe(topics.agent_catalog("new1"), qos=1) as own, Fleet(bus, topics) as fleet:
        await fleet.synced(TIMEOUT)
        async with host("new1", True), host("new2", True), host("old", False):
            await fleet.wait_for(lambda f: all(a in f.agents and f.agents[a].types for a in ("new1", "new2", "old")),
                                 TIMEOUT)
            names = {a: sorted(t["name"] for t in fleet.agents[a].types) for a in ("new1", "new2", "old")}
            assert names["new1"] == names["new2"] == names["old"] == ["double", "negate"]
            assert fleet.agents["new1"].types is fleet.agents["new2"].types  # one list for the one document
            digest = fleet.agents["new1"].catalog
            assert digest is not None and fleet.agents["old"].catalog is None
            assert fleet.agents["new1"].catalog_pending is None and fleet.agents["new1"].catalog_problem is None
            sent = decode_value((await asyncio.wait_for(own.get(), TIMEOUT)).payload)
            assert sent["catalog"] == digest and "types" not in sent  # the agent's own catalog: the hash alone
            message = await asyncio.wait_for(documents.get(), TIMEOUT)
            assert message.topic == topics.catalog_document(digest) and catalog_hash(message.payload) == digest
            async with Bus(broker.url) as other, Fleet(other, topics) as cold:  # a cold controller: all at synced()
                await cold.synced(TIMEOUT)
                assert {a: sorted(t["name"] for t in cold.agents[a].types) for a in names} == names
            retained: list[Message] = []
            marker = f"{topics.root}/marker"
            async with Bus(broker.url) as other, other.subscribe(topics.all_catalog_documents, qos=0) as again, \
                    other.subscribe(marker, qos=0) as back:
                await other.publish(marker, b"x", qos=0)  # back after the retained copies the subscription brought
                await asyncio.wait_for(back.get(), TIMEOUT)
                while again.queued:
                    retained.append(await again.get())
            assert [m.topic for m in retained if m.payload] == [topics.catalog_document(digest)]  # one, for two agents
        await bus.publish(topics.catalog_document(digest), b"", qos=1, retain=True)


def test_a_document_under_another_hash_is_refused_and_said_on_the_agents_naming_it(caplog):
    digest, payload = _document(TYPES)
    fleet, topics = _fleet_with_agent(digest)
    agent = fleet.agents["a"]
    assert agent.types == [] and agent.catalog_pending == digest and agent.catalog_problem is None
    assert topics.catalog_document(digest) in fleet.missing()  # fetched alone if it does not come
    forged = encode_value({"v": 2, "types": [{"name": "evil", "available": True}]})
    fleet._on_message(Message(topics.catalog_document(digest), forged))
    assert agent.types == [] and agent.catalog_problem == (f"shared catalog {digest} refused: its content does not "
                                                          "match its hash")
    assert fleet.errors == 1 and "evil" not in fleet.types()
    fleet._on_message(Message(topics.catalog_document(digest), payload))  # the true one, later: taken
    assert [t["name"] for t in agent.types] == [t["name"] for t in TYPES]
    assert agent.catalog_pending is None and agent.catalog_problem is None
    fleet._on_message(Message(topics.catalog_document(digest), forged))  # a verified copy stays
    fleet._on_message(Message(topics.catalog_document(digest), b""))
    assert [t["name"] for t in agent.types] == [t["name"] for t in TYPES]


def test_a_huge_or_garbage_document_is_refused_with_the_reason():
    huge = b"\xff" * (MAX_CATALOG_BYTES + 1)
    fleet, topics = _fleet_with_agent(catalog_hash(huge))
    fleet._on_message(Message(topics.catalog_document(catalog_hash(huge)), huge))
    assert fleet.agents["a"].catalog_problem == (f"shared catalog {catalog_hash(huge)} refused: "
                                                 f"{MAX_CATALOG_BYTES + 1:,} bytes, over the limit of "
                                                 f"{MAX_CATALOG_BYTES:,}")
    for garbage in (b"\xff\x00", encode_value([1, 2]), encode_value({"types": "abc"})):
        fleet, topics = _fleet_with_agent(catalog_hash(garbage))
        fleet._on_message(Message(topics.catalog_document(catalog_hash(garbage)), garbage))
        problem = fleet.agents["a"].catalog_problem
        assert problem is not None and problem.startswith(f"shared catalog {catalog_hash(garbage)} refused: ")
        assert "\n" not in problem and fleet.agents["a"].types == [] and fleet.errors == 1
    # a catalog naming no valid hash is no catalog: refused whole, as any malformed catalog
    fleet = Fleet(_NoBus(), Topics("sc"))  # type: ignore[arg-type]
    fleet._on_message(Message(Topics("sc").agent_catalog("a"), _names("../../x")))
    assert fleet.errors == 1 and ("a" not in fleet.agents or fleet.agents["a"].catalog is None)


def test_a_topic_that_is_no_hash_is_not_a_document():
    fleet, topics = _fleet_with_agent("0" * 32)
    fleet._on_message(Message(f"{topics.root}/catalogs/NOTAHASH", encode_value({"types": TYPES})))
    assert fleet.errors == 1 and fleet.agents["a"].catalog_pending == "0" * 32


async def test_a_hash_that_never_comes_leaves_the_agent_pending_and_synced_returns(broker):
    """The agent's catalog names a document nobody published: a cold fleet fetches it once, returns from
    synced() in time, and lists the agent with no types and its catalog pending."""
    topics = Topics(f"sc{uuid.uuid4().hex[:8]}")
    digest = "ab" * 16
    messages = [(topics.agent_state("a"), _state()), (topics.agent_catalog("a"), _names(digest))]
    async with Bus(broker.url) as bus:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker", timeout=TIMEOUT)
        try:
            async with Fleet(bus, topics) as fleet:
                loop = asyncio.get_running_loop()
                started = loop.time()
                await fleet.synced(TIMEOUT)
                assert loop.time() - started < TIMEOUT
                agent = fleet.agents["a"]
                assert agent.types == [] and agent.catalog_pending == digest and agent.catalog_problem is None
                assert fleet.probes >= 1 and fleet.missing() == []  # asked once; not asked again and again
                _, payload = _document(TYPES)  # published later (another agent comes): taken live
                await bus.publish(topics.catalog_document(catalog_hash(payload)), payload, qos=1)
                await bus.publish(topics.agent_catalog("a"), _names(catalog_hash(payload)), qos=1)
                await fleet.wait_for(lambda f: bool(f.agents["a"].types), TIMEOUT)
                assert fleet.agents["a"].catalog_pending is None
        finally:
            for topic, _ in messages:
                await bus.publish(topic, b"", qos=1, retain=True)


async def test_edge_ls_agents_says_which_agents_wait_for_their_catalog(mosquitto_broker, tmp_path):
    """``?`` types in the table, and why in ``--json``: not "0 types", which would be untrue; the same for an
    agent whose state came and whose catalog has not."""
    topics = Topics(f"sc{uuid.uuid4().hex[:8]}")
    digest = "cd" * 16
    messages = [(topics.agent_state("a"), _state()), (topics.agent_catalog("a"), _names(digest)),
                (topics.agent_state("b"), _state())]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(EDGE_BROKER=str(mosquitto_broker.url), EDGE_NAMESPACE=topics.namespace, EDGE_DATA_DIR=str(tmp_path))
    async with Bus(mosquitto_broker.url) as bus:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker", timeout=TIMEOUT)
        try:
            table = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "edge", "ls", "agents"], env=env,
                                            capture_output=True, text=True, timeout=60, check=True)
            header, *rows = table.stdout.splitlines()
            assert [row.split()[header.split().index("TYPES")] for row in rows] == ["?", "?"], table.stdout
            listed = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "edge", "ls", "agents", "--json"],
                                             env=env, capture_output=True, text=True, timeout=60, check=True)
            a, b = json.loads(listed.stdout)["agents"]
            assert a["types"] == [] and a["catalog_problem"] == f"shared catalog {digest} not received"
            assert b["types"] == [] and b["catalog_problem"] == "its catalog has not come"
        finally:
            for topic, _ in messages:
                await bus.publish(topic, b"", qos=1, retain=True)


async def test_an_unknown_type_says_which_agents_types_are_unknown(mosquitto_broker, tmp_path):
    """A type said to be unknown may be in a catalog that has not come: validation warns so, and ``edge describe``
    says it in its one line, instead of "no agent has published a catalog"."""
    from edge.controller import Controller

    topics = Topics(f"sc{uuid.uuid4().hex[:8]}")
    digest = "ef" * 16
    messages = [(topics.agent_state("a"), _state()), (topics.agent_catalog("a"), _names(digest))]
    note = ("the task types of 1 agent (a) are unknown: the shared catalog they name has not come or was refused "
            "(edge ls agents)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update(EDGE_BROKER=str(mosquitto_broker.url), EDGE_NAMESPACE=topics.namespace, EDGE_DATA_DIR=str(tmp_path))
    async with Bus(mosquitto_broker.url) as bus:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker", timeout=TIMEOUT)
        try:
            settings = load_settings(broker=str(mosquitto_broker.url), namespace=topics.namespace,
                                     data_dir=tmp_path / "ctl")
            async with Controller(settings) as controller:
                report = await controller.validate({"id": "d", "tasks": [{"id": "x", "type": "gauge"}]})
            assert "task 'x': unknown task type 'gauge'" in report.errors and note in report.warnings
            described = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "edge", "describe", "gauge"],
                                                env=env, capture_output=True, text=True, timeout=60, check=False)
            assert described.returncode == 1
            assert described.stderr.strip().splitlines() == [f"edge: unknown task type 'gauge': {note}"]
        finally:
            for topic, _ in messages:
                await bus.publish(topic, b"", qos=1, retain=True)
