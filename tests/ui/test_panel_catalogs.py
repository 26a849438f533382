"""The panel and shared catalogs: an agent whose shared catalog has not come is "catalog pending",
one whose document was refused says why, on the Agents page, the Task types page and the editor's
palette, in the words of ``edge ls agents``; never an agent that offers no types."""

from __future__ import annotations

import pytest
from _retained import publish_retained
from conftest import new_deployment, panel, until

from edge.bus import Bus
from edge.frames import encode_value
from edge.presence import catalog_hash

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)

TYPES = [{"name": "gauge", "label": "Gauge", "description": "shows a number", "available": True}]


def table(user):
    return next(iter(user.find(marker="agents").elements))


def row(user, agent_id):
    return next((r for r in table(user).rows if r["id"] == agent_id), None)


def _state() -> bytes:
    return encode_value({"v": 2, "online": True, "epoch": 1, "boot": "b", "ts": 1, "version": "0.1.0",
                         "host": {"name": "h"}})


def _names(agent: str, digest: str) -> bytes:
    return encode_value({"v": 2, "agent": agent, "epoch": 1, "boot": "b", "catalog": digest})


async def test_agents_whose_shared_catalog_is_missing_or_refused_say_so(user, panel_settings):
    await user.open("/")
    topics = panel().controller.topics
    document = encode_value({"v": 2, "types": TYPES})
    digest = catalog_hash(document)
    forged = catalog_hash(b"another document")  # its topic holds the bytes of the real one: they do not match it
    messages = [(topics.agent_state(a), _state()) for a in ("p1", "p2", "r", "bare")] + [
        (topics.agent_catalog("p1"), _names("p1", digest)), (topics.agent_catalog("p2"), _names("p2", digest)),
        (topics.agent_catalog("r"), _names("r", forged)), (topics.catalog_document(forged), document)]
    async with Bus(panel_settings.broker_url) as bus:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker")
        try:
            await until(lambda: (r := row(user, "r")) and r["types"]["text"] == "catalog refused", "r refused")
            assert row(user, "p1")["types"] == {"text": "catalog pending", "color": "orange",
                                                "title": f"shared catalog {digest} not received", "sort": -1}
            assert row(user, "r")["types"]["title"] == (f"shared catalog {forged} refused: its content does not "
                                                        "match its hash")
            assert row(user, "bare")["types"] == {"text": "no catalog yet", "color": "grey",  # its state alone
                                                  "title": "its catalog has not come", "sort": -3}
            await user.should_see(f"catalog pending for 2 agents (p1, p2): shared catalog {digest} not received")
            await user.should_see(f"catalog refused for 1 agent (r): shared catalog {forged} refused: its content "
                                  "does not match its hash")
            user.find(marker="filter").type("pending")  # the badge's words are searchable
            await until(lambda: [r["id"] for r in table(user).shown_rows] == ["p1", "p2"], "the pending ones")

            await user.open("/types")
            await user.should_see("no task type has come from any agent yet")
            await user.should_see(f"catalog pending for 2 agents (p1, p2): shared catalog {digest} not received")
            await new_deployment(user, "cat")
            await user.should_see("no agent offers a task type yet")
            await user.should_see(f"catalog pending for 2 agents (p1, p2): shared catalog {digest} not received")

            # the document comes: the agents list its types, their notes go; the refused one stays refused
            await bus.publish(topics.catalog_document(digest), document, qos=1, retain=True)
            await user.open("/")
            await until(lambda: (r := row(user, "p1")) and r["types"] == {"text": "1 type", "color": "blue-grey",
                                                                         "sort": 1}, "p1's types")
            await user.should_not_see("catalog pending")
            await user.should_see("catalog refused for 1 agent (r)")
            await user.open("/types")
            await user.should_see("gauge")
            await user.should_not_see("catalog pending")
        finally:
            for topic, _ in messages:
                await bus.publish(topic, b"", qos=1, retain=True)
            await bus.publish(topics.catalog_document(digest), b"", qos=1, retain=True)
