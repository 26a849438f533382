"""The task types page: the merged catalog, ports and metadata, config fields, who offers what,
unavailable types with their reason, search."""

from __future__ import annotations

import pytest
from conftest import agents, panel
from nicegui import ElementFilter

from edge.bus import Bus
from edge.frames import encode_value

pytestmark = pytest.mark.parametrize("broker", ["mosquitto"], indirect=True)


def card(user, name):
    with user:  # hidden cards too
        return next(iter(ElementFilter(marker=f"type-{name}", only_visible=False)))


async def test_catalog_with_ports_config_offers_and_reasons(user, panel_settings, tmp_path):
    await user.open("/types")
    await user.should_see("no agent has published a catalog yet")
    topics = panel().controller.topics
    async with agents(panel_settings, tmp_path, "a1", "a2"), Bus(panel_settings.broker_url) as bus:
        # a device where the media types failed to load: unavailable there, with the reason
        await bus.publish(topics.agent_state("pi"), encode_value({"online": True, "epoch": 1}), qos=1, retain=True)
        await bus.publish(topics.agent_catalog("pi"), encode_value({"agent": "pi", "epoch": 1, "types": [
            {"name": "video_encoder", "available": False, "reason": "ModuleNotFoundError: No module named 'av'"},
            {"name": "double", "available": False, "reason": "disabled here"}]}), qos=1, retain=True)
        await user.should_see(marker="type-video_encoder", retries=200)
        await user.should_see("unavailable on pi: ModuleNotFoundError: No module named 'av'")
        await user.should_see(marker="type-double", retries=200)
        with user.scope(marker="type-double"):
            await user.should_see("Doubles numbers.")
            await user.should_see("in: number")
            await user.should_see("out: number")
            await user.should_see("number, ≤ 1000, > 0, default 2.0")  # factor: gt=0, le=1000
            await user.should_see("one of multiply, add, default \"multiply\"")
            await user.should_see("offered by a1, a2", retries=100)
            await user.should_see("unavailable on pi: disabled here")
            await user.should_see("offered by 2")
        with user.scope(marker="type-video_encoder"):
            await user.should_see("unavailable")
        user.find(marker="search").type("says a WORD")  # the description of Words, in any case
        await user.should_see("1 of", retries=50)
        assert card(user, "words").visible and not card(user, "double").visible
        user.find(marker="search").clear()
        await user.should_see(marker="type-double")
        assert card(user, "double").visible
        for topic in (topics.agent_state("pi"), topics.agent_catalog("pi")):
            await bus.publish(topic, b"", qos=1, retain=True)
