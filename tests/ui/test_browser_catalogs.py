"""In a real browser: the Agents page shows an agent whose shared catalog has not come as "catalog
pending" (orange, the whole line of ``edge ls agents`` on hover) and one whose document was refused
as "catalog refused" with the reason, never as an agent with no types. Its screenshot is
docs/images/ui-agents-catalogs.png (``UPDATE_DOCS_IMAGES=1``)."""

from __future__ import annotations

import pytest
from _retained import publish_retained
from test_browser import chromium, page, panel_url, shot  # noqa: F401 - the browser fixtures

from edge.bus import Bus
from edge.frames import encode_value
from edge.presence import catalog_hash
from edge.topics import Topics

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120),
              pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)]

ORANGE = "rgb(251, 140, 0)"  # .edge-orange
RED = "rgb(229, 57, 53)"  # .edge-red


def _state(name: str) -> bytes:
    return encode_value({"v": 2, "online": True, "epoch": 1, "boot": "b", "ts": 1, "version": "0.1.0",
                         "host": {"name": name, "machine": "aarch64", "python": "3.11.2", "cpus": 4}})


def _names(agent: str, digest: str) -> bytes:
    return encode_value({"v": 2, "agent": agent, "epoch": 1, "boot": "b", "catalog": digest})


async def test_pending_and_refused_catalogs_in_the_browser(page, panel_url, panel_settings, tmp_path):  # noqa: F811
    topics = Topics(panel_settings.namespace)
    document = encode_value({"v": 2, "types": [{"name": "gauge", "available": True}]})
    digest, other = catalog_hash(document), catalog_hash(b"another")
    messages = [(topics.agent_state(a), _state(f"{a}-host")) for a in ("pi-1", "pi-2", "pi-3", "pi-4")] + [
        (topics.agent_catalog("pi-1"), _names("pi-1", digest)), (topics.agent_catalog("pi-2"), _names("pi-2", other)),
        (topics.agent_catalog("pi-3"), _names("pi-3", other)), (topics.agent_catalog("pi-4"), _names("pi-4", digest)),
        (topics.catalog_document(digest), document), (topics.catalog_document(other), document)]
    async with Bus(panel_settings.broker_url) as bus:
        await publish_retained(bus, messages, marker=f"{topics.root}/marker")
        try:
            await page.goto(panel_url + "/")
            refused = page.locator('tr[data-key="pi-2"] .col-types .edge-badge', has_text="catalog refused")
            await refused.wait_for()
            assert await refused.get_attribute("title") == (f"shared catalog {other} refused: its content does not "
                                                             "match its hash")
            assert await refused.evaluate("e => getComputedStyle(e).backgroundColor") == RED
            await page.locator('tr[data-key="pi-1"] .col-types .edge-badge', has_text="1 type").wait_for()
            await page.get_by_text(f"catalog refused for 2 agents (pi-2, pi-3): shared catalog {other} refused: "
                                   "its content does not match its hash").wait_for()

            # the other document gone: the refused agents are pending, said in orange
            await bus.publish(topics.catalog_document(other), b"", qos=1, retain=True)
            await bus.publish(topics.agent_catalog("pi-3"), _names("pi-3", "0" * 32), qos=1, retain=True)
            waiting = page.locator('tr[data-key="pi-3"] .col-types .edge-badge', has_text="catalog pending")
            await waiting.wait_for()
            assert await waiting.get_attribute("title") == f"shared catalog {'0' * 32} not received"
            assert await waiting.evaluate("e => getComputedStyle(e).backgroundColor") == ORANGE
            await page.get_by_text(f"catalog pending for 1 agent (pi-3): shared catalog {'0' * 32} not "
                                   "received").wait_for()
            await shot(page, tmp_path, "agents-catalogs", settle=300)  # the last patch drawn
        finally:
            for topic, _ in messages:
                await bus.publish(topic, b"", qos=1, retain=True)
